//! `lakehose etl`: list, validate and run the SQL jobs of a folder (by
//! default `sql/etl/`), and show their run history.
//!
//! ```text
//! lakehose etl list
//! lakehose etl validate
//! lakehose etl run request_metrics_hourly
//! lakehose etl run --all
//! lakehose etl history request_metrics_hourly
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use lakehose_transform::{Etl, Job, RunProgress, RunRecord, dependency_order, load_dir};

/// `lakehose etl`.
#[derive(Debug, clap::Args)]
pub struct Config {
    /// The warehouse folder.
    #[arg(long, env = "LAKEHOSE_DATA_DIR", default_value = "./lakehose-data")]
    data_dir: PathBuf,

    #[command(flatten)]
    storage: crate::storage_args::StorageArgs,

    /// The folder of job files (`<name>.sql`).
    #[arg(long, env = "LAKEHOSE_ETL_JOBS", default_value = "sql/etl")]
    jobs: PathBuf,

    /// What to do.
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// The jobs: target, mode, schedule and last run.
    List,
    /// Parse every job (or one) and plan its SQL against the catalog
    /// without running it; prints each job's output columns.
    Validate {
        /// One job's name (default: all).
        job: Option<String>,
    },
    /// Run one job, or all of them in dependency order (a job runs after
    /// the jobs whose targets it reads).
    Run {
        /// The job's name (its file name without `.sql`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        job: Option<String>,
        /// Run every job.
        #[arg(long)]
        all: bool,
        /// Forget the bookmark of incremental jobs first, so they read
        /// their whole source again.
        #[arg(long)]
        full: bool,
    },
    /// Delete data files no table version of the last `--retain-hours`
    /// needs (files replaced by later runs, files of killed runs); older
    /// versions can no longer be read with `@v<N>` afterwards.
    Vacuum {
        /// One job's name (default: all).
        job: Option<String>,
        /// Keep what versions of this many recent hours need.
        #[arg(long, default_value_t = 168)]
        retain_hours: i64,
        /// Only list the files that would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Recorded runs: start, duration, state, rows, bytes, files, error.
    History {
        /// One job's name (default: all).
        job: Option<String>,
        /// Show only the newest N runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// Shows the phase of the job being run next to a spinner, and while it
/// reads, the rows and bytes read so far and the rate.
struct Spinner {
    bar: ProgressBar,
    started: std::sync::Mutex<std::time::Instant>,
}

impl Spinner {
    fn new(bar: ProgressBar) -> Self {
        Self {
            bar,
            started: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }
}

impl RunProgress for Spinner {
    fn phase(&self, job: &str, phase: &str) {
        if phase == "reading" {
            *self.started.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
        }
        self.bar.set_message(format!("{job}: {phase}"));
    }

    fn reading(&self, job: &str, rows: u64, bytes: u64) {
        let secs = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
            .as_secs_f64()
            .max(0.001);
        self.bar.set_message(format!(
            "{job}: reading · {:.2} M rows · {:.1} MiB · {:.2} M rows/s",
            rows as f64 / 1e6,
            bytes as f64 / 1048576.0,
            rows as f64 / 1e6 / secs
        ));
    }
}

/// Runs `lakehose etl`.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = crate::server::runtime(None)?;
    runtime.block_on(run_async(config))
}

async fn etl(
    data_dir: &std::path::Path,
    storage: &crate::storage_args::StorageArgs,
) -> anyhow::Result<Etl> {
    Ok(
        Etl::new(storage.engine(data_dir).await?).with_audit(std::sync::Arc::new(LocalAudit {
            dir: lakehose_auth::audit::dir_in(data_dir),
        })),
    )
}

/// Runs made with `lakehose etl` on the data folder, written to its audit
/// log with the local user who ran them.
struct LocalAudit {
    dir: std::path::PathBuf,
}

impl lakehose_transform::RunAudit for LocalAudit {
    fn run_ended(&self, _principal: Option<&str>, record: &lakehose_transform::RunRecord) {
        let mut event = crate::access::etl_run_event(record);
        event["by"] = serde_json::json!({
            "user": std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            "via": "lakehose etl",
        });
        if let Err(e) = lakehose_auth::audit::append(&self.dir, "etl_run", event) {
            eprintln!(
                "warning: could not write the audit log in {}: {e}",
                self.dir.display()
            );
        }
    }
}

fn find<'a>(jobs: &'a [Job], name: &str) -> anyhow::Result<&'a Job> {
    jobs.iter().find(|j| j.name == name).with_context(|| {
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        format!("no job named {name:?} (jobs: {})", names.join(", "))
    })
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn duration(r: &RunRecord) -> String {
    match r.ended_ms {
        Some(end) => format!("{:.1}s", (end - r.started_ms) as f64 / 1000.0),
        None => "-".into(),
    }
}

/// One line about a run: state, time, rows, bytes, files, version, error.
pub(crate) fn summary(r: &RunRecord) -> String {
    let mut s = format!(
        "{} {} in {}: read {} rows ({:.1} MiB), wrote {} rows in {} files ({:.1} MiB)",
        r.job,
        r.state,
        duration(r),
        r.rows_read,
        r.bytes_read as f64 / 1048576.0,
        r.rows_written,
        r.files_written,
        r.bytes_written as f64 / 1048576.0,
    );
    if let Some(p) = r.partitions_read {
        s.push_str(&format!(", {p} source partitions with new files"));
    }
    if let Some(v) = r.table_version {
        s.push_str(&format!(", {} version {v}", r.target));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!("\n  error: {e}"));
    }
    s
}

async fn run_async(config: Config) -> anyhow::Result<()> {
    let jobs = load_dir(&config.jobs)?;
    let etl = etl(&config.data_dir, &config.storage).await?;
    match config.action {
        Action::List => {
            println!(
                "{:<28} {:<36} {:<12} {:<16} last run",
                "job", "target", "mode", "schedule"
            );
            for job in &jobs {
                let last = etl
                    .last_run(&job.name)
                    .await?
                    .map(|r| format!("{} {}", when(r.started_ms), r.state))
                    .unwrap_or_else(|| "never".into());
                println!(
                    "{:<28} {:<36} {:<12} {:<16} {last}",
                    job.name,
                    job.target.to_string(),
                    job.mode.as_str(),
                    job.schedule.as_ref().map_or("-", |s| s.text()),
                );
            }
        }
        Action::Validate { job } => {
            let selected: Vec<&Job> = match &job {
                Some(name) => vec![find(&jobs, name)?],
                None => dependency_order(&jobs)?,
            };
            // One pass in dependency order; each job's output stands in for
            // its target in the jobs after it that read it before it first
            // ran.
            let mut upstream = std::collections::HashMap::new();
            let mut outcomes = std::collections::HashMap::new();
            for job in dependency_order(&jobs)? {
                let outcome = etl.validate(job, &upstream).await;
                if let Ok(schema) = &outcome {
                    upstream.insert(job.target.clone(), schema.clone());
                }
                outcomes.insert(job.name.as_str(), outcome);
            }
            let mut failed = 0;
            for job in selected {
                match &outcomes[job.name.as_str()] {
                    Ok(schema) => {
                        let columns: Vec<String> = schema
                            .fields()
                            .iter()
                            .map(|f| format!("{} {}", f.name(), f.data_type()))
                            .collect();
                        println!("{}: ok → {} ({})", job.name, job.target, columns.join(", "));
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{e}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} job(s) did not validate");
            }
        }
        Action::Run { job, all, full } => {
            let selected: Vec<&Job> = if all {
                dependency_order(&jobs)?
            } else {
                vec![find(&jobs, job.as_deref().unwrap_or_default())?]
            };
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            let spinner = Spinner::new(bar.clone());
            let mut failed = Vec::new();
            for job in selected {
                if full {
                    etl.reset_bookmark(job).await?;
                }
                let record = etl.run(job, &spinner).await?;
                bar.suspend(|| println!("{}", summary(&record)));
                if !record.succeeded() {
                    failed.push(job.name.clone());
                    if all {
                        // Jobs after it may read its target.
                        break;
                    }
                }
            }
            bar.finish_and_clear();
            if !failed.is_empty() {
                bail!("job(s) failed: {}", failed.join(", "));
            }
        }
        Action::Vacuum {
            job,
            retain_hours,
            dry_run,
        } => {
            let selected: Vec<&Job> = match &job {
                Some(name) => vec![find(&jobs, name)?],
                None => jobs.iter().collect(),
            };
            let retain = chrono::Duration::hours(retain_hours.max(0));
            for job in selected {
                match etl.vacuum(job, retain, dry_run).await {
                    Ok(files) => println!(
                        "{}: {} {} file(s)",
                        job.target,
                        if dry_run { "would delete" } else { "deleted" },
                        files.len()
                    ),
                    Err(e) => eprintln!("{}: {e}", job.name),
                }
            }
        }
        Action::History { job, limit } => {
            if let Some(name) = &job {
                find(&jobs, name)?;
            }
            let runs = etl.history(job.as_deref()).await?;
            println!(
                "{:<19} {:<28} {:<9} {:>8} {:>11} {:>11} {:>6} {:>9}  error",
                "started", "job", "state", "time", "rows read", "rows wrote", "files", "MiB"
            );
            let skip = runs.len().saturating_sub(limit);
            for r in runs.iter().skip(skip) {
                println!(
                    "{:<19} {:<28} {:<9} {:>8} {:>11} {:>11} {:>6} {:>9.1}  {}",
                    when(r.started_ms),
                    r.job,
                    r.state,
                    duration(r),
                    r.rows_read,
                    r.rows_written,
                    r.files_written,
                    r.bytes_written as f64 / 1048576.0,
                    r.error.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}
