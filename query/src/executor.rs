//! Where CPU-heavy work runs: a Tokio runtime of its own for query plans,
//! ETL runs and compaction, apart from the runtime that serves the network,
//! waits on the write-ahead log and talks to object stores.
//!
//! On one shared runtime a heavy query occupies every worker thread between
//! two polls of its operators, and the acknowledgement of an ingest request
//! waits behind it. On a runtime of its own the query's threads compete with
//! the network's threads in the operating system's scheduler, which
//! preempts them; they also run at a lower priority (nice 10 on Linux), so
//! the network's threads win when both want a core. DataFusion's own tasks
//! (repartitioning, parallel scans) are spawned from the plan's threads and
//! stay on this runtime.
//!
//! A task spawned here is aborted when its [`Task`] is dropped, so a
//! cancelled statement stops running.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};
use tokio::task::{JoinError, JoinHandle};

/// Each worker thread's stack: planning and evaluating a statement recurse
/// once per level of its expression trees (bounded by
/// [`crate::nesting::MAX_SQL_NESTING`]), and a stack overflow aborts the
/// whole process. Only the pages a thread touches are committed.
pub(crate) const CPU_THREAD_STACK_BYTES: usize = 64 << 20;

/// The CPU runtime's threads' priority, a Linux nice value (the network's
/// threads keep the default, 0).
const NICE: i32 = 10;

/// A runtime for CPU-heavy work. Cheap to clone; the runtime stops when the
/// last clone is dropped (its tasks are cancelled then).
#[derive(Clone)]
pub struct CpuRuntime {
    inner: Arc<Owned>,
}

struct Owned {
    runtime: Option<Runtime>,
    handle: Handle,
    threads: usize,
}

impl Drop for Owned {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its threads stop, which is not
        // allowed on a runtime thread; this does not wait.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for CpuRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpuRuntime")
            .field("threads", &self.inner.threads)
            .finish()
    }
}

impl CpuRuntime {
    /// A runtime of `threads` worker threads (at least one), named
    /// `lakehose-cpu`.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("lakehose-cpu")
            .thread_stack_size(CPU_THREAD_STACK_BYTES)
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        Ok(Self {
            inner: Arc::new(Owned {
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
                threads,
            }),
        })
    }

    /// Its worker threads.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Runs `future` on this runtime.
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Task(self.inner.handle.spawn(future))
    }

    /// The runtime's handle (for `JoinSet::spawn_on`).
    pub fn handle(&self) -> &Handle {
        &self.inner.handle
    }
}

/// Runs `future` on `runtime`, or on the caller's runtime when there is
/// none.
pub fn spawn_on<F>(runtime: Option<&CpuRuntime>, future: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match runtime {
        Some(runtime) => runtime.spawn(future),
        None => Task(tokio::spawn(future)),
    }
}

/// A spawned task, aborted when dropped.
#[derive(Debug)]
pub struct Task<T>(JoinHandle<T>);

impl<T> Task<T> {
    /// Waits for the task: its output, or why it has none (it panicked, or
    /// was cancelled).
    pub async fn join(&mut self) -> Result<T, JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lowers the calling thread's priority to [`NICE`]. A failure (a
/// platform without niceness) leaves it as it was.
fn lower_priority() {
    // thread-priority spreads its 0..=99 scale over the nice values 19..=-20
    // in reverse; 22 is nice 10.
    let Ok(value) = thread_priority::ThreadPriorityValue::try_from(22u8) else {
        return;
    };
    if let Err(e) = thread_priority::set_current_thread_priority(
        thread_priority::ThreadPriority::Crossplatform(value),
    ) {
        tracing::debug!(error = ?e, nice = NICE, "the CPU runtime's threads keep the default priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_their_own_threads_and_stop_when_dropped() {
        let runtime = CpuRuntime::new(1).unwrap();
        let name = runtime
            .spawn(async { std::thread::current().name().map(str::to_string) })
            .join()
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("lakehose-cpu"));

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        drop(task);
        // The sender is dropped with the aborted task.
        assert!(rx.await.is_err());

        let mut panics = runtime.spawn(async { panic!("boom") });
        assert!(panics.join().await.unwrap_err().is_panic());
        // Dropping the last clone inside a runtime does not block or panic.
        drop(runtime);
    }

    /// The nice value of the calling thread (field 19 of its `stat`).
    #[cfg(target_os = "linux")]
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The command name (field 2) is in parentheses and may hold spaces.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn cpu_threads_run_at_a_lower_priority() {
        let runtime = CpuRuntime::new(1).unwrap();
        let nice = runtime.spawn(async { own_nice() }).join().await.unwrap();
        // Only a privileged process may lower a nice value it already has.
        if own_nice() <= NICE {
            assert_eq!(nice, NICE);
        }
    }
}
