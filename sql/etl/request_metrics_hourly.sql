-- Requests per service, endpoint and status each hour: counts, error
-- rate and latency percentiles. Endpoints are paths with their ids
-- replaced by {id}. Runs every minute over the hours with new log files.
-- target: curated.request_metrics_hourly
-- mode: incremental
-- source: demo.app_logs
-- database: demo
-- partitioned_by: dt, hour
-- schedule: * * * * *
SELECT
  service,
  regexp_replace(path, '[0-9]+', '{id}') AS endpoint,
  status,
  count(*) AS requests,
  count_if(status >= 500) AS errors,
  round(100.0 * count_if(status >= 500) / count(*), 2) AS error_pct,
  round(approx_percentile(latency_ms, 0.50), 2) AS p50_ms,
  round(approx_percentile(latency_ms, 0.95), 2) AS p95_ms,
  round(approx_percentile(latency_ms, 0.99), 2) AS p99_ms,
  max("timestamp") AS last_seen,
  dt,
  hour
FROM demo.app_logs
GROUP BY service, regexp_replace(path, '[0-9]+', '{id}'), status, dt, hour
