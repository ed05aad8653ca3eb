-- Status codes per hour for the api service on one day.
SELECT date_trunc('hour', ts) AS hour_start, status, count(*) AS requests
FROM logs
WHERE service = 'api'
  AND ts >= TIMESTAMP '2026-11-06 00:00:00' AND ts < TIMESTAMP '2026-11-07 00:00:00'
  AND dt = '2026-11-06' -- pruning
GROUP BY date_trunc('hour', ts), status
ORDER BY hour_start, status
