-- The 20 endpoints with the highest 95th-percentile latency over the
-- last 24 hours of metrics (request-weighted across hours and statuses).
-- Reads another job's table, so it runs after request_metrics_hourly.
-- target: curated.slowest_endpoints
-- mode: overwrite
-- schedule: */5 * * * *
WITH recent AS (
  SELECT *
  FROM curated.request_metrics_hourly
  WHERE last_seen >= (SELECT max(last_seen) FROM curated.request_metrics_hourly) - INTERVAL '24' HOUR
)
SELECT
  service,
  endpoint,
  sum(requests) AS requests,
  round(sum(p95_ms * requests) / sum(requests), 2) AS p95_ms,
  max(p99_ms) AS worst_p99_ms,
  round(100.0 * sum(errors) / sum(requests), 2) AS error_pct,
  max(last_seen) AS last_seen
FROM recent
GROUP BY service, endpoint
ORDER BY p95_ms DESC
LIMIT 20
