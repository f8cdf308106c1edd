//! Whether the Claude Code CLI can run here: what readiness (`/health/ready`) reports besides
//! draining, so a load balancer or Kubernetes stops sending turns to an instance whose CLI is
//! gone or broken.
//!
//! Owns a cached verdict. A process that starts and answers `initialize` proves the CLI works;
//! one that cannot start, or dies before it answers, makes the verdict suspect, and a check runs:
//! the binary must exist and `--version` must succeed within [`CHECK_TIMEOUT`]. While the verdict
//! is "unusable", a readiness probe re-checks at most every [`RECHECK_EVERY`], so an instance
//! whose CLI is repaired becomes ready again by itself (no traffic reaches an unready instance
//! to prove it).
//!
//! Must not: start conversation processes or block a request on a check (checks run in the
//! background; readers get the last verdict).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long `--version` may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// How often an unusable CLI is checked again while readiness is asked.
pub const RECHECK_EVERY: Duration = Duration::from_secs(5);

pub struct CliHealth {
    bin: PathBuf,
    /// `None` while usable; else why not.
    verdict: Mutex<(Option<String>, Instant)>,
    checking: AtomicBool,
}

impl CliHealth {
    pub fn new(bin: PathBuf) -> Arc<CliHealth> {
        Arc::new(CliHealth {
            bin,
            verdict: Mutex::new((None, Instant::now())),
            checking: AtomicBool::new(false),
        })
    }

    /// `Err(why)` when the CLI is known not to run. Starts a re-check when the last one is old.
    pub fn usable(self: &Arc<Self>) -> Result<(), String> {
        let (verdict, at) = self.lock().clone();
        match verdict {
            None => Ok(()),
            Some(why) => {
                if at.elapsed() >= RECHECK_EVERY {
                    self.check_soon();
                }
                Err(why)
            }
        }
    }

    /// A process started and answered: the CLI works.
    pub fn works(&self) {
        let mut v = self.lock();
        if v.0.take().is_some() {
            tracing::info!(cli = %self.bin.display(), "the Claude Code CLI runs again; ready");
        }
        v.1 = Instant::now();
    }

    /// A process could not start or died before it answered: check the CLI now.
    pub fn suspect(self: &Arc<Self>) {
        self.check_soon();
    }

    fn check_soon(self: &Arc<Self>) {
        if self.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let verdict = check(&this.bin).await.err();
            {
                let mut v = this.lock();
                match (&v.0, &verdict) {
                    (None, Some(why)) => {
                        tracing::error!(cli = %this.bin.display(), reason = %why, "the Claude Code CLI cannot run; not ready")
                    }
                    (Some(_), None) => {
                        tracing::info!(cli = %this.bin.display(), "the Claude Code CLI runs again; ready")
                    }
                    _ => {}
                }
                *v = (verdict, Instant::now());
            }
            this.checking.store(false, Ordering::Release);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<String>, Instant)> {
        self.verdict.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The binary exists and `--version` exits 0 in time.
async fn check(bin: &std::path::Path) -> Result<(), String> {
    if !bin.exists() {
        return Err(format!("{} does not exist", bin.display()));
    }
    let run = tokio::process::Command::new(bin)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(CHECK_TIMEOUT, run).await {
        Err(_) => Err(format!(
            "`{} --version` did not answer in time",
            bin.display()
        )),
        Ok(Err(e)) => Err(format!("{} cannot be started: {e}", bin.display())),
        Ok(Ok(out)) if !out.status.success() => Err(format!(
            "`{} --version` failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Ok(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_or_failing_binary_is_unusable_and_a_working_one_is_not() {
        assert!(check(std::path::Path::new("/no/such/claude"))
            .await
            .is_err());
        assert!(check(std::path::Path::new("/bin/false")).await.is_err());
        assert!(check(std::path::Path::new("/bin/true")).await.is_ok());

        let h = CliHealth::new("/no/such/claude".into());
        assert!(h.usable().is_ok(), "usable until something says otherwise");
        h.suspect();
        for _ in 0..100 {
            if h.usable().is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(h.usable().unwrap_err().contains("does not exist"));
        h.works();
        assert!(h.usable().is_ok());
    }
}
