//! Schema inference and evolution for JSON records; the rules live in
//! [`lakehose_catalog::schema`], shared with the crawler.

pub use lakehose_catalog::schema::*;
