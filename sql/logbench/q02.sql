-- The web service's 20 busiest paths over the last three days.
SELECT path, count(*) AS requests
FROM logs
WHERE service = 'web'
  AND ts >= TIMESTAMP '2026-11-05 00:00:00'
  AND dt >= '2026-11-05' -- pruning
GROUP BY path
ORDER BY requests DESC, path
LIMIT 20
