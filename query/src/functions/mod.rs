//! The Presto/Trino function library registered into every session. Until
//! it lands, sessions have DataFusion's built-in functions only.

use datafusion::prelude::SessionContext;

/// Registers the library's functions into a session.
pub fn register(_ctx: &SessionContext) -> datafusion::error::Result<()> {
    Ok(())
}
