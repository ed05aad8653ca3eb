//! `lakehose gen-logs`: write a large raw log table, as the demo's fleet
//! would have delivered it over days, straight to Parquet — for benchmarks
//! and for trying queries on realistic volumes without hours of ingest.
//!
//! ```text
//! OUT/logs/service=<s>/dt=<yyyy-MM-dd>/hour=<HH>/part-00000.parquet
//! OUT/users/part-00000.parquet
//! ```
//!
//! The layout and the record fields are those of the demo's delivery stream
//! (see `sql/logbench/ddl.sql` for the tables over them). Volumes follow a
//! daily curve (busier in the afternoon) and a per-service share; rows in a
//! file are in time order. Every file is written under a temporary name and
//! renamed when complete, so an interrupted run leaves no partial file.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, bail};
use arrow::array::{
    ArrayRef, Date32Builder, Float64Builder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{Duration, NaiveDate};
use indicatif::{ProgressBar, ProgressStyle};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::loggen::LogGenerator;

/// The services and their share of the traffic, in `LogGenerator` order.
const SHARES: [(&str, f64); 6] = [
    ("web", 0.30),
    ("api", 0.25),
    ("checkout", 0.12),
    ("auth", 0.10),
    ("search", 0.15),
    ("payments", 0.08),
];

const PLANS: [(&str, f64); 3] = [("free", 0.70), ("pro", 0.25), ("enterprise", 0.05)];
const COUNTRIES: [&str; 10] = ["US", "DE", "FR", "GB", "IN", "BR", "JP", "CA", "NL", "ES"];

/// `lakehose gen-logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Folder to write `logs/` and `users/` into; neither may exist yet.
    #[arg(long)]
    pub out: PathBuf,

    /// Log records to write in all.
    #[arg(long, default_value_t = 50_000_000)]
    pub records: u64,

    /// Days of traffic, starting at --start (one `dt=` folder per day).
    #[arg(long, default_value_t = 7)]
    pub days: u32,

    /// The first day, yyyy-mm-dd.
    #[arg(long, default_value = "2026-11-01")]
    pub start: NaiveDate,

    /// Distinct users (rows of `users/`).
    #[arg(long, default_value_t = 100_000)]
    pub users: u32,

    /// Seed: the same seed and flags write the same rows.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Files each hour's rows are split into (in time order), as an
    /// ingester flushing often would leave them; 1 writes one per hour.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub files_per_partition: u32,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Log rows written.
    pub records: u64,
    /// Log files written (`files_per_partition` per non-empty partition).
    pub files: usize,
    /// Bytes of log Parquet.
    pub bytes: u64,
    /// User rows written.
    pub users: u32,
}

/// The schema of the log files (partition columns are in the paths).
pub fn log_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
    Arc::new(Schema::new(vec![
        Field::new("ts", ts, false),
        Field::new("container", DataType::Utf8, false),
        Field::new("level", DataType::Utf8, false),
        Field::new("method", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("status", DataType::Int32, false),
        Field::new("latency_ms", DataType::Float64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
    ]))
}

/// One partition to write: its folder and row count.
struct Partition {
    index: u64,
    service: usize,
    day: NaiveDate,
    hour: u32,
    rows: u64,
}

/// Splits `records` over days × hours × services by weight, exactly.
fn partitions(config: &Config) -> Vec<Partition> {
    let mut cells = Vec::new();
    for d in 0..config.days {
        let day = config.start + Duration::days(i64::from(d));
        for hour in 0..24u32 {
            // Quiet at night, busiest mid-afternoon.
            let curve = 1.0 + 0.8 * ((f64::from(hour) - 9.0) / 24.0 * std::f64::consts::TAU).sin();
            for (service, (_, share)) in SHARES.iter().enumerate() {
                cells.push((day, hour, service, curve * share));
            }
        }
    }
    let total: f64 = cells.iter().map(|c| c.3).sum();
    let mut out = Vec::with_capacity(cells.len());
    let mut cumulative = 0.0;
    let mut assigned = 0u64;
    for (i, (day, hour, service, weight)) in cells.into_iter().enumerate() {
        cumulative += weight;
        let upto = ((config.records as f64) * cumulative / total).round() as u64;
        let upto = upto.min(config.records);
        out.push(Partition {
            index: i as u64,
            service,
            day,
            hour,
            rows: upto - assigned,
        });
        assigned = upto;
    }
    if let Some(last) = out.last_mut() {
        last.rows += config.records - assigned;
    }
    out
}

fn writer_properties() -> WriterProperties {
    lakehose_catalog::parquet_writer::default_writer_properties()
}

/// Writes `batches` to `path` through a temporary file renamed at the end.
fn write_file(
    path: &Path,
    schema: SchemaRef,
    batches: &mut dyn Iterator<Item = anyhow::Result<RecordBatch>>,
) -> anyhow::Result<u64> {
    let dir = path.parent().context("a file path has a parent")?;
    fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("part")
    ));
    let result = (|| -> anyhow::Result<()> {
        let file =
            File::create(&tmp).with_context(|| format!("could not create {}", tmp.display()))?;
        let mut writer =
            ArrowWriter::try_new(BufWriter::new(file), schema, Some(writer_properties()))?;
        for batch in batches {
            writer.write(&batch?)?;
        }
        writer.close()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).with_context(|| format!("could not rename {}", tmp.display()))?;
    Ok(fs::metadata(path)?.len())
}

const BATCH_ROWS: u64 = 8192;

fn write_partition(
    config: &Config,
    p: &Partition,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<(u64, usize)> {
    let service = SHARES[p.service].0;
    let folder = config
        .out
        .join("logs")
        .join(format!("service={service}"))
        .join(format!("dt={}", p.day.format("%Y-%m-%d")))
        .join(format!("hour={:02}", p.hour));
    let seed = config.seed ^ p.index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = StdRng::seed_from_u64(seed);
    // Four containers per service; the generator picks the service by index.
    let mut generator = LogGenerator::new(p.service + SHARES.len() * (p.index as usize % 4), seed)
        .with_users(config.users);
    debug_assert_eq!(generator.service(), service);
    let hour_start = p
        .day
        .and_hms_opt(p.hour, 0, 0)
        .context("valid hour")?
        .and_utc()
        .timestamp_micros();
    let mut offsets: Vec<i64> = (0..p.rows)
        .map(|_| rng.random_range(0..3_600_000_000))
        .collect();
    offsets.sort_unstable();
    let schema = log_schema();
    let files = (config.files_per_partition.max(1) as usize).min(offsets.len().max(1));
    let per_file = offsets.len().div_ceil(files);
    let mut written = 0;
    let mut count = 0;
    for (i, chunk) in offsets.chunks(per_file.max(1)).enumerate() {
        let path = folder.join(format!("part-{i:05}.parquet"));
        written += write_rows(&path, &schema, &mut generator, hour_start, chunk, progress)?;
        count += 1;
    }
    Ok((written, count))
}

/// Writes one file of log rows at `hour_start + offsets`.
fn write_rows(
    path: &Path,
    schema: &SchemaRef,
    generator: &mut LogGenerator,
    hour_start: i64,
    offsets: &[i64],
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<u64> {
    let mut next = 0usize;
    let mut batches = std::iter::from_fn(|| {
        if next >= offsets.len() {
            return None;
        }
        let n = (offsets.len() - next).min(BATCH_ROWS as usize);
        let mut ts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("+00:00");
        let mut container = StringBuilder::new();
        let mut level = StringBuilder::new();
        let mut method = StringBuilder::new();
        let mut path = StringBuilder::new();
        let mut status = Int32Builder::with_capacity(n);
        let mut latency = Float64Builder::with_capacity(n);
        let mut bytes = Int64Builder::with_capacity(n);
        let mut user = StringBuilder::new();
        let mut trace = StringBuilder::new();
        let mut message = StringBuilder::new();
        for offset in &offsets[next..next + n] {
            let f = generator.fields();
            ts.append_value(hour_start + offset);
            container.append_value(generator.container());
            level.append_value(f.level);
            method.append_value(f.method);
            path.append_value(&f.path);
            status.append_value(i32::from(f.status));
            latency.append_value(f.latency_ms);
            bytes.append_value(i64::from(f.bytes));
            user.append_value(&f.user_id);
            trace.append_value(&f.trace_id);
            message.append_value(&f.message);
        }
        next += n;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(ts.finish()),
            Arc::new(container.finish()),
            Arc::new(level.finish()),
            Arc::new(method.finish()),
            Arc::new(path.finish()),
            Arc::new(status.finish()),
            Arc::new(latency.finish()),
            Arc::new(bytes.finish()),
            Arc::new(user.finish()),
            Arc::new(trace.finish()),
            Arc::new(message.finish()),
        ];
        progress(n as u64);
        Some(RecordBatch::try_new(Arc::clone(schema), columns).map_err(anyhow::Error::from))
    });
    write_file(path, Arc::clone(schema), &mut batches)
}

fn write_users(config: &Config) -> anyhow::Result<u64> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("signup_date", DataType::Date32, false),
    ]));
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5553_4552);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).context("epoch")?;
    let start_days = (config.start - epoch).num_days() as i32;
    let mut id = StringBuilder::new();
    let mut plan = StringBuilder::new();
    let mut country = StringBuilder::new();
    let mut signup = Date32Builder::new();
    for u in 1..=config.users {
        id.append_value(format!("u-{u:05}"));
        let roll: f64 = rng.random();
        let mut acc = 0.0;
        let p = PLANS
            .iter()
            .find(|(_, share)| {
                acc += share;
                roll < acc
            })
            .map_or("free", |(name, _)| name);
        plan.append_value(p);
        country.append_value(COUNTRIES[rng.random_range(0..COUNTRIES.len())]);
        signup.append_value(start_days - rng.random_range(1..1500));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(plan.finish()),
        Arc::new(country.finish()),
        Arc::new(signup.finish()),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let path = config.out.join("users").join("part-00000.parquet");
    write_file(&path, schema, &mut std::iter::once(Ok(batch)))
}

/// Writes the tables; `progress(rows)` is called as log rows are written.
pub fn generate(config: &Config, progress: &(dyn Fn(u64) + Sync)) -> anyhow::Result<Summary> {
    if config.days == 0 {
        bail!("--days must be at least 1");
    }
    if config.users == 0 {
        bail!("--users must be at least 1");
    }
    for table in ["logs", "users"] {
        let dir = config.out.join(table);
        if dir.exists() {
            bail!(
                "{} already exists; remove it or choose another --out",
                dir.display()
            );
        }
    }
    write_users(config)?;
    let written = Mutex::new((0u64, 0usize, 0u64));
    let todo: Vec<Partition> = partitions(config)
        .into_iter()
        .filter(|p| p.rows > 0)
        .collect();
    super::tpch::on_every_core(todo, |p| {
        let (bytes, files) = write_partition(config, &p, progress)?;
        let mut w = written.lock().expect("written lock");
        w.0 += p.rows;
        w.1 += files;
        w.2 += bytes;
        Ok(())
    })?;
    let (records, files, bytes) = written.into_inner().expect("written lock");
    Ok(Summary {
        records,
        files,
        bytes,
        users: config.users,
    })
}

/// Runs `lakehose gen-logs`.
pub fn run(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let bar = ProgressBar::new(config.records);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} generating logs [{bar:40}] {human_pos}/{human_len} rows ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let summary = generate(&config, &|rows| bar.inc(rows));
    bar.finish_and_clear();
    let summary = summary?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {} log records in {} files ({:.1} MiB) and {} users under {} in {secs:.1} s ({:.0} records/s)",
        summary.records,
        summary.files,
        summary.bytes as f64 / 1_048_576.0,
        summary.users,
        config.out.display(),
        summary.records as f64 / secs.max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn config(out: &Path, records: u64) -> Config {
        Config {
            out: out.to_path_buf(),
            records,
            days: 2,
            start: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
            users: 50,
            seed: 7,
            files_per_partition: 1,
        }
    }

    #[test]
    fn splits_hours_into_several_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config {
            files_per_partition: 3,
            ..config(dir.path(), 30_000)
        };
        let hours = partitions(&c).iter().filter(|p| p.rows >= 3).count();
        let summary = generate(&c, &|_| {}).unwrap();
        assert_eq!(summary.records, 30_000);
        assert_eq!(summary.files, hours * 3);
        let folder = dir.path().join("logs/service=web/dt=2026-01-31/hour=15");
        let mut names: Vec<String> = fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "part-00000.parquet",
                "part-00001.parquet",
                "part-00002.parquet"
            ]
        );
    }

    #[test]
    fn splits_exactly_and_writes_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), 20_000);
        let parts = partitions(&c);
        assert_eq!(parts.len(), 2 * 24 * 6);
        assert_eq!(parts.iter().map(|p| p.rows).sum::<u64>(), 20_000);
        let summary = generate(&c, &|_| {}).unwrap();
        assert_eq!(summary.records, 20_000);

        let mut rows = 0;
        let mut stack = vec![dir.path().join("logs")];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let name = p.file_name().unwrap().to_str().unwrap().to_string();
                assert!(!name.starts_with('.'), "a temporary file was left: {p:?}");
                let rel = p
                    .strip_prefix(dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                assert!(rel.starts_with("logs/service="), "{rel}");
                assert!(
                    rel.contains("/dt=2026-01-31/") || rel.contains("/dt=2026-02-01/"),
                    "{rel}"
                );
                let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&p).unwrap())
                    .unwrap()
                    .build()
                    .unwrap();
                for b in reader {
                    let b = b.unwrap();
                    assert_eq!(b.schema(), log_schema());
                    rows += b.num_rows();
                }
            }
        }
        assert_eq!(rows, 20_000);
        // A second run refuses to mix with the first.
        let e = generate(&c, &|_| {}).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        assert!(dir.path().join("users/part-00000.parquet").exists());
    }
}
