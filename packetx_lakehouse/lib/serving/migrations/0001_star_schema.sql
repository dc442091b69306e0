-- The star schema of packetx_gold, in the SQL subset PostgreSQL and Redshift share (no indexes,
-- no arrays; keys are declared for the planner, Redshift does not enforce them).
CREATE TABLE IF NOT EXISTS {schema}.date_dim (
    date_key BIGINT NOT NULL PRIMARY KEY,
    hour_start_utc TIMESTAMPTZ NOT NULL,
    date DATE NOT NULL,
    hour BIGINT NOT NULL,
    day_of_week BIGINT NOT NULL,
    day_name VARCHAR(16) NOT NULL,
    month BIGINT NOT NULL,
    year BIGINT NOT NULL,
    is_weekend BOOLEAN NOT NULL
);

CREATE TABLE IF NOT EXISTS {schema}.ip_dim (
    ip_key BIGINT NOT NULL PRIMARY KEY,
    ip VARCHAR(64) NOT NULL,
    ip_version BIGINT,
    is_private BOOLEAN NOT NULL,
    scope VARCHAR(32) NOT NULL
);

CREATE TABLE IF NOT EXISTS {schema}.users_dim (
    user_key BIGINT NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    "user" VARCHAR(256) NOT NULL,
    local_ip VARCHAR(64) NOT NULL,
    valid_from TIMESTAMPTZ NOT NULL,
    valid_to TIMESTAMPTZ,
    is_current BOOLEAN NOT NULL,
    version BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS {schema}.direction_dim (
    direction_key BIGINT NOT NULL PRIMARY KEY,
    direction VARCHAR(16) NOT NULL,
    description VARCHAR(256) NOT NULL
);

CREATE TABLE IF NOT EXISTS {schema}.packets_fact (
    log_date DATE NOT NULL,
    date_key BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    local_ip_key BIGINT,
    remote_ip_key BIGINT NOT NULL,
    direction_key BIGINT NOT NULL,
    ts_utc TIMESTAMPTZ NOT NULL,
    kb DOUBLE PRECISION NOT NULL,
    source_file VARCHAR(1024) NOT NULL,
    line_number BIGINT NOT NULL,
    PRIMARY KEY (source_file, line_number)
);
