-- What most questions need: each user's current device IP.
CREATE OR REPLACE VIEW {schema}.users_current AS
SELECT user_id, "user", local_ip, valid_from, version
FROM {schema}.users_dim
WHERE is_current;
