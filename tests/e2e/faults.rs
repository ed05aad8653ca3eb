//! Faults: a record that can never be written, a store that keeps failing,
//! corrupt state files. Delivery never wedges, shutdown is bounded, start-up
//! never waits for delivery, and nothing acknowledged is lost.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_glue::types::{DatabaseInput, TableInput};
use serde_json::json;

use crate::util::*;

/// Starts a server, failing the test if it does not listen within `secs`.
fn start_within(secs: u64, dir: &Path, extra: &[&str], log: Option<&Path>) -> Server {
    let (tx, rx) = mpsc::channel();
    let dir = dir.to_path_buf();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let log = log.map(Path::to_path_buf);
    std::thread::spawn(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let _ = tx.send(Server::start_with_stderr(&dir, &extra, stderr));
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("the server did not listen within {secs} s"))
}

/// SIGTERM; returns how long the server took to exit.
fn terminate_timed(server: Server) -> Duration {
    let started = Instant::now();
    server.terminate();
    started.elapsed()
}

fn health(endpoint: &str) -> serde_json::Value {
    rt().block_on(async {
        reqwest::get(format!("{endpoint}/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

fn put(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    stream: &str,
    records: Vec<serde_json::Value>,
) {
    let out = rt
        .block_on(
            server
                .client()
                .put_record_batch()
                .delivery_stream_name(stream)
                .set_records(Some(
                    records.iter().map(|r| record(r.to_string())).collect(),
                ))
                .send(),
        )
        .expect("PutRecordBatch");
    assert_eq!(out.failed_put_count(), 0);
}

/// `id`s of the rows under `dir` (Parquet).
fn row_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = parquet_rows(dir)
        .iter()
        .map(|(_, row)| row["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_partition_key_too_long_for_a_folder_goes_to_the_error_prefix_and_nothing_wedges() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let server = start_within(60, dir.path(), &[], None);
    rt.block_on(create_parquet_stream(
        &server.client(),
        "wedge",
        "wedgelake",
        1,
    ));
    let long = "s".repeat(300);
    put(
        &rt,
        &server,
        "wedge",
        vec![
            json!({"id": "long", "service": long}),
            json!({"id": "a1", "service": "web"}),
            json!({"id": "a2", "service": "api"}),
        ],
    );
    let lake = dir.path().join("wedgelake");
    wait_until(30, "the normal records to land", || {
        row_ids(&lake.join("logs")) == ["a1", "a2"]
    });
    let errors = lake.join("errors");
    wait_until(30, "the long-keyed record in the error prefix", || {
        !error_docs(&errors).is_empty()
    });
    let docs = error_docs(&errors);
    assert_eq!(docs.len(), 1, "{docs:?}");
    let doc = &docs[0];
    assert_eq!(
        doc["errorCode"], "DynamicPartitioning.InvalidPrefix",
        "{doc}"
    );
    let message = doc["errorMessage"].as_str().unwrap();
    assert!(message.contains("255"), "{message}");
    assert_eq!(doc["errorOutputType"], "processing-failed");
    assert!(
        files(&errors, "")[0].starts_with(errors.join("processing-failed")),
        "{:?}",
        files(&errors, "")
    );
    // Nothing was created for the long key anywhere.
    assert!(
        files(dir.path(), "")
            .iter()
            .all(|p| !p.to_string_lossy().contains(&long))
    );

    // Records sent after it still land.
    put(
        &rt,
        &server,
        "wedge",
        vec![json!({"id": "a3", "service": "web"})],
    );
    wait_until(30, "a later record to land", || {
        row_ids(&lake.join("logs")) == ["a1", "a2", "a3"]
    });
    assert_eq!(health(&server.endpoint)["status"], "ok");
    assert_eq!(health(&server.endpoint)["buffered_bytes"], 0);

    // SIGTERM finishes quickly, and the restart is prompt.
    let took = terminate_timed(server);
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
    let started = Instant::now();
    let server = start_within(30, dir.path(), &[], None);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(health(&server.endpoint)["status"], "ok");
    assert_eq!(row_ids(&lake.join("logs")), ["a1", "a2", "a3"]);
    assert_eq!(error_docs(&errors).len(), 1);
    server.terminate();
}

#[test]
fn a_log_whose_delivery_keeps_failing_neither_blocks_shutdown_nor_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let flags = ["--shutdown-timeout-secs", "2"];
    let server = start_within(60, dir.path(), &flags, None);
    rt.block_on(create_parquet_stream(
        &server.client(),
        "stuck",
        "stucklake",
        1,
    ));
    rt.block_on(create_parquet_stream(
        &server.client(),
        "fine",
        "finelake",
        1,
    ));
    // The bucket's folder is a file: every write into it fails (and keeps
    // failing) until it is removed.
    let blocker = dir.path().join("stucklake");
    std::fs::write(&blocker, b"not a folder").unwrap();
    put(
        &rt,
        &server,
        "stuck",
        vec![
            json!({"id": "s1", "service": "web"}),
            json!({"id": "s2", "service": "api"}),
        ],
    );
    put(
        &rt,
        &server,
        "fine",
        vec![json!({"id": "f1", "service": "web"})],
    );
    // The other stream is not held up.
    wait_until(30, "the healthy stream to land", || {
        row_ids(&dir.path().join("finelake")) == ["f1"]
    });
    std::thread::sleep(Duration::from_millis(1500));

    // Shutdown gives up after its timeout instead of hanging.
    let took = terminate_timed(server);
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");

    // Start-up listens at once though delivery still fails; the records
    // are still acknowledged (the health endpoint counts them as buffered).
    let log = dir.path().join("restart.log");
    let started = Instant::now();
    let server = start_within(15, dir.path(), &flags, Some(&log));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(health(&server.endpoint)["status"], "ok");
    put(
        &rt,
        &server,
        "fine",
        vec![json!({"id": "f2", "service": "web"})],
    );
    wait_until(30, "a new record to land while the old ones retry", || {
        row_ids(&dir.path().join("finelake")) == ["f1", "f2"]
    });
    assert!(health(&server.endpoint)["buffered_bytes"].as_u64().unwrap() > 0);

    // Once the fault clears, the records land exactly once.
    std::fs::remove_file(&blocker).unwrap();
    wait_until(60, "the stuck records to land", || {
        row_ids(&blocker) == ["s1", "s2"]
    });
    server.terminate();
    let server = start_within(30, dir.path(), &flags, None);
    std::thread::sleep(Duration::from_secs(2));
    server.terminate();
    assert_eq!(row_ids(&blocker), ["s1", "s2"]);
    assert_eq!(row_ids(&dir.path().join("finelake")), ["f1", "f2"]);
}

fn table_input(name: &str, columns: &[(&str, &str)]) -> TableInput {
    parquet_table_input(name, &format!("s3://statelake/{name}/"), columns, &[])
}

/// The newest file in a folder of version files.
fn newest(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.pop().unwrap()
}

#[test]
fn corrupt_state_files_are_reported_by_name_and_never_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let server = start_within(60, dir.path(), &[], None);
    for name in ["broken", "intact"] {
        rt.block_on(create_parquet_stream(
            &server.client(),
            name,
            "statelake",
            1,
        ));
    }
    let glue = glue_client(&server.endpoint);
    rt.block_on(async {
        glue.create_database()
            .database_input(DatabaseInput::builder().name("state").build().unwrap())
            .send()
            .await
            .unwrap();
        for t in ["t1", "t2"] {
            glue.create_table()
                .database_name("state")
                .table_input(table_input(t, &[("a", "string")]))
                .send()
                .await
                .unwrap();
        }
        glue.update_table()
            .database_name("state")
            .table_input(table_input("t1", &[("a", "string"), ("b", "bigint")]))
            .send()
            .await
            .unwrap();
    });
    server.terminate();

    // A truncated stream definition and a corrupt newest table version.
    let system = dir.path().join("_lakehose");
    let stream_file = system.join("firehose/streams/broken.json");
    let text = std::fs::read(&stream_file).unwrap();
    std::fs::write(&stream_file, &text[..text.len() / 2]).unwrap();
    let table_version = newest(&system.join("catalog/tables/state/t1"));
    std::fs::write(&table_version, b"{\"Put\": {\"value\": ").unwrap();

    let log = dir.path().join("server.log");
    let server = start_within(60, dir.path(), &[], Some(&log));
    assert_eq!(health(&server.endpoint)["status"], "ok");
    let glue = glue_client(&server.endpoint);
    rt.block_on(async {
        // The corrupt newest version falls back to the one before it.
        let t1 = glue
            .get_table()
            .database_name("state")
            .name("t1")
            .send()
            .await
            .unwrap();
        let cols = t1.table().unwrap().storage_descriptor().unwrap().columns();
        assert_eq!(cols.len(), 1, "{cols:?}");
        let t2 = glue
            .get_table()
            .database_name("state")
            .name("t2")
            .send()
            .await
            .unwrap();
        assert_eq!(t2.table().unwrap().name(), "t2");
        let tables = glue
            .get_tables()
            .database_name("state")
            .send()
            .await
            .unwrap();
        assert_eq!(tables.table_list().len(), 2);
        // The table can still be changed: the next version goes after the
        // corrupt one.
        glue.update_table()
            .database_name("state")
            .table_input(table_input("t1", &[("a", "string"), ("c", "double")]))
            .send()
            .await
            .unwrap();
        let t1 = glue
            .get_table()
            .database_name("state")
            .name("t1")
            .send()
            .await
            .unwrap();
        assert_eq!(
            t1.table()
                .unwrap()
                .storage_descriptor()
                .unwrap()
                .columns()
                .len(),
            2
        );
    });
    // The intact stream works; the broken one is skipped, not fatal.
    let client = server.client();
    let streams = rt.block_on(client.list_delivery_streams().send()).unwrap();
    assert_eq!(streams.delivery_stream_names(), ["intact"]);
    put(
        &rt,
        &server,
        "intact",
        vec![json!({"id": "i1", "service": "web"})],
    );
    wait_until(30, "a record of the intact stream to land", || {
        row_ids(&dir.path().join("statelake")) == ["i1"]
    });
    server.terminate();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("broken.json"), "{log}");
    assert!(
        log.contains(
            &table_version
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string()
        ),
        "{log}"
    );
}
