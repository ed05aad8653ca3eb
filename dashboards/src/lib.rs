//! # lakehose-dashboards
//!
//! BI dashboards: dataset specs over curated tables, a SPICE-like cache and
//! HTML pages with inline SVG charts.
//!
//! This crate is intentionally empty until the dashboards capability lands;
//! nothing here pretends to work yet.
