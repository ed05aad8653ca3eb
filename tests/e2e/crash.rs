//! kill -9 while clients are mid-stream: after a restart every acknowledged
//! record is delivered exactly once, and no record is delivered twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::*;

#[test]
fn sigkill_mid_stream_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut attempted = 0usize;
    // Kill at different moments: mid-batch, around interval flushes, ...
    for (round, run_ms) in [(0, 1500u64), (1, 700), (2, 2300), (3, 1100)].into_iter() {
        let server = Server::start(dir.path(), &[]);
        if round == 0 {
            rt.block_on(create_parquet_stream(
                &server.client(),
                "crash",
                "crashlake",
                1,
            ));
        }
        // No retries: an acknowledgement means exactly one accepted call.
        let client = lakehose::commands::demo::firehose_client(&server.endpoint, 1);
        let stop_at = Instant::now() + Duration::from_millis(run_ms);
        let sent = Arc::new(Mutex::new(0usize));
        let tasks: Vec<_> = (0..4)
            .map(|task| {
                let client = client.clone();
                let acked = Arc::clone(&acked);
                let sent = Arc::clone(&sent);
                rt.spawn(async move {
                    let mut n = 0;
                    // Keep sending until the server dies under us.
                    loop {
                        let ids: Vec<String> = (0..50)
                            .map(|i| format!("{round}-{task}-{}", n + i))
                            .collect();
                        n += 50;
                        let records = ids
                            .iter()
                            .map(|id| {
                                let service = ["a", "b", "c"][task % 3];
                                record(
                                    json!({"id": id, "service": service, "pad": "x".repeat(200)})
                                        .to_string(),
                                )
                            })
                            .collect();
                        *sent.lock().unwrap() += ids.len();
                        match client
                            .put_record_batch()
                            .delivery_stream_name("crash")
                            .set_records(Some(records))
                            .send()
                            .await
                        {
                            Ok(out) => {
                                assert_eq!(out.failed_put_count(), 0);
                                acked.lock().unwrap().extend(ids);
                            }
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        while Instant::now() < stop_at {
            std::thread::sleep(Duration::from_millis(10));
        }
        server.kill();
        rt.block_on(async {
            for t in tasks {
                t.await.unwrap();
            }
        });
        attempted += *sent.lock().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 1000,
        "too few records were acknowledged to prove anything: {}",
        acked.len()
    );

    // Restart: replay delivers what was acknowledged but not yet delivered.
    let server = Server::start(dir.path(), &[]);
    server.terminate();

    let rows = parquet_rows(&dir.path().join("crashlake/logs"));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (_, row) in &rows {
        *seen
            .entry(row["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "records delivered more than once: {:?}",
        &duplicated[..duplicated.len().min(10)]
    );
    let lost: Vec<_> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(seen.len() <= attempted);
    // Nothing was malformed, so nothing went to the error prefix.
    assert!(files(&dir.path().join("crashlake/errors"), "").is_empty());
}
