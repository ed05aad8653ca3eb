-- Distinct users per day.
SELECT dt, approx_distinct(user_id) AS users
FROM logs
GROUP BY dt
ORDER BY dt
