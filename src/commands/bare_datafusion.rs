//! The baseline for lakehose's service overhead: the same SQL files run by a
//! bare DataFusion `SessionContext` over the same Parquet folders, with the
//! session settings and planner rules lakehose's engine uses (target
//! partitions, batch size, `lakehose.*` rules) but no catalog, no Presto
//! function library, no API and no result files.
//!
//! ```text
//! lakehose bare-datafusion --data ./lakehose-data/tpch-data/sf1 --sql sql/tpch --reps 3
//! ```
//!
//! Every sub-folder of `--data` is registered as a table of that name; every
//! `q<N>.sql` file of `--sql` is one query (others, e.g. `ddl.sql`, are skipped), run `--reps` times. Prints one JSON
//! object per query: `{"query": "q01", "rows": 4, "best_ms": 812.3}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use lakehose_catalog::{CatalogRef, EmbeddedCatalog, Storage};
use lakehose_query::{EngineConfig, QueryEngine, QueryRequest};

/// `lakehose bare-datafusion`.
#[derive(Debug, clap::Args)]
pub struct Config {
    /// Folder whose sub-folders are tables of Parquet files.
    #[arg(long)]
    data: PathBuf,

    /// Folder of `q<N>.sql` files, one query each.
    #[arg(long)]
    sql: PathBuf,

    /// Runs of each query; the best counts.
    #[arg(long, default_value_t = 3)]
    reps: usize,

    /// Also run each query through lakehose's engine in this process (no
    /// API, no result files) over the catalog of this data folder, and
    /// report its best time as `engine_ms`.
    #[arg(long)]
    engine_data_dir: Option<PathBuf>,

    /// The engine's current database (with --engine-data-dir).
    #[arg(long, default_value = "tpch")]
    database: String,

    /// Print `EXPLAIN ANALYZE` of each query (bare DataFusion, then the
    /// engine) to stderr.
    #[arg(long)]
    explain: bool,

    /// Run only these queries (file names without `.sql`, e.g.
    /// `q06,q15`); all when absent.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,

    /// A session setting for both sessions, `KEY=VALUE` (repeatable):
    /// DataFusion's (`datafusion.execution.parquet.pushdown_filters=true`)
    /// or lakehose's optimizer switches (`lakehose.optimizer.*`).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = crate::commands::parse_setting)]
    settings: Vec<(String, String)>,
}

fn sorted_entries(dir: &Path, want_dir: bool, ext: &str) -> Result<Vec<PathBuf>, String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            if want_dir {
                p.is_dir()
            } else {
                p.extension().is_some_and(|x| x == ext)
            }
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Runs `lakehose bare-datafusion`.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime
        .block_on(run_all(config))
        .map_err(|e| anyhow::anyhow!(e))
}

/// A DataFusion session with lakehose's session settings and every
/// sub-folder of `data` registered as a Parquet table of that name.
pub async fn bare_context(data: &Path, config: &EngineConfig) -> Result<SessionContext, String> {
    let session = config.session_config().map_err(|e| e.to_string())?;
    let ctx = lakehose_query::bare_context(session);
    for table in sorted_entries(data, true, "")? {
        let name = table
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("table folder names must be UTF-8")?
            .to_string();
        let path = format!("{}/", table.display());
        ctx.register_parquet(&name, &path, ParquetReadOptions::default())
            .await
            .map_err(|e| format!("registering {name}: {e}"))?;
    }
    Ok(ctx)
}

fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

async fn run_all(args: Config) -> Result<(), String> {
    let config = EngineConfig {
        settings: args.settings.clone(),
        ..EngineConfig::default()
    };
    let engine = match &args.engine_data_dir {
        Some(dir) => {
            let storage = Storage::local(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let catalog: CatalogRef = Arc::new(EmbeddedCatalog::new(storage.clone()));
            Some(QueryEngine::new(catalog, storage, config.clone()).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let ctx = bare_context(&args.data, &config).await?;
    for file in sorted_entries(&args.sql, false, "sql")? {
        let name = file
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or("query")
            .to_string();
        let numbered = name.len() > 1
            && name.starts_with('q')
            && name[1..].bytes().all(|b| b.is_ascii_digit());
        if !numbered || !(args.only.is_empty() || args.only.contains(&name)) {
            continue;
        }
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut best = f64::INFINITY;
        let mut rows = 0;
        for _ in 0..args.reps.max(1) {
            let started = Instant::now();
            let batches = ctx
                .sql(&text)
                .await
                .map_err(|e| format!("{name}: {e}"))?
                .collect()
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            best = best.min(started.elapsed().as_secs_f64() * 1000.0);
            rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
        }
        let mut line = serde_json::json!({"query": name, "rows": rows, "best_ms": round_ms(best)});
        if args.explain {
            let plan = ctx
                .sql(&format!("EXPLAIN ANALYZE {text}"))
                .await
                .map_err(|e| format!("{name}: {e}"))?
                .collect()
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            let shown = pretty_format_batches(&plan).map_err(|e| e.to_string())?;
            eprintln!("== {name} (bare DataFusion)\n{shown}");
        }
        if let Some(engine) = &engine {
            let mut best = f64::INFINITY;
            for _ in 0..args.reps.max(1) {
                let started = Instant::now();
                engine
                    .execute(QueryRequest::new(&text, Some(&args.database)))
                    .await
                    .map_err(|e| format!("{name} (engine): {e}"))?;
                best = best.min(started.elapsed().as_secs_f64() * 1000.0);
            }
            line["engine_ms"] = round_ms(best).into();
            if args.explain {
                let out = engine
                    .execute(QueryRequest::new(
                        format!("EXPLAIN ANALYZE {text}"),
                        Some(&args.database),
                    ))
                    .await
                    .map_err(|e| format!("{name} (engine): {e}"))?;
                let shown = pretty_format_batches(&out.batches).map_err(|e| e.to_string())?;
                eprintln!("== {name} (lakehose engine)\n{shown}");
            }
        }
        println!("{line}");
    }
    Ok(())
}
