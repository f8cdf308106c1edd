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
//! Client tools pause a turn: when a model step ends calling them, the HTTP response ends with
//! those calls while the CLI turn waits, in its process, for the results. The follow-up request
//! that carries them resumes the same CLI turn.
//!
//! Knows nothing about HTTP: adapters hand in a [`TurnRequest`] and read [`Event`]s.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::claude::args::{LaunchSpec, SessionMode};
use crate::claude::control::{ControlHandler, ToolPolicy};
use crate::claude::pool::ProcessPool;
use crate::claude::process::CliProcess;
use crate::claude::tools::{self, ClientToolServer, ToolOutcome};
use crate::claude::wire::Initialize;
use crate::claude::{transcript, ClaudeError, Event, StopReason, TurnSummary, Usage};
use crate::config::Config;
use crate::domain::cli_wait::waiting_on_cli;
use crate::domain::turn::{
    history_key, split_for_transcript, tool_result_text, Message, Role, StopMatcher, TurnRequest,
};
use crate::store::{self, Store, ToolCallRecord, UsageRecord};

/// The domain's error: a CLI failure, or a request the domain cannot accept.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error(transparent)]
    Claude(#[from] ClaudeError),
    #[error("{message}")]
    Invalid { param: String, message: String },
    #[error("{0}")]
    NotFound(String),
    /// The session is busy with another turn.
    #[error("{0}")]
    Busy(String),
}

impl TurnError {
    pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        TurnError::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// A CLI turn paused on client tool calls.
pub(crate) struct Awaiting {
    cli: mpsc::UnboundedReceiver<Event>,
    /// Tool-use ids the client must answer.
    pending: Vec<String>,
    /// Their tool names and argument sizes, for the records.
    calls: HashMap<String, (String, usize)>,
    since: Instant,
    /// Usage already reported to the client for this CLI turn.
    reported: Usage,
}

/// A conversation between turns. Owned by the registry, or by the one turn running in it.
pub(crate) struct Conversation {
    pub(crate) id: String,
    pub(crate) cli_session_id: String,
    pub(crate) workspace: PathBuf,
    /// Made by the gateway (removed with the conversation), not a directory the user named.
    pub(crate) workspace_is_temp: bool,
    pub(crate) system: Option<String>,
    /// The CLI has a session file for it (so a new process must `--resume`).
    pub(crate) started: bool,
    /// A native session's id: the conversation lives in the session table, not the registry.
    pub(crate) native: Option<String>,
    /// Watchers of a native session.
    pub(crate) bus: Option<tokio::sync::broadcast::Sender<Event>>,
    /// It has a record in the store (so usage and tool calls can refer to it).
    pub(crate) persisted: bool,
    /// Which API it came from (`store::source`).
    pub(crate) source: String,
    pub(crate) model_id: String,
    pub(crate) process: Option<Arc<CliProcess>>,
    /// What the live process was launched and initialized with, and its current settings.
    process_launch: String,
    process_runtime: Runtime,
    tool_server: Option<Arc<ClientToolServer>>,
    pub(crate) awaiting: Option<Awaiting>,
    /// History to replay over stdin into the next new process (see `split_for_transcript`).
    replay_tail: Vec<Message>,
    /// Whether `--resume` gives the model the whole conversation. Not after a stdin replay:
    /// the CLI does not write replayed lines to its transcript.
    resumable: bool,
    last_used: Instant,
}

/// What a started turn gives its adapter.
pub struct TurnHandle {
    pub conversation_id: String,
    /// Events until (and including) one `Done` or `Error`. Dropping it interrupts the turn.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// Time this request has waited on the CLI; complete once `Done` arrives (see `metrics`).
    pub cli_wait: crate::domain::cli_wait::CliWait,
}

/// The domain service every adapter calls.
pub struct Conversations {
    pub(crate) cfg: Arc<Config>,
    claude_bin: PathBuf,
    cli_version: String,
    pub pool: Arc<ProcessPool>,
    pub store: Arc<dyn Store>,
    pub(crate) models: crate::domain::models::ModelTable,
    /// Store writes run one after another, in the order they were made: later records refer to
    /// earlier ones (a tool call's outcome to its conversation), so they must not race.
    writes: mpsc::UnboundedSender<futures::future::BoxFuture<'static, ()>>,
    registry: Mutex<HashMap<String, Conversation>>,
    /// Ids of every compatible-API conversation this instance has held. The registry is the
    /// truth for these; the store's history keys matter only for the others (a restart).
    known: Mutex<HashSet<String>>,
    pub(crate) sessions: Mutex<HashMap<String, crate::domain::sessions::SessionSlot>>,
}

impl Conversations {
    /// `cfg.data_dir` must be absolute (`Config::make_paths_absolute`): CLIs run elsewhere.
    pub fn new(
        cfg: Arc<Config>,
        claude_bin: PathBuf,
        cli_version: String,
        store: Arc<dyn Store>,
    ) -> Self {
        let pool = Arc::new(ProcessPool::new(
            cfg.max_live_processes,
            Duration::from_secs(cfg.queue_timeout_secs),
            Duration::from_secs(cfg.shutdown_grace_secs),
        ));
        let (warm_cfg, warm_bin) = (cfg.clone(), claude_bin.clone());
        let models = crate::domain::models::ModelTable::new(&cfg.models);
        let keys = cfg
            .warm_models
            .iter()
            .filter_map(|m| models.resolve(m).map(|e| e.cli_model.clone()))
            .collect();
        pool.enable_warm(
            cfg.warm_pool_size,
            keys,
            Duration::from_secs(cfg.warm_ttl_secs),
            Box::new(move |model| {
                let id = uuid::Uuid::new_v4().to_string();
                let mut spec = base_spec(
                    &warm_cfg,
                    &warm_bin,
                    warm_cfg.workspaces_dir().join(&id),
                    SessionMode::New(uuid::Uuid::new_v4().to_string()),
                );
                spec.model = model.clone();
                (
                    spec,
                    Arc::new(ControlHandler::new("warm", ToolPolicy::default())),
                )
            }),
        );
        let (writes, mut queued) =
            mpsc::unbounded_channel::<futures::future::BoxFuture<'static, ()>>();
        tokio::spawn(async move {
            while let Some(write) = queued.recv().await {
                write.await;
            }
        });
        Conversations {
            cfg,
            claude_bin,
            cli_version,
            pool,
            store,
            models,
            writes,
            registry: Mutex::default(),
            known: Mutex::default(),
            sessions: Mutex::default(),
        }
    }

    pub fn cli_version(&self) -> &str {
        &self.cli_version
    }

    /// How many conversations can be continued right now.
    pub fn conversation_count(&self) -> usize {
        self.registry().len()
    }

    /// Start a turn. Errors here happen before any output (capacity, spawn, bad input).
    pub async fn start_turn(self: &Arc<Self>, req: TurnRequest) -> Result<TurnHandle, TurnError> {
        if let Some(id) = req.options.session_id.clone() {
            // Attached to a native session: the session holds the history.
            return self.session_turn(&id, req.prompt).await;
        }
        self.check_builtin_tools(&req.builtin_tools)?;
        let key = history_key(req.system.as_deref(), &req.history);
        let found = self.registry().remove(&key);
        if let Some(mut conv) = found {
            if conv.awaiting.is_some() {
                return match self.resume_paused(&mut conv, &req) {
                    Ok(Some((process, cli, reported))) => {
                        Ok(self.launch(conv, process, req, cli, reported, true))
                    }
                    Ok(None) => {
                        // Its process is gone: rebuild from the client's history instead.
                        self.forget(conv);
                        self.start_fresh(req).await
                    }
                    Err(e) => {
                        self.registry().insert(key, conv);
                        Err(e)
                    }
                };
            }
            if !conv.resumable && !conv.process.as_ref().is_some_and(|p| p.is_alive()) {
                self.forget(conv);
                return self.start_fresh(req).await;
            }
            return match self.acquire_process(&mut conv, &req).await {
                Ok(p) => self.begin(conv, p, req, true).await,
                Err(e) => {
                    if matches!(e, ClaudeError::AtCapacity { .. }) {
                        // Nothing changed: the conversation stays continuable.
                        self.registry().insert(key, conv);
                    } else {
                        self.forget(conv);
                    }
                    Err(e.into())
                }
            };
        }
        if let Some(conv) = self.restore(&key).await {
            let mut conv = conv;
            return match self.acquire_process(&mut conv, &req).await {
                Ok(p) => self.begin(conv, p, req, true).await,
                Err(e) => {
                    self.forget(conv);
                    Err(e.into())
                }
            };
        }
        self.start_fresh(req).await
    }

    /// A conversation this gateway kept before it restarted: its record and the CLI's
    /// transcript are on disk, so it continues with `--resume`.
    async fn restore(&self, key: &str) -> Option<Conversation> {
        let rec = match self.store.find_session_by_history_key(key).await {
            Ok(Some(rec)) if rec.source != store::source::NATIVE && !self.is_known(&rec.id) => rec,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "store lookup failed; the history is replayed instead");
                return None;
            }
        };
        // Take the key, so a concurrent request with the same history does not resume the
        // same CLI session a second time.
        if let Err(e) = self.store.set_history_key(&rec.id, None).await {
            tracing::warn!(error = %e, "could not take a stored conversation");
            return None;
        }
        tracing::info!(conversation = %rec.id, "continuing a stored conversation");
        self.remember(&rec.id);
        let mut conv = self.blank_conversation(
            rec.id,
            rec.cli_session_id,
            PathBuf::from(rec.workspace),
            rec.system_prompt,
        );
        conv.started = true;
        conv.persisted = true;
        conv.source = rec.source;
        conv.model_id = rec.model;
        Some(conv)
    }

    /// Background upkeep: stop idle processes past their lifetime, give up on tool calls
    /// nobody answered, forget old conversations.
    pub fn spawn_reaper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(this) = this.upgrade() else { break };
                this.pool
                    .reap_idle(Duration::from_secs(this.cfg.process_idle_ttl_secs));
                this.pool.refill();
                let ttl = Duration::from_secs(this.cfg.conversation_ttl_secs);
                let tool_ttl = Duration::from_secs(this.cfg.tool_call_timeout_secs);
                let expired: Vec<Conversation> = {
                    let mut reg = this.registry();
                    let keys: Vec<String> = reg
                        .iter()
                        .filter(|(_, c)| match &c.awaiting {
                            Some(a) => a.since.elapsed() >= tool_ttl,
                            None => c.last_used.elapsed() >= ttl,
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    keys.iter().filter_map(|k| reg.remove(k)).collect()
                };
                for c in expired {
                    if c.awaiting.is_some() {
                        tracing::info!(conversation = %c.id, "client tool calls expired unanswered; turn ended");
                    }
                    this.forget(c);
                }
            }
        })
    }

    /// Queue a store write behind every earlier one.
    pub(crate) fn write(&self, w: impl std::future::Future<Output = ()> + Send + 'static) {
        let _ = self.writes.send(Box::pin(w));
    }

    /// Wait until every store write queued so far is done.
    pub async fn flush_writes(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.write(async move {
            let _ = tx.send(());
        });
        let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
    }

    pub async fn shutdown(&self) {
        self.flush_writes().await;
        let all: Vec<Conversation> = self.registry().drain().map(|(_, c)| c).collect();
        for c in all {
            if let Some(s) = &c.tool_server {
                s.cancel_all();
            }
        }
        self.pool.shutdown_all().await;
    }

    async fn start_fresh(self: &Arc<Self>, req: TurnRequest) -> Result<TurnHandle, TurnError> {
        let mut conv = self.new_conversation(&req)?;
        let process = match self.acquire_process(&mut conv, &req).await {
            Ok(p) => p,
            Err(e) => {
                self.forget(conv);
                return Err(e.into());
            }
        };
        for m in std::mem::take(&mut conv.replay_tail) {
            let content = Value::Array(escape_slash(m.content));
            let replayed = match m.role {
                Role::User => waiting_on_cli(process.replay_user(&content)).await,
                Role::Assistant => waiting_on_cli(process.replay_assistant(&content)).await,
            };
            if let Err(e) = replayed {
                self.pool.retire(&process);
                self.forget(conv);
                return Err(e.into());
            }
        }
        self.begin(conv, process, req, false).await
    }

    /// Send the new user message and start driving the turn.
    pub(crate) async fn begin(
        self: &Arc<Self>,
        mut conv: Conversation,
        process: Arc<CliProcess>,
        req: TurnRequest,
        continued: bool,
    ) -> Result<TurnHandle, TurnError> {
        let prompt = if req.slash_commands {
            req.prompt.clone()
        } else {
            escape_slash(req.prompt.clone())
        };
        match process.start_turn(&Value::Array(prompt)).await {
            Ok(cli) => {
                conv.started = true;
                Ok(self.launch(conv, process, req, cli, Usage::default(), continued))
            }
            Err(e) => {
                self.end_failed(conv, &process);
                Err(e.into())
            }
        }
    }

    fn launch(
        self: &Arc<Self>,
        conv: Conversation,
        process: Arc<CliProcess>,
        req: TurnRequest,
        cli: mpsc::UnboundedReceiver<Event>,
        reported: Usage,
        continued: bool,
    ) -> TurnHandle {
        tracing::info!(
            conversation = %conv.id,
            model = %req.model_id,
            continued,
            pid = process.pid(),
            client_tools = req.tools.len(),
            user = req.client_user.as_deref().unwrap_or(""),
            "turn started"
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let conversation_id = conv.id.clone();
        let this = self.clone();
        let cli_wait = crate::domain::cli_wait::current_cli_wait();
        tokio::spawn(crate::domain::cli_wait::with_cli_wait(
            cli_wait.clone(),
            async move { this.drive(conv, process, req, cli, reported, tx).await },
        ));
        TurnHandle {
            conversation_id,
            events: rx,
            cli_wait,
        }
    }

    /// Hand the client's tool results to a paused turn. `Ok(None)`: its process is gone.
    #[allow(clippy::type_complexity)]
    fn resume_paused(
        &self,
        conv: &mut Conversation,
        req: &TurnRequest,
    ) -> Result<Option<(Arc<CliProcess>, mpsc::UnboundedReceiver<Event>, Usage)>, TurnError> {
        let pending: Vec<String> = conv
            .awaiting
            .as_ref()
            .map(|a| a.pending.clone())
            .unwrap_or_default();
        // A process that died while paused has already said so on its event channel.
        if let Some(aw) = conv.awaiting.as_mut() {
            while let Ok(ev) = aw.cli.try_recv() {
                if ev.is_terminal() {
                    return Ok(None);
                }
            }
        }
        let mut results: HashMap<String, ToolOutcome> = HashMap::new();
        for b in &req.prompt {
            match b.get("type").and_then(Value::as_str) {
                Some("tool_result") => {
                    let id = b["tool_use_id"].as_str().unwrap_or_default().to_string();
                    if !pending.contains(&id) {
                        return Err(TurnError::invalid(
                            "tool_call_id",
                            format!("No pending tool call has the id '{id}'"),
                        ));
                    }
                    let outcome = ToolOutcome {
                        content: tool_result_text(b),
                        is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
                    };
                    results.insert(id, outcome);
                }
                _ => return Err(TurnError::invalid(
                    "messages",
                    "While tool calls are pending, the new messages may only carry their results",
                )),
            }
        }
        if let Some(missing) = pending.iter().find(|id| !results.contains_key(*id)) {
            return Err(TurnError::invalid(
                "tool_call_id",
                format!("The result for the tool call '{missing}' is missing"),
            ));
        }
        let process = match conv.process.take() {
            Some(p) if self.pool.claim(&p) => p,
            other => {
                conv.process = other;
                return Ok(None);
            }
        };
        let Some(aw) = conv.awaiting.take() else {
            return Ok(None);
        };
        if conv.persisted {
            let calls: Vec<ToolCallRecord> = results
                .iter()
                .map(|(id, o)| ToolCallRecord {
                    id: id.clone(),
                    session_id: conv.id.clone(),
                    turn_id: String::new(),
                    tool: aw.calls.get(id).map(|c| c.0.clone()).unwrap_or_default(),
                    kind: "client".into(),
                    argument_bytes: aw.calls.get(id).map(|c| c.1 as i64).unwrap_or(0),
                    outcome: Some(if o.is_error { "error" } else { "ok" }.into()),
                    duration_ms: Some(aw.since.elapsed().as_millis() as i64),
                    created_at: store::now_millis(),
                })
                .collect();
            let store = self.store.clone();
            self.write(async move {
                for c in calls {
                    let _ = store.record_tool_call(&c).await;
                }
            });
        }
        if let Some(server) = &conv.tool_server {
            for (id, outcome) in results {
                server.resolve(&id, outcome);
            }
        }
        Ok(Some((process, aw.cli, aw.reported)))
    }

    pub(crate) fn new_conversation(&self, req: &TurnRequest) -> Result<Conversation, ClaudeError> {
        let id = uuid::Uuid::new_v4().to_string();
        // The directory is made when a process starts in it.
        let workspace = self.cfg.workspaces_dir().join(&id);
        let cli_session_id = uuid::Uuid::new_v4().to_string();
        let mut replay_tail = Vec::new();
        let mut started = false;
        if !req.history.is_empty() {
            // The model knows client tools by their MCP names.
            let client: HashSet<&str> = req.tools.iter().map(|t| t.name.as_str()).collect();
            let history: Vec<Message> = req
                .history
                .iter()
                .map(|m| Message {
                    role: m.role,
                    content: m
                        .content
                        .iter()
                        .map(|b| match b["name"].as_str() {
                            Some(n) if b["type"] == "tool_use" && client.contains(n) => {
                                let mut b = b.clone();
                                b["name"] = json!(tools::model_name(n));
                                b
                            }
                            _ => b.clone(),
                        })
                        .collect(),
                })
                .collect();
            let (head, tail) = split_for_transcript(&history);
            replay_tail = tail;
            if !head.is_empty() {
                let head: Vec<Message> = head
                    .into_iter()
                    .map(|m| Message {
                        role: m.role,
                        content: escape_slash(m.content),
                    })
                    .collect();
                transcript::write(
                    &self.cfg.claude_config_dir(),
                    &workspace,
                    &cli_session_id,
                    &head,
                    &self.cli_version,
                )
                .map_err(|e| {
                    ClaudeError::protocol(format!("writing the history transcript: {e}"))
                })?;
                started = true;
            }
        }
        self.remember(&id);
        let mut conv = self.blank_conversation(id, cli_session_id, workspace, req.system.clone());
        conv.source = if req.source.is_empty() {
            store::source::OPENAI
        } else {
            req.source
        }
        .to_string();
        conv.model_id = req.model_id.clone();
        conv.started = started;
        conv.resumable = replay_tail.is_empty();
        conv.replay_tail = replay_tail;
        Ok(conv)
    }

    /// A conversation with no process and no history yet.
    pub(crate) fn blank_conversation(
        &self,
        id: String,
        cli_session_id: String,
        workspace: PathBuf,
        system: Option<String>,
    ) -> Conversation {
        Conversation {
            id,
            cli_session_id,
            workspace,
            workspace_is_temp: true,
            system,
            started: false,
            native: None,
            bus: None,
            persisted: false,
            source: store::source::OPENAI.to_string(),
            model_id: String::new(),
            process: None,
            process_launch: String::new(),
            process_runtime: Runtime::default(),
            tool_server: None,
            awaiting: None,
            resumable: true,
            replay_tail: vec![],
            last_used: Instant::now(),
        }
    }

    /// A process for this conversation's next turn: its live one, a warm one, or a new one.
    pub(crate) async fn acquire_process(
        &self,
        conv: &mut Conversation,
        req: &TurnRequest,
    ) -> Result<Arc<CliProcess>, ClaudeError> {
        let launch = launch_fingerprint(req);
        let runtime = Runtime::of(req);
        if let Some(p) = conv.process.take() {
            if self.pool.claim(&p) {
                // Flags and `initialize` are fixed at start: a change needs a new process.
                if conv.process_launch == launch {
                    return self.apply_runtime(conv, p, runtime).await;
                }
                self.pool.retire(&p);
            }
        }
        let offered = req.offered_tools();
        let mut allowed = req
            .approved_tools
            .clone()
            .unwrap_or_else(|| req.builtin_tools.clone());
        allowed.push(format!("mcp__{}", tools::SERVER_NAME));
        let policy = ToolPolicy { allowed };
        let server = (!offered.is_empty()).then(|| ClientToolServer::new(conv.id.clone(), offered));

        let warm = if !conv.started && conv.workspace_is_temp && launch_is_default(req) {
            self.pool.take_warm(&req.cli_model)
        } else {
            None
        };
        let (p, current) = match warm {
            Some(p) => {
                // The warm process's own workspace and session become the conversation's.
                conv.workspace = p.cwd.clone();
                if let SessionMode::New(id) = &p.session {
                    conv.cli_session_id = id.clone();
                }
                p.handler().set_label(&conv.id);
                p.handler().set_policy(policy);
                (p, Runtime::default())
            }
            None => {
                let mut spec = base_spec(
                    &self.cfg,
                    &self.claude_bin,
                    conv.workspace.clone(),
                    if conv.started {
                        SessionMode::Resume {
                            id: conv.cli_session_id.clone(),
                            fork: false,
                        }
                    } else {
                        SessionMode::New(conv.cli_session_id.clone())
                    },
                );
                spec.model = req.cli_model.clone();
                spec.builtin_tools = req.builtin_tools.clone();
                spec.permission_mode = req.options.permission_mode.clone();
                spec.effort = req.options.effort.clone();
                spec.agent = req.options.agent.clone();
                spec.max_turns = req.options.max_turns;
                runtime.apply_to(&mut spec);
                let handler = Arc::new(ControlHandler::new(conv.id.clone(), policy));
                (self.pool.spawn(&spec, handler).await?, runtime.clone())
            }
        };
        if let Some(s) = &server {
            p.handler()
                .register_mcp_server(tools::SERVER_NAME, s.clone());
        }
        let init = Initialize {
            system_prompt: conv.system.clone(),
            append_system_prompt: req.tool_instructions(),
            sdk_mcp_servers: server
                .iter()
                .map(|_| tools::SERVER_NAME.to_string())
                .collect(),
            ..Default::default()
        };
        if let Err(e) = waiting_on_cli(p.initialize(&init)).await {
            self.pool.retire(&p);
            return Err(e);
        }
        if let Some(old) = std::mem::replace(&mut conv.tool_server, server) {
            old.cancel_all();
        }
        conv.process_launch = launch;
        conv.process_runtime = current;
        self.apply_runtime(conv, p, runtime).await
    }

    /// Bring a process's changeable settings to what this request asks for.
    async fn apply_runtime(
        &self,
        conv: &mut Conversation,
        p: Arc<CliProcess>,
        want: Runtime,
    ) -> Result<Arc<CliProcess>, ClaudeError> {
        let have = &conv.process_runtime;
        let mut result = Ok(());
        if have.max_output_tokens != want.max_output_tokens || have.extra_body != want.extra_body {
            let max = want
                .max_output_tokens
                .map(|n| n.to_string())
                .unwrap_or_default();
            let body = want
                .extra_body
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_else(|| "{}".into());
            result = waiting_on_cli(p.set_env(&[
                ("CLAUDE_CODE_MAX_OUTPUT_TOKENS", max),
                ("CLAUDE_CODE_EXTRA_BODY", body),
            ]))
            .await;
        }
        if result.is_ok() && have.thinking != want.thinking {
            result = waiting_on_cli(p.set_max_thinking_tokens(want.thinking)).await;
        }
        match result {
            Ok(()) => {
                conv.process_runtime = want;
                Ok(p)
            }
            Err(e) => {
                self.pool.retire(&p);
                Err(e)
            }
        }
    }

    /// Run one turn to its end (or to a pause on client tools): forward events, enforce stop
    /// sequences and deadlines, notice a client that went away, and leave the conversation
    /// continuable only after a clean end.
    async fn drive(
        self: Arc<Self>,
        mut conv: Conversation,
        process: Arc<CliProcess>,
        req: TurnRequest,
        mut cli: mpsc::UnboundedReceiver<Event>,
        reported: Usage,
        out: mpsc::UnboundedSender<Event>,
    ) {
        let started = Instant::now();
        let pid = process.pid();
        // Native sessions' watchers see every event the requester sees.
        let bus = conv.bus.clone();
        let emit = |ev: Event| {
            if let Some(b) = &bus {
                let _ = b.send(ev.clone());
            }
            let _ = out.send(ev);
        };
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.cfg.turn_timeout_secs);
        let idle = Duration::from_secs(self.cfg.idle_timeout_secs);
        let mut stops = StopMatcher::new(req.stop.clone());
        let mut reply = String::new();
        let turn_id = uuid::Uuid::new_v4().to_string();
        let mut step = ToolStep::new(&req, &conv.id, &turn_id);
        let mut step_usage = Usage::default();

        enum End {
            Clean(TurnSummary),
            /// A model step ended calling client tools; the CLI turn waits for results.
            Pause(Vec<(String, String, Value)>),
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
                Ok(None) => {
                    break End::CliError(ClaudeError::protocol("the CLI's event stream ended"))
                }
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
                        emit(Event::TextDelta { text: shown });
                    }
                    if let Some(s) = stops.matched() {
                        break End::Stop(s.to_string());
                    }
                }
                Event::StepEnd { stop_reason, usage } => {
                    step_usage.input_tokens += usage.input_tokens;
                    step_usage.output_tokens += usage.output_tokens;
                    let calls = step.take_calls();
                    if stop_reason.as_deref() == Some("tool_use") && !calls.is_empty() {
                        let rest = stops.finish();
                        if !rest.is_empty() {
                            reply.push_str(&rest);
                            emit(Event::TextDelta { text: rest });
                        }
                        break End::Pause(calls);
                    }
                }
                Event::Done(mut summary) => {
                    let rest = stops.finish();
                    if !rest.is_empty() {
                        reply.push_str(&rest);
                        emit(Event::TextDelta { text: rest });
                    }
                    summary.usage = minus(summary.usage, reported);
                    break End::Clean(summary);
                }
                Event::Error(e) => break End::CliError(e),
                other => {
                    for ev in step.route(other, conv.tool_server.as_deref(), &conv.id) {
                        emit(ev);
                    }
                }
            }
        };
        // Until here the turn was the CLI's; counted before `Done` goes out (see `metrics`).
        crate::domain::cli_wait::add_cli_wait(started.elapsed());

        let outcome = match end {
            // The conversation is registered under its new history before the client hears the
            // turn is done, so an immediate follow-up finds its live process.
            End::Clean(summary) => {
                if !summary.session_id.is_empty() {
                    conv.cli_session_id = summary.session_id.clone();
                }
                let usage = usage_record(
                    &conv,
                    &req,
                    &turn_id,
                    summary.usage,
                    summary.cost_usd,
                    started,
                );
                let calls = step.take_records();
                self.keep(
                    conv,
                    process,
                    &req,
                    assistant_message(&reply, &[]),
                    None,
                    usage,
                    calls,
                );
                emit(Event::Done(summary));
                "completed"
            }
            End::Pause(calls) => {
                let usage = step_usage;
                let done = Event::Done(TurnSummary {
                    stop_reason: StopReason::ToolUse,
                    usage,
                    ..empty_summary(&conv)
                });
                let awaiting = Awaiting {
                    cli,
                    pending: calls.iter().map(|(id, _, _)| id.clone()).collect(),
                    calls: calls
                        .iter()
                        .map(|(id, name, input)| {
                            (id.clone(), (name.clone(), input.to_string().len()))
                        })
                        .collect(),
                    since: Instant::now(),
                    reported: plus(reported, usage),
                };
                let usage = usage_record(&conv, &req, &turn_id, usage, None, started);
                let records = step.take_records();
                self.keep(
                    conv,
                    process,
                    &req,
                    assistant_message(&reply, &calls),
                    Some(awaiting),
                    usage,
                    records,
                );
                emit(done);
                "tool_calls"
            }
            End::CliError(e) => {
                let label = error_label(&e);
                emit(Event::Error(e));
                self.end_failed(conv, &process);
                label
            }
            End::Stop(seq) => {
                let summary = interrupt_and_wait(&process, &mut cli).await;
                emit(Event::Done(TurnSummary {
                    stop_reason: StopReason::StopSequence(seq),
                    ..summary.unwrap_or_else(|| empty_summary(&conv))
                }));
                self.end_failed(conv, &process);
                "stop_sequence"
            }
            End::Abort(err) => {
                let label = match &err {
                    Some(e) => error_label(e),
                    None => "client_disconnected",
                };
                if let Some(s) = &conv.tool_server {
                    s.cancel_all();
                }
                let _ = interrupt_and_wait(&process, &mut cli).await;
                if let Some(e) = err {
                    emit(Event::Error(e));
                }
                self.end_failed(conv, &process);
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

    /// The conversation continues from its new history (possibly paused on tool calls).
    #[allow(clippy::too_many_arguments)]
    fn keep(
        &self,
        mut conv: Conversation,
        process: Arc<CliProcess>,
        req: &TurnRequest,
        reply: Message,
        awaiting: Option<Awaiting>,
        usage: UsageRecord,
        tool_calls: Vec<ToolCallRecord>,
    ) {
        let prompt = Message::user(req.prompt.clone());
        let key = history_key(
            conv.system.as_deref(),
            req.history.iter().chain([&prompt, &reply]),
        );
        self.pool.release(&process);
        conv.process = Some(process);
        conv.awaiting = awaiting;
        conv.last_used = Instant::now();
        self.persist_turn(
            &conv,
            (conv.native.is_none() && conv.resumable && conv.awaiting.is_none())
                .then_some(key.clone()),
            usage,
            tool_calls,
        );
        conv.persisted = true;
        if conv.native.is_some() {
            let status = if conv.awaiting.is_some() {
                "awaiting_tools"
            } else {
                "idle"
            };
            self.return_session(conv, status);
            return;
        }
        self.registry().insert(key, conv);
    }

    /// Record a finished turn: the conversation (created on its first turn), the history key
    /// it now ends at (when a restart could continue it), its usage and its tool calls. In the
    /// background and in this order, since the records refer to the conversation.
    fn persist_turn(
        &self,
        conv: &Conversation,
        key: Option<String>,
        usage: UsageRecord,
        tool_calls: Vec<ToolCallRecord>,
    ) {
        let store = self.store.clone();
        let rec = (!conv.persisted && conv.native.is_none()).then(|| store::Session {
            id: conv.id.clone(),
            cli_session_id: conv.cli_session_id.clone(),
            workspace: conv.workspace.display().to_string(),
            workspace_is_temp: conv.workspace_is_temp,
            model: conv.model_id.clone(),
            system_prompt: conv.system.clone(),
            source: conv.source.clone(),
            ..store::Session::new("", "", "")
        });
        let (id, native) = (conv.id.clone(), conv.native.is_some());
        let status = if conv.awaiting.is_some() {
            store::status::AWAITING_TOOLS
        } else {
            store::status::IDLE
        };
        self.write(async move {
            let result = async {
                if let Some(rec) = rec {
                    store.create_session(&rec).await?;
                } else if !native {
                    if let Some(mut s) = store.get_session(&id).await? {
                        s.status = status.to_string();
                        store.update_session(&s).await?;
                    }
                }
                if !native {
                    store.set_history_key(&id, key.as_deref()).await?;
                }
                store.record_usage(&usage).await?;
                for c in &tool_calls {
                    store.record_tool_call(c).await?;
                }
                Ok::<(), store::StoreError>(())
            };
            if let Err(e) = result.await {
                tracing::warn!(conversation = %id, error = %e, "could not record a turn");
            }
        });
    }

    /// Drop a conversation for good: its process and its workspace.
    pub(crate) fn forget(&self, conv: Conversation) {
        if conv.persisted && conv.native.is_none() {
            let (store, id) = (self.store.clone(), conv.id.clone());
            self.write(async move {
                let _ = store.set_history_key(&id, None).await;
                if let Ok(Some(mut s)) = store.get_session(&id).await {
                    s.status = store::status::CLOSED.to_string();
                    let _ = store.update_session(&s).await;
                }
            });
        }
        if let Some(s) = &conv.tool_server {
            s.cancel_all();
        }
        if let Some(p) = conv.process {
            if conv.awaiting.is_some() {
                // The CLI is mid-turn: stop the turn before the process.
                let pool = self.pool.clone();
                tokio::spawn(async move {
                    let _ = p.interrupt().await;
                    pool.retire(&p);
                });
            } else {
                self.pool.retire(&p);
            }
        }
        if conv.workspace_is_temp {
            let dir = conv.workspace;
            tokio::spawn(async move {
                let _ = tokio::fs::remove_dir_all(&dir).await;
            });
        }
    }

    /// A turn that did not end cleanly: a compatible-API conversation is dropped (its CLI
    /// history no longer matches the client's); a native session keeps its session and loses
    /// only its process.
    fn end_failed(&self, mut conv: Conversation, process: &Arc<CliProcess>) {
        self.pool.retire(process);
        if conv.native.is_some() {
            conv.process = None;
            conv.awaiting = None;
            self.return_session(conv, "error");
        } else {
            self.forget(conv);
        }
    }

    fn is_known(&self, id: &str) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    fn remember(&self, id: &str) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<String, Conversation>> {
        // Single-step map operations only, so a poisoned lock still holds a consistent map.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Tool events of the current model step: client calls are renamed to the client's names and
/// collected; with `parallel_tool_calls: false` every client call after the first is answered
/// with an error at once and hidden from the client.
struct ToolStep {
    session_id: String,
    turn_id: String,
    records: Vec<ToolCallRecord>,
    offered: HashSet<String>,
    parallel: bool,
    calls: Vec<(String, String, Value)>,
    shown: HashSet<String>,
    suppressed: HashSet<String>,
    builtin_started: HashMap<String, (String, Instant, usize)>,
}

impl ToolStep {
    fn new(req: &TurnRequest, session_id: &str, turn_id: &str) -> Self {
        ToolStep {
            session_id: session_id.to_string(),
            turn_id: turn_id.to_string(),
            records: vec![],
            offered: req.offered_tools().into_iter().map(|t| t.name).collect(),
            parallel: req.parallel_tool_calls,
            calls: vec![],
            shown: HashSet::new(),
            suppressed: HashSet::new(),
            builtin_started: HashMap::new(),
        }
    }

    fn take_records(&mut self) -> Vec<ToolCallRecord> {
        std::mem::take(&mut self.records)
    }

    fn record(
        &mut self,
        id: &str,
        tool: &str,
        kind: &str,
        argument_bytes: usize,
        outcome: Option<&str>,
        duration_ms: Option<u128>,
    ) {
        self.records.push(ToolCallRecord {
            id: id.to_string(),
            session_id: self.session_id.clone(),
            turn_id: self.turn_id.clone(),
            tool: tool.to_string(),
            kind: kind.to_string(),
            argument_bytes: argument_bytes as i64,
            outcome: outcome.map(String::from),
            duration_ms: duration_ms.map(|d| d as i64),
            created_at: store::now_millis(),
        });
    }

    fn take_calls(&mut self) -> Vec<(String, String, Value)> {
        self.shown.clear();
        std::mem::take(&mut self.calls)
    }

    fn client_name<'a>(&self, model_name: &'a str) -> Option<&'a str> {
        tools::client_name(model_name).filter(|n| self.offered.contains(*n))
    }

    /// Decide on a new client call: shown to the client, or suppressed.
    fn admit(&mut self, id: &str) -> bool {
        if self.suppressed.contains(id) {
            return false;
        }
        if self.shown.contains(id) {
            return true;
        }
        if !self.parallel && !self.shown.is_empty() {
            self.suppressed.insert(id.to_string());
            return false;
        }
        self.shown.insert(id.to_string());
        true
    }

    fn route(
        &mut self,
        ev: Event,
        server: Option<&ClientToolServer>,
        conversation: &str,
    ) -> Vec<Event> {
        match ev {
            Event::ToolCallStart { id, name, .. } => {
                match self.client_name(&name).map(String::from) {
                    Some(n) if self.admit(&id) => vec![Event::ToolCallStart {
                        id,
                        name: n,
                        client: true,
                    }],
                    Some(_) => vec![],
                    None => vec![Event::ToolCallStart {
                        id,
                        name,
                        client: false,
                    }],
                }
            }
            Event::ToolCallDelta {
                id, partial_json, ..
            } => {
                if self.suppressed.contains(&id) {
                    vec![]
                } else {
                    let client = self.shown.contains(&id);
                    vec![Event::ToolCallDelta {
                        id,
                        partial_json,
                        client,
                    }]
                }
            }
            Event::ToolCall {
                id, name, input, ..
            } => {
                match self.client_name(&name).map(String::from) {
                    Some(n) => {
                        if self.admit(&id) {
                            self.calls.push((id.clone(), n.clone(), input.clone()));
                            vec![Event::ToolCall {
                                id,
                                name: n,
                                input,
                                client: true,
                            }]
                        } else {
                            if let Some(s) = server {
                                s.resolve(
                                &id,
                                ToolOutcome {
                                    content: "Parallel tool calls are disabled: call one tool at a time.".into(),
                                    is_error: true,
                                },
                            );
                            }
                            vec![]
                        }
                    }
                    None => {
                        tracing::info!(
                            target: "ccgw::tools",
                            conversation,
                            tool = %name,
                            tool_use_id = %id,
                            kind = "builtin",
                            argument_bytes = input.to_string().len(),
                            "tool call started"
                        );
                        self.builtin_started.insert(
                            id.clone(),
                            (name.clone(), Instant::now(), input.to_string().len()),
                        );
                        vec![Event::ToolCall {
                            id,
                            name,
                            input,
                            client: false,
                        }]
                    }
                }
            }
            Event::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                if let Some((name, since, argument_bytes)) =
                    self.builtin_started.remove(&tool_use_id)
                {
                    let outcome = if is_error { "error" } else { "ok" };
                    self.record(
                        &tool_use_id,
                        &name,
                        "builtin",
                        argument_bytes,
                        Some(outcome),
                        Some(since.elapsed().as_millis()),
                    );
                    tracing::info!(
                        target: "ccgw::tools",
                        conversation,
                        tool = %name,
                        tool_use_id = %tool_use_id,
                        kind = "builtin",
                        result_bytes = content.to_string().len(),
                        outcome = if is_error { "error" } else { "ok" },
                        duration_ms = since.elapsed().as_millis() as u64,
                        "tool call finished"
                    );
                }
                vec![Event::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                }]
            }
            other => vec![other],
        }
    }
}

/// The CLI runs a user message whose last text block starts with `/` as a slash command. On
/// the compatible endpoints that is just text: a leading space keeps it text.
fn escape_slash(mut content: Vec<Value>) -> Vec<Value> {
    if let Some(last) = content.iter_mut().rev().find(|b| b["type"] == "text") {
        if let Some(t) = last["text"].as_str().filter(|t| t.starts_with('/')) {
            last["text"] = json!(format!(" {t}"));
        }
    }
    content
}

fn usage_record(
    conv: &Conversation,
    req: &TurnRequest,
    turn_id: &str,
    usage: Usage,
    cost_usd: Option<f64>,
    started: Instant,
) -> UsageRecord {
    UsageRecord {
        id: uuid::Uuid::new_v4().to_string(),
        session_id: conv.id.clone(),
        turn_id: turn_id.to_string(),
        model: req.model_id.clone(),
        input_tokens: usage.input_tokens as i64,
        output_tokens: usage.output_tokens as i64,
        cache_creation_input_tokens: usage.cache_creation_input_tokens as i64,
        cache_read_input_tokens: usage.cache_read_input_tokens as i64,
        cost_usd,
        duration_ms: started.elapsed().as_millis() as i64,
        created_at: store::now_millis(),
    }
}

/// What the client will send back as this response's assistant message.
fn assistant_message(text: &str, calls: &[(String, String, Value)]) -> Message {
    let mut content = vec![json!({"type": "text", "text": text})];
    content.extend(calls.iter().map(
        |(id, name, input)| json!({"type": "tool_use", "id": id, "name": name, "input": input}),
    ));
    Message {
        role: Role::Assistant,
        content,
    }
}

/// Everything about a request that only a new process can change.
fn launch_fingerprint(req: &TurnRequest) -> String {
    let tools: Vec<Value> = req
        .offered_tools()
        .iter()
        .map(|t| json!([t.name, t.description, t.parameters]))
        .collect();
    let o = &req.options;
    // The model belongs here, not in `Runtime`: `set_model` makes the CLI insert a `/model`
    // command transcript into the next user message (see docs/cli-notes.md).
    let doc = json!([
        tools,
        req.tool_instructions(),
        req.builtin_tools,
        req.cli_model,
        [&o.effort, &o.permission_mode, &o.agent, o.max_turns],
    ]);
    hex::encode(Sha256::digest(doc.to_string().as_bytes()))
}

/// Whether a warm process (started with the default launch spec) can serve this request.
fn launch_is_default(req: &TurnRequest) -> bool {
    let o = &req.options;
    req.builtin_tools.is_empty()
        && o.effort.is_none()
        && o.permission_mode.is_none()
        && o.agent.is_none()
        && o.max_turns.is_none()
}

/// The launch spec every process starts from: hygiene flags, the gateway's env, no tools.
fn base_spec(
    cfg: &Config,
    bin: &std::path::Path,
    cwd: PathBuf,
    session: SessionMode,
) -> LaunchSpec {
    LaunchSpec {
        program: bin.to_path_buf(),
        cwd,
        config_dir: cfg.claude_config_dir(),
        model: None,
        session,
        builtin_tools: vec![],
        allowed_tools: vec![],
        permission_mode: None,
        max_retries: cfg.cli_max_retries,
        max_output_tokens: None,
        max_thinking_tokens: None,
        effort: None,
        agent: None,
        max_turns: None,
        extra_body: None,
        env: cfg.cli_env.clone(),
    }
}

/// Settings a running CLI can change between turns (control requests) without leaving a trace
/// in the conversation, so they are not part of the launch fingerprint.
#[derive(Debug, Clone, Default, PartialEq)]
struct Runtime {
    max_output_tokens: Option<u32>,
    extra_body: Option<Value>,
    thinking: Option<u32>,
}

impl Runtime {
    fn of(req: &TurnRequest) -> Self {
        Runtime {
            max_output_tokens: req.max_output_tokens,
            extra_body: (!req.options.sampling.is_empty())
                .then(|| Value::Object(req.options.sampling.clone())),
            thinking: thinking_budget(&req.options),
        }
    }

    /// Set at launch instead (flags and env), for a process started for this request.
    fn apply_to(&self, spec: &mut LaunchSpec) {
        spec.max_output_tokens = self.max_output_tokens;
        spec.extra_body = self.extra_body.clone();
        spec.max_thinking_tokens = self.thinking;
    }
}

/// The Messages API refuses a temperature other than 1 while thinking is on, so setting one
/// turns thinking off unless a budget was asked for explicitly.
fn thinking_budget(o: &crate::domain::turn::ClaudeOptions) -> Option<u32> {
    let sampling_needs_it_off = o
        .sampling
        .get("temperature")
        .and_then(Value::as_f64)
        .is_some_and(|t| (t - 1.0).abs() > f64::EPSILON);
    o.thinking_budget.or(sampling_needs_it_off.then_some(0))
}

fn minus(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens.saturating_sub(b.input_tokens),
        output_tokens: a.output_tokens.saturating_sub(b.output_tokens),
        cache_creation_input_tokens: a
            .cache_creation_input_tokens
            .saturating_sub(b.cache_creation_input_tokens),
        cache_read_input_tokens: a
            .cache_read_input_tokens
            .saturating_sub(b.cache_read_input_tokens),
    }
}

fn plus(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens + b.input_tokens,
        output_tokens: a.output_tokens + b.output_tokens,
        cache_creation_input_tokens: a.cache_creation_input_tokens + b.cache_creation_input_tokens,
        cache_read_input_tokens: a.cache_read_input_tokens + b.cache_read_input_tokens,
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
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .ok()
        .flatten()
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
