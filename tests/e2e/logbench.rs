//! The log-analytics benchmark's SQL (`sql/logbench/`) over a small
//! `lakehose gen-logs` table, through the Athena API: the DDL registers the
//! tables, every query answers, and the queries' partition predicates (the
//! `-- pruning` lines) do not change an answer, as the benchmark assumes.

use std::path::PathBuf;

use aws_sdk_athena::types::QueryExecutionState;

use crate::athena::{athena_client, results, run, run_script};
use crate::util::{Server, rt};

fn sql(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("sql/logbench/{name}.sql"));
    std::fs::read_to_string(path).unwrap()
}

/// The query without its lines that only hold partition predicates.
fn unpruned(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains("-- pruning"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn logbench_queries_answer_the_same_with_and_without_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let config = lakehose::commands::gen_logs::Config {
        out: dir.path().join("logbench"),
        records: 30_000,
        days: 7,
        start: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        users: 300,
        seed: 1,
        files_per_partition: 1,
    };
    lakehose::commands::gen_logs::generate(&config, &|_| {}).expect("generate logs");
    let server = Server::start(dir.path(), &[]);
    let athena = athena_client(&server.endpoint);
    let ddl = sql("ddl")
        .replace("${BUCKET}", "logbench")
        .replace("/${PREFIX}", "");
    rt().block_on(async {
        run_script(&athena, &ddl).await;
        let (id, state, reason) = run(&athena, "SELECT count(*) FROM logs", "logbench").await;
        assert_eq!(state, QueryExecutionState::Succeeded, "{reason:?}");
        let count = results(&athena, &id, true).await;
        assert_eq!(count[0][0].as_deref(), Some("30000"));

        for q in 1..=10 {
            let name = format!("q{q:02}");
            let text = sql(&name);
            let (id, state, reason) = run(&athena, &text, "logbench").await;
            assert_eq!(state, QueryExecutionState::Succeeded, "{name}: {reason:?}");
            let pruned = results(&athena, &id, true).await;
            // q08 keeps paths with at least 1,000 requests in a day, which
            // this small table does not have.
            if name != "q08" {
                assert!(!pruned.is_empty(), "{name} returned no rows");
            }
            // Approximate aggregates may merge in another order; compare the rest.
            if text.contains("-- pruning") && !text.contains("approx_") {
                let (id, state, reason) = run(&athena, &unpruned(&text), "logbench").await;
                assert_eq!(state, QueryExecutionState::Succeeded, "{name}: {reason:?}");
                assert_eq!(results(&athena, &id, true).await, pruned, "{name}");
            }
        }
    });
}
