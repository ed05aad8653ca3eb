//! Ingest benchmarks (being written).

fn main() {}
