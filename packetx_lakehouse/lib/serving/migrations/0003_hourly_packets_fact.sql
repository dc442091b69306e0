-- packets_fact moves from one row per silver row to the hourly grain (issue 16): one row per
-- day, user, UTC hour, local IP, remote IP and direction, with kb, minutes and rows. Rows loaded
-- at the old grain are summed into the new table, so an existing warehouse keeps every day it had
-- (the same numbers a fresh load of those days gives) without being reloaded.
-- No primary key: local_ip_key is null for pairs with no private end, and a key column cannot be.
CREATE TABLE {schema}.packets_fact_hourly (
    log_date DATE NOT NULL,
    date_key BIGINT NOT NULL,
    hour_utc TIMESTAMPTZ NOT NULL,
    user_id BIGINT NOT NULL,
    local_ip_key BIGINT,
    remote_ip_key BIGINT NOT NULL,
    direction_key BIGINT NOT NULL,
    kb DOUBLE PRECISION NOT NULL,
    minutes BIGINT NOT NULL,
    "rows" BIGINT NOT NULL
);

-- The hour is truncated in UTC, whatever the session's time zone. KB is summed as whole
-- micro-KB, as gold sums it, so the total does not depend on the order rows are read in.
INSERT INTO {schema}.packets_fact_hourly
SELECT log_date, date_key, date_trunc('hour', ts_utc AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', user_id,
       local_ip_key, remote_ip_key, direction_key, sum(round(kb * 1000000)) / 1000000,
       count(DISTINCT ts_utc), count(*)
FROM {schema}.packets_fact
GROUP BY log_date, date_key, date_trunc('hour', ts_utc AT TIME ZONE 'UTC'), user_id, local_ip_key,
         remote_ip_key, direction_key;

DROP TABLE {schema}.packets_fact;
ALTER TABLE {schema}.packets_fact_hourly RENAME TO packets_fact;
