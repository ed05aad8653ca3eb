-- Error rate per service on one day.
SELECT service,
       count(*) AS requests,
       count_if(status >= 500) AS errors,
       round(100.0 * count_if(status >= 500) / count(*), 3) AS error_pct
FROM logs
WHERE ts >= TIMESTAMP '2026-11-07 00:00:00' AND ts < TIMESTAMP '2026-11-08 00:00:00'
  AND dt = '2026-11-07' -- pruning
GROUP BY service
ORDER BY service
