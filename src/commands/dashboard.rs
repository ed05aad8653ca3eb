//! `lakehose dashboard`: list, check, refresh and render the dashboards of
//! a data folder without a server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use lakehose_dashboards::data::Selection;
use lakehose_dashboards::page::{self, Paths};
use lakehose_dashboards::{Dashboard, Dashboards};

/// The dashboards that ship in `sql/dashboards/`, over the demo's tables.
pub const EXAMPLES: [(&str, &str); 3] = [
    (
        "service_health",
        include_str!("../../sql/dashboards/service_health.toml"),
    ),
    (
        "endpoint_logs",
        include_str!("../../sql/dashboards/endpoint_logs.toml"),
    ),
    ("users", include_str!("../../sql/dashboards/users.toml")),
];

/// The shipped example dashboards, parsed.
pub fn examples() -> anyhow::Result<Vec<Dashboard>> {
    EXAMPLES
        .iter()
        .map(|(name, text)| {
            Dashboard::parse(Path::new(&format!("sql/dashboards/{name}.toml")), text)
                .map_err(anyhow::Error::from)
        })
        .collect()
}

/// Where dashboards come from (shared by `serve`, `demo` and this
/// command).
#[derive(Debug, Clone, Args)]
pub struct Sources {
    /// A folder of dashboard files (`NAME.toml`); files are read again
    /// when they change.
    #[arg(long, env = "LAKEHOSE_DASHBOARDS")]
    pub dashboards: Option<PathBuf>,

    /// Also serve the example dashboards that ship with lakehose (over
    /// the demo's tables: service_health, users, endpoint_logs).
    #[arg(long, env = "LAKEHOSE_EXAMPLE_DASHBOARDS")]
    pub example_dashboards: bool,
}

impl Sources {
    /// The folders and built-in dashboards to load.
    pub fn resolve(&self) -> anyhow::Result<(Vec<PathBuf>, Vec<Dashboard>)> {
        let dirs = self.dashboards.iter().cloned().collect();
        let fixed = if self.example_dashboards {
            examples()?
        } else {
            Vec::new()
        };
        Ok((dirs, fixed))
    }
}

/// `lakehose dashboard`.
#[derive(Debug, Args)]
pub struct Config {
    /// The data folder.
    #[arg(long, env = "LAKEHOSE_DATA_DIR", default_value = "./lakehose-data")]
    pub data_dir: PathBuf,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub storage: crate::storage_args::StorageArgs,

    /// Where the dashboards come from.
    #[command(flatten)]
    pub sources: Sources,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Lists the dashboards, their datasets' freshness, and broken files'
    /// errors.
    List,
    /// Checks dashboards against the catalog (every dataset and visual
    /// plans); exits non-zero naming the first problem of each.
    Validate {
        /// One dashboard (all when absent).
        name: Option<String>,
    },
    /// Refreshes a dashboard's cached datasets now.
    Refresh {
        /// The dashboard.
        name: String,
        /// Only this dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// A full refresh, even of incremental datasets.
        #[arg(long)]
        full: bool,
    },
    /// Writes a dashboard's page, its charts (SVG) and data (CSV) to a
    /// folder, for reports and e-mail.
    Render {
        /// The dashboard.
        name: String,
        /// The folder to write.
        #[arg(long)]
        output: PathBuf,
        /// Filter and parameter values, `NAME=VALUE` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
}

/// Runs `lakehose dashboard`.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = crate::server::runtime(None)?;
    runtime.block_on(run_async(config))
}

async fn run_async(config: Config) -> anyhow::Result<()> {
    let engine = config.storage.engine(&config.data_dir).await?;
    let (dirs, fixed) = config.sources.resolve()?;
    if dirs.is_empty() && fixed.is_empty() {
        bail!(
            "no dashboards: give a folder of dashboard files with --dashboards, or --example-dashboards"
        );
    }
    let dashboards = Dashboards::new(engine, dirs, fixed);
    let now = chrono::Utc::now().timestamp_millis();
    match config.command {
        Command::List => {
            for s in dashboards.list().await {
                match &s.error {
                    Some(e) => println!("{:<24} BROKEN  {e}", s.name),
                    None => {
                        println!("{:<24} {}", s.name, s.title);
                        for (ds, f) in &s.datasets {
                            let when = f
                                .refreshed_ms
                                .map(|t| page::ago(t, now))
                                .unwrap_or_else(|| "never refreshed".into());
                            let err = f
                                .error
                                .as_deref()
                                .map(|e| format!("  last error: {e}"))
                                .unwrap_or_default();
                            println!("  {ds:<22} {when}, {} rows{err}", f.rows);
                        }
                    }
                }
            }
        }
        Command::Validate { name } => {
            let names: Vec<String> = match name {
                Some(n) => vec![n],
                None => dashboards.names(),
            };
            let mut failed = 0;
            for n in names {
                let outcome = match dashboards.get(&n) {
                    Ok(d) => dashboards.validate(&d).await.map_err(anyhow::Error::from),
                    Err(e) => Err(e.into()),
                };
                match outcome {
                    Ok(()) => println!("{n}: ok"),
                    Err(e) => {
                        failed += 1;
                        println!("{n}: {e:#}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} dashboard(s) failed validation");
            }
        }
        Command::Refresh {
            name,
            dataset,
            full,
        } => {
            let d = dashboards.get(&name)?;
            let names: Vec<String> = match dataset {
                Some(ds) => vec![ds],
                None => lakehose_dashboards::service::dataset_order(&d)
                    .into_iter()
                    .filter(|n| {
                        d.spec.datasets[n].cache == lakehose_dashboards::spec::CacheMode::Spice
                    })
                    .collect(),
            };
            let bar = indicatif::ProgressBar::new(names.len() as u64);
            for ds in names {
                bar.set_message(ds.clone());
                let f = dashboards
                    .refresh(&d, &ds, full)
                    .await
                    .with_context(|| format!("refreshing {name}.{ds}"))?;
                bar.println(format!(
                    "{ds}: {} rows in {} ms{}",
                    f.rows,
                    f.duration_ms,
                    if f.incremental { " (incremental)" } else { "" }
                ));
                bar.inc(1);
            }
            bar.finish_and_clear();
        }
        Command::Render { name, output, set } => {
            let d = dashboards.get(&name)?;
            let mut query = BTreeMap::new();
            for pair in set {
                let (k, v) = pair
                    .split_once('=')
                    .with_context(|| format!("--set {pair:?} is not NAME=VALUE"))?;
                query.insert(k.to_string(), v.to_string());
            }
            render(&dashboards, &d, &query, &output).await?;
            println!(
                "wrote {}",
                output.join(format!("{}.html", d.name)).display()
            );
        }
    }
    Ok(())
}

/// Writes a dashboard's page with its charts and data to `out`:
/// `NAME.html`, `NAME/VISUAL.svg` and `NAME/VISUAL.csv`, `index.html` and
/// the style sheet and script under `static/`.
pub async fn render(
    dashboards: &Dashboards,
    d: &Dashboard,
    query: &BTreeMap<String, String>,
    out: &Path,
) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let sel = Selection::parse(d, query, now)?;
    let paths = Paths {
        base: ".".into(),
        assets: "static".into(),
        live: false,
    };
    let folder = out.join(&d.name);
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    std::fs::create_dir_all(out.join("static"))?;
    std::fs::write(out.join("static/lakehose.css"), page::STYLE)?;
    std::fs::write(out.join("static/lakehose.js"), page::SCRIPT)?;
    let bar = indicatif::ProgressBar::new(d.spec.visuals.len() as u64);
    bar.set_message("drawing visuals");
    let drawn = lakehose_dashboards::http::draw(dashboards, d, &sel, None, query, &paths).await;
    for item in &drawn {
        match &item.data {
            Ok(data) => {
                std::fs::write(
                    folder.join(format!("{}.csv", item.visual.id)),
                    page::visual_csv(data),
                )?;
                if let lakehose_dashboards::data::VisualData::Chart(c) = data {
                    let svg = lakehose_dashboards::chart::render(c, &page::options(item.visual));
                    std::fs::write(folder.join(format!("{}.svg", item.visual.id)), svg)?;
                }
            }
            Err(e) => bar.println(format!("visual {}: {e}", item.visual.id)),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let html = page::dashboard(
        d,
        &sel,
        &drawn,
        &dashboards.freshness(d).await,
        &BTreeMap::new(),
        &paths,
        false,
    );
    std::fs::write(out.join(format!("{}.html", d.name)), html)?;
    std::fs::write(
        out.join("index.html"),
        page::index(&dashboards.list().await, &paths, now),
    )?;
    Ok(())
}
