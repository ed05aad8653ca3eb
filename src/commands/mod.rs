//! One module per subcommand; each owns its `Config` and a `run`.

pub mod admin;
pub mod bare_datafusion;
pub mod crawl;
pub mod dashboard;
pub mod demo;
pub mod etl;
pub mod gen_logs;
pub mod import;
pub mod optimize;
pub mod query;
pub mod serve;
pub mod tpch;
pub mod worker;

/// A progress bar over bytes with a message, throughput and ETA, ticking.
pub(crate) fn bytes_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// A query engine over a local data folder with its embedded catalog (for
/// commands that work on the folder without a server).
pub(crate) fn local_engine(
    data_dir: &std::path::Path,
) -> anyhow::Result<lakehose_query::QueryEngine> {
    use anyhow::Context;
    let storage = lakehose_catalog::Storage::local(data_dir)
        .with_context(|| format!("could not open the data folder {}", data_dir.display()))?;
    let catalog: lakehose_catalog::CatalogRef =
        std::sync::Arc::new(lakehose_catalog::EmbeddedCatalog::new(storage.clone()));
    Ok(lakehose_query::QueryEngine::new(
        catalog,
        storage,
        lakehose_query::EngineConfig::default(),
    )?)
}

/// A `KEY=VALUE` session setting from the command line (the value may hold
/// `=`; both sides are trimmed, and neither may be empty).
pub(crate) fn parse_setting(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() || value.is_empty() {
        return Err(format!("`{text}` is not KEY=VALUE"));
    }
    Ok((key.to_string(), value.to_string()))
}
