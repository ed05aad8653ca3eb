//! # lakehose-dashboards
//!
//! BI dashboards over the catalog, served by lakehose itself: a dashboard
//! is one TOML file of datasets (SQL in the Athena dialect, cached as Arrow
//! IPC under `_lakehose/dashboards/` or queried directly), filters and
//! parameters, and visuals bound to the datasets' fields. Pages are HTML
//! with charts drawn as SVG on the server.
//!
//! ```text
//! spec (TOML) ──▶ data (datasets, filters, visuals as SQL over the engine) ──▶ chart (SVG) ──▶ page (HTML)
//!                    └──▶ cache (Arrow IPC, refresh on schedule / demand / new files)
//! ```

pub mod cache;
pub mod chart;
pub mod data;
pub mod error;
pub mod http;
pub mod page;
pub mod quicksight;
pub mod service;
pub mod spec;

pub use error::{Error, Result};
pub use service::{Dashboards, Viewer};
pub use spec::Dashboard;
