//! kill -9 while clients are mid-stream: after a restart every acknowledged
//! record is delivered exactly once, and no record is delivered twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
        let tasks = send_until_refused(&rt, &client, "crash", round, 200, &acked);
        while Instant::now() < stop_at {
            std::thread::sleep(Duration::from_millis(10));
        }
        server.kill();
        rt.block_on(async {
            for t in tasks {
                attempted += t.await.unwrap();
            }
        });
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
    let seen = assert_exactly_once(rows.iter().map(|(_, r)| r["id"].as_str().unwrap()), &acked);
    assert!(seen.len() <= attempted);
    // Nothing was malformed, so nothing went to the error prefix.
    assert!(files(&dir.path().join("crashlake/errors"), "").is_empty());
}
