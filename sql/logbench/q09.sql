-- Requests and errors per minute during one hour.
SELECT date_trunc('minute', ts) AS minute,
       count(*) AS requests,
       count_if(status >= 500) AS errors
FROM logs
WHERE ts >= TIMESTAMP '2026-11-03 14:00:00' AND ts < TIMESTAMP '2026-11-03 15:00:00'
  AND dt = '2026-11-03' AND hour = '14' -- pruning
GROUP BY date_trunc('minute', ts)
ORDER BY minute
