-- Exact distinct users per service in a six-hour window.
SELECT service, count(DISTINCT user_id) AS users
FROM logs
WHERE ts >= TIMESTAMP '2026-11-02 06:00:00' AND ts < TIMESTAMP '2026-11-02 12:00:00'
  AND dt = '2026-11-02' AND hour >= '06' AND hour < '12' -- pruning
GROUP BY service
ORDER BY service
