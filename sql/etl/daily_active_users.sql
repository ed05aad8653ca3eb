-- Daily active users and their sessions: a session ends after 30 minutes
-- without a request. Recomputes the days with new log files.
-- target: curated.daily_active_users
-- mode: incremental
-- source: demo.app_logs
-- database: demo
-- partitioned_by: dt
-- schedule: */2 * * * *
WITH ordered AS (
  SELECT
    user_id,
    dt,
    "timestamp" AS ts,
    lag("timestamp") OVER (PARTITION BY user_id, dt ORDER BY "timestamp") AS previous
  FROM demo.app_logs
  WHERE user_id IS NOT NULL
),
marked AS (
  SELECT
    user_id,
    dt,
    ts,
    CASE WHEN previous IS NULL OR date_diff('minute', previous, ts) > 30 THEN 1 ELSE 0 END AS starts
  FROM ordered
),
numbered AS (
  SELECT user_id, dt, ts, sum(starts) OVER (PARTITION BY user_id, dt ORDER BY ts) AS session
  FROM marked
),
sessions AS (
  SELECT user_id, dt, session, count(*) AS requests, date_diff('second', min(ts), max(ts)) AS seconds
  FROM numbered
  GROUP BY user_id, dt, session
)
SELECT
  count(DISTINCT user_id) AS active_users,
  count(*) AS sessions,
  sum(requests) AS requests,
  round(avg(seconds) / 60.0, 2) AS avg_session_minutes,
  round(1.0 * sum(requests) / count(*), 2) AS requests_per_session,
  dt
FROM sessions
GROUP BY dt
