//! TPC-H at scale factor 0.1 through the Athena API: the eight tables are
//! generated as Parquet, registered with Athena DDL (`sql/tpch/ddl.sql`)
//! through the real `aws-sdk-athena` client, and the 22 queries' answers are
//! compared with DuckDB's (`sql/tpch/answers/sf0.1/`, made by
//! `scripts/tpch/golden.py`).

use std::path::PathBuf;

use aws_sdk_athena::types::QueryExecutionState;

use crate::athena::{athena_client, results, run, run_script};
use crate::util::{Server, rt};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A value as the golden files print it: numbers with a fraction rounded
/// to two places.
fn normalize(value: &str) -> String {
    if value.contains('.')
        && let Ok(v) = value.parse::<f64>()
    {
        return format!("{v:.2}");
    }
    value.to_string()
}

fn same(expected: &str, actual: &str) -> bool {
    if expected == actual {
        return true;
    }
    match (expected.parse::<f64>(), actual.parse::<f64>()) {
        // Rounding to two places may land either side of a boundary.
        (Ok(e), Ok(a)) => (e - a).abs() <= 0.011 + e.abs() * 1e-12,
        _ => false,
    }
}

#[test]
fn tpch_sf01_answers_match_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    lakehose::commands::tpch::generate(0.1, &dir.path().join("tpch-data").join("sf01"), 1)
        .expect("generate TPC-H");
    let server = Server::start(dir.path(), &[]);
    let athena = athena_client(&server.endpoint);
    let ddl = std::fs::read_to_string(root().join("sql/tpch/ddl.sql"))
        .unwrap()
        .replace("${BUCKET}", "tpch-data")
        .replace("${PREFIX}", "sf01");
    rt().block_on(async {
        run_script(&athena, &ddl).await;
        let mut failures = Vec::new();
        for q in 1..=22 {
            let sql =
                std::fs::read_to_string(root().join(format!("sql/tpch/q{q:02}.sql"))).unwrap();
            let golden =
                std::fs::read_to_string(root().join(format!("sql/tpch/answers/sf0.1/q{q:02}.csv")))
                    .unwrap();
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_reader(golden.as_bytes());
            let expected: Vec<Vec<String>> = reader
                .records()
                .map(|r| r.unwrap().iter().map(str::to_string).collect())
                .collect();
            let (id, state, reason) = run(&athena, &sql, "tpch").await;
            if state != QueryExecutionState::Succeeded {
                failures.push(format!("q{q:02} {state:?}: {reason:?}"));
                continue;
            }
            let actual: Vec<Vec<String>> = results(&athena, &id, true)
                .await
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|v| normalize(&v.unwrap_or_default()))
                        .collect()
                })
                .collect();
            if actual.len() != expected.len() {
                failures.push(format!(
                    "q{q:02}: {} rows, DuckDB has {}",
                    actual.len(),
                    expected.len()
                ));
                continue;
            }
            for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
                if e.len() != a.len() || e.iter().zip(a).any(|(e, a)| !same(e, a)) {
                    failures.push(format!("q{q:02} row {}: expected {e:?}, got {a:?}", i + 1));
                    break;
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    });
}
