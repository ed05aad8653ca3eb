//! `lakehose tpch-gen`: generate the eight TPC-H tables as zstd Parquet, one
//! folder per table, for tests and benchmarks.
//!
//! ```text
//! OUT/region/part-0.parquet
//! OUT/nation/part-0.parquet
//! OUT/supplier/part-0.parquet … part-{N-1}.parquet
//! OUT/customer/…  OUT/part/…  OUT/partsupp/…  OUT/orders/…  OUT/lineitem/…
//! ```
//!
//! The rows come from the `tpchgen` generator (a port of `dbgen`, the same
//! data for the same scale factor) through `tpchgen-arrow`'s record batch
//! iterators. The Arrow types written, and the Hive types that match them in
//! `sql/tpch/ddl.sql`:
//!
//! | Arrow          | Parquet                 | Hive / Athena   | columns |
//! |----------------|-------------------------|-----------------|---------|
//! | Int64          | INT64                   | `bigint`        | every `*key` column |
//! | Int32          | INT32                   | `int`           | `l_linenumber`, `p_size`, `ps_availqty`, `o_shippriority` |
//! | Decimal128(15,2) | INT64 (DECIMAL(15,2)) | `decimal(15,2)` | prices, quantities, discounts, taxes, balances, costs |
//! | Date32         | INT32 (DATE)            | `date`          | `o_orderdate`, `l_shipdate`, `l_commitdate`, `l_receiptdate` |
//! | Utf8View       | BYTE_ARRAY (STRING)     | `string`        | every other column |
//!
//! Every column is non-nullable. `nation` and `region` are fixed-size tables
//! (25 and 5 rows) and always get a single file, whatever `--parts` says.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use parquet::arrow::ArrowWriter;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow,
    RecordBatchIterator, RegionArrow, SupplierArrow,
};

/// The eight TPC-H tables, smallest first.
pub const TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

/// `lakehose tpch-gen`.
#[derive(Debug, clap::Args)]
pub struct Config {
    /// TPC-H scale factor: 1 is about 1 GB of raw data (6 million
    /// `lineitem` rows); 0.1 and 0.01 suit tests.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,

    /// Output folder; each table goes to `OUT/<table>/part-<i>.parquet`.
    #[arg(long)]
    out: PathBuf,

    /// Files per table (all but `nation` and `region`, which always get one).
    #[arg(long, default_value_t = 1)]
    parts: usize,
}

/// What one table's generation wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSummary {
    /// Table name, e.g. `lineitem`.
    pub name: &'static str,
    /// Rows written across all files of the table.
    pub rows: u64,
    /// Bytes of Parquet written across all files of the table.
    pub bytes: u64,
    /// Number of Parquet files written.
    pub files: usize,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The scale factor.
    pub scale: f64,
    /// One entry per table, in [`TABLES`] order.
    pub tables: Vec<TableSummary>,
    /// Wall-clock time of the whole generation.
    pub elapsed: Duration,
}

impl Summary {
    /// Rows written in all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Bytes of Parquet written in all tables.
    pub fn bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }

    /// The entry for `name`, if it is one of [`TABLES`].
    pub fn table(&self, name: &str) -> Option<&TableSummary> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// Generates the eight TPC-H tables at scale factor `scale` under `out`,
/// `parts` files per table (see the module docs for the layout and types).
///
/// Existing `part-*.parquet` files in the table folders are removed first,
/// so a rerun with fewer parts leaves no stale file behind. Files are written
/// on as many threads as the machine has cores.
pub fn generate(scale: f64, out: &Path, parts: usize) -> anyhow::Result<Summary> {
    generate_with_progress(scale, out, parts, &|_| {})
}

/// [`generate`], calling `progress(rows)` after each record batch written.
pub fn generate_with_progress(
    scale: f64,
    out: &Path,
    parts: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<Summary> {
    if !(scale.is_finite() && scale > 0.0) {
        bail!("scale factor must be a positive number, got {scale}");
    }
    if parts == 0 {
        bail!("--parts must be at least 1");
    }
    let part_count = i32::try_from(parts).context("too many parts")?;
    let started = Instant::now();

    let mut tasks = Vec::new();
    for (table, name) in TABLES.iter().enumerate() {
        let dir = out.join(name);
        fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
        remove_old_parts(&dir)?;
        let n = if matches!(*name, "nation" | "region") {
            1
        } else {
            part_count
        };
        for part in 1..=n {
            tasks.push(Task {
                table,
                part,
                part_count: n,
            });
        }
    }
    // Tasks were pushed smallest table first and are taken from the end:
    // `lineitem` starts first, so no thread is left alone with it at the end.
    let results = Mutex::new(Vec::new());
    on_every_core(tasks, |task| {
        let written = write_part(scale, out, &task, progress)?;
        results
            .lock()
            .expect("results lock")
            .push((task.table, written));
        Ok(())
    })?;

    let mut tables: Vec<TableSummary> = TABLES
        .iter()
        .map(|name| TableSummary {
            name,
            rows: 0,
            bytes: 0,
            files: 0,
        })
        .collect();
    for (table, (rows, bytes)) in results.into_inner().expect("results lock") {
        let t = &mut tables[table];
        t.rows += rows;
        t.bytes += bytes;
        t.files += 1;
    }
    Ok(Summary {
        scale,
        tables,
        elapsed: started.elapsed(),
    })
}

/// Runs `work` on every task, on as many threads as the machine has cores,
/// taking tasks from the end of `tasks`. The first error stops the
/// remaining tasks from starting and is returned once every thread is done.
pub(crate) fn on_every_core<T: Send>(
    tasks: Vec<T>,
    work: impl Fn(T) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<()> {
    let queue = Mutex::new(tasks);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let first_error = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let Some(task) = queue.lock().expect("queue lock").pop() else {
                            return Ok(());
                        };
                        if let Err(e) = work(task) {
                            // Leave nothing for the other threads to start.
                            queue.lock().expect("queue lock").clear();
                            return Err(e);
                        }
                    }
                })
            })
            .collect();
        // Join every thread before looking at the results.
        let joined: Vec<anyhow::Result<()>> = workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| bail!("a worker thread panicked"))
            })
            .collect();
        joined.into_iter().find_map(Result::err)
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Runs `lakehose tpch-gen`.
pub fn run(config: Config) -> anyhow::Result<()> {
    let bar = ProgressBar::new(expected_rows(config.scale));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} generating TPC-H [{bar:40}] {human_pos}/{human_len} rows ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let summary = generate_with_progress(config.scale, &config.out, config.parts, &|rows| {
        bar.inc(rows)
    });
    bar.finish_and_clear();
    let summary = summary?;

    println!(
        "generated TPC-H scale factor {} in {}: {} rows, {:.1} MiB in {:.2} s",
        summary.scale,
        config.out.display(),
        summary.rows(),
        mib(summary.bytes()),
        summary.elapsed.as_secs_f64()
    );
    for t in &summary.tables {
        println!(
            "  {:<9} {:>12} rows {:>10.1} MiB  {} file{}",
            t.name,
            t.rows,
            mib(t.bytes),
            t.files,
            if t.files == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// One file to write: part `part` (1-based, as `tpchgen` counts) of
/// `part_count` of table `TABLES[table]`.
struct Task {
    table: usize,
    part: i32,
    part_count: i32,
}

/// Rows the progress bar expects: exact for every table but `lineitem`,
/// whose 1 to 7 lines per order average 4.
fn expected_rows(scale: f64) -> u64 {
    let rows = |base: f64| (base * scale) as u64;
    let orders = rows(1_500_000.0);
    5 + 25
        + rows(10_000.0)
        + rows(150_000.0)
        + rows(200_000.0)
        + 4 * rows(200_000.0)
        + orders
        + 4 * orders
}

fn remove_old_parts(dir: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("could not list {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("part-") && name.ends_with(".parquet") {
            fs::remove_file(entry.path())
                .with_context(|| format!("could not remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn batches(scale: f64, task: &Task) -> Box<dyn RecordBatchIterator> {
    let (sf, part, n) = (scale, task.part, task.part_count);
    match TABLES[task.table] {
        "region" => Box::new(RegionArrow::new(RegionGenerator::new(sf, part, n))),
        "nation" => Box::new(NationArrow::new(NationGenerator::new(sf, part, n))),
        "supplier" => Box::new(SupplierArrow::new(SupplierGenerator::new(sf, part, n))),
        "customer" => Box::new(CustomerArrow::new(CustomerGenerator::new(sf, part, n))),
        "part" => Box::new(PartArrow::new(PartGenerator::new(sf, part, n))),
        "partsupp" => Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, part, n))),
        "orders" => Box::new(OrderArrow::new(OrderGenerator::new(sf, part, n))),
        _ => Box::new(LineItemArrow::new(LineItemGenerator::new(sf, part, n))),
    }
}

/// Writes one file; returns (rows, bytes).
fn write_part(
    scale: f64,
    out: &Path,
    task: &Task,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<(u64, u64)> {
    let name = TABLES[task.table];
    let path = out
        .join(name)
        .join(format!("part-{}.parquet", task.part - 1));
    let props = lakehose_catalog::parquet_writer::default_writer_properties();
    let mut iter = batches(scale, task);
    let file =
        File::create(&path).with_context(|| format!("could not create {}", path.display()))?;
    let mut writer = ArrowWriter::try_new(BufWriter::new(file), iter.schema().clone(), Some(props))
        .with_context(|| format!("could not start {}", path.display()))?;
    let mut rows = 0u64;
    for batch in &mut iter {
        let n = batch.num_rows() as u64;
        writer
            .write(&batch)
            .with_context(|| format!("could not write {}", path.display()))?;
        rows += n;
        progress(n);
    }
    writer
        .close()
        .with_context(|| format!("could not finish {}", path.display()))?;
    let bytes = fs::metadata(&path)
        .with_context(|| format!("could not stat {}", path.display()))?
        .len();
    Ok((rows, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_scale_factor_has_the_specified_row_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let summary = generate(0.01, dir.path(), 2).expect("generate");
        let rows = |t: &str| summary.table(t).expect("table").rows;
        assert_eq!(rows("region"), 5);
        assert_eq!(rows("nation"), 25);
        assert_eq!(rows("supplier"), 100);
        assert_eq!(rows("customer"), 1_500);
        assert_eq!(rows("part"), 2_000);
        assert_eq!(rows("partsupp"), 8_000);
        assert_eq!(rows("orders"), 15_000);
        let lineitem = rows("lineitem");
        assert!((45_000..=75_000).contains(&lineitem), "{lineitem}");
        assert_eq!(summary.table("nation").expect("nation").files, 1);
        assert_eq!(summary.table("lineitem").expect("lineitem").files, 2);
        assert!(dir.path().join("lineitem/part-1.parquet").is_file());

        // A rerun with fewer parts leaves no stale file behind.
        let again = generate(0.01, dir.path(), 1).expect("generate again");
        assert_eq!(again.table("lineitem").expect("lineitem").rows, lineitem);
        assert!(!dir.path().join("lineitem/part-1.parquet").exists());
    }

    #[test]
    fn rejects_bad_arguments() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(generate(0.0, dir.path(), 1).is_err());
        assert!(generate(0.01, dir.path(), 0).is_err());
    }
}
