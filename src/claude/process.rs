//! One live CLI process: spawn, control requests, turns, interrupt, stop.
//!
//! A reader task owns stdout: it answers control requests (concurrently: the SDK MCP handshake
//! happens while our `initialize` is still waiting), resolves our own control requests, and
//! feeds the current turn's lines through a [`Translator`] into an event channel. The channel
//! is bounded ([`TURN_BUFFER`]): when whoever drives the turn falls behind, the reader stops
//! reading, and back-pressure reaches the CLI through its stdout pipe. A waiter
//! task owns the child and records its exit. The process runs in its own process group, so
//! stopping it also stops any shell the CLI started; dropping the last handle kills the group.
//! It is started through the supervisor (`supervise`), which kills what the CLI left behind
//! even when the gateway itself is killed.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::{mpsc, oneshot, watch};

use super::args::{self, LaunchSpec};
use super::control::ControlHandler;
use super::event::Event;
use super::spawner;
use super::supervise;
use super::translate::Translator;
use super::wire::{self, CliLine, ControlRequestLine, Initialize};
use super::ClaudeError;

const STDERR_TAIL_BYTES: usize = 4096;
/// Events a turn buffers between the CLI's stdout and its driver (and between its driver and
/// the client). A CLI line is at most a few tens of kB, so this bounds a turn's memory.
pub const TURN_BUFFER: usize = 64;
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

type Pending = Mutex<HashMap<String, oneshot::Sender<Result<Value, String>>>>;

struct TurnSink {
    tx: mpsc::Sender<Event>,
    translator: Translator,
}

/// State shared between the handle and the background tasks.
struct Shared {
    /// The process we started: the supervisor (leader of the process group), or the CLI.
    pid: u32,
    /// The CLI's own pid, once known.
    cli_pid: std::sync::OnceLock<u32>,
    supervised: bool,
    label: String,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    pending: Pending,
    turn: Mutex<Option<TurnSink>>,
    exit: watch::Sender<Option<String>>,
    stderr_tail: Mutex<VecDeque<u8>>,
    handler: Arc<ControlHandler>,
    /// Set the moment stdout closes, which is before the exit status is known.
    stdout_closed: AtomicBool,
    /// The process's relay token: revoked when the process exits.
    relay_token: Mutex<Option<crate::relay::RelayToken>>,
    /// The CLI's running total cost (`total_cost_usd`) as of its last result.
    cost_total: Mutex<f64>,
}

/// A handle on one running `claude` process.
pub struct CliProcess {
    /// Gateway-local id (stable, unlike pids).
    pub id: u64,
    /// Its working directory and the session it was started with (new or resumed).
    pub cwd: std::path::PathBuf,
    pub session: super::args::SessionMode,
    shared: Arc<Shared>,
    next_request: AtomicU64,
    closing: AtomicBool,
}

impl CliProcess {
    /// Start the CLI. It prints nothing until its first input, so this returns at once.
    pub async fn spawn(
        spec: &LaunchSpec,
        handler: Arc<ControlHandler>,
    ) -> Result<CliProcess, ClaudeError> {
        let program = spec.program.display().to_string();
        let spawn_failure = |message: String| ClaudeError::Spawn {
            program: program.clone(),
            message,
        };
        let spawn_err = |e: std::io::Error| spawn_failure(e.to_string());
        // Through the supervisor when there is one, so that nothing the CLI starts outlives
        // the gateway (see `supervise`).
        let supervisor = supervise::binary();
        let mut cmd = match supervisor {
            Some(bin) => {
                let mut c = Command::new(bin);
                c.args(supervise::prefix(&spec.program));
                c
            }
            None => Command::new(&spec.program),
        };
        cmd.args(spec.args())
            .current_dir(&spec.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // An allowlist, not the gateway's environment: nothing secret reaches the CLI.
        cmd.env_clear();
        for (k, v) in args::inherited_env(std::env::vars(), &spec.pass_env) {
            cmd.env(k, v);
        }
        for (k, v) in spec.env() {
            cmd.env(k, v);
        }
        // The upstream through the relay, with a token of this process's own.
        let relay_token = match &spec.relay {
            Some(r) => Some(
                r.issue_for(&handler.label(), spec.provider.as_deref())
                    .map_err(|e| spawn_failure(e.to_string()))?,
            ),
            // Providers are reached through the relay only: without one, a provider's process
            // would fall back to the gateway's own upstream.
            None if spec.provider.is_some() => {
                return Err(spawn_failure(
                    "a provider's model needs the credential relay".into(),
                ))
            }
            None => None,
        };
        for (k, v) in relay_token.iter().flat_map(|t| t.cli_env()) {
            cmd.env(k, v);
        }
        // Nothing may outlive the gateway, even after `kill -9`. A supervised CLI gets that
        // from its supervisor, which asks for `PR_SET_PDEATHSIG` itself as its first step
        // (and checks it was not orphaned before). So the supervisor is started with no code
        // between fork and exec, which lets the standard library use `posix_spawn`: no copy of
        // the gateway's page tables, whatever its size. An unsupervised CLI (no ccgw binary
        // to supervise with) asks for the signal between fork and exec, at a fork's cost.
        if supervisor.is_none() {
            // SAFETY: prctl is async-signal-safe and touches no memory of ours.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                    Ok(())
                });
            }
        }
        let dirs = [
            spec.cwd.clone(),
            spec.config_dir.clone(),
            args::cli_home(&spec.config_dir),
        ];
        let prepare = move || dirs.iter().try_for_each(std::fs::create_dir_all);
        let mut child = spawner::spawn(cmd, prepare).await.map_err(spawn_err)?;
        let pid = child.id().unwrap_or(0);
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => return Err(ClaudeError::protocol("child pipes missing")),
            };
        let (exit_tx, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            pid,
            cli_pid: std::sync::OnceLock::new(),
            supervised: supervisor.is_some(),
            label: handler.label(),
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            pending: Mutex::default(),
            turn: Mutex::default(),
            exit: exit_tx,
            stderr_tail: Mutex::default(),
            handler,
            stdout_closed: AtomicBool::new(false),
            relay_token: Mutex::new(relay_token),
            cost_total: Mutex::new(0.0),
        });

        // Waiter: owns the child, reaps it, publishes how it ended.
        let s = shared.clone();
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(st) => st.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            tracing::debug!(pid = s.pid, conversation = %s.label, %status, "claude process exited");
            // Its token dies with it.
            if let Ok(mut t) = s.relay_token.lock() {
                t.take();
            }
            s.exit.send_replace(Some(status));
        });
        tokio::spawn(read_stderr(shared.clone(), stderr));
        tokio::spawn(read_stdout(shared.clone(), stdout));

        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(id, pid, conversation = %shared.label, "spawned claude process");
        Ok(CliProcess {
            id,
            cwd: spec.cwd.clone(),
            session: spec.session.clone(),
            shared,
            next_request: AtomicU64::new(1),
            closing: AtomicBool::new(false),
        })
    }

    /// The CLI's pid (below its supervisor, when it has one).
    pub fn pid(&self) -> u32 {
        if !self.shared.supervised {
            return self.shared.pid;
        }
        if let Some(pid) = self.shared.cli_pid.get() {
            return *pid;
        }
        match supervise::child_of(self.shared.pid) {
            Some(pid) => *self.shared.cli_pid.get_or_init(|| pid),
            None => self.shared.pid,
        }
    }

    pub fn handler(&self) -> &Arc<ControlHandler> {
        &self.shared.handler
    }

    /// Whether the process can take a turn. Asks the OS too: a process that was just killed
    /// is a zombie before its pipes and exit status reach us.
    pub fn is_alive(&self) -> bool {
        self.shared.exit.borrow().is_none()
            && !self.closing.load(Ordering::Relaxed)
            && !self.shared.stdout_closed.load(Ordering::Relaxed)
            && os_alive(self.shared.pid)
            && os_alive(self.pid())
    }

    pub fn has_exited(&self) -> bool {
        self.shared.exit.borrow().is_some()
    }

    /// Wait, at most `limit`, until the process has exited.
    pub async fn wait_exit(&self, limit: Duration) {
        let mut rx = self.shared.exit.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
    }

    pub fn is_busy(&self) -> bool {
        self.shared.turn.lock().map(|t| t.is_some()).unwrap_or(true)
    }

    /// Send a control request and wait for its answer. Dropped while waiting, it forgets the
    /// request (the answer, if one comes, is ignored).
    pub async fn control(&self, request: Value, timeout: Duration) -> Result<Value, ClaudeError> {
        let id = format!("ccgw_{}", self.next_request.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.shared.pending.lock() {
            p.insert(id.clone(), tx);
        }
        let _pending = scopeguard::guard(id.clone(), |id| self.forget_request(&id));
        let subtype = request["subtype"].as_str().unwrap_or("?").to_string();
        self.write_line(&wire::control_request_line(&id, &request))
            .await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(msg))) => Err(ClaudeError::protocol(format!("{subtype} refused: {msg}"))),
            Ok(Err(_)) => Err(self.exited_error().await),
            Err(_) => Err(ClaudeError::Timeout {
                what: format!("control request {subtype}"),
            }),
        }
    }

    pub async fn initialize(&self, init: &Initialize) -> Result<Value, ClaudeError> {
        self.control(init.to_request(), CONTROL_TIMEOUT).await
    }

    pub async fn set_model(&self, model: &str) -> Result<(), ClaudeError> {
        self.control(
            json!({"subtype": "set_model", "model": model}),
            CONTROL_TIMEOUT,
        )
        .await
        .map(|_| ())
    }

    /// Change environment settings of a running CLI (`apply_flag_settings`); an empty value
    /// restores the default.
    pub async fn set_env(&self, env: &[(&str, String)]) -> Result<(), ClaudeError> {
        let env: serde_json::Map<String, Value> =
            env.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        self.control(
            json!({"subtype": "apply_flag_settings", "settings": {"env": env}}),
            CONTROL_TIMEOUT,
        )
        .await
        .map(|_| ())
    }

    /// `Some(0)` turns thinking off, `None` restores the model's default.
    pub async fn set_max_thinking_tokens(&self, n: Option<u32>) -> Result<(), ClaudeError> {
        self.control(
            json!({"subtype": "set_max_thinking_tokens", "max_thinking_tokens": n}),
            CONTROL_TIMEOUT,
        )
        .await
        .map(|_| ())
    }

    /// Ask the CLI to stop the current turn. The turn then ends with `StopReason::Interrupted`.
    pub async fn interrupt(&self) -> Result<(), ClaudeError> {
        if let Ok(mut t) = self.shared.turn.lock() {
            if let Some(sink) = t.as_mut() {
                sink.translator.mark_interrupted();
            }
        }
        self.control(json!({"subtype": "interrupt"}), Duration::from_secs(5))
            .await
            .map(|_| ())
    }

    /// Start a turn; events arrive on the returned channel, ending with `Done` or `Error`.
    /// The user message gets `uuid` in the CLI's transcript.
    pub async fn start_turn(
        &self,
        content: &Value,
        uuid: &str,
    ) -> Result<mpsc::Receiver<Event>, ClaudeError> {
        self.start_turn_line(&wire::user_line(content, uuid)).await
    }

    /// Add an earlier user message to the history without asking the model.
    pub async fn replay_user(&self, content: &Value) -> Result<(), ClaudeError> {
        let mut rx = self
            .start_turn_line(&wire::history_user_line(content))
            .await?;
        let wait = async {
            while let Some(ev) = rx.recv().await {
                match ev {
                    Event::Done(_) => return Ok(()),
                    Event::Error(e) => return Err(e),
                    _ => {}
                }
            }
            Err(ClaudeError::protocol(
                "the CLI stopped while replaying history",
            ))
        };
        tokio::time::timeout(CONTROL_TIMEOUT, wait)
            .await
            .map_err(|_| ClaudeError::Timeout {
                what: "replaying history".into(),
            })?
    }

    /// Add an earlier assistant message to the history (the CLI reads it at once).
    pub async fn replay_assistant(&self, content: &Value) -> Result<(), ClaudeError> {
        let id = format!("msg_replay_{}", uuid::Uuid::new_v4().simple());
        self.write_line(&wire::history_assistant_line(&id, content))
            .await
    }

    async fn start_turn_line(&self, line: &str) -> Result<mpsc::Receiver<Event>, ClaudeError> {
        let (tx, rx) = mpsc::channel(TURN_BUFFER);
        {
            let mut t = self
                .shared
                .turn
                .lock()
                .map_err(|_| ClaudeError::protocol("turn state poisoned"))?;
            if t.is_some() {
                return Err(ClaudeError::protocol(
                    "a turn is already running in this process",
                ));
            }
            *t = Some(TurnSink {
                tx,
                translator: Translator::after_cost(
                    self.shared.cost_total.lock().map(|c| *c).unwrap_or(0.0),
                ),
            });
        }
        if let Err(e) = self.write_line(line).await {
            if let Ok(mut t) = self.shared.turn.lock() {
                t.take();
            }
            return Err(e);
        }
        Ok(rx)
    }

    /// Stop the process: close stdin (the CLI finishes and flushes its transcript), then
    /// SIGTERM and SIGKILL to its whole process group if it does not go in time.
    pub async fn shutdown(&self, grace: Duration) {
        self.closing.store(true, Ordering::Relaxed);
        self.shared.stdin.lock().await.take();
        let mut rx = self.shared.exit.subscribe();
        if tokio::time::timeout(grace, rx.wait_for(Option::is_some))
            .await
            .is_err()
        {
            self.signal_group(libc::SIGTERM);
            if tokio::time::timeout(Duration::from_secs(2), rx.wait_for(Option::is_some))
                .await
                .is_err()
            {
                self.signal_group(libc::SIGKILL);
                let _ = tokio::time::timeout(Duration::from_secs(2), rx.wait_for(Option::is_some))
                    .await;
            }
        }
        // Shells the CLI started may outlive it in its group.
        self.signal_group(libc::SIGKILL);
    }

    fn signal_group(&self, sig: libc::c_int) {
        kill_group(self.shared.pid, sig);
    }

    fn forget_request(&self, id: &str) {
        if let Ok(mut p) = self.shared.pending.lock() {
            p.remove(id);
        }
    }

    async fn write_line(&self, line: &str) -> Result<(), ClaudeError> {
        write_line(&self.shared, line).await
    }

    async fn exited_error(&self) -> ClaudeError {
        let mut rx = self.shared.exit.subscribe();
        let status = tokio::time::timeout(Duration::from_secs(2), rx.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|s| s.clone()))
            .unwrap_or_else(|| "still running".into());
        exited(&self.shared, status)
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        if !self.has_exited() {
            kill_group(self.shared.pid, libc::SIGKILL);
        }
    }
}

/// Running (not a zombie), per `/proc/<pid>/stat`.
fn os_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

fn kill_group(pid: u32, sig: libc::c_int) {
    if let Ok(pgid) = libc::pid_t::try_from(pid) {
        if pgid > 0 {
            // SAFETY: killpg only sends a signal; ESRCH (group gone) is expected and ignored.
            unsafe {
                libc::killpg(pgid, sig);
            }
        }
    }
}

fn exited(shared: &Shared, status: String) -> ClaudeError {
    let stderr = shared
        .stderr_tail
        .lock()
        .map(|t| {
            String::from_utf8_lossy(&t.iter().copied().collect::<Vec<_>>())
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    ClaudeError::Exited { status, stderr }
}

async fn write_line(shared: &Shared, line: &str) -> Result<(), ClaudeError> {
    let mut guard = shared.stdin.lock().await;
    let stdin = guard
        .as_mut()
        .ok_or_else(|| ClaudeError::protocol("stdin is closed"))?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    stdin
        .write_all(&buf)
        .await
        .map_err(|e| ClaudeError::protocol(format!("writing to the CLI failed: {e}")))?;
    stdin
        .flush()
        .await
        .map_err(|e| ClaudeError::protocol(format!("writing to the CLI failed: {e}")))
}

async fn read_stderr(shared: Arc<Shared>, mut stderr: tokio::process::ChildStderr) {
    let mut buf = [0u8; 2048];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tracing::debug!(pid = shared.pid, stderr = %String::from_utf8_lossy(&buf[..n]).trim_end(), "claude stderr");
        if let Ok(mut tail) = shared.stderr_tail.lock() {
            tail.extend(&buf[..n]);
            while tail.len() > STDERR_TAIL_BYTES {
                tail.pop_front();
            }
        }
    }
}

/// The stdout line buffer a process keeps between lines; a longer line's buffer is let go.
const MAX_KEPT_LINE_BUFFER: usize = 1 << 20;

async fn read_stdout(shared: Arc<Shared>, stdout: tokio::process::ChildStdout) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if !buf.ends_with(b"\n") {
            // The process was stopped in the middle of a line: nothing to read in it.
            tracing::debug!(
                pid = shared.pid,
                bytes = buf.len(),
                "partial last line of a stopped CLI"
            );
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match wire::parse_line(line) {
            Ok(parsed) => dispatch(&shared, parsed).await,
            Err(e) => {
                tracing::warn!(pid = shared.pid, error = %e, line = %truncate(line, 200), "unparseable CLI output line skipped")
            }
        }
        // A huge line (a long answer's closing message and result repeat the whole text) must
        // not keep its buffer for the life of the process.
        if buf.capacity() > MAX_KEPT_LINE_BUFFER {
            buf = Vec::new();
        }
    }
    // stdout closed: the process is ending. Fail whatever still waits on it.
    shared.stdout_closed.store(true, Ordering::Relaxed);
    let mut rx = shared.exit.subscribe();
    let status = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(Option::is_some))
        .await
        .ok()
        .and_then(|r| r.ok().and_then(|s| s.clone()))
        .unwrap_or_else(|| "stdout closed".into());
    if let Ok(mut p) = shared.pending.lock() {
        p.clear();
    }
    let sink = shared.turn.lock().ok().and_then(|mut t| t.take());
    if let Some(sink) = sink {
        let _ = sink.tx.send(Event::Error(exited(&shared, status))).await;
    }
}

/// Handle one stdout line. A turn's events are sent after the turn's lock is let go, and a
/// full channel makes this wait (that is the back-pressure); a consumer that went away makes
/// the send fail at once, and its events are dropped (the turn's owner interrupts it).
async fn dispatch(shared: &Arc<Shared>, line: CliLine) {
    match line {
        CliLine::ControlResponse(r) => {
            let waiter = shared
                .pending
                .lock()
                .ok()
                .and_then(|mut p| p.remove(&r.request_id));
            if let Some(tx) = waiter {
                let outcome = if r.subtype == "success" {
                    Ok(r.response.unwrap_or(Value::Null))
                } else {
                    Err(r.error.unwrap_or_else(|| "unknown error".into()))
                };
                let _ = tx.send(outcome);
            }
        }
        CliLine::ControlRequest(req) => {
            let mut announce = Vec::new();
            if shared.handler.will_ask(&req) {
                // Whoever drives the turn learns of the question, and can answer it.
                let r = &req.request;
                announce.push(Event::PermissionRequest {
                    request_id: req.request_id.clone(),
                    tool_name: r["tool_name"].as_str().unwrap_or_default().to_string(),
                    input: r.get("input").cloned().unwrap_or(Value::Null),
                    tool_use_id: r["tool_use_id"].as_str().map(String::from),
                });
            }
            // A hook call is routed here, before anything waits, so what it tells the
            // watchers (a `hook_request` to answer) is in the turn's stream first.
            let mut hook =
                (req.subtype() == "hook_callback").then(|| shared.handler.hook_step(&req));
            if let Some(h) = hook.as_mut() {
                announce.append(&mut h.announce);
            }
            if !announce.is_empty() {
                let tx = shared
                    .turn
                    .lock()
                    .ok()
                    .and_then(|t| t.as_ref().map(|sink| sink.tx.clone()));
                if let Some(tx) = tx {
                    for ev in announce {
                        let _ = tx.send(ev).await;
                    }
                }
            }
            // A hook nobody waits on (no subscription, or the workspace check's refusal) is
            // answered here at once: every turn makes such calls, and a task hop per call
            // is latency the CLI waits for.
            if let Some(h) = hook.as_mut() {
                if let Some(out) = (&mut h.answer).now_or_never() {
                    answer_with(shared, &req.request_id, Ok(out)).await;
                    return;
                }
            }
            let shared = shared.clone();
            tokio::spawn(async move {
                match hook {
                    Some(h) => {
                        let out = h.answer.await;
                        answer_with(&shared, &req.request_id, Ok(out)).await;
                    }
                    None => answer_control_request(&shared, req).await,
                }
            });
        }
        CliLine::ControlCancel { request_id } => {
            tracing::debug!(
                pid = shared.pid,
                request_id,
                "CLI withdrew a control request"
            );
            shared.handler.cancel(&request_id);
        }
        other => {
            let (tx, events) = {
                let Ok(mut turn) = shared.turn.lock() else {
                    return;
                };
                let Some(sink) = turn.as_mut() else {
                    tracing::debug!(pid = shared.pid, "CLI output outside a turn ignored");
                    return;
                };
                let mut events = sink.translator.on_line(&other);
                if let Some(total) = sink.translator.process_cost() {
                    if let Ok(mut c) = shared.cost_total.lock() {
                        *c = total;
                    }
                }
                let tx = sink.tx.clone();
                if let Some(end) = events.iter().position(Event::is_terminal) {
                    events.truncate(end + 1);
                    turn.take();
                }
                (tx, events)
            };
            for ev in events {
                if tx.send(ev).await.is_err() {
                    break;
                }
            }
        }
    }
}

async fn answer_control_request(shared: &Shared, req: ControlRequestLine) {
    let answer = shared.handler.handle(&req).await;
    answer_with(shared, &req.request_id, answer).await;
}

async fn answer_with(shared: &Shared, request_id: &str, answer: Result<Value, String>) {
    let line = match answer {
        Ok(resp) => wire::control_success_line(request_id, &resp),
        Err(msg) => wire::control_error_line(request_id, &msg),
    };
    if let Err(e) = write_line(shared, &line).await {
        tracing::debug!(pid = shared.pid, error = %e, "could not answer a control request");
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
