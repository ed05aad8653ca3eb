//! `lakehose optimize`: compact a table's small files into large ones.
//!
//! ```text
//! lakehose optimize logs.app_logs
//! lakehose optimize --all --min-age 2h
//! lakehose optimize curated.request_metrics_hourly --target-size-mb 64
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use lakehose_transform::{CompactOptions, CompactProgress, CompactReport, Compactor};

/// `lakehose optimize`.
#[derive(Debug, clap::Args)]
pub struct Config {
    /// The warehouse folder.
    #[arg(long, env = "LAKEHOSE_DATA_DIR", default_value = "./lakehose-data")]
    data_dir: PathBuf,

    #[command(flatten)]
    storage: crate::storage_args::StorageArgs,

    /// The table, as `database.table` (or `table` in `--database`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    table: Option<String>,

    /// The database of a table named without one.
    #[arg(long, default_value = "default")]
    database: String,

    /// Compact every Parquet and Delta table of the catalog.
    #[arg(long)]
    all: bool,

    /// The size to pack files to, in MiB.
    #[arg(long, default_value_t = 128)]
    target_size_mb: u64,

    /// Leave partitions alone that received a file more recently than this
    /// (they are still being delivered to), e.g. `1h`, `15m`, `0s`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    min_age: Duration,

    /// How long replaced files are kept for queries already reading them;
    /// the next run after that deletes them.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    grace: Duration,

    /// Only show what would be compacted.
    #[arg(long)]
    dry_run: bool,
}

/// A bar over the bytes to rewrite.
struct Bar(ProgressBar);

impl CompactProgress for Bar {
    fn planned(&self, table: &str, _bins: u64, bytes: u64) {
        self.0.set_position(0);
        self.0.set_length(bytes);
        self.0.set_message(table.to_string());
    }

    fn advanced(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

/// One line about a compaction.
pub(crate) fn summary(r: &CompactReport) -> String {
    let mib = |b: u64| b as f64 / 1048576.0;
    let mut s = format!(
        "{} ({}): {} partition(s) compacted, {} files ({:.1} MiB) → {} files ({:.1} MiB) in {:.1}s",
        r.table,
        r.kind,
        r.partitions_compacted,
        r.files_before,
        mib(r.bytes_before),
        r.files_after,
        mib(r.bytes_after),
        r.seconds,
    );
    if r.seconds > 0.0 && r.bytes_before > 0 {
        s.push_str(&format!(" ({:.1} MiB/s)", mib(r.bytes_before) / r.seconds));
    }
    if r.partitions_still_receiving > 0 {
        s.push_str(&format!(
            "; {} partition(s) still receiving files left alone",
            r.partitions_still_receiving
        ));
    }
    if r.partitions_changed > 0 {
        s.push_str(&format!(
            "; {} partition(s) changed during the run, left for the next",
            r.partitions_changed
        ));
    }
    if r.old_files_deleted > 0 {
        s.push_str(&format!(
            "; {} replaced file(s) of earlier runs deleted",
            r.old_files_deleted
        ));
    }
    s
}

/// Runs `lakehose optimize`.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = crate::server::runtime(None)?;
    runtime.block_on(run_async(config))
}

async fn run_async(config: Config) -> anyhow::Result<()> {
    let compactor = Compactor::new(config.storage.engine(&config.data_dir).await?);
    if config.target_size_mb == 0 {
        bail!("--target-size-mb must be at least 1");
    }
    let options = CompactOptions {
        target_size: config.target_size_mb << 20,
        min_age: chrono::Duration::from_std(config.min_age).context("--min-age is too long")?,
        grace: chrono::Duration::from_std(config.grace).context("--grace is too long")?,
        dry_run: config.dry_run,
        ..Default::default()
    };
    let bar = super::bytes_bar();
    let progress = Bar(bar.clone());
    let results = match &config.table {
        Some(name) => {
            let (db, table) = match name.split_once('.') {
                Some((db, t)) => (db.to_string(), t.to_string()),
                None => (config.database.clone(), name.clone()),
            };
            vec![(
                format!("{db}.{table}"),
                compactor.optimize(&db, &table, &options, &progress).await,
            )]
        }
        None => {
            compactor
                .optimize_all(&options, &progress, &Default::default())
                .await?
        }
    };
    bar.finish_and_clear();
    let mut failed = Vec::new();
    for (name, result) in results {
        match result {
            Ok(report) if config.dry_run => println!(
                "{name}: would compact {} partition(s): {} files ({:.1} MiB) into about {}",
                report.partitions_compacted,
                report.files_before,
                report.bytes_before as f64 / 1048576.0,
                report.files_after
            ),
            Ok(report) => println!("{}", summary(&report)),
            Err(e) => {
                eprintln!("{name}: {e}");
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        bail!("could not compact: {}", failed.join(", "));
    }
    Ok(())
}
