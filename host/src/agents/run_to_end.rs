//! [`RunToEnd`]: work that finishes even when whoever awaited it goes away.
//!
//! A request's task may run work that must not stop half-way (a WASM call
//! whose instance would be left inconsistent, an A2A task the server owns).
//! Run where it is awaited, it costs no hand-over to another worker; if the
//! awaiting future is dropped first, the rest of the work is spawned and
//! finishes all the same.

use std::future::Future;
use std::pin::Pin;

/// Boxed work that runs to its end.
pub type Work<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Work run where it is awaited; dropped unfinished, it goes on spawned.
pub struct RunToEnd<T: Send + 'static>(Option<Work<T>>);

impl<T: Send + 'static> RunToEnd<T> {
    pub fn new(work: Work<T>) -> Self {
        RunToEnd(Some(work))
    }

    /// The work's output; `None` when it was run to its end already.
    pub async fn run(&mut self) -> Option<T> {
        let work = self.0.as_mut()?;
        let output = work.await;
        self.0 = None;
        Some(output)
    }
}

impl<T: Send + 'static> Drop for RunToEnd<T> {
    fn drop(&mut self) {
        if let Some(rest) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn dropped_unfinished_it_finishes_spawned() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let mut work = RunToEnd::new(Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
        }));
        let cut = tokio::time::timeout(Duration::from_millis(5), work.run()).await;
        assert!(cut.is_err(), "the awaiting side gave up first");
        drop(work);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(finished.load(Ordering::SeqCst), "the rest ran spawned");
    }

    #[tokio::test]
    async fn run_to_its_end_it_answers_once() {
        let mut work = RunToEnd::new(Box::pin(async { 7 }));
        assert_eq!(work.run().await, Some(7));
        assert_eq!(work.run().await, None);
    }
}
