//! Background tasks that survive their own panics: a panic is logged with
//! its message and the task starts again after a backoff (doubling from
//! [`MIN_BACKOFF`] to [`MAX_BACKOFF`], back to the minimum once a run
//! lasted longer than the maximum), instead of the task silently ending.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;

/// The first wait before a panicked task starts again.
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before a panicked task starts again.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_string())
}

/// Runs `future`, turning a panic in it into `Err(message)` (logged with
/// `what`).
pub async fn catch_panic<T>(what: &str, future: impl Future<Output = T>) -> Result<T, String> {
    match std::panic::AssertUnwindSafe(future).catch_unwind().await {
        Ok(value) => Ok(value),
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            tracing::error!(task = what, panic = %message, "a background task panicked");
            Err(message)
        }
    }
}

/// Spawns the task `make` builds and builds it again whenever it panics
/// (see the module documentation); the returned handle ends when a run
/// returns normally, and aborting it stops the task for good.
pub fn spawn_supervised<F, Fut>(name: &'static str, make: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    spawn_supervised_with(name, MIN_BACKOFF, make)
}

/// [`spawn_supervised`] with the first backoff given.
pub(crate) fn spawn_supervised_with<F, Fut>(
    name: &'static str,
    first_backoff: Duration,
    mut make: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = first_backoff;
        loop {
            let started = tokio::time::Instant::now();
            if catch_panic(name, make()).await.is_ok() {
                return;
            }
            if started.elapsed() > MAX_BACKOFF {
                backoff = first_backoff;
            }
            tracing::warn!(
                task = name,
                restart_in_ms = backoff.as_millis() as u64,
                "restarting a background task after its panic"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_restarted_until_it_returns() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let handle = spawn_supervised_with("test", Duration::from_millis(5), move || {
            let counted = Arc::clone(&counted);
            async move {
                if counted.fetch_add(1, Ordering::SeqCst) < 3 {
                    panic!("run failed on purpose");
                }
            }
        });
        handle.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_panic_becomes_its_message() {
        let caught = catch_panic("test", async { panic!("boom {}", 7) }).await;
        assert_eq!(caught, Err::<(), _>("boom 7".to_string()));
    }
}
