//! Time a request spends waiting on the CLI, so that the gateway's own overhead can be told
//! apart from the model's time (see `http::metrics`). A task-local cell: the adapter opens one
//! per request, the domain marks every await on the CLI's answers, and the task that drives a
//! turn carries the same cell.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Nanoseconds one request spent waiting on the CLI. Cheap to clone; shared by the adapter,
/// the domain call and the task that drives the turn.
#[derive(Debug, Clone, Default)]
pub struct CliWait(Arc<AtomicU64>);

impl CliWait {
    pub fn add(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

tokio::task_local! {
    static CLI_WAIT: CliWait;
}

/// Run `f` with `wait` as the cell that [`waiting_on_cli`] and [`add_cli_wait`] add to.
pub async fn with_cli_wait<F: Future>(wait: CliWait, f: F) -> F::Output {
    CLI_WAIT.scope(wait, f).await
}

/// The current request's cell; a fresh one outside [`with_cli_wait`].
pub fn current_cli_wait() -> CliWait {
    CLI_WAIT.try_with(CliWait::clone).unwrap_or_default()
}

/// Count `d` as time spent waiting on the CLI (no-op outside [`with_cli_wait`]).
pub fn add_cli_wait(d: Duration) {
    let _ = CLI_WAIT.try_with(|w| w.add(d));
}

/// Await `f`, counting its time as time spent waiting on the CLI.
pub async fn waiting_on_cli<F: Future>(f: F) -> F::Output {
    let started = Instant::now();
    let out = f.await;
    add_cli_wait(started.elapsed());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cli_wait_accumulates_inside_its_scope_only() {
        let cell = CliWait::default();
        add_cli_wait(Duration::from_secs(5)); // outside any scope: ignored
        with_cli_wait(cell.clone(), async {
            add_cli_wait(Duration::from_millis(3));
            waiting_on_cli(tokio::time::sleep(Duration::from_millis(20))).await;
            // A task spawned with the same cell adds to it too.
            let inner = current_cli_wait();
            tokio::spawn(with_cli_wait(inner, async {
                add_cli_wait(Duration::from_millis(2))
            }))
            .await
            .unwrap();
        })
        .await;
        let cli = cell.get();
        assert!(cli >= Duration::from_millis(25), "{cli:?}");
        assert!(cli < Duration::from_secs(1), "{cli:?}");
    }
}
