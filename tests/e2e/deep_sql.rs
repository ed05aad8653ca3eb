//! Statements built to nest deeper than any stack: operator chains, casts,
//! set operations and joins thousands of levels deep. Each is refused with
//! `QUERY_TOO_COMPLEX` through the Athena API and the Postgres wire
//! protocol, the server stays up, and a statement just under the limit
//! still answers on the server's own threads.

use aws_sdk_athena::types::QueryExecutionState;

use crate::athena::{athena_client, run, select};
use crate::util::{Server, rt};

fn chain(op: &str, n: usize) -> String {
    format!("SELECT {} AS x", vec!["1"; n].join(op))
}

fn hostile() -> Vec<(&'static str, String)> {
    let joins = format!(
        "SELECT 1 FROM (VALUES (1)) t0(k) {}",
        (1..5000)
            .map(|i| format!("JOIN (VALUES (1)) t{i}(k) ON true"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    vec![
        ("a 20,000-term sum", chain(" + ", 20_000)),
        ("a 20,000-term OR", chain(" = 1 OR 1", 20_000)),
        (
            "20,000 chained casts",
            format!("SELECT 1{}", "::bigint".repeat(20_000)),
        ),
        ("5,000 UNIONs", chain(" UNION ALL SELECT ", 5_000)),
        ("5,000 joins", joins),
        (
            "EXPLAIN of a 20,000-term sum",
            format!("EXPLAIN {}", chain(" + ", 20_000)),
        ),
        (
            "100,000 brackets",
            format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000)),
        ),
    ]
}

#[test]
fn statements_nested_past_the_limit_are_refused_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    rt().block_on(async {
        let athena = athena_client(&server.endpoint);
        // Just under the limit: planned, run and answered on the server's
        // threads, which must not overflow their stacks.
        let rows = select(&athena, &chain(" + ", 900), "default").await;
        assert_eq!(rows, vec![vec![Some("900".to_string())]]);

        for (what, sql) in hostile() {
            let (_, state, reason) = run(&athena, &sql, "default").await;
            assert_eq!(state, QueryExecutionState::Failed, "{what}");
            let reason = reason.unwrap_or_default();
            assert!(
                reason.contains("QUERY_TOO_COMPLEX"),
                "{what}: unexpected reason {reason}"
            );
        }

        let pg = server.pg("default").await;
        for (what, sql) in hostile() {
            let err = pg
                .simple_query(&sql)
                .await
                .expect_err(&format!("{what} was accepted"));
            assert!(
                err.to_string().contains("QUERY_TOO_COMPLEX")
                    || err
                        .as_db_error()
                        .is_some_and(|e| e.message().contains("QUERY_TOO_COMPLEX")),
                "{what}: {err:?}"
            );
            // The extended protocol parses the same text.
            assert!(pg.query(&sql, &[]).await.is_err(), "{what} (extended)");
        }
        // The same connection and the server still answer.
        let row = pg.query_one("SELECT 40 + 2", &[]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), 42);
        let rows = select(&athena, "SELECT 1 + 1", "default").await;
        assert_eq!(rows, vec![vec![Some("2".to_string())]]);
        let health = reqwest::get(format!("{}/health", server.endpoint))
            .await
            .unwrap();
        assert!(health.status().is_success());
    });
    server.terminate();
}

#[test]
fn the_query_command_refuses_a_deep_statement_without_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakehose"))
        .args(["query", "--log", "warn", "--data-dir"])
        .arg(dir.path())
        .arg(chain(" + ", 20_000))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("QUERY_TOO_COMPLEX"), "{stderr}");
}
