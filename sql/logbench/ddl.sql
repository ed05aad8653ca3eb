-- The log-analytics benchmark's tables over what `lakehose gen-logs` wrote
-- to s3://${BUCKET}/${PREFIX}/ (logs/ partitioned by service, dt and hour;
-- users/ unpartitioned).
CREATE DATABASE IF NOT EXISTS logbench;

CREATE EXTERNAL TABLE IF NOT EXISTS logbench.logs (
  ts timestamp,
  container string,
  level string,
  method string,
  path string,
  status int,
  latency_ms double,
  bytes bigint,
  user_id string,
  trace_id string,
  message string
)
PARTITIONED BY (service string, dt string, hour string)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}/logs/';

MSCK REPAIR TABLE logbench.logs;

CREATE EXTERNAL TABLE IF NOT EXISTS logbench.users (
  user_id string,
  plan string,
  country string,
  signup_date date
)
STORED AS PARQUET
LOCATION 's3://${BUCKET}/${PREFIX}/users/'
