//! Running jobs on their cron schedules inside the server, and table
//! maintenance on its own.
//!
//! The scheduler sleeps until the earliest next firing of its schedules
//! (see `lakehose_catalog::schedule`) and starts the jobs whose schedule
//! fired since it last looked, each as its own task, so a long run does not delay
//! the others; a job whose previous run is still going is skipped (at most
//! one run per job at a time). At start-up, a job whose schedule fired
//! after its last recorded run started (the server was down, say) runs
//! once.
//!
//! Maintenance (when configured) compacts every Parquet and Delta table
//! and VACUUMs the jobs' targets with each job's `retain_hours`. A job's
//! table is maintained while the job is held, so no run of it starts
//! meanwhile (its schedule is skipped, as when a run is still going).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lakehose_catalog::schedule::{Schedule, sleep_before};
use lakehose_catalog::supervise::{catch_panic, spawn_supervised};
use tokio::task::JoinSet;

use crate::claim::Kind;
use crate::compact::{CompactOptions, Compactor};
use crate::job::Job;
use crate::run::{Etl, NoProgress};

/// Table maintenance on a schedule.
#[derive(Debug, Clone)]
pub struct Maintenance {
    /// When it runs.
    pub schedule: Schedule,
    /// How tables are compacted.
    pub compact: CompactOptions,
}

/// Compacts every Parquet and Delta table, and VACUUMs each job's target
/// with the job's retention, for the occurrence `at` of the schedule.
/// Each table is claimed for that occurrence before it is touched, so
/// nodes sharing the storage split a round's tables between them and no
/// table is compacted twice. Returns one line per table that changed or
/// failed.
pub(crate) async fn maintain(
    etl: &Etl,
    compactor: &Compactor,
    jobs: &[Arc<Job>],
    options: &CompactOptions,
    at: DateTime<Utc>,
) -> Vec<String> {
    let storage = etl.engine().storage().clone();
    let mut lines = Vec::new();
    let mut targets = HashSet::new();
    for job in jobs {
        let target = job.target.to_string();
        targets.insert(target.clone());
        let Some(_held) = etl.hold(&job.name) else {
            lines.push(format!("{target}: skipped, its job is running"));
            continue;
        };
        if etl.last_run(&job.name).await.ok().flatten().is_none() {
            continue;
        }
        if !crate::claim::claim(&storage, Kind::Maintenance, &target, at).await {
            continue;
        }
        match compactor
            .optimize(
                &job.target.database,
                &job.target.table,
                options,
                &NoProgress,
            )
            .await
        {
            Ok(r) if r.files_before > 0 => lines.push(format!(
                "{target}: {} files compacted into {}",
                r.files_before, r.files_after
            )),
            Ok(_) => {}
            Err(e) => lines.push(format!("{target}: compaction failed: {e}")),
        }
        let retain = chrono::Duration::from_std(job.retain).unwrap_or(chrono::Duration::weeks(1));
        match etl.vacuum(job, retain, false).await {
            Ok(files) if !files.is_empty() => {
                lines.push(format!("{target}: VACUUM deleted {} files", files.len()))
            }
            Ok(_) => {}
            Err(e) => lines.push(format!("{target}: VACUUM failed: {e}")),
        }
    }
    let tables = match compactor.compactable_tables().await {
        Ok(tables) => tables,
        Err(e) => {
            lines.push(format!("listing tables failed: {e}"));
            return lines;
        }
    };
    for (db, table) in tables {
        let name = format!("{db}.{table}");
        if targets.contains(&name)
            || !crate::claim::claim(&storage, Kind::Maintenance, &name, at).await
        {
            continue;
        }
        match compactor.optimize(&db, &table, options, &NoProgress).await {
            Ok(r) if r.files_before > 0 || r.old_files_deleted > 0 => lines.push(format!(
                "{name}: {} files compacted into {}, {} replaced files deleted",
                r.files_before, r.files_after, r.old_files_deleted
            )),
            Ok(_) => {}
            Err(e) => lines.push(format!("{name}: compaction failed: {e}")),
        }
    }
    lines
}

/// Runs the scheduler started: its tasks (runs, maintenance) are tracked
/// so stopping can wait for them.
type Tasks = Arc<Mutex<JoinSet<()>>>;

/// Runs `task` (an ETL run, a maintenance round) on the engine's CPU
/// runtime, tracked in `tasks`.
fn spawn_tracked(etl: &Etl, tasks: &Tasks, task: impl Future<Output = ()> + Send + 'static) {
    let mut set = tasks.lock().unwrap_or_else(|e| e.into_inner());
    // Reap finished tasks so the set does not grow.
    while set.try_join_next().is_some() {}
    match etl.engine().cpu_runtime() {
        Some(runtime) => set.spawn_on(task, runtime.handle()),
        None => set.spawn(task),
    };
}

/// A running scheduler.
#[derive(Debug)]
pub struct Scheduler {
    ticker: tokio::task::JoinHandle<()>,
    tasks: Tasks,
}

impl Scheduler {
    /// Stops scheduling and waits up to `patience` for runs under way to
    /// end; those still going then are stopped (a stopped run leaves its
    /// table as it was).
    pub async fn stop(self, patience: Duration) {
        self.ticker.abort();
        let mut set = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let drained =
            tokio::time::timeout(patience, async { while set.join_next().await.is_some() {} })
                .await;
        if drained.is_err() {
            tracing::warn!("stopping ETL runs still going at shutdown");
            set.shutdown().await;
        }
    }
}

/// Starts the run of `job`'s occurrence at `at`, unless it is still
/// running here or another node sharing the storage claimed it.
fn start(etl: &Etl, tasks: &Tasks, job: &Arc<Job>, at: DateTime<Utc>, why: &'static str) {
    let job = Arc::clone(job);
    let owned = etl.clone();
    spawn_tracked(etl, tasks, async move {
        let etl = owned;
        // Held before the occurrence is claimed, so a claim is always a
        // run: a job still running, or whose table is being maintained,
        // skips the occurrence here, and another node may take it.
        let Some(held) = etl.hold(&job.name) else {
            tracing::debug!(job = %job.name, "job busy here (running or maintained); schedule skipped");
            return;
        };
        if !crate::claim::claim(etl.engine().storage(), Kind::Job, &job.name, at).await {
            return;
        }
        tracing::info!(job = %job.name, "ETL run started ({why})");
        // A panic fails this run (logged); the schedule goes on.
        let run = catch_panic("ETL run", etl.run_held(&job, held, &NoProgress)).await;
        let Ok(run) = run else {
            tracing::error!(job = %job.name, "ETL run failed: it panicked; the next scheduled run goes ahead");
            return;
        };
        match run {
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

fn start_maintenance(
    etl: &Etl,
    tasks: &Tasks,
    jobs: &[Arc<Job>],
    maintenance: &Maintenance,
    busy: &Arc<AtomicBool>,
    at: DateTime<Utc>,
) {
    if busy.swap(true, Ordering::SeqCst) {
        tracing::debug!("previous maintenance still going; schedule skipped");
        return;
    }
    let owned = etl.clone();
    let jobs = jobs.to_vec();
    let options = maintenance.compact.clone();
    let busy = Busy(Arc::clone(busy));
    spawn_tracked(etl, tasks, async move {
        let etl = owned;
        // Cleared however the round ends (a panic included), so the next
        // round runs.
        let _busy = busy;
        let compactor = Compactor::new(etl.engine().clone());
        let round = catch_panic(
            "maintenance",
            maintain(&etl, &compactor, &jobs, &options, at),
        )
        .await;
        match round {
            Ok(lines) => {
                for line in lines {
                    tracing::info!("maintenance: {line}");
                }
            }
            Err(panic) => tracing::error!(
                %panic,
                "maintenance failed: it panicked; the next scheduled round goes ahead"
            ),
        }
    });
}

/// Marks maintenance as running until dropped.
struct Busy(Arc<AtomicBool>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Starts the scheduler for `jobs` (those without a schedule are not run,
/// but their tables are maintained) and, when given, maintenance.
pub fn spawn_scheduler(etl: Etl, jobs: Vec<Job>, maintenance: Option<Maintenance>) -> Scheduler {
    let all: Vec<Arc<Job>> = jobs.into_iter().map(Arc::new).collect();
    let jobs: Vec<Arc<Job>> = all
        .iter()
        .filter(|j| j.schedule.is_some())
        .cloned()
        .collect();
    let busy = Arc::new(AtomicBool::new(false));
    let tasks: Tasks = Arc::default();
    let tracked = Arc::clone(&tasks);
    // A panic in the ticker is logged and it starts again (see
    // `lakehose_catalog::supervise`).
    let ticker = spawn_supervised("ETL scheduler", move || {
        tick(
            etl.clone(),
            Arc::clone(&tracked),
            jobs.clone(),
            all.clone(),
            maintenance.clone(),
            Arc::clone(&busy),
        )
    });
    Scheduler { ticker, tasks }
}

/// The scheduler's loop: runs what fired since it last looked.
async fn tick(
    etl: Etl,
    tasks: Tasks,
    jobs: Vec<Arc<Job>>,
    all: Vec<Arc<Job>>,
    maintenance: Option<Maintenance>,
    busy: Arc<AtomicBool>,
) {
    let mut last = Utc::now();
    for job in &jobs {
        let Some(schedule) = &job.schedule else {
            continue;
        };
        let missed = match etl.last_run(&job.name).await {
            Ok(Some(run)) => DateTime::from_timestamp_millis(run.started_ms)
                .filter(|started| schedule.fires_between(*started, last))
                .and_then(|started| schedule.next_after(started)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(job = %job.name, error = %e, "could not read the ETL run history");
                None
            }
        };
        if let Some(at) = missed {
            start(&etl, &tasks, job, at, "missed while the server was down");
        }
    }
    loop {
        let next = jobs
            .iter()
            .filter_map(|j| j.schedule.as_ref())
            .chain(maintenance.as_ref().map(|m| &m.schedule))
            .filter_map(|s| s.next_after(last));
        tokio::time::sleep(sleep_before(last, next)).await;
        let now = Utc::now();
        for job in &jobs {
            if let Some(schedule) = &job.schedule
                && schedule.fires_between(last, now)
                && let Some(at) = schedule.next_after(last)
            {
                start(&etl, &tasks, job, at, "scheduled");
            }
        }
        if let Some(m) = &maintenance
            && m.schedule.fires_between(last, now)
            && let Some(at) = m.schedule.next_after(last)
        {
            start_maintenance(&etl, &tasks, &all, m, &busy, at);
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_maintenance_round_does_not_disable_the_next() {
        let busy = Arc::new(AtomicBool::new(true));
        let guard = Busy(Arc::clone(&busy));
        let round = tokio::spawn(async move {
            let _busy = guard;
            catch_panic("maintenance", async { panic!("compaction bug") }).await
        });
        assert_eq!(round.await.unwrap(), Err("compaction bug".to_string()));
        assert!(
            !busy.load(Ordering::SeqCst),
            "maintenance stays marked running"
        );
    }
}
