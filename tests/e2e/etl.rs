//! ETL through the binary: `lakehose etl` runs jobs into Delta tables that
//! the Athena API then answers from; a run killed with SIGKILL mid-write
//! leaves the target as it was; the server runs scheduled jobs, and once at
//! start-up a job whose schedule fired while it was down.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_athena::types::QueryExecutionState;

use crate::athena::{athena_client, results, run};
use crate::util::{Server, rt, wait_until};

fn lakehose(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lakehose"))
        .args(args)
        .env("LAKEHOSE_DATA_DIR", data)
        .env("LAKEHOSE_LOG", "warn")
        .output()
        .expect("run lakehose");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sql(data: &Path, statement: &str) -> String {
    let (ok, stdout, stderr) = lakehose(data, &["query", "--format", "csv", statement]);
    assert!(ok, "{statement}: {stderr}");
    stdout
}

/// A raw table of `days` × `n` request records.
fn raw_events(data: &Path, days: &[&str], n: usize) {
    let values: Vec<String> = days
        .iter()
        .flat_map(|d| {
            (0..n).map(move |i| {
                format!(
                    "('svc{}', {}, {}.0, '{d}')",
                    i % 4,
                    if i % 10 == 0 { 500 } else { 200 },
                    i % 97
                )
            })
        })
        .collect();
    let rows = values.join(", ");
    let exists = sql(data, "SHOW DATABASES").contains("raw");
    if !exists {
        sql(data, "CREATE DATABASE raw");
        sql(
            data,
            &format!(
                "CREATE TABLE raw.requests WITH (format = 'PARQUET', partitioned_by = ARRAY['dt'], external_location = 's3://lake/raw/requests/') \
                 AS SELECT * FROM (VALUES {rows}) AS t(service, status, latency_ms, dt)"
            ),
        );
    } else {
        sql(
            data,
            &format!(
                "INSERT INTO raw.requests SELECT * FROM (VALUES {rows}) AS t(service, status, latency_ms, dt)"
            ),
        );
    }
}

const DAILY: &str = "-- Requests and errors per service and day.
-- target: curated.daily
-- mode: incremental
-- source: raw.requests
-- partitioned_by: dt
SELECT service, count(*) AS requests, count_if(status >= 500) AS errors, dt
FROM raw.requests
GROUP BY service, dt
";

const REPORT: &str = "-- target: curated.report
-- mode: overwrite
SELECT dt, sum(requests) AS requests, sum(errors) AS errors
FROM curated.daily
GROUP BY dt
";

#[test]
fn etl_cli_runs_jobs_in_order_and_athena_reads_the_delta_tables() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    // Named so that name order is the wrong order.
    std::fs::write(jobs.join("a_report.sql"), REPORT).unwrap();
    std::fs::write(jobs.join("b_daily.sql"), DAILY).unwrap();
    raw_events(&data, &["2026-11-01", "2026-11-02"], 40);
    let jobs_arg = jobs.to_str().unwrap();
    let (ok, stdout, stderr) = lakehose(&data, &["etl", "--jobs", jobs_arg, "validate"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("b_daily: ok → curated.daily"), "{stdout}");
    let (ok, stdout, stderr) = lakehose(&data, &["etl", "--jobs", jobs_arg, "run", "--all"]);
    assert!(ok, "{stdout}{stderr}");
    let daily_at = stdout.find("b_daily SUCCEEDED").expect("daily ran");
    let report_at = stdout.find("a_report SUCCEEDED").expect("report ran");
    assert!(daily_at < report_at, "dependency order: {stdout}");
    // More data; the incremental job reads only the partition with it.
    raw_events(&data, &["2026-11-02"], 10);
    let (ok, stdout, stderr) = lakehose(&data, &["etl", "--jobs", jobs_arg, "run", "--all"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("1 source partitions with new files"),
        "{stdout}"
    );
    let (ok, history, _) = lakehose(&data, &["etl", "--jobs", jobs_arg, "history"]);
    assert!(ok);
    assert_eq!(history.matches("SUCCEEDED").count(), 4, "{history}");
    let (ok, list, _) = lakehose(&data, &["etl", "--jobs", jobs_arg, "list"]);
    assert!(
        ok && list.contains("curated.daily") && list.contains("incremental"),
        "{list}"
    );

    // Through the Athena API of a server on the same folder.
    let server = Server::start(&data, &[]);
    let athena = athena_client(&server.endpoint);
    rt().block_on(async {
        let (id, state, reason) = run(
            &athena,
            "SELECT dt, requests, errors FROM curated.report ORDER BY dt",
            "default",
        )
        .await;
        assert_eq!(state, QueryExecutionState::Succeeded, "{reason:?}");
        let rows = results(&athena, &id, true).await;
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|r| r.into_iter().map(Option::unwrap_or_default).collect())
            .collect();
        assert_eq!(
            rows,
            vec![
                vec!["2026-11-01".to_string(), "40".into(), "4".into()],
                vec!["2026-11-02".to_string(), "50".into(), "5".into()],
            ]
        );
    });

    // A job reading a table that does not exist: the error names the file
    // and the line.
    std::fs::write(
        jobs.join("c_broken.sql"),
        "-- target: curated.broken\n-- mode: overwrite\nSELECT *\nFROM raw.nothing_here\n",
    )
    .unwrap();
    let (ok, _, stderr) = lakehose(&data, &["etl", "--jobs", jobs_arg, "validate", "c_broken"]);
    assert!(!ok);
    assert!(stderr.contains("c_broken.sql:4:"), "{stderr}");
    assert!(stderr.contains("nothing_here"), "{stderr}");
}

#[test]
fn a_run_killed_mid_write_leaves_the_target_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    raw_events(&data, &["2026-11-01"], 200);
    // Many rows per source row, so that writing takes a while.
    let job = "-- target: curated.wide\n-- mode: overwrite\n-- file_size_mb: 1\n\
               SELECT service, status, latency_ms + x AS latency_ms, dt, x\n\
               FROM raw.requests CROSS JOIN UNNEST(sequence(1, COPIES)) AS u(x)\n";
    std::fs::write(jobs.join("wide.sql"), job.replace("COPIES", "10")).unwrap();
    let jobs_arg = jobs.to_str().unwrap();
    let (ok, _, stderr) = lakehose(&data, &["etl", "--jobs", jobs_arg, "run", "wide"]);
    assert!(ok, "{stderr}");
    let before = sql(&data, "SELECT count(*), sum(x) FROM curated.wide");
    assert!(before.contains("2000"), "{before}");

    std::fs::write(jobs.join("wide.sql"), job.replace("COPIES", "10000")).unwrap();
    let target = data.join("lakehose-warehouse/curated/curated/wide");
    let count_files = || crate::util::files(&target, ".parquet").len();
    let files_before = count_files();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lakehose"))
        .args(["etl", "--jobs", jobs_arg, "run", "wide"])
        .env("LAKEHOSE_DATA_DIR", &data)
        .env("LAKEHOSE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has started writing data files (before its commit).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if count_files() > files_before {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it was killed; make it bigger");
        }
        assert!(Instant::now() < deadline, "the run wrote no data file");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        sql(&data, "SELECT count(*), sum(x) FROM curated.wide"),
        before
    );

    // The next run succeeds.
    std::fs::write(jobs.join("wide.sql"), job.replace("COPIES", "3")).unwrap();
    let (ok, _, stderr) = lakehose(&data, &["etl", "--jobs", jobs_arg, "run", "wide"]);
    assert!(ok, "{stderr}");
    let after = sql(&data, "SELECT count(*) FROM curated.wide");
    assert!(after.contains("600"), "{after}");
}

#[test]
fn the_server_runs_scheduled_jobs_and_catches_up_a_missed_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    raw_events(&data, &["2026-11-01"], 20);
    // Every second.
    std::fs::write(
        jobs.join("often.sql"),
        "-- target: curated.often\n-- mode: overwrite\n-- schedule: * * * * * *\nSELECT count(*) AS n FROM raw.requests\n",
    )
    .unwrap();
    // Once a year, on January 1st; it last ran in 2025, so a run is due.
    std::fs::write(
        jobs.join("yearly.sql"),
        "-- target: curated.yearly\n-- mode: overwrite\n-- schedule: 0 0 1 1 *\nSELECT count(*) AS n FROM raw.requests\n",
    )
    .unwrap();
    let record = serde_json::json!({
        "job": "yearly", "run_id": "old", "attempt": 1, "state": "SUCCEEDED",
        "started_ms": 1_735_000_000_000i64, "ended_ms": 1_735_000_001_000i64,
        "target": "curated.yearly", "mode": "overwrite", "rows_read": 0, "bytes_read": 0,
        "rows_out": 0, "rows_written": 0, "files_written": 0, "bytes_written": 0
    });
    let runs = data.join("_lakehose/etl/runs/yearly");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::write(runs.join("1735000000000-old.json"), record.to_string()).unwrap();
    let jobs_arg = jobs.to_str().unwrap();
    let server = Server::start(&data, &["--etl-jobs", jobs_arg]);
    let history = |job: &str| {
        let (ok, out, _) = lakehose(&data, &["etl", "--jobs", jobs_arg, "history", job]);
        assert!(ok);
        out.matches("SUCCEEDED").count()
    };
    wait_until(60, "two scheduled runs of `often`", || {
        history("often") >= 2
    });
    wait_until(60, "the missed yearly run", || history("yearly") >= 2);
    server.terminate();
    assert!(sql(&data, "SELECT n FROM curated.yearly").contains("20"));
}

/// Parquet files under a folder (compacted folders included).
fn parquet_files(folder: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn the_server_compacts_and_vacuums_on_its_maintenance_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    for _ in 0..3 {
        raw_events(&data, &["2026-11-01"], 20);
    }
    // A job without a schedule, run by hand three times: three small files
    // in its Delta table, none of older versions kept by VACUUM.
    std::fs::write(
        jobs.join("copy.sql"),
        "-- target: curated.copy\n-- mode: append\n-- retain_hours: 0\nSELECT service, status FROM raw.requests\n",
    )
    .unwrap();
    let jobs_arg = jobs.to_str().unwrap();
    for _ in 0..3 {
        let (ok, _, err) = lakehose(&data, &["etl", "--jobs", jobs_arg, "run", "copy"]);
        assert!(ok, "{err}");
    }
    // Each run made on the folder is in its audit log, with who ran it.
    let runs = crate::auth::audit_events(&data)
        .into_iter()
        .filter(|e| {
            e["event"] == "etl_run"
                && e["job"] == "copy"
                && e["state"] == "SUCCEEDED"
                && e["by"]["via"] == "lakehose etl"
        })
        .count();
    assert_eq!(runs, 3);
    let raw_folder = data.join("lake/raw/requests/dt=2026-11-01");
    let delta_folder = data.join("lakehose-warehouse/curated/curated/copy");
    assert_eq!(parquet_files(&raw_folder).len(), 3);
    assert_eq!(parquet_files(&delta_folder).len(), 3);

    let server = Server::start(
        &data,
        &[
            "--etl-jobs",
            jobs_arg,
            "--maintenance",
            "* * * * * *",
            "--compact-min-age",
            "0s",
        ],
    );
    let compacted = || {
        std::fs::read_dir(&raw_folder)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("_compacted-"))
    };
    wait_until(60, "the raw partition compacted", compacted);
    // OPTIMIZE wrote one file for the three, and VACUUM (retention 0)
    // deleted the three.
    wait_until(60, "the Delta table compacted and vacuumed", || {
        parquet_files(&delta_folder).len() == 1
    });
    let client = athena_client(&server.endpoint);
    rt().block_on(async {
        let (id, state, reason) = run(
            &client,
            "SELECT (SELECT count(*) FROM raw.requests) AS raw, (SELECT count(*) FROM curated.copy) AS copy",
            "default",
        )
        .await;
        assert_eq!(state, QueryExecutionState::Succeeded, "{reason:?}");
        let rows = results(&client, &id, false).await;
        let expected = vec![Some("60".to_string()), Some("180".to_string())];
        assert_eq!(rows.last(), Some(&expected), "{rows:?}");
    });
    server.terminate();
}
