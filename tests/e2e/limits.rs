//! The network servers' limits against hostile and broken clients, through
//! real clients: results stream instead of being held (Postgres rows as
//! they are produced, Athena result files written batch by batch and paged
//! back from the file), a query that panics fails alone, the Athena history
//! is capped, and slow, idle, oversized or too many connections are cut off
//! while other clients are served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aws_sdk_athena::types::QueryExecutionState;
use futures::{StreamExt, TryStreamExt};

use crate::athena::{athena_client, results, run};
use crate::util::{Server, rt};

async fn healthy(server: &Server) {
    let answer = reqwest::get(format!("{}/health", server.endpoint))
        .await
        .expect("GET /health");
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    assert!(status.is_success(), "health: {status} {body}");
}

/// The server process's peak resident memory, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn postgres_results_stream_past_the_held_result_cap() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-held-result-mb", "1"]);
    rt().block_on(async {
        // 2,000,000 rows of two BIGINTs: 32 MB as Arrow, far above the 1 MiB
        // a held result may take; streamed, every row arrives.
        let pg = server.pg("default").await;
        let rows = pg
            .query_raw(
                "SELECT value, value * 2 AS twice FROM generate_series(1, 2000000)",
                std::iter::empty::<i64>(),
            )
            .await
            .expect("the query starts");
        let (n, sum) = rows
            .try_fold((0u64, 0i64), |(n, sum), row| async move {
                Ok((n + 1, sum + row.get::<_, i64>(1)))
            })
            .await
            .expect("every row arrives");
        assert_eq!(n, 2_000_000);
        assert_eq!(sum, 2_000_000i64 * 2_000_001);

        // A query that would produce 200 million rows sends its first rows
        // at once, and closing the connection stops it.
        let started = Instant::now();
        let rows = pg
            .query_raw(
                "SELECT value FROM generate_series(1, 200000000)",
                std::iter::empty::<i64>(),
            )
            .await
            .expect("the query starts");
        let first: Vec<_> = rows.take(10_000).collect().await;
        assert_eq!(first.len(), 10_000);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the first rows took {:?}",
            started.elapsed()
        );
        drop(pg);
        let pg = server.pg("default").await;
        let one = pg.query_one("SELECT 1::bigint", &[]).await.unwrap();
        assert_eq!(one.get::<_, i64>(0), 1);

        // A result the CLI must hold whole is refused by name past the cap.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakehose"))
            .args(["query", "--data-dir"])
            .arg(dir.path())
            .args([
                "--max-held-result-mb",
                "1",
                "SELECT value FROM generate_series(1, 2000000)",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("larger than the 1 MiB") && stderr.contains("--max-held-result-mb"),
            "{stderr}"
        );
        healthy(&server).await;
    });
}

#[test]
fn athena_results_are_written_and_paged_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-held-result-mb", "1"]);
    rt().block_on(async {
        let athena = athena_client(&server.endpoint);
        let sql = "SELECT value, concat('row-', CAST(value AS varchar)) AS label FROM generate_series(1, 300000)";
        let (id, state, reason) = run(&athena, sql, "default").await;
        assert_eq!(state, QueryExecutionState::Succeeded, "{reason:?}");
        let file = dir.path().join(format!("athena-results/e2e/{id}.csv"));
        let size = std::fs::metadata(&file).unwrap().len();
        assert!(size > 5_000_000, "result file of {size} bytes");
        // Every row, paged through the API (the engine may produce them in
        // any order; the file keeps the order they came in).
        let rows = results(&athena, &id, true).await;
        // A page from deep inside the file, read on its own (row 0 is the
        // header): the same rows.
        let page = athena
            .get_query_results()
            .query_execution_id(&id)
            .next_token("row-250001")
            .max_results(3)
            .send()
            .await
            .unwrap();
        let values: Vec<Option<String>> = page
            .result_set
            .unwrap()
            .rows
            .unwrap()
            .iter()
            .map(|r| r.data.as_ref().unwrap()[1].var_char_value.clone())
            .collect();
        let expected: Vec<Option<String>> =
            rows[250_000..250_003].iter().map(|r| r[1].clone()).collect();
        assert_eq!(values, expected);
        assert_eq!(rows.len(), 300_000);
        let sum: u64 = rows
            .iter()
            .map(|r| r[0].as_deref().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(sum, 300_000 * 300_001 / 2);
        healthy(&server).await;
    });
}

#[test]
fn a_query_that_panics_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-concurrent-queries", "1"]);
    rt().block_on(async {
        let athena = athena_client(&server.endpoint);
        let panics = "SELECT lakehose_debug_panic(value) FROM generate_series(1, 10)";
        // More panicking executions than slots: each frees its slot.
        for _ in 0..3 {
            let (_, state, reason) = run(&athena, panics, "default").await;
            assert_eq!(state, QueryExecutionState::Failed);
            let reason = reason.unwrap_or_default();
            assert!(
                reason.contains("lakehose_debug_panic was called"),
                "{reason}"
            );
        }
        let (_, state, reason) = run(&athena, "SELECT 41 + 1", "default").await;
        assert_eq!(state, QueryExecutionState::Succeeded, "{reason:?}");

        // Over Postgres: the client gets the error, the connection goes on.
        let pg = server.pg("default").await;
        let err = pg.simple_query(panics).await.unwrap_err();
        let db = err.as_db_error().expect("an error from the server");
        assert!(
            db.message().contains("lakehose_debug_panic was called"),
            "{db:?}"
        );
        let err = pg.query(panics, &[]).await.unwrap_err();
        let db = err.as_db_error().expect("an error from the server");
        assert!(db.message().contains("lakehose_debug_panic"), "{db:?}");
        let one = pg.query_one("SELECT 2::bigint", &[]).await.unwrap();
        assert_eq!(one.get::<_, i64>(0), 2);
        healthy(&server).await;
    });
}

#[test]
fn athena_history_keeps_the_newest_executions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-query-executions", "64"]);
    rt().block_on(async {
        let athena = athena_client(&server.endpoint);
        let mut ids = Vec::new();
        for i in 0..70 {
            let (id, state, _) = run(&athena, &format!("SELECT {i}"), "default").await;
            assert_eq!(state, QueryExecutionState::Succeeded);
            ids.push(id);
        }
        let mut listed = Vec::new();
        let mut token = None;
        loop {
            let page = athena
                .list_query_executions()
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            listed.extend(page.query_execution_ids.unwrap_or_default());
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(listed.len(), 64);
        assert_eq!(listed[0], ids[69], "newest first");
        let oldest = athena
            .get_query_execution()
            .query_execution_id(&ids[0])
            .send()
            .await
            .unwrap_err();
        assert!(
            format!("{oldest:?}").contains("was not found"),
            "{oldest:?}"
        );
        let records = || {
            std::fs::read_dir(dir.path().join("_lakehose/athena/executions"))
                .unwrap()
                .count()
        };
        // The last pruning may still be deleting a record.
        let deadline = Instant::now() + Duration::from_secs(10);
        while records() != 64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(records(), 64);
    });
}

/// Reads until the server closes the connection; what it sent.
fn read_to_close(socket: &mut TcpStream, within: Duration) -> String {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return String::from_utf8_lossy(&out).into_owned();
            }
            Err(e) => panic!(
                "the server kept the connection open: {e}; it sent {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

fn addr(server: &Server) -> String {
    server.endpoint.trim_start_matches("http://").to_string()
}

#[test]
fn slow_idle_and_oversized_http_clients_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--http-header-timeout-secs",
            "2",
            "--http-body-timeout-secs",
            "2",
            "--http-max-header-bytes",
            "16384",
        ],
    );
    let address = addr(&server);
    // A head sent one byte every 300 ms: closed after the header timeout,
    // while other clients are served.
    let mut slow_head = TcpStream::connect(&address).unwrap();
    let started = Instant::now();
    let dripper = std::thread::spawn({
        let mut socket = slow_head.try_clone().unwrap();
        move || {
            for b in
                b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            {
                if socket.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    });
    rt().block_on(healthy(&server));
    read_to_close(&mut slow_head, Duration::from_secs(10));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
    dripper.join().unwrap();

    // A body sent one byte every 300 ms: refused after the body timeout,
    // naming it.
    let mut slow_body = TcpStream::connect(&address).unwrap();
    slow_body
        .write_all(
            b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: AmazonAthena.ListWorkGroups\r\n\
              Content-Type: application/x-amz-json-1.1\r\nContent-Length: 1000\r\n\r\n{",
        )
        .unwrap();
    let started = Instant::now();
    let dripper = std::thread::spawn({
        let mut socket = slow_body.try_clone().unwrap();
        move || {
            for _ in 0..40 {
                if socket.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    });
    let answer = read_to_close(&mut slow_body, Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(
        answer.contains("request body was not received within 2 s"),
        "{answer}"
    );
    dripper.join().unwrap();

    // An idle keep-alive connection is closed after the header timeout.
    let mut idle = TcpStream::connect(&address).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let answer = read_to_close(&mut idle, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(6));

    // A head larger than the limit: 431.
    let mut big = TcpStream::connect(&address).unwrap();
    let header = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let _ = big.write_all(header.as_bytes());
    let answer = read_to_close(&mut big, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    rt().block_on(healthy(&server));
}

#[test]
fn http_connections_past_the_limit_wait_for_a_free_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--http-max-connections", "2"]);
    let address = addr(&server);
    let first = TcpStream::connect(&address).unwrap();
    let second = TcpStream::connect(&address).unwrap();
    rt().block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(1500))
            .build()
            .unwrap();
        let url = format!("{}/health", server.endpoint);
        let waiting = http.get(&url).send().await;
        assert!(waiting.is_err(), "served past the connection limit");
        drop(first);
        drop(second);
        let served = http.get(&url).send().await.expect("served once one closed");
        assert!(served.status().is_success());
    });
}

#[test]
fn postgres_limits_cut_off_oversized_slow_and_idle_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--pg-max-message-bytes",
            "65536",
            "--pg-startup-timeout-secs",
            "2",
            "--pg-idle-timeout-secs",
            "3",
        ],
    );
    rt().block_on(async {
        // A message over the limit ends that connection, naming the flag.
        let pg = server.pg("default").await;
        let huge = format!("SELECT '{}'", "x".repeat(100_000));
        let err = pg.simple_query(&huge).await.unwrap_err();
        let db = err.as_db_error().expect("an error from the server");
        assert_eq!(
            db.code(),
            &tokio_postgres::error::SqlState::PROGRAM_LIMIT_EXCEEDED
        );
        assert!(db.message().contains("--pg-max-message-bytes"), "{db:?}");
        // Others are served.
        let pg = server.pg("default").await;
        let one = pg.query_one("SELECT 3::bigint", &[]).await.unwrap();
        assert_eq!(one.get::<_, i64>(0), 3);

        // Idle past the timeout: closed.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(pg.query_one("SELECT 1", &[]).await.is_err());
        assert!(pg.is_closed());
    });
    // A client that never finishes its startup: told and disconnected.
    let mut silent = TcpStream::connect(&server.pg_addr).unwrap();
    let started = Instant::now();
    let answer = read_to_close(&mut silent, Duration::from_secs(10));
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(answer.contains("--pg-startup-timeout-secs"), "{answer:?}");
    rt().block_on(healthy(&server));
}

#[test]
fn streaming_a_large_select_keeps_the_server_small() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--query-memory-mb", "256"]);
    let pid = server.pid();
    rt().block_on(async {
        let pg = server.pg("default").await;
        let before = peak_rss_kib(pid);
        // 3,000,000 rows of a BIGINT and a 32-byte string: ~130 MB as
        // Arrow, streamed to the client a few batches at a time.
        let rows = pg
            .query_raw(
                "SELECT value, concat('label-', lpad(CAST(value AS varchar), 26, '0')) AS label FROM generate_series(1, 3000000)",
                std::iter::empty::<i64>(),
            )
            .await
            .unwrap();
        let n = rows
            .try_fold(0u64, |n, _| async move { Ok(n + 1) })
            .await
            .unwrap();
        assert_eq!(n, 3_000_000);
        let after = peak_rss_kib(pid);
        assert!(
            after.saturating_sub(before) < 80 * 1024,
            "peak RSS grew from {before} KiB to {after} KiB"
        );
    });
}

#[test]
fn request_bodies_in_flight_are_capped_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--http-max-inflight-body-mb",
            "1",
            "--http-body-timeout-secs",
            "30",
        ],
    );
    let address = addr(&server);
    // A body of 900,000 bytes announced and not yet sent holds most of the
    // megabyte.
    let mut holding = TcpStream::connect(&address).unwrap();
    holding
        .write_all(
            b"POST /v1/streams/none/records HTTP/1.1\r\nHost: localhost\r\nContent-Length: 900000\r\n\r\n{",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    rt().block_on(async {
        let http = reqwest::Client::new();
        // Another body that does not fit: 503 at once, naming the flag.
        let refused = http
            .post(format!("{}/v1/streams/none/records", server.endpoint))
            .header("content-type", "application/x-ndjson")
            .body(vec![b' '; 500_000])
            .send()
            .await;
        match refused {
            Ok(answer) => {
                assert_eq!(answer.status(), 503);
                let text = answer.text().await.unwrap();
                assert!(text.contains("--http-max-inflight-body-mb"), "{text}");
            }
            // Refused before the body was read: the connection may be
            // closed while the client still sends.
            Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
        }
        // Requests without a body are not held back (they would all be
        // refused if they counted the body limit).
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let answer = http.get(format!("{}/health", server.endpoint)).send().await;
            statuses.push(answer.map_or(0, |a| a.status().as_u16()));
            if statuses.last() == Some(&200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            statuses.last(),
            Some(&200),
            "GET /health answered {statuses:?}"
        );
        // A small body still fits.
        let small = http
            .post(format!("{}/v1/streams/none/records", server.endpoint))
            .header("content-type", "application/x-ndjson")
            .body("{}\n")
            .send()
            .await
            .unwrap();
        assert_eq!(small.status(), 404, "the stream does not exist");
    });
    drop(holding);
    // Once the held body is gone, a large one fits again.
    rt().block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = reqwest::Client::new()
                .post(format!("{}/v1/streams/none/records", server.endpoint))
                .header("content-type", "application/x-ndjson")
                .body(vec![b' '; 500_000])
                .send()
                .await;
            if let Ok(a) = answer
                && a.status() != 503
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the held body was never released"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}
