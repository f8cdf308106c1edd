//! Where child processes are started: on a few threads of their own, never on the async
//! workers.
//!
//! Starting a process blocks the calling thread until the child has called `exec` (and a
//! `fork` copies the caller's page tables, a cost that grows with the gateway's memory). A
//! burst of new conversations would otherwise hold every async worker in `spawn` while
//! requests wait. Here the workers only queue a job and await its answer.
//!
//! A thread is added whenever none is free (up to [`MAX_THREADS`]), and the threads live as
//! long as the gateway. That matters: `PR_SET_PDEATHSIG` fires when the
//! *thread* that started a child ends, not the process, so a child started from a pooled
//! thread that retires after idling (tokio's blocking pool) would be signalled for nothing.
//!
//! Each job enters the runtime of the task that queued it, so the child's pipes and its
//! reaping belong to that runtime (tests run many runtimes in one process). A job whose
//! caller went away drops its child, which `kill_on_drop` ends and the runtime reaps.
//!
//! Process mechanics only: what to start, with which arguments, is the caller's business.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The most threads that start processes. A thread waits in `posix_spawn` until its child has
/// called `exec`, which in a burst (hundreds of CLIs starting at once on a few cores) means
/// waiting for a CPU: a fixed handful of threads would start such a burst a few children at a
/// time, while a fork returns before the child runs. So a thread is added whenever none is
/// free, up to this many (as tokio's blocking pool), and kept: its children's death signal
/// follows it. An idle thread holds only a small stack.
const MAX_THREADS: usize = 512;
/// `posix_spawn` gives the child a stack of its own; the thread itself needs little.
const STACK_BYTES: usize = 256 * 1024;

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    tx: Mutex<mpsc::Sender<Job>>,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    /// Threads started, those of them waiting for a job, and jobs queued but not yet taken.
    threads: AtomicUsize,
    idle: Arc<AtomicUsize>,
    pending: Arc<AtomicUsize>,
}

impl Pool {
    fn get() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            Pool {
                tx: Mutex::new(tx),
                rx: Arc::new(Mutex::new(rx)),
                threads: AtomicUsize::new(0),
                idle: Arc::new(AtomicUsize::new(0)),
                pending: Arc::new(AtomicUsize::new(0)),
            }
        })
    }

    /// Queue `job`, adding a thread when none is free; `Err` gives it back when no thread can
    /// take it (none could be started).
    fn run(&self, job: Job) -> Result<(), Job> {
        // More jobs waiting than threads free to take them: one more thread.
        let pending = self.pending.fetch_add(1, Ordering::SeqCst) + 1;
        if pending > self.idle.load(Ordering::SeqCst) {
            self.add_thread();
        }
        let sent = if self.threads.load(Ordering::SeqCst) == 0 {
            Err(job)
        } else {
            match self.tx.lock() {
                Ok(tx) => tx.send(job).map_err(|e| e.0),
                Err(_) => Err(job),
            }
        };
        if sent.is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
        sent
    }

    fn add_thread(&self) {
        let n = self.threads.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_THREADS {
            self.threads.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let (rx, idle, pending) = (self.rx.clone(), self.idle.clone(), self.pending.clone());
        idle.fetch_add(1, Ordering::SeqCst);
        let started = std::thread::Builder::new()
            .name(format!("ccgw-spawn-{n}"))
            .stack_size(STACK_BYTES)
            .spawn(move || loop {
                // The lock is held only to take a job.
                let job = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                pending.fetch_sub(1, Ordering::SeqCst);
                idle.fetch_sub(1, Ordering::SeqCst);
                job();
                idle.fetch_add(1, Ordering::SeqCst);
            });
        if let Err(e) = started {
            self.idle.fetch_sub(1, Ordering::SeqCst);
            self.threads.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(error = %e, "could not start a spawner thread");
        }
    }
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
    if let Err(job) = Pool::get().run(job) {
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_is_started_in_parallel() {
        // Four starts whose preparation waits for all four to be under way at once: they
        // can only finish if each got a thread of its own.
        let arrived = Arc::new(AtomicUsize::new(0));
        let starts = (0..4).map(|_| {
            let arrived = arrived.clone();
            spawn(Command::new("true"), move || {
                arrived.fetch_add(1, Ordering::SeqCst);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while arrived.load(Ordering::SeqCst) < 4 {
                    if std::time::Instant::now() > deadline {
                        return Err(std::io::Error::other("started one at a time"));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(())
            })
        });
        for started in futures::future::join_all(starts).await {
            started.expect("every start ran beside the others");
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
