//! One module per subcommand; each owns its `Config` and a `run`.

pub mod crawl;
pub mod demo;
pub mod query;
pub mod serve;
pub mod tpch;
