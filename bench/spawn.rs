//! What starting a CLI process costs the gateway, and whether that grows with the gateway's
//! memory (see bench/RESULTS.md).
//!
//! Two ways of starting the same supervised fake CLI, measured in one run:
//! - `CliProcess::spawn`, as the gateway does now: `posix_spawn` on a spawner thread;
//! - the former way: a `fork` with a `pre_exec` hook (`PR_SET_PDEATHSIG`), on the async
//!   worker itself.
//!
//! Each runs `--count` starts one after another on a current-thread runtime while a ticker task
//! on the same runtime wakes every millisecond; the ticker's worst lateness is how long the
//! worker was stalled. This is repeated with the process's heap grown to each `--heap-mib`
//! (every page touched), since a fork copies the page tables.
//!
//! usage: cargo run --release --example spawn -- [--count 200] [--heap-mib 0,2048]
//! (needs `target/release/ccgw` and `target/release/ccgw-fake-claude`: `cargo build --release --bins`)

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccgw::claude::args::{LaunchSpec, SessionMode};
use ccgw::claude::control::{ControlHandler, ToolPolicy};
use ccgw::claude::process::CliProcess;

fn main() {
    let mut count = 200usize;
    let mut heaps = vec![0usize, 2048];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--count" => count = args.next().and_then(|v| v.parse().ok()).expect("--count N"),
            "--heap-mib" => {
                heaps = args
                    .next()
                    .expect("--heap-mib A,B")
                    .split(',')
                    .map(|v| v.parse().expect("a number of MiB"))
                    .collect()
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let release = std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(|d| d.parent())
        .expect("target/release")
        .to_path_buf();
    let fake = release.join("ccgw-fake-claude");
    let ccgw_bin = release.join("ccgw");
    assert!(
        fake.is_file() && ccgw_bin.is_file(),
        "build with `cargo build --release --bins` first"
    );
    let work = tempfile::tempdir().expect("tempdir");

    println!(
        "| heap | way | start p50 | start p99 | worker stalled, worst | worker stalled, total |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut ballast: Vec<Vec<u8>> = Vec::new();
    for heap in heaps {
        // Grow the heap to `heap` MiB, touching every page so it is really mapped.
        let have: usize = ballast.iter().map(|b| b.len() >> 20).sum();
        if heap > have {
            let mut b = vec![0u8; (heap - have) << 20];
            for i in (0..b.len()).step_by(4096) {
                b[i] = 1;
            }
            ballast.push(b);
        }
        for way in [Way::Spawner, Way::ForkOnWorker] {
            let r = measure(way, count, &fake, &ccgw_bin, work.path().to_path_buf());
            println!(
                "| {heap} MiB | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} ms |",
                way.name(),
                r.p50_ms,
                r.p99_ms,
                r.worst_stall_ms,
                r.total_stall_ms
            );
        }
    }
    drop(ballast);
}

#[derive(Clone, Copy)]
enum Way {
    Spawner,
    ForkOnWorker,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Spawner => "posix_spawn on a spawner thread (now)",
            Way::ForkOnWorker => "fork + pre_exec on the worker (before)",
        }
    }
}

struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    worst_stall_ms: f64,
    total_stall_ms: f64,
}

fn spec(fake: &std::path::Path, cwd: PathBuf, n: usize) -> LaunchSpec {
    LaunchSpec::bare(
        fake.to_path_buf(),
        cwd.join(format!("w{n}")),
        cwd.join("config"),
        SessionMode::New(uuid::Uuid::new_v4().to_string()),
    )
}

fn measure(
    way: Way,
    count: usize,
    fake: &std::path::Path,
    ccgw_bin: &std::path::Path,
    dir: PathBuf,
) -> Figures {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let worst_us = Arc::new(AtomicU64::new(0));
        let total_us = Arc::new(AtomicU64::new(0));
        let ticker = {
            let (stop, worst_us, total_us) = (stop.clone(), worst_us.clone(), total_us.clone());
            tokio::spawn(async move {
                let tick = Duration::from_millis(1);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    tokio::time::sleep(tick).await;
                    // Lateness beyond the timer's own 1 ms granularity.
                    let late = t.elapsed().saturating_sub(tick * 2).as_micros() as u64;
                    worst_us.fetch_max(late, Ordering::Relaxed);
                    total_us.fetch_add(late, Ordering::Relaxed);
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut times = Vec::with_capacity(count);
        let mut live = Vec::new();
        for n in 0..count {
            let spec = spec(fake, dir.clone(), n);
            let t = Instant::now();
            match way {
                Way::Spawner => {
                    let handler = Arc::new(ControlHandler::new("bench", ToolPolicy::default()));
                    let p = CliProcess::spawn(&spec, handler).await.expect("spawn");
                    times.push(t.elapsed());
                    live.push(Live::Cli(p));
                }
                Way::ForkOnWorker => {
                    for d in [&spec.cwd, &spec.config_dir] {
                        std::fs::create_dir_all(d).expect("dir");
                    }
                    let mut cmd = tokio::process::Command::new(ccgw_bin);
                    cmd.args(ccgw::claude::supervise::prefix(&spec.program))
                        .args(spec.args())
                        .current_dir(&spec.cwd)
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .process_group(0)
                        .kill_on_drop(true);
                    // SAFETY: prctl is async-signal-safe.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
                            Ok(())
                        });
                    }
                    let child = cmd.spawn().expect("spawn");
                    times.push(t.elapsed());
                    live.push(Live::Child(child));
                }
            }
            // Let the ticker run between starts, as other requests would.
            tokio::task::yield_now().await;
        }
        stop.store(true, Ordering::Relaxed);
        let _ = ticker.await;
        for l in live {
            match l {
                Live::Cli(p) => p.shutdown(Duration::from_millis(200)).await,
                Live::Child(mut c) => {
                    let _ = c.kill().await;
                }
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Figures {
            p50_ms: ms(times[times.len() / 2]),
            p99_ms: ms(times[(times.len() * 99 / 100).min(times.len() - 1)]),
            worst_stall_ms: worst_us.load(Ordering::Relaxed) as f64 / 1000.0,
            total_stall_ms: total_us.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    })
}

enum Live {
    Cli(CliProcess),
    Child(tokio::process::Child),
}
