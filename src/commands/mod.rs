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
