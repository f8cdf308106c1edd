//! The supervisor between the gateway and each CLI process, so that nothing a CLI started
//! outlives the gateway, not even after `kill -9`.
//!
//! The gateway runs `ccgw supervise --parent <gateway pid> -- <cli argv>` (its own binary, in
//! a hidden mode, before any runtime starts: a few MB). The supervisor asks the kernel to
//! signal it when the gateway dies (`PR_SET_PDEATHSIG`) and to make it the parent of every
//! orphan below it (`PR_SET_CHILD_SUBREAPER`), runs the CLI in its own process group, and
//! passes the CLI's stdin, stdout and stderr straight through. When the CLI exits, or when the
//! gateway is gone (after a grace second that lets the CLI flush its transcript), it kills
//! every process left in the group and every orphan handed to it, then exits with the CLI's
//! status. The CLI itself gets `PR_SET_PDEATHSIG` too, should the supervisor be killed.
//! Because the supervisor asks for its own death signal, the gateway starts it with nothing
//! between fork and exec, that is with `posix_spawn` (see `spawner`), whose cost does not grow
//! with the gateway's memory.
//!
//! Process hygiene only: the CLI's arguments and environment are built elsewhere (`args`).

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The hidden subcommand of the `ccgw` binary.
pub const SUBCOMMAND: &str = "supervise";

/// How long a CLI may go on after the gateway died (its stdin is then closed): enough to
/// write the transcript of a turn that just ended.
const ORPHAN_GRACE: Duration = Duration::from_secs(1);
/// Then SIGTERM, and this long before everything is killed.
const TERM_GRACE: Duration = Duration::from_secs(1);

/// The binary that supervises: this `ccgw`, or the one beside a test binary
/// (`target/debug/deps/…` → `target/debug/ccgw`). `None`: CLIs run unsupervised.
pub fn binary() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().ok()?;
        let dir = exe.parent()?;
        let found = [exe.clone(), dir.join("ccgw"), dir.parent()?.join("ccgw")]
            .into_iter()
            .find(|p| p.file_name() == Some(OsStr::new("ccgw")) && p.is_file());
        if found.is_none() {
            tracing::warn!(
                exe = %exe.display(),
                "no ccgw binary to supervise CLI processes with; a killed gateway may leave \
                 their tools' processes behind"
            );
        }
        found
    })
    .as_deref()
}

/// The supervisor's arguments in front of the CLI's program.
pub fn prefix(program: &Path) -> Vec<OsString> {
    vec![
        SUBCOMMAND.into(),
        "--parent".into(),
        std::process::id().to_string().into(),
        "--".into(),
        program.as_os_str().to_owned(),
    ]
}

/// Run as the supervisor (`args` follow the subcommand); returns the exit code.
pub fn run(args: &[OsString]) -> i32 {
    let Some((parent, argv)) = parse(args) else {
        eprintln!("usage: ccgw {SUBCOMMAND} --parent <pid> -- <program> [args...]");
        return 2;
    };
    // SAFETY: plain syscalls on this (single-threaded) process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
        if libc::getppid() != parent {
            // The gateway died before the line above.
            return 1;
        }
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let waited = Signals::block();
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let unblock = waited.old;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::sigprocmask(libc::SIG_SETMASK, &unblock, std::ptr::null_mut());
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            Ok(())
        });
    }
    let cli = match cmd.spawn() {
        Ok(c) => c.id() as libc::pid_t,
        Err(e) => {
            eprintln!("could not start {}: {e}", Path::new(&argv[0]).display());
            return 127;
        }
    };
    let_go_of_stdio();
    let status = watch(cli, parent, &waited);
    kill_everything_left();
    status
}

fn parse(args: &[OsString]) -> Option<(libc::pid_t, &[OsString])> {
    match args {
        [flag, pid, dashes, argv @ ..]
            if flag == "--parent" && dashes == "--" && !argv.is_empty() =>
        {
            Some((pid.to_str()?.parse().ok()?, argv))
        }
        _ => None,
    }
}

/// The signals the supervisor waits for, blocked so that `sigtimedwait` takes them.
struct Signals {
    set: libc::sigset_t,
    old: libc::sigset_t,
}

impl Signals {
    fn block() -> Signals {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
            Signals { set, old }
        }
    }

    /// The next signal, or `None` after `timeout`.
    fn wait(&self, timeout: Duration) -> Option<libc::c_int> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: the set is initialised; a null info pointer is allowed.
        let sig = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        (sig > 0).then_some(sig)
    }
}

/// The CLI has the pipes now: the supervisor's own copies would keep them open after the CLI
/// is gone. Nor does it hold on to the workspace.
fn let_go_of_stdio() {
    // SAFETY: plain syscalls on this process's own descriptors.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
        libc::chdir(c"/".as_ptr());
    }
}

/// Wait for the CLI to exit (its exit code), forwarding the gateway's signals; if the
/// gateway dies, give the CLI its grace and then end it.
fn watch(cli: libc::pid_t, parent: libc::pid_t, signals: &Signals) -> i32 {
    let mut orphaned_at: Option<Instant> = None;
    let mut termed = false;
    loop {
        match signals.wait(Duration::from_millis(200)) {
            Some(libc::SIGCHLD) | None => {}
            Some(sig) => {
                // SAFETY: getppid and kill only read the process table and send a signal.
                if unsafe { libc::getppid() } == parent {
                    unsafe { libc::kill(cli, sig) };
                }
            }
        }
        if let Some(code) = reap(cli) {
            return code;
        }
        // SAFETY: as above.
        if orphaned_at.is_none() && unsafe { libc::getppid() } != parent {
            orphaned_at = Some(Instant::now());
        }
        if let Some(t) = orphaned_at {
            if !termed && t.elapsed() >= ORPHAN_GRACE {
                // SAFETY: as above.
                unsafe { libc::kill(cli, libc::SIGTERM) };
                termed = true;
            }
            if t.elapsed() >= ORPHAN_GRACE + TERM_GRACE {
                return 128 + libc::SIGKILL;
            }
        }
    }
}

/// Reap every exited child; the CLI's exit code once it has exited.
fn reap(cli: libc::pid_t) -> Option<i32> {
    let mut code = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status it reports.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return code;
        }
        if pid == cli {
            code = Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                1
            });
        }
    }
}

/// Kill every process still in the supervisor's process group (the CLI's shells and what they
/// started) and every orphan reparented to it, until none is left.
///
/// Once the CLI has exited, whatever it left running is an orphan the kernel handed to this
/// subreaper, or below one: so the supervisor's own children are enough to know whether
/// anything is left, and to reach it. Reading them is one small file, where a scan of /proc
/// reads every process's (a thousand supervisors ending at once each scanning thousands of
/// processes cost seconds of CPU). The scan stays for kernels without that file.
fn kill_everything_left() {
    // SAFETY: plain syscalls.
    let (me, group) = unsafe { (libc::getpid(), libc::getpgrp()) };
    for _ in 0..200 {
        let left: Vec<libc::pid_t> = match children_of(me) {
            Some(children) => children,
            None => processes()
                .filter(|p| p.pid != me && (p.pgrp == group || p.ppid == me))
                .map(|p| p.pid)
                .collect(),
        };
        for pid in &left {
            // SAFETY: signalling processes of our own group or our own children.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        let _ = reap(0);
        if left.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Proc {
    pid: libc::pid_t,
    ppid: libc::pid_t,
    pgrp: libc::pid_t,
}

/// Every live process, from `/proc/<pid>/stat` (state, parent and process group).
fn processes() -> impl Iterator<Item = Proc> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            if state == "Z" || state == "X" {
                return None;
            }
            let ppid = fields.next()?.parse().ok()?;
            let pgrp = fields.next()?.parse().ok()?;
            Some(Proc { pid, ppid, pgrp })
        })
}

/// The children of a single-threaded process (a supervisor), from the kernel's list of its
/// main thread's children. `None` where the kernel keeps no such list.
fn children_of(pid: libc::pid_t) -> Option<Vec<libc::pid_t>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    Some(
        text.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
    )
}

/// The CLI's own pid: the first child of the supervisor `leader`.
pub fn child_of(leader: u32) -> Option<u32> {
    let leader = libc::pid_t::try_from(leader).ok()?;
    let first = match children_of(leader) {
        Some(children) => children.into_iter().min(),
        None => processes()
            .filter(|p| p.ppid == leader)
            .map(|p| p.pid)
            .min(),
    };
    first.and_then(|p| u32::try_from(p).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_arguments() {
        let a: Vec<OsString> = ["--parent", "42", "--", "claude", "--verbose"]
            .iter()
            .map(OsString::from)
            .collect();
        let (pid, argv) = parse(&a).unwrap();
        assert_eq!(pid, 42);
        assert_eq!(argv, &a[3..]);
        assert!(parse(&a[..3]).is_none());
        assert!(parse(&[OsString::from("claude")]).is_none());
        let p = prefix(Path::new("/bin/claude"));
        assert_eq!(p[0], "supervise");
        assert_eq!(p.last().unwrap(), "/bin/claude");
    }
}
