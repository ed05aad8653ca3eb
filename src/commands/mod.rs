//! One module per subcommand; each owns its `Config` and a `run`.

pub mod bare_datafusion;
pub mod crawl;
pub mod demo;
pub mod etl;
pub mod gen_logs;
pub mod optimize;
pub mod query;
pub mod serve;
pub mod tpch;

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
