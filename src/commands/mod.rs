//! One module per subcommand; each owns its `Config` and a `run`.

pub mod demo;
pub mod serve;
