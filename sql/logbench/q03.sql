-- Latency percentiles per service over the whole week.
SELECT service,
       approx_percentile(latency_ms, 0.5) AS p50,
       approx_percentile(latency_ms, 0.95) AS p95,
       approx_percentile(latency_ms, 0.99) AS p99
FROM logs
GROUP BY service
ORDER BY service
