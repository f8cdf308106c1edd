//! Where child processes are started: on a few threads of their own, never on the async
//! workers.
//!
//! Starting a process blocks the calling thread until the child has called `exec` (and a
//! `fork` copies the caller's page tables, a cost that grows with the gateway's memory). A
//! burst of new conversations would otherwise hold every async worker in `spawn` while
//! requests wait. Here the workers only queue a job and await its answer.
//!
//! The threads live as long as the gateway. That matters: `PR_SET_PDEATHSIG` fires when the
//! *thread* that started a child ends, not the process, so a child started from a pooled
//! thread that retires after idling (tokio's blocking pool) would be signalled for nothing.
//!
//! Each job enters the runtime of the task that queued it, so the child's pipes and its
//! reaping belong to that runtime (tests run many runtimes in one process). A job whose
//! caller went away drops its child, which `kill_on_drop` ends and the runtime reaps.
//!
//! Process mechanics only: what to start, with which arguments, is the caller's business.

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Threads that start processes. A thread waits in `posix_spawn` until its child has called
/// `exec`, which on a loaded machine (a burst of new conversations starting hundreds of CLIs)
/// takes tens of milliseconds of mostly waiting for a CPU: with few threads, a burst would be
/// started one child at a time. Waiting threads cost no CPU and a small stack each.
const THREADS: usize = 64;
/// `posix_spawn` gives the child a stack of its own; the thread itself needs little.
const STACK_BYTES: usize = 256 * 1024;

type Job = Box<dyn FnOnce() + Send>;

fn queue() -> Option<&'static Mutex<mpsc::Sender<Job>>> {
    static QUEUE: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = std::sync::Arc::new(Mutex::new(rx));
            for n in 0..THREADS {
                let rx = rx.clone();
                let started = std::thread::Builder::new()
                    .name(format!("ccgw-spawn-{n}"))
                    .stack_size(STACK_BYTES)
                    .spawn(move || loop {
                        // One job at a time per thread; the lock is held only to take it.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    });
                if let Err(e) = started {
                    tracing::warn!(error = %e, "could not start a spawner thread");
                }
            }
            Some(Mutex::new(tx))
        })
        .as_ref()
}

/// Run `prepare` and then start `cmd` on a spawner thread, inside the caller's runtime.
/// `prepare` is for the blocking set-up the child needs first (its directories).
pub async fn spawn(
    mut cmd: Command,
    prepare: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> std::io::Result<Child> {
    let handle = Handle::current();
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _runtime = handle.enter();
        let _ = tx.send(prepare().and_then(|()| cmd.spawn()));
    });
    // Without a spawner thread (the system refused one), start it here rather than fail.
    let queued = match queue() {
        Some(q) => match q.lock() {
            Ok(q) => q.send(job).map_err(|e| e.0),
            Err(_) => Err(job),
        },
        None => Err(job),
    };
    if let Err(job) = queued {
        job();
    }
    rx.await
        .unwrap_or_else(|_| Err(std::io::Error::other("the spawner thread went away")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_a_child_off_the_worker_and_reaps_it() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 7"]);
        let mut child = spawn(cmd, || Ok(())).await.expect("spawned");
        let status = child.wait().await.expect("waited");
        assert_eq!(status.code(), Some(7));
    }

    #[tokio::test]
    async fn a_failed_preparation_starts_nothing() {
        let cmd = Command::new("sh");
        let err = spawn(cmd, || Err(std::io::Error::other("no room")))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "no room");
    }

    #[test]
    fn each_runtime_gets_its_own_children() {
        // Two runtimes one after the other, as the tests run them: the second one's child
        // must belong to it, not to the first (dropped) one.
        for code in [3, 4] {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let got = rt.block_on(async move {
                let mut cmd = Command::new("sh");
                cmd.args(["-c", &format!("exit {code}")]);
                spawn(cmd, || Ok(())).await.unwrap().wait().await.unwrap()
            });
            assert_eq!(got.code(), Some(code));
        }
    }

    #[tokio::test]
    async fn runs_on_a_spawner_thread() {
        let mut cmd = Command::new("true");
        cmd.kill_on_drop(true);
        let seen = std::sync::Arc::new(Mutex::new(String::new()));
        let s = seen.clone();
        spawn(cmd, move || {
            *s.lock().unwrap() = std::thread::current().name().unwrap_or("").to_string();
            Ok(())
        })
        .await
        .unwrap();
        assert!(seen.lock().unwrap().starts_with("ccgw-spawn-"));
    }
}
