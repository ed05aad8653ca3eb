//! `lakehose crawl`: crawl `s3://` paths into the catalog, with a progress
//! bar and a summary of what changed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use lakehose_catalog::Location;
use lakehose_catalog::crawler::{
    self, CrawlOptions, CrawlProgress, DeleteBehavior, UpdateBehavior,
};

use crate::server;

/// `lakehose crawl`.
#[derive(Debug, clap::Args)]
pub struct Config {
    /// What to crawl: one or more `s3://bucket/prefix/` paths (on the
    /// embedded default, bucket `B` is `<data-dir>/B/`).
    #[arg(required = true)]
    targets: Vec<String>,

    /// The database the tables go to (created when missing).
    #[arg(long)]
    database: String,

    /// The warehouse folder.
    #[arg(long, env = "LAKEHOSE_DATA_DIR", default_value = "./lakehose-data")]
    data_dir: PathBuf,

    #[command(flatten)]
    storage: crate::storage_args::StorageArgs,

    /// Prefix of every table name the crawl creates.
    #[arg(long, default_value = "")]
    table_prefix: String,

    /// Glob of keys to skip, relative to each target (repeatable), e.g.
    /// `tmp/**` or `**/*.bak`.
    #[arg(long = "exclude")]
    exclusions: Vec<String>,

    /// Name of the crawler, recorded on the tables it writes
    /// (`UPDATED_BY_CRAWLER`).
    #[arg(long, default_value = "lakehose-cli")]
    name: String,

    /// What to do with an existing table whose schema changed:
    /// `update` (UPDATE_IN_DATABASE: add columns, widen types) or `log`.
    #[arg(long, default_value = "update", value_parser = ["update", "log"])]
    update_behavior: String,

    /// What to do with a table this crawler made whose data is gone:
    /// `deprecate` (DEPRECATE_IN_DATABASE), `delete` (DELETE_FROM_DATABASE)
    /// or `log`.
    #[arg(long, default_value = "deprecate", value_parser = ["deprecate", "delete", "log"])]
    delete_behavior: String,

    /// Read only folders this crawler has not cataloged before
    /// (RecrawlPolicy CRAWL_NEW_FOLDERS_ONLY); table definitions are then
    /// left as they are.
    #[arg(long)]
    new_folders_only: bool,

    /// Files sampled per folder to infer its schema.
    #[arg(long, default_value_t = crawler::DEFAULT_SAMPLE_FILES)]
    sample_files: usize,
}

struct Bar {
    bar: ProgressBar,
    found: AtomicU64,
}

impl CrawlProgress for Bar {
    fn found(&self, n: u64) {
        let total = self.found.fetch_add(n, Ordering::Relaxed) + n;
        self.bar.set_length(total);
    }
    fn scanned(&self) {
        self.bar.inc(1);
    }
}

/// Runs a crawl.
pub fn run(config: Config) -> anyhow::Result<()> {
    let targets = config
        .targets
        .iter()
        .map(|t| Location::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = server::runtime(None)?;
    let storage = runtime.block_on(config.storage.open(&config.data_dir))?;
    let catalog = runtime.block_on(config.storage.catalog(&storage))?;
    let mut options = CrawlOptions::new(&config.name, &config.database);
    options.table_prefix = config.table_prefix.clone();
    options.exclusions = config.exclusions.clone();
    options.sample_files = config.sample_files.max(1);
    options.new_folders_only = config.new_folders_only;
    options.update = match config.update_behavior.as_str() {
        "log" => UpdateBehavior::Log,
        _ => UpdateBehavior::UpdateInDatabase,
    };
    options.delete = match config.delete_behavior.as_str() {
        "delete" => DeleteBehavior::DeleteFromDatabase,
        "log" => DeleteBehavior::Log,
        _ => DeleteBehavior::DeprecateInDatabase,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} crawling [{bar:40}] {pos}/{len} files ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let progress = Bar {
        bar,
        found: AtomicU64::new(0),
    };
    let summary = runtime.block_on(crawler::crawl(
        &storage,
        catalog.as_ref(),
        &targets,
        &options,
        &progress,
    ))?;
    progress.bar.finish_and_clear();

    println!(
        "crawled {} files ({:.1} MiB) in {:.2} s into database {}",
        summary.files,
        summary.bytes as f64 / 1048576.0,
        summary.elapsed.as_secs_f64(),
        config.database.to_lowercase()
    );
    println!(
        "tables created: {}, updated: {}, deleted or deprecated: {}; partitions added: {}",
        summary.tables_created.len(),
        summary.tables_updated.len(),
        summary.tables_deleted.len(),
        summary.partitions_added
    );
    for (what, list) in [
        ("created", &summary.tables_created),
        ("updated", &summary.tables_updated),
        ("deleted/deprecated", &summary.tables_deleted),
    ] {
        for t in list {
            println!("  {what:<18} {t}");
        }
    }
    if !summary.skipped.is_empty() {
        println!("skipped {} files:", summary.skipped.len());
        for (path, why) in &summary.skipped {
            println!("  {path}: {why}");
        }
    }
    Ok(())
}
