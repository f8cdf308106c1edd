//! Store writes off the request path, run one after another in the order they were made:
//! later records refer to earlier ones (a tool call's outcome to its conversation), so they
//! must not race.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

#[derive(Clone)]
pub(crate) struct WriteQueue {
    tx: mpsc::UnboundedSender<BoxFuture<'static, ()>>,
}

impl WriteQueue {
    /// Start the task that runs the writes (it ends when the queue is dropped).
    pub(crate) fn start() -> Self {
        let (tx, mut queued) = mpsc::unbounded_channel::<BoxFuture<'static, ()>>();
        tokio::spawn(async move {
            while let Some(write) = queued.recv().await {
                write.await;
            }
        });
        WriteQueue { tx }
    }

    /// Queue a write behind every earlier one.
    pub(crate) fn push(&self, w: impl Future<Output = ()> + Send + 'static) {
        let _ = self.tx.send(Box::pin(w));
    }

    /// Wait (up to 10 s) until every write queued so far is done.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.push(async move {
            let _ = tx.send(());
        });
        let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn writes_run_in_order_and_flush_waits_for_them() {
        let q = WriteQueue::start();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..5 {
            let seen = seen.clone();
            q.push(async move {
                // The earlier write sleeps longer; order must still hold.
                tokio::time::sleep(Duration::from_millis(5 * (5 - i))).await;
                seen.lock().unwrap().push(i);
            });
        }
        q.flush().await;
        assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }
}
