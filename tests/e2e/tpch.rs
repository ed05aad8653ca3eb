//! TPC-H at scale factor 0.1 through the Athena API: the eight tables are
//! generated as Parquet, registered with Athena DDL (`sql/tpch/ddl.sql`)
//! through the real `aws-sdk-athena` client, and the 22 queries' answers are
//! compared with DuckDB's (`sql/tpch/answers/sf0.1/`, made by
//! `scripts/tpch/golden.py`).

use std::path::PathBuf;

use aws_sdk_athena::types::QueryExecutionState;

use crate::athena::{athena_client, results, run, run_script};
use crate::util::{Server, Worker, rt};

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
    check_answers(&server);
}

#[test]
fn tpch_sf01_answers_match_duckdb_across_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    lakehose::commands::tpch::generate(0.1, &dir.path().join("tpch-data").join("sf01"), 1)
        .expect("generate TPC-H");
    let token = "e2e-worker-token-0123456789";
    let workers = [
        Worker::start(dir.path(), token),
        Worker::start(dir.path(), token),
    ];
    let addresses = format!("{},{}", workers[0].address, workers[1].address);
    // 1 MiB per scan task: the SF0.1 tables spread over both workers.
    let server = Server::start(
        dir.path(),
        &[
            "--workers",
            &addresses,
            "--worker-token",
            token,
            "--worker-task-kb",
            "1024",
        ],
    );
    check_answers(&server);
    // The stages ran on the workers: with a token they do not hold, the
    // same query fails (rather than running in the coordinator).
    drop(server);
    let wrong = Server::start(
        dir.path(),
        &[
            "--workers",
            &addresses,
            "--worker-token",
            "not-the-worker-token-at-all",
            "--worker-task-kb",
            "1024",
        ],
    );
    rt().block_on(async {
        let (_, state, reason) = run(
            &athena_client(&wrong.endpoint),
            "SELECT l_returnflag, count(*) FROM tpch.lineitem GROUP BY l_returnflag",
            "tpch",
        )
        .await;
        assert_eq!(state, QueryExecutionState::Failed);
        let reason = reason.unwrap_or_default();
        eprintln!("refused: {reason}");
        assert!(reason.contains("token"), "{reason}");
    });
}

/// Registers the TPC-H tables through the Athena API of `server` and
/// compares the 22 queries' answers with DuckDB's.
fn check_answers(server: &Server) {
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

#[test]
fn a_worker_outlives_garbage_on_its_port() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut worker = Worker::start(dir.path(), "e2e-worker-token-0123456789");
    let hostile: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        // An HTTP/2 preface, then a frame claiming a 16 MiB payload.
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\x00\x00\x00\x00\x00\x01",
        &[0u8; 4096],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ];
    for bytes in hostile {
        let mut stream = std::net::TcpStream::connect(&worker.address).unwrap();
        let _ = stream.write_all(bytes);
        drop(stream);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker died of hostile bytes"
    );
    std::net::TcpStream::connect(&worker.address).expect("the worker still accepts connections");
}
