-- Requests, errors and p95 latency per user plan on one day (a join with
-- the users dimension).
SELECT u.plan,
       count(*) AS requests,
       count_if(l.status >= 500) AS errors,
       approx_percentile(l.latency_ms, 0.95) AS p95_ms
FROM logs l
JOIN users u ON l.user_id = u.user_id
WHERE l.ts >= TIMESTAMP '2026-11-07 00:00:00' AND l.ts < TIMESTAMP '2026-11-08 00:00:00'
  AND l.dt = '2026-11-07' -- pruning
GROUP BY u.plan
ORDER BY u.plan
