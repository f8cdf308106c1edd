//! The domain service every adapter calls, and the compatible APIs' conversations: which CLI
//! session (and live process) serves a request.
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
//! Knows nothing about HTTP: adapters hand in a [`TurnRequest`] and read `Event`s. The life of
//! one turn is in `drive`, process set-up in `launch`, native sessions in `sessions`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::conversation::{escape_slash, Conversation};
pub use super::conversation::{TurnError, TurnHandle};
use super::session_table::SessionTable;
use super::writes::WriteQueue;
use crate::claude::args::{LaunchSpec, SessionMode};
use crate::claude::control::{ControlHandler, ToolPolicy};
use crate::claude::pool::ProcessPool;
use crate::claude::process::CliProcess;
use crate::claude::tools::{self, ToolOutcome};
use crate::claude::{transcript, ClaudeError, Event, Usage};
use crate::config::Config;
use crate::domain::cli_wait::waiting_on_cli;
use crate::domain::turn::{
    history_key, split_for_transcript, tool_result_text, Message, Role, TurnRequest,
};
use crate::store::{self, Store, ToolCallRecord};

/// The domain service every adapter calls.
pub struct Conversations {
    pub(crate) cfg: Arc<Config>,
    pub(crate) claude_bin: PathBuf,
    pub(crate) cli_version: String,
    pub pool: Arc<ProcessPool>,
    pub store: Arc<dyn Store>,
    pub(crate) models: crate::domain::models::ModelTable,
    /// Store writes run one after another, in the order they were made: later records refer to
    /// earlier ones (a tool call's outcome to its conversation), so they must not race.
    pub(crate) writes: WriteQueue,
    pub(crate) registry: Mutex<HashMap<String, Conversation>>,
    /// Ids of every compatible-API conversation this instance has held. The registry is the
    /// truth for these; the store's history keys matter only for the others (a restart).
    pub(crate) known: Mutex<HashSet<String>>,
    /// Native sessions with their state (see `sessions`).
    pub(crate) sessions: SessionTable,
    /// Every turn's events, gateway-wide (see `feed`).
    pub feed: Arc<super::feed::Feed>,
    /// What every conversation is doing, kept from the feed (see `activity`).
    pub activity: Arc<super::activity::Activity>,
    /// Give the model the client's system prompt exactly (`exact_system_prompt`, off with
    /// subscription credentials; see `conversation::exact_system_body`).
    pub(crate) exact_system_prompt: bool,
    /// The newest replies the compatible APIs keep (see `replies`).
    pub(crate) replies: super::replies::RecentReplies,
    /// Responses kept for requests retried with an `Idempotency-Key`.
    pub idempotency: super::idempotency::Replays,
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
        let exact_system_prompt = cfg.exact_system_prompt && !uses_subscription(&cfg);
        if cfg.exact_system_prompt && !exact_system_prompt {
            tracing::info!(
                "subscription credentials: custom system prompts keep the CLI's identity line"
            );
        }
        let idempotency =
            super::idempotency::Replays::new(Duration::from_secs(cfg.idempotency_window_secs));
        let activity = Arc::new(super::activity::Activity::default());
        let observed = activity.clone();
        let feed = Arc::new(super::feed::Feed::new(
            super::feed::FEED_CAPACITY,
            Some(Box::new(move |item| observed.observe(item))),
        ));
        Conversations {
            feed,
            activity,
            exact_system_prompt,
            cfg,
            claude_bin,
            cli_version,
            pool,
            store,
            models,
            writes: WriteQueue::start(),
            registry: Mutex::default(),
            known: Mutex::default(),
            sessions: SessionTable::default(),
            replies: Default::default(),
            idempotency,
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
        let structured = req.json_schema.is_some();
        let handle = self.start_compatible_turn(req).await?;
        Ok(if structured {
            super::structured::enforce(handle)
        } else {
            handle
        })
    }

    async fn start_compatible_turn(
        self: &Arc<Self>,
        req: TurnRequest,
    ) -> Result<TurnHandle, TurnError> {
        if let Some(id) = req.options.session_id.clone() {
            // Attached to a native session: the session holds the history.
            return self.session_turn(&id, req.prompt, req.key).await;
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
    pub(crate) async fn restore(&self, key: &str) -> Option<Conversation> {
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
        let mut conv = Conversation::blank(
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
        self.writes.push(w);
    }

    /// Wait until every store write queued so far is done.
    pub async fn flush_writes(&self) {
        self.writes.flush().await;
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

    pub(crate) async fn start_fresh(
        self: &Arc<Self>,
        req: TurnRequest,
    ) -> Result<TurnHandle, TurnError> {
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

    /// Hand the client's tool results to a paused turn. `Ok(None)`: its process is gone.
    #[allow(clippy::type_complexity)]
    pub(crate) fn resume_paused(
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
        let mut conv = Conversation::blank(id, cli_session_id, workspace, req.system.clone());
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

    /// A native conversation back in its session after a turn; a deleted session's is dropped.
    pub(crate) fn return_session(&self, conv: Conversation, status: &str) {
        match self.sessions.put_back(conv, status) {
            Ok(rec) => {
                let store = self.store.clone();
                self.write(async move {
                    if let Err(e) = store.update_session(&rec).await {
                        tracing::warn!(session = %rec.id, error = %e, "could not save a session");
                    }
                });
            }
            Err(conv) => self.forget(*conv),
        }
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

    pub(crate) fn is_known(&self, id: &str) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    pub(crate) fn remember(&self, id: &str) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }

    pub(crate) fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<String, Conversation>> {
        // Single-step map operations only, so a poisoned lock still holds a consistent map.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether the CLI authenticates with a Claude subscription (an OAuth token) rather than an API
/// key: such requests must keep the CLI's identity line in the system prompt.
fn uses_subscription(cfg: &Config) -> bool {
    const VAR: &str = "CLAUDE_CODE_OAUTH_TOKEN";
    match cfg.cli_env.iter().rev().find(|(k, _)| k == VAR) {
        Some((_, v)) => !v.is_empty(),
        None => std::env::var(VAR).is_ok_and(|v| !v.is_empty()),
    }
}

/// The launch spec every process starts from: hygiene flags, the gateway's env, no tools.
pub(crate) fn base_spec(
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
