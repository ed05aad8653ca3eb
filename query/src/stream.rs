//! Streaming a statement's rows to its front end as the engine produces
//! them, and the bound on results that must be held whole.
//!
//! [`QueryEngine::execute_stream`] runs the statement as
//! [`QueryEngine::execute`] does (same dispatch, limits and checks), in a
//! task of its own, with a result sink in scope: when the statement reaches
//! [`QueryEngine::collect`] with a query (not `EXPLAIN`), its rows go
//! through a channel of [`STREAM_DEPTH`] batches to the caller instead of
//! being collected, so a `SELECT *` of any size holds only a few batches.
//! Dropping the stream aborts the task (and the query); a panic in it ends
//! the stream with an internal error.
//!
//! Results collected whole (the `lakehose sql` CLI, dashboards' datasets,
//! the statements a front end answers from a held result) are capped at
//! [`EngineConfig::max_held_result_bytes`](crate::EngineConfig).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use futures::StreamExt;
use futures::stream;
use tokio::sync::mpsc;

use crate::contract::{
    QueryError, QueryErrorKind, QueryOutput, QueryStream, StatementType, panic_error,
};
use crate::executor::CpuRuntime;

/// Batches in flight between a running query and its front end. The query
/// waits while they are unread, so a slow client slows the query down
/// instead of filling memory.
pub(crate) const STREAM_DEPTH: usize = 2;

/// The default cap on a result held whole in memory, in bytes.
pub const DEFAULT_MAX_HELD_RESULT_BYTES: usize = 256 << 20;

enum Message {
    /// The result columns, before the first batch (sent again when the
    /// query is re-run before any row went out).
    Start(SchemaRef),
    Batch(RecordBatch),
}

/// Where the rows of the statement running in this task go.
struct Sink {
    tx: mpsc::Sender<Message>,
    sent_rows: AtomicBool,
}

tokio::task_local! {
    static SINK: Arc<Sink>;
}

/// Sends the rows of `physical` to the statement's stream when it has one
/// (`None` when it has none, or for `EXPLAIN`, whose few rows are
/// collected).
pub(crate) async fn forward(
    plan: &LogicalPlan,
    physical: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
) -> Option<Result<(), DataFusionError>> {
    if matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)) {
        return None;
    }
    let sink = SINK.try_with(Arc::clone).ok()?;
    Some(send_rows(&sink, physical, task).await)
}

async fn send_rows(
    sink: &Sink,
    physical: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
) -> Result<(), DataFusionError> {
    let gone = || DataFusionError::Execution("the client stopped reading the result".into());
    if sink.sent_rows.load(Ordering::SeqCst) {
        // Re-run (with spilling joins) after rows already went out: they
        // cannot be taken back.
        return Err(DataFusionError::ResourcesExhausted(
            "the query ran out of memory after its first rows were sent; give the server more query memory (--query-memory-mb)".into(),
        ));
    }
    sink.tx
        .send(Message::Start(physical.schema()))
        .await
        .map_err(|_| gone())?;
    let mut rows = execute_stream(physical, task)?;
    while let Some(batch) = rows.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        sink.sent_rows.store(true, Ordering::SeqCst);
        sink.tx
            .send(Message::Batch(batch))
            .await
            .map_err(|_| gone())?;
    }
    Ok(())
}

/// Collects the rows of `physical`, failing once they take more than
/// `limit` bytes.
pub(crate) async fn collect_bounded(
    physical: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
    limit: usize,
) -> Result<Vec<RecordBatch>, DataFusionError> {
    let mut rows = execute_stream(physical, task)?;
    let mut held = 0usize;
    let mut out = Vec::new();
    while let Some(batch) = rows.next().await {
        let batch = batch?;
        held = held.saturating_add(batch.get_array_memory_size());
        if held > limit {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the result is larger than the {} MiB a result held in memory may take (--max-held-result-mb); \
                 read it through the Postgres wire protocol or the Athena API, which stream it, or add a LIMIT",
                limit >> 20
            )));
        }
        out.push(batch);
    }
    Ok(out)
}

/// Aborts the task when dropped.
/// A statement task's result: a panic is an internal error, an abort a
/// cancellation.
pub(crate) fn joined(
    result: Result<Result<QueryOutput, QueryError>, tokio::task::JoinError>,
) -> Result<QueryOutput, QueryError> {
    match result {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(panic_error(e.into_panic().as_ref())),
        Err(_) => Err(QueryError::new(
            QueryErrorKind::Cancelled,
            "Query was cancelled",
        )),
    }
}

/// Runs `statement` (a statement's whole run, as
/// [`QueryEngine::execute`](crate::QueryEngine::execute) does it) in a task
/// of its own with a result sink in scope, its rows streamed as they are
/// produced (see the module documentation).
pub(crate) async fn streamed(
    runtime: Option<&CpuRuntime>,
    statement: impl Future<Output = Result<QueryOutput, QueryError>> + Send + 'static,
) -> Result<QueryStream, QueryError> {
    let (tx, mut rx) = mpsc::channel(STREAM_DEPTH);
    let sink = Arc::new(Sink {
        tx,
        sent_rows: AtomicBool::new(false),
    });
    let mut task = crate::executor::spawn_on(runtime, SINK.scope(sink, statement));
    let schema = tokio::select! {
        biased;
        first = rx.recv() => match first {
            Some(Message::Start(schema)) => schema,
            Some(Message::Batch(_)) => {
                return Err(QueryError::new(QueryErrorKind::Internal, "result rows arrived before their columns"));
            }
            // Finished without streaming rows.
            None => return joined(task.join().await).map(QueryStream::from_output),
        },
        done = task.join() => {
            return joined(done).map(QueryStream::from_output);
        }
    };
    let bytes_scanned = Arc::new(AtomicU64::new(0));
    let bytes = Arc::clone(&bytes_scanned);
    let batches = stream::unfold(Some((rx, task)), move |state| {
        let bytes = Arc::clone(&bytes);
        async move {
            let (mut rx, mut task) = state?;
            loop {
                match rx.recv().await {
                    Some(Message::Batch(batch)) => return Some((Ok(batch), Some((rx, task)))),
                    Some(Message::Start(_)) => continue,
                    None => {
                        return match joined(task.join().await) {
                            Ok(output) => {
                                bytes.store(output.bytes_scanned, Ordering::Relaxed);
                                None
                            }
                            Err(e) => Some((Err(e), None)),
                        };
                    }
                }
            }
        }
    })
    .boxed();
    Ok(QueryStream {
        statement_type: StatementType::Dml,
        substatement_type: "SELECT".into(),
        schema,
        update_count: None,
        batches,
        bytes_scanned,
    })
}
