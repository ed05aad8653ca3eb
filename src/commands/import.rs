//! `lakehose import`: bring data exported elsewhere into the lake.
//!
//! ```text
//! lakehose import dynamodb-export s3://exports/users/AWSDynamoDB/01700000000000-abcd1234/ \
//!     --database app --table users --key user_id
//! lakehose import dynamodb-export s3://exports/users/ --database app --table users --every 15m
//! lakehose import dynamodb-export ./downloads/AWSDynamoDB/01700000000000-abcd1234 --database app --table users
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use lakehose_catalog::Location;
use lakehose_transform::dynamodb::export::ImportProgress;
use lakehose_transform::dynamodb::{ImportOptions, ImportReport, import_new};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

/// `lakehose import`.
#[derive(Debug, clap::Args)]
pub struct Config {
    /// What to import.
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Import DynamoDB's Export to S3 (DYNAMODB_JSON format) into a Delta
    /// table: a full export creates or replaces the table, an incremental
    /// export is merged into it on the key attributes, so the table equals
    /// the DynamoDB table as of the export's end time. Every data file is
    /// checked against the manifests (MD5, item counts) before anything is
    /// written; exports already applied are skipped.
    DynamodbExport(DynamoArgs),
}

#[derive(Debug, clap::Args)]
struct DynamoArgs {
    /// The export's folder (`s3://bucket/prefix/AWSDynamoDB/<export-id>/`,
    /// read from the data folder, or a local path), or a prefix above
    /// several exports: the full and incremental exports under it that the
    /// table has not seen are applied in order.
    location: String,

    /// The catalog database (created when missing).
    #[arg(long)]
    database: String,

    /// The table to create or update.
    #[arg(long)]
    table: String,

    /// The DynamoDB key attributes, partition key first (`pk` or
    /// `pk,sk`). Needed to merge incremental exports; when omitted they are
    /// taken from the table or from the incremental records.
    #[arg(long, value_delimiter = ',')]
    key: Vec<String>,

    /// Where the Delta table goes for a new table
    /// [default: s3://<warehouse>/dynamodb/<database>/<table>/].
    #[arg(long)]
    table_location: Option<String>,

    /// Also keep each item's DynamoDB JSON in a column `_item`.
    #[arg(long)]
    keep_raw: bool,

    /// Data files decoded at once [default: one per core].
    #[arg(long)]
    workers: Option<usize>,

    /// Keep running, looking for new exports under the location this
    /// often (e.g. `15m`, `1h`).
    #[arg(long, value_parser = humantime::parse_duration)]
    every: Option<Duration>,

    /// The warehouse folder.
    #[arg(long, env = "LAKEHOSE_DATA_DIR", default_value = "./lakehose-data")]
    data_dir: PathBuf,

    #[command(flatten)]
    storage: crate::storage_args::StorageArgs,
}

/// A bar over the bytes of the data files, pass by pass, counting items.
struct Bar {
    bar: ProgressBar,
    items: AtomicU64,
    pass: std::sync::Mutex<String>,
}

impl ImportProgress for Bar {
    fn pass(&self, name: &str, files: usize, bytes: u64) {
        self.bar.set_position(0);
        self.bar.set_length(bytes);
        self.items.store(0, Ordering::Relaxed);
        if let Ok(mut p) = self.pass.lock() {
            *p = format!("{name} {files} file(s)");
            self.bar.set_message(p.clone());
        }
    }

    fn file_done(&self, items: u64, bytes: u64) {
        let total = self.items.fetch_add(items, Ordering::Relaxed) + items;
        self.bar.inc(bytes);
        if let Ok(p) = self.pass.lock() {
            self.bar.set_message(format!("{p}, {total} items"));
        }
    }
}

/// Runs `lakehose import`.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = crate::server::runtime(None)?;
    match config.what {
        What::DynamodbExport(args) => runtime.block_on(dynamodb_export(args)),
    }
}

/// The store and folder of `location`: an `s3://` URL in the data folder,
/// or a local path.
fn source(
    engine: &lakehose_query::QueryEngine,
    location: &str,
) -> anyhow::Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    if location.starts_with("s3://") {
        let loc = Location::parse(location)?;
        return Ok((
            Arc::clone(engine.storage().store()),
            ObjectPath::from(loc.object_path().as_ref().trim_end_matches('/')),
        ));
    }
    let dir = std::fs::canonicalize(location)
        .with_context(|| format!("{location} is neither an s3:// location nor a local folder"))?;
    let store = object_store::local::LocalFileSystem::new();
    let path = ObjectPath::from_absolute_path(&dir)
        .with_context(|| format!("{} is not a usable path", dir.display()))?;
    Ok((Arc::new(store), path))
}

fn print_report(report: &ImportReport, seconds: Option<f64>) {
    println!("{report}");
    if report.skipped.is_some() {
        return;
    }
    if let Some(seconds) = seconds.filter(|s| *s > 0.0) {
        println!(
            "  {:.1}s (checks and schema {:.1}s, writing {:.1}s): {:.0} records/s, {:.1} MiB/s",
            seconds,
            report.scan_seconds,
            report.write_seconds,
            report.records as f64 / seconds,
            report.bytes as f64 / 1048576.0 / seconds
        );
    }
    if !report.keys.is_empty() {
        println!("  keys: {}", report.keys.join(", "));
    }
    let columns: Vec<String> = report
        .columns
        .iter()
        .map(|(name, t)| format!("{name} {t}"))
        .collect();
    println!("  columns: {}", columns.join(", "));
}

async fn dynamodb_export(args: DynamoArgs) -> anyhow::Result<()> {
    if args.table.trim().is_empty() || args.database.trim().is_empty() {
        bail!("--database and --table must not be empty");
    }
    let engine = args.storage.engine(&args.data_dir).await?;
    let (store, path) = source(&engine, &args.location)?;
    let defaults = ImportOptions::new(
        &args.database.to_ascii_lowercase(),
        &args.table.to_ascii_lowercase(),
    );
    let workers = args.workers.unwrap_or(defaults.workers);
    if workers == 0 {
        bail!("--workers must be at least 1");
    }
    let options = ImportOptions {
        keys: args.key.clone(),
        location: args.table_location.clone(),
        keep_raw: args.keep_raw,
        workers,
        ..defaults
    };
    loop {
        let bar = super::bytes_bar();
        let progress = Arc::new(Bar {
            bar: bar.clone(),
            items: AtomicU64::new(0),
            pass: Default::default(),
        });
        let started = Instant::now();
        let result = import_new(&engine, Arc::clone(&store), &path, &options, progress).await;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(reports) if reports.is_empty() => {
                println!("{}.{}: no new export", options.database, options.table)
            }
            Ok(reports) => {
                let one = reports.len() == 1;
                for r in &reports {
                    print_report(r, one.then_some(seconds));
                }
                if !one {
                    println!("{} exports applied in {seconds:.1}s", reports.len());
                }
            }
            Err(e) if args.every.is_some() => eprintln!("error: {e}"),
            Err(e) => bail!(e),
        }
        match args.every {
            Some(every) => tokio::time::sleep(every).await,
            None => return Ok(()),
        }
    }
}
