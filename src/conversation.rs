//! Conversations: which CLI session (and live process) serves a request, and the life of one
//! turn from start to clean end.
//!
//! A request's history is looked up by [`history_key`]. A history this gateway produced
//! continues its CLI session, in the live process when there is one, else with `--resume`.
//! An unknown history becomes a new session whose transcript we write first, so the model
//! sees every earlier turn. Only a turn that ends cleanly keeps its session and process for
//! the next request; a failed, interrupted or abandoned turn retires both, because the CLI's
//! history would no longer match what the client holds.
//!
//! Knows nothing about HTTP: adapters hand in a [`TurnRequest`] and read [`Event`]s.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::claude::args::{LaunchSpec, SessionMode};
use crate::claude::control::{ControlHandler, ToolPolicy};
use crate::claude::pool::ProcessPool;
use crate::claude::process::CliProcess;
use crate::claude::wire::Initialize;
use crate::claude::{transcript, ClaudeError, Event, StopReason, TurnSummary};
use crate::config::Config;
use crate::turn::{history_key, Message, Role, StopMatcher, TurnRequest};

/// A conversation between turns. Owned by the registry, or by the one turn running in it.
struct Conversation {
    id: String,
    cli_session_id: String,
    workspace: PathBuf,
    system: Option<String>,
    /// The CLI has a session file for it (so a new process must `--resume`).
    started: bool,
    process: Option<Arc<CliProcess>>,
    /// `--model`/`set_model` and max output tokens in effect in `process`.
    process_model: Option<String>,
    process_max_tokens: Option<u32>,
    last_used: Instant,
}

/// What a started turn gives its adapter.
pub struct TurnHandle {
    pub conversation_id: String,
    /// Events until (and including) one `Done` or `Error`. Dropping it interrupts the turn.
    pub events: mpsc::UnboundedReceiver<Event>,
}

/// The domain service every adapter calls.
pub struct Conversations {
    cfg: Arc<Config>,
    claude_bin: PathBuf,
    cli_version: String,
    pub pool: Arc<ProcessPool>,
    registry: Mutex<HashMap<String, Conversation>>,
}

impl Conversations {
    pub fn new(cfg: Arc<Config>, claude_bin: PathBuf, cli_version: String) -> Self {
        let pool = Arc::new(ProcessPool::new(
            cfg.max_live_processes,
            Duration::from_secs(cfg.queue_timeout_secs),
            Duration::from_secs(cfg.shutdown_grace_secs),
        ));
        Conversations {
            cfg,
            claude_bin,
            cli_version,
            pool,
            registry: Mutex::default(),
        }
    }

    pub fn cli_version(&self) -> &str {
        &self.cli_version
    }

    /// How many conversations can be continued right now.
    pub fn conversation_count(&self) -> usize {
        self.registry().len()
    }

    /// Start a turn. Errors here happen before any output (capacity, spawn, protocol).
    pub async fn start_turn(self: &Arc<Self>, req: TurnRequest) -> Result<TurnHandle, ClaudeError> {
        let key = history_key(req.system.as_deref(), &req.history);
        let found = self.registry().remove(&key);
        let resumed = found.is_some();
        let mut conv = match found {
            Some(c) => c,
            None => self.new_conversation(&req)?,
        };
        let process = match self.acquire_process(&mut conv, &req).await {
            Ok(p) => p,
            Err(e) => {
                if resumed && matches!(e, ClaudeError::AtCapacity { .. }) {
                    // Nothing changed: the conversation stays continuable.
                    self.registry().insert(key, conv);
                } else {
                    self.forget(conv);
                }
                return Err(e);
            }
        };
        let cli_events = match process.start_turn(&Value::Array(req.prompt.clone())).await {
            Ok(rx) => rx,
            Err(e) => {
                self.pool.retire(&process);
                self.forget(conv);
                return Err(e);
            }
        };
        conv.started = true;
        tracing::info!(
            conversation = %conv.id,
            model = %req.model_id,
            continued = resumed,
            pid = process.pid(),
            user = req.client_user.as_deref().unwrap_or(""),
            "turn started"
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let conversation_id = conv.id.clone();
        let this = self.clone();
        tokio::spawn(async move { this.drive(conv, process, req, cli_events, tx).await });
        Ok(TurnHandle {
            conversation_id,
            events: rx,
        })
    }

    /// Background upkeep: stop idle processes past their lifetime, forget old conversations.
    pub fn spawn_reaper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(this) = this.upgrade() else { break };
                this.pool
                    .reap_idle(Duration::from_secs(this.cfg.process_idle_ttl_secs));
                let ttl = Duration::from_secs(this.cfg.conversation_ttl_secs);
                let expired: Vec<Conversation> = {
                    let mut reg = this.registry();
                    let keys: Vec<String> = reg
                        .iter()
                        .filter(|(_, c)| c.last_used.elapsed() >= ttl)
                        .map(|(k, _)| k.clone())
                        .collect();
                    keys.iter().filter_map(|k| reg.remove(k)).collect()
                };
                for c in expired {
                    this.forget(c);
                }
            }
        })
    }

    pub async fn shutdown(&self) {
        self.pool.shutdown_all().await;
    }

    fn new_conversation(&self, req: &TurnRequest) -> Result<Conversation, ClaudeError> {
        let id = uuid::Uuid::new_v4().to_string();
        let workspace = absolute(self.cfg.workspaces_dir().join(&id));
        std::fs::create_dir_all(&workspace).map_err(|e| {
            ClaudeError::protocol(format!("creating workspace {}: {e}", workspace.display()))
        })?;
        let cli_session_id = uuid::Uuid::new_v4().to_string();
        let started = !req.history.is_empty();
        if started {
            transcript::write(
                &absolute(self.cfg.claude_config_dir()),
                &workspace,
                &cli_session_id,
                &req.history,
                &self.cli_version,
            )
            .map_err(|e| ClaudeError::protocol(format!("writing the history transcript: {e}")))?;
        }
        Ok(Conversation {
            id,
            cli_session_id,
            workspace,
            system: req.system.clone(),
            started,
            process: None,
            process_model: None,
            process_max_tokens: None,
            last_used: Instant::now(),
        })
    }

    /// A process for this conversation's next turn: its live one, or a new one.
    async fn acquire_process(
        &self,
        conv: &mut Conversation,
        req: &TurnRequest,
    ) -> Result<Arc<CliProcess>, ClaudeError> {
        if let Some(p) = conv.process.take() {
            if self.pool.claim(&p) {
                // The output cap is an environment variable: only a new process can change it.
                if conv.process_max_tokens == req.max_output_tokens {
                    if conv.process_model != req.cli_model {
                        let model = req.cli_model.as_deref().unwrap_or("default");
                        if let Err(e) = p.set_model(model).await {
                            self.pool.retire(&p);
                            return Err(e);
                        }
                        conv.process_model = req.cli_model.clone();
                    }
                    return Ok(p);
                }
                self.pool.retire(&p);
            }
        }
        let spec = LaunchSpec {
            program: self.claude_bin.clone(),
            cwd: conv.workspace.clone(),
            config_dir: absolute(self.cfg.claude_config_dir()),
            model: req.cli_model.clone(),
            session: if conv.started {
                SessionMode::Resume {
                    id: conv.cli_session_id.clone(),
                    fork: false,
                }
            } else {
                SessionMode::New(conv.cli_session_id.clone())
            },
            builtin_tools: vec![],
            allowed_tools: vec![],
            permission_mode: None,
            max_retries: self.cfg.cli_max_retries,
            max_output_tokens: req.max_output_tokens,
            env: self.cfg.cli_env.clone(),
        };
        let handler = Arc::new(ControlHandler::new(conv.id.clone(), ToolPolicy::default()));
        let p = self.pool.spawn(&spec, handler).await?;
        let init = Initialize {
            system_prompt: conv.system.clone(),
            ..Default::default()
        };
        if let Err(e) = p.initialize(&init).await {
            self.pool.retire(&p);
            return Err(e);
        }
        conv.process_model = req.cli_model.clone();
        conv.process_max_tokens = req.max_output_tokens;
        Ok(p)
    }

    /// Run one turn to its end: forward events, enforce stop sequences and deadlines, notice a
    /// client that went away, and leave the conversation continuable only after a clean end.
    async fn drive(
        self: Arc<Self>,
        mut conv: Conversation,
        process: Arc<CliProcess>,
        req: TurnRequest,
        mut cli: mpsc::UnboundedReceiver<Event>,
        out: mpsc::UnboundedSender<Event>,
    ) {
        let started = Instant::now();
        let pid = process.pid();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.cfg.turn_timeout_secs);
        let idle = Duration::from_secs(self.cfg.idle_timeout_secs);
        let mut stops = StopMatcher::new(req.stop.clone());
        let mut reply = String::new();

        enum End {
            Clean(TurnSummary),
            /// The CLI turn already ended with this error.
            CliError(ClaudeError),
            /// We end the turn early: send this (or nothing, when the client is gone).
            Abort(Option<ClaudeError>),
            Stop(String),
        }

        let end = loop {
            let next = tokio::select! {
                r = tokio::time::timeout(idle, cli.recv()) => r,
                _ = tokio::time::sleep_until(deadline) => break End::Abort(Some(ClaudeError::Timeout {
                    what: format!("the turn took longer than {} s", self.cfg.turn_timeout_secs),
                })),
                _ = out.closed() => break End::Abort(None),
            };
            let ev = match next {
                Err(_) => {
                    break End::Abort(Some(ClaudeError::Timeout {
                        what: format!("no output from the CLI for {} s", idle.as_secs()),
                    }))
                }
                Ok(None) => break End::CliError(ClaudeError::protocol("the CLI's event stream ended")),
                Ok(Some(ev)) => ev,
            };
            match ev {
                // A 401 is retried for minutes by the CLI and never heals by itself.
                Event::Retry {
                    error_status: Some(401),
                    ..
                } => {
                    break End::Abort(Some(ClaudeError::Upstream {
                        status: Some(401),
                        message: "the upstream API rejected the credentials (401)".into(),
                        retry_after: None,
                    }))
                }
                Event::TextDelta { text } => {
                    let shown = stops.push(&text);
                    if !shown.is_empty() {
                        reply.push_str(&shown);
                        let _ = out.send(Event::TextDelta { text: shown });
                    }
                    if let Some(s) = stops.matched() {
                        break End::Stop(s.to_string());
                    }
                }
                Event::Done(summary) => {
                    let rest = stops.finish();
                    if !rest.is_empty() {
                        reply.push_str(&rest);
                        let _ = out.send(Event::TextDelta { text: rest });
                    }
                    break End::Clean(summary);
                }
                Event::Error(e) => break End::CliError(e),
                other => {
                    let _ = out.send(other);
                }
            }
        };

        let outcome = match end {
            End::Clean(summary) => {
                let _ = out.send(Event::Done(summary.clone()));
                self.keep(conv, process, &req, &reply, &summary);
                "completed"
            }
            End::CliError(e) => {
                let label = error_label(&e);
                let _ = out.send(Event::Error(e));
                self.pool.retire(&process);
                self.forget(conv);
                label
            }
            End::Stop(seq) => {
                let summary = interrupt_and_wait(&process, &mut cli).await;
                let _ = out.send(Event::Done(TurnSummary {
                    stop_reason: StopReason::StopSequence(seq),
                    ..summary.unwrap_or_else(|| empty_summary(&conv))
                }));
                conv.process = None;
                self.pool.retire(&process);
                self.forget(conv);
                "stop_sequence"
            }
            End::Abort(err) => {
                let label = match &err {
                    Some(e) => error_label(e),
                    None => "client_disconnected",
                };
                let _ = interrupt_and_wait(&process, &mut cli).await;
                if let Some(e) = err {
                    let _ = out.send(Event::Error(e));
                }
                self.pool.retire(&process);
                self.forget(conv);
                label
            }
        };
        tracing::info!(
            pid,
            outcome,
            duration_ms = started.elapsed().as_millis() as u64,
            "turn ended"
        );
    }

    /// A clean end: the conversation continues from its new history.
    fn keep(
        &self,
        mut conv: Conversation,
        process: Arc<CliProcess>,
        req: &TurnRequest,
        reply: &str,
        summary: &TurnSummary,
    ) {
        if !summary.session_id.is_empty() {
            conv.cli_session_id = summary.session_id.clone();
        }
        let mut history = req.history.clone();
        history.push(Message::user(req.prompt.clone()));
        history.push(Message {
            role: Role::Assistant,
            content: vec![json!({"type": "text", "text": reply})],
        });
        let key = history_key(conv.system.as_deref(), &history);
        self.pool.release(&process);
        conv.process = Some(process);
        conv.last_used = Instant::now();
        self.registry().insert(key, conv);
    }

    /// Drop a conversation for good: its process and its workspace.
    fn forget(&self, conv: Conversation) {
        if let Some(p) = &conv.process {
            self.pool.retire(p);
        }
        let dir = conv.workspace;
        tokio::spawn(async move {
            let _ = tokio::fs::remove_dir_all(&dir).await;
        });
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<String, Conversation>> {
        // Single-step map operations only, so a poisoned lock still holds a consistent map.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Interrupt the CLI's turn and wait briefly for it to end; returns its summary if it came.
async fn interrupt_and_wait(
    process: &CliProcess,
    cli: &mut mpsc::UnboundedReceiver<Event>,
) -> Option<TurnSummary> {
    if let Err(e) = process.interrupt().await {
        tracing::debug!(pid = process.pid(), error = %e, "interrupt failed");
        return None;
    }
    let wait = async {
        while let Some(ev) = cli.recv().await {
            match ev {
                Event::Done(s) => return Some(s),
                Event::Error(_) => return None,
                _ => {}
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(5), wait).await.ok().flatten()
}

fn empty_summary(conv: &Conversation) -> TurnSummary {
    TurnSummary {
        stop_reason: StopReason::Interrupted,
        usage: Default::default(),
        cost_usd: None,
        duration_ms: None,
        num_turns: None,
        session_id: conv.cli_session_id.clone(),
        result_text: String::new(),
    }
}

fn error_label(e: &ClaudeError) -> &'static str {
    match e {
        ClaudeError::Spawn { .. } => "spawn_failed",
        ClaudeError::Upstream { .. } => "upstream_error",
        ClaudeError::Cli { .. } => "cli_error",
        ClaudeError::Exited { .. } => "cli_exited",
        ClaudeError::Timeout { .. } => "timeout",
        ClaudeError::Protocol { .. } => "protocol_error",
        ClaudeError::AtCapacity { .. } => "at_capacity",
    }
}

fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}
