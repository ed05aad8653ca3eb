-- Requests per service, endpoint and status each hour: counts, error
-- rate and latency percentiles. Endpoints are paths with their ids
-- replaced by {id}. Runs every minute over the hours with new log files.
-- One t-digest per group serves the three percentiles.
-- target: curated.request_metrics_hourly
-- mode: incremental
-- source: demo.app_logs
-- database: demo
-- partitioned_by: dt, hour
-- schedule: * * * * *
SELECT
  service,
  endpoint,
  status,
  requests,
  errors,
  error_pct,
  round(latency[1], 2) AS p50_ms,
  round(latency[2], 2) AS p95_ms,
  round(latency[3], 2) AS p99_ms,
  last_seen,
  dt,
  hour
FROM (
  SELECT
    service,
    regexp_replace(path, '[0-9]+', '{id}') AS endpoint,
    status,
    count(*) AS requests,
    count_if(status >= 500) AS errors,
    round(100.0 * count_if(status >= 500) / count(*), 2) AS error_pct,
    approx_percentile(latency_ms, ARRAY[0.50, 0.95, 0.99]) AS latency,
    max("timestamp") AS last_seen,
    dt,
    hour
  FROM demo.app_logs
  GROUP BY service, regexp_replace(path, '[0-9]+', '{id}'), status, dt, hour
)
