-- The 10 users who saw the most server errors in the last two days, with
-- their country.
SELECT l.user_id, u.country, count(*) AS errors
FROM logs l
JOIN users u ON l.user_id = u.user_id
WHERE l.status >= 500
  AND l.ts >= TIMESTAMP '2026-11-06 00:00:00'
  AND l.dt >= '2026-11-06' -- pruning
GROUP BY l.user_id, u.country
ORDER BY errors DESC, l.user_id
LIMIT 10
