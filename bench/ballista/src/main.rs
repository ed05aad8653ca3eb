//! The 22 TPC-H queries of `sql/tpch/` on an Apache DataFusion Ballista
//! cluster started on loopback: one scheduler and N executors, each its own
//! process (this binary again, in another mode), over the Parquet folder
//! `lakehose tpch-gen` writes. Prints the best-of-N wall-clock time of each
//! query and its row count, and writes them as JSON in the shape
//! `scripts/tpch/bench.py` uses, so the two can be set side by side.
//!
//! ```sh
//! cargo run --release --manifest-path bench/ballista/Cargo.toml -- run \
//!     --data ./lakehose-data/tpch-data/sf1 --executors 2 --reps 3 --json ballista.json
//! ```

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use clap::{Parser, Subcommand};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

const TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

#[derive(Parser)]
#[command(about = "TPC-H on a Ballista cluster on loopback")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Starts a scheduler, the executors and runs the queries.
    Run {
        /// Folder with one sub-folder of Parquet files per table.
        #[arg(long)]
        data: PathBuf,
        /// How many executor processes.
        #[arg(long, default_value_t = 2)]
        executors: usize,
        /// Task slots per executor (0: every core).
        #[arg(long, default_value_t = 0)]
        vcores: usize,
        /// Runs of each query; the best is kept.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Partitions a stage is planned with.
        #[arg(long, default_value_t = 2)]
        target_partitions: usize,
        /// Scheduler port; executors take the ports after it.
        #[arg(long, default_value_t = 50150)]
        port: u16,
        /// Queries to run, e.g. 1,3,5-7.
        #[arg(long, default_value = "all")]
        queries: String,
        /// Where to write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// A scheduler on loopback (started by `run`).
    Scheduler {
        #[arg(long)]
        port: u16,
    },
    /// An executor on loopback (started by `run`).
    Executor {
        #[arg(long)]
        scheduler_port: u16,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        vcores: usize,
    },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.mode {
        Mode::Scheduler { port } => runtime.block_on(scheduler(port)),
        Mode::Executor {
            scheduler_port,
            port,
            vcores,
        } => runtime.block_on(executor(scheduler_port, port, vcores)),
        Mode::Run {
            data,
            executors,
            vcores,
            reps,
            target_partitions,
            port,
            queries,
            json,
        } => {
            let queries = parse_queries(&queries)?;
            let mut cluster = Cluster::start(port, executors, vcores)?;
            let result = runtime.block_on(run(&data, target_partitions, port, reps, &queries));
            cluster.stop();
            let figures = result?;
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_string_pretty(&figures)?)?;
            }
            Ok(())
        }
    }
}

async fn scheduler(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let config = SchedulerConfig {
        bind_port: port,
        ..Default::default()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, addr, Arc::new(config)).await?;
    Ok(())
}

async fn executor(
    scheduler_port: u16,
    port: u16,
    vcores: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = ExecutorProcessConfig {
        bind_host: "127.0.0.1".into(),
        external_host: Some("127.0.0.1".into()),
        port,
        grpc_port: port + 1,
        scheduler_host: "127.0.0.1".into(),
        scheduler_port,
        scheduler_connect_timeout_seconds: 30,
        vcores,
        special_mod_log_level: "WARN".into(),
        ..Default::default()
    };
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}

/// The scheduler and executor processes; killed when dropped.
struct Cluster {
    children: Vec<Child>,
}

impl Cluster {
    fn start(
        port: u16,
        executors: usize,
        vcores: usize,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let exe = std::env::current_exe()?;
        let spawn = |args: &[String]| {
            Command::new(&exe)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        let mut cluster = Cluster {
            children: Vec::new(),
        };
        cluster.children.push(spawn(&[
            "scheduler".into(),
            "--port".into(),
            port.to_string(),
        ])?);
        wait_for_port(port)?;
        for n in 0..executors {
            let own = port + 10 + 2 * n as u16;
            cluster.children.push(spawn(&[
                "executor".into(),
                "--scheduler-port".into(),
                port.to_string(),
                "--port".into(),
                own.to_string(),
                "--vcores".into(),
                vcores.to_string(),
            ])?);
            wait_for_port(own)?;
        }
        // Executors register with the scheduler right after they listen.
        std::thread::sleep(Duration::from_secs(2));
        Ok(cluster)
    }

    fn stop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for_port(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("nothing listens on port {port} after 30 s").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

async fn run(
    data: &Path,
    target_partitions: usize,
    port: u16,
    reps: usize,
    queries: &[usize],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let config = SessionConfig::new_with_ballista()
        .with_target_partitions(target_partitions)
        .with_ballista_job_name("tpch");
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build();
    let ctx = SessionContext::remote_with_state(&format!("df://127.0.0.1:{port}"), state).await?;
    for table in TABLES {
        let dir = data.join(table);
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        ctx.register_parquet(
            table,
            format!("{}/", dir.display()),
            ParquetReadOptions::default(),
        )
        .await?;
    }
    let sql_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sql/tpch");
    let mut rows_out = Vec::new();
    let mut total = 0.0;
    let mut ok = 0;
    println!("query  ballista ms   rows");
    for &n in queries {
        let name = format!("q{n:02}");
        let sql = std::fs::read_to_string(sql_dir.join(format!("{name}.sql")))?;
        let mut best: Option<f64> = None;
        let mut rows = 0;
        let mut error = None;
        for _ in 0..reps {
            let started = Instant::now();
            match ctx.sql(&sql).await {
                Ok(df) => match df.collect().await {
                    Ok(batches) => {
                        rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
                        let ms = started.elapsed().as_secs_f64() * 1000.0;
                        best = Some(best.map_or(ms, |b: f64| b.min(ms)));
                    }
                    Err(e) => error = Some(e.to_string()),
                },
                Err(e) => error = Some(e.to_string()),
            }
            if error.is_some() {
                break;
            }
        }
        match (best, &error) {
            (Some(ms), None) => {
                println!("{name}  {ms:>11.0}  {rows:>5}");
                total += ms;
                ok += 1;
            }
            _ => println!("{name}  failed: {}", error.as_deref().unwrap_or("?")),
        }
        rows_out.push(serde_json::json!({
            "query": name, "ballista_ms": best, "rows": rows, "error": error,
        }));
    }
    println!("total {total:.0} ms over {ok} queries");
    Ok(serde_json::json!({ "engine": "ballista 55.0.0", "queries": rows_out, "total_ms": total }))
}

fn parse_queries(spec: &str) -> Result<Vec<usize>, Box<dyn std::error::Error>> {
    if spec == "all" {
        return Ok((1..=22).collect());
    }
    let mut out = Vec::new();
    for part in spec.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.trim().parse()?, b.trim().parse()?);
        if a < 1 || b > 22 || a > b {
            return Err(format!("query range {part} is not within 1-22").into());
        }
        out.extend(a..=b);
    }
    Ok(out)
}
