-- Slowest endpoints on one day (paths with at least 1,000 requests).
SELECT service, method, path,
       count(*) AS requests,
       round(avg(latency_ms), 2) AS avg_ms,
       max(latency_ms) AS max_ms
FROM logs
WHERE ts >= TIMESTAMP '2026-11-04 00:00:00' AND ts < TIMESTAMP '2026-11-05 00:00:00'
  AND dt = '2026-11-04' -- pruning
GROUP BY service, method, path
HAVING count(*) >= 1000
ORDER BY avg_ms DESC, service, method, path
LIMIT 20
