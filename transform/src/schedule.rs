//! Running jobs on their cron schedules inside the server.
//!
//! Every second the scheduler starts the jobs whose schedule fired since
//! the previous tick, each as its own task, so a long run does not delay
//! the others; a job whose previous run is still going is skipped (at most
//! one run per job at a time). At start-up, a job whose schedule fired
//! after its last recorded run started (the server was down, say) runs
//! once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::job::Job;
use crate::run::{Etl, NoProgress};

/// Whether `schedule` fires in `(after, until]`.
pub fn fires_between(
    schedule: &cron::Schedule,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> bool {
    schedule.after(&after).next().is_some_and(|t| t <= until)
}

fn start(etl: &Etl, job: &Arc<Job>, why: &'static str) {
    let etl = etl.clone();
    let job = Arc::clone(job);
    tokio::spawn(async move {
        if etl.is_running(&job.name) {
            tracing::debug!(job = %job.name, "previous run still going; schedule skipped");
            return;
        }
        tracing::info!(job = %job.name, "ETL run started ({why})");
        match etl.run(&job, &NoProgress).await {
            Ok(r) if r.succeeded() => tracing::info!(
                job = %job.name,
                rows_read = r.rows_read,
                rows_written = r.rows_written,
                version = ?r.table_version,
                "ETL run succeeded"
            ),
            Ok(r) => tracing::warn!(job = %job.name, error = ?r.error, "ETL run failed"),
            Err(e) => tracing::warn!(job = %job.name, error = %e, "ETL run could not start"),
        }
    });
}

/// Starts the scheduler for `jobs` (those without a schedule are ignored).
pub fn spawn_scheduler(etl: Etl, jobs: Vec<Job>) -> tokio::task::JoinHandle<()> {
    let jobs: Vec<Arc<Job>> = jobs
        .into_iter()
        .filter(|j| j.schedule.is_some())
        .map(Arc::new)
        .collect();
    tokio::spawn(async move {
        let mut last = Utc::now();
        for job in &jobs {
            let Some((_, schedule)) = &job.schedule else {
                continue;
            };
            let missed = match etl.last_run(&job.name).await {
                Ok(Some(run)) => DateTime::from_timestamp_millis(run.started_ms)
                    .is_some_and(|started| fires_between(schedule, started, last)),
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(job = %job.name, error = %e, "could not read the ETL run history");
                    false
                }
            };
            if missed {
                start(&etl, job, "missed while the server was down");
            }
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = Utc::now();
            for job in &jobs {
                if let Some((_, schedule)) = &job.schedule
                    && fires_between(schedule, last, now)
                {
                    start(&etl, job, "scheduled");
                }
            }
            last = now;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::parse_cron;

    #[test]
    fn fires_in_half_open_windows() {
        let every_5 = parse_cron("*/5 * * * *").unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert!(fires_between(
            &every_5,
            t("2026-11-23T10:04:59Z"),
            t("2026-11-23T10:05:00Z")
        ));
        assert!(!fires_between(
            &every_5,
            t("2026-11-23T10:05:00Z"),
            t("2026-11-23T10:09:59Z")
        ));
        // A run at 10:00 and a server down until 10:20 missed 10:05.
        assert!(fires_between(
            &every_5,
            t("2026-11-23T10:00:00Z"),
            t("2026-11-23T10:20:00Z")
        ));
    }
}
