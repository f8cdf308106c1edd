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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use scopeguard::ScopeGuard;

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
use crate::domain::history_key::history_key;
use crate::domain::turn::{split_for_transcript, tool_result_text, Message, Role, TurnRequest};
use crate::store::{self, Store, ToolCallRecord};

/// Points of a turn's start where a request can be held open (tests drop requests there, see
/// [`Conversations::set_stage_hook`]). Every await of a turn's start is next to one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `initialize` is about to go to the turn's new (or warm) process.
    Initialize,
    /// The process's run-time settings are about to be brought to the request's.
    Configure,
    /// An earlier message is about to be replayed into a new process.
    Replay,
    /// The user message is about to be written.
    Begin,
}

/// Awaited at every [`Stage`] of a turn's start.
pub type StageHook = Box<dyn Fn(Stage) -> BoxFuture<'static, ()> + Send + Sync>;

/// A conversation taken for a turn's start. Dropped before the turn starts (its request was
/// cancelled at an await), it goes back where it came from: see [`Conversations::abandon`].
pub(crate) type Held = ScopeGuard<Conversation, Box<dyn FnOnce(Conversation) + Send>>;

/// The domain service every adapter calls.
pub struct Conversations {
    pub(crate) cfg: Arc<Config>,
    pub(crate) claude_bin: PathBuf,
    pub(crate) cli_version: String,
    /// Whether the CLI can run here (readiness).
    pub cli_health: Arc<super::cli_health::CliHealth>,
    pub pool: Arc<ProcessPool>,
    pub store: Arc<dyn Store>,
    /// The model table in force (shared with the HTTP layer; a reload replaces it).
    pub models: Arc<crate::domain::models::Models>,
    /// Store writes run one after another, in the order they were made: later records refer to
    /// earlier ones (a tool call's outcome to its conversation), so they must not race.
    pub(crate) writes: WriteQueue,
    /// Which instance may run a session's CLI right now (see `leases`).
    pub(crate) leases: super::leases::Leases,
    pub(crate) registry: Mutex<HashMap<String, Conversation>>,
    /// Ids of every compatible-API conversation this instance has held. The registry is the
    /// truth for these; the store's history keys matter only for the others (a restart).
    pub(crate) known: Mutex<HashSet<String>>,
    /// Native sessions with their state (see `sessions`).
    pub(crate) sessions: SessionTable,
    stage_hook: OnceLock<StageHook>,
    /// Per-key limits and spend, counted at each turn's end (see `limits`).
    pub limits: Arc<super::limits::Limits>,
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
    /// Native sessions' tool-status frames the event bus has no event for.
    pub(crate) tool_status: super::tool_calls::ToolStatus,
    /// The CLI's own commands, agents and models.
    pub(crate) catalog: super::catalog::Catalog,
    /// The subagent tasks of native sessions' running turns.
    pub(crate) tasks: super::tasks::RunningTasks,
    /// Where a stopping gateway is in its drain, and how many turns still run.
    pub drain: super::drain::Drain,
    /// The deployment's external MCP servers (see `mcp`).
    pub(crate) mcp: super::mcp::McpRegistry,
    /// Their tools as processes last reported them (see `mcp_status`).
    pub(crate) mcp_seen: super::mcp_status::Seen,
    /// Hooks over HTTP: the deployment's and each session's subscriptions (see `hooks`).
    pub(crate) hooks: Arc<super::hooks::HookHub>,
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
        let models = Arc::new(crate::domain::models::Models::new(
            &cfg.models,
            &cfg.providers,
        ));
        let keys = warm_keys(&models.current(), &cfg.warm_models);
        pool.enable_warm(
            (cfg.warm_pool_size, cfg.warm_pool_max),
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
                spec.set_model(model);
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
        let mcp = super::mcp::McpRegistry::new(
            &cfg.mcp_servers,
            cfg.client_mcp_urls,
            &cfg.client_mcp_hosts,
            |k| std::env::var(k).ok(),
        );
        let activity = Arc::new(super::activity::Activity::default());
        let observed = activity.clone();
        let feed = Arc::new(super::feed::Feed::new(
            super::feed::FEED_CAPACITY,
            Some(Box::new(move |item| observed.observe(item))),
        ));
        let hooks = Arc::new(super::hooks::HookHub::new(&cfg));
        let writes = WriteQueue::start();
        let leases = super::leases::Leases::new(
            store.clone(),
            Duration::from_secs(cfg.lease_ttl_secs),
            Duration::from_secs(cfg.lease_wait_secs),
            writes.clone(),
            cfg.shared_store(),
        );
        Conversations {
            limits: Arc::new(super::limits::Limits::new(cfg.prices.clone())),
            feed,
            activity,
            exact_system_prompt,
            cfg,
            cli_health: super::cli_health::CliHealth::new(claude_bin.clone()),
            claude_bin,
            cli_version,
            pool,
            store,
            models,
            writes,
            leases,
            registry: Mutex::default(),
            known: Mutex::default(),
            sessions: SessionTable::default(),
            replies: Default::default(),
            idempotency,
            tool_status: Default::default(),
            catalog: Default::default(),
            tasks: Default::default(),
            drain: Default::default(),
            mcp,
            mcp_seen: Default::default(),
            hooks,
            stage_hook: OnceLock::new(),
        }
    }

    /// Hold every turn's start at each [`Stage`] until `hook`'s future ends (for tests).
    #[doc(hidden)]
    pub fn set_stage_hook(&self, hook: StageHook) {
        let _ = self.stage_hook.set(hook);
    }

    pub(crate) async fn stage(&self, stage: Stage) {
        if let Some(hook) = self.stage_hook.get() {
            hook(stage).await;
        }
    }

    /// Guard a conversation through its turn's start; `key` is where a compatible-API one was
    /// registered.
    pub(crate) fn hold(self: &Arc<Self>, conv: Conversation, key: Option<String>) -> Held {
        let this = self.clone();
        scopeguard::guard(conv, Box::new(move |conv| this.abandon(conv, key)))
    }

    /// A conversation whose turn never started, because its request was dropped during the
    /// set-up: its process (if it had one) is already retired by its lease. A native one goes
    /// back to its session; a compatible-API one that can resume from its transcript goes back
    /// under its history key (the CLI never answered the user line it may have been given,
    /// and a resume starts before it); any other is forgotten.
    pub(crate) fn abandon(&self, conv: Conversation, key: Option<String>) {
        tracing::info!(conversation = %conv.id, "a request was dropped before its turn started");
        if conv.native.is_some() {
            self.return_session(conv, store::status::IDLE);
            return;
        }
        match key {
            Some(key) if conv.started && conv.resumable => {
                if conv.persisted {
                    let (store, id, k) = (self.store.clone(), conv.id.clone(), key.clone());
                    self.write(async move {
                        let _ = store.set_history_key(&id, Some(&k)).await;
                    });
                }
                self.park(key, conv);
            }
            _ => self.forget(conv),
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
        if !self.drain.accepting() {
            return Err(TurnError::ShuttingDown);
        }
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
            // Attached to a native session: the session holds the history. Another key's
            // session is not found, as on the native API (the request knows its owner, not
            // its role: an admin attaches to its own sessions only here).
            if self
                .session_owner(&id)
                .await?
                .is_some_and(|owner| owner != req.owner)
            {
                return Err(TurnError::NotFound(format!(
                    "No session with the id '{id}'"
                )));
            }
            let over = super::sessions::TurnOverrides::of(&req);
            return self.session_turn_with(&id, req.prompt, req.key, over).await;
        }
        self.check_builtin_tools(&req.builtin_tools)?;
        self.check_mcp(&req.mcp_servers, "mcp_servers")?;
        let key = history_key(req.system.as_deref(), &req.history);
        // History keys are per tenant: a history another key produced starts afresh (its
        // conversation stays where it was, for its own key).
        let found = {
            let mut reg = self.registry();
            match reg.remove(&key) {
                Some(conv) if conv.owner != req.owner => {
                    reg.insert(key.clone(), conv);
                    None
                }
                found => found,
            }
        };
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
                        self.park(key, conv);
                        Err(e)
                    }
                };
            }
            if !conv.resumable && !conv.process.as_ref().is_some_and(|p| p.is_alive()) {
                self.forget(conv);
                return self.start_fresh(req).await;
            }
            return self.continue_turn(conv, key, req).await;
        }
        if let Some(conv) = self.restore(&key, &req.owner).await? {
            return self.continue_turn(conv, key, req).await;
        }
        self.start_fresh(req).await
    }

    /// The next turn of a conversation this gateway holds.
    async fn continue_turn(
        self: &Arc<Self>,
        conv: Conversation,
        key: String,
        req: TurnRequest,
    ) -> Result<TurnHandle, TurnError> {
        let mut conv = conv;
        if conv.lease.is_none() {
            // One this instance kept in memory: only the lease's holder runs its CLI. While
            // the lease is waited for, a failure or a dropped request keeps it where it was.
            let this = self.clone();
            let parked = key.clone();
            let mut waiting = scopeguard::guard(conv, move |conv| this.park(parked, conv));
            let lease = self.leases.acquire(&waiting.id).await?;
            let current = waiting.hold_lease(lease);
            conv = ScopeGuard::into_inner(waiting);
            if !current {
                // Another instance ran a turn in it since: the conversation went on from this
                // history there, so this request is a new branch of it.
                tracing::info!(conversation = %conv.id, "continued on another instance since; this history starts a new conversation");
                self.drop_stale(conv);
                return self.start_fresh(req).await;
            }
        }
        let live = conv.process.as_ref().is_some_and(|p| p.is_alive());
        if !live && conv.started && !self.ready_to_resume(&mut conv).await {
            // Its transcript does not end where the client's history does (the CLI never
            // wrote it, or it was lost): load the client's history into a new session instead.
            tracing::info!(conversation = %conv.id, "transcript unusable; the history is replayed");
            self.forget(conv);
            return self.start_fresh(req).await;
        }
        let mut conv = self.hold(conv, Some(key.clone()));
        match self.acquire_process(&mut conv, &req).await {
            Ok(p) => self.begin(conv, p, req, true).await,
            Err(e) => {
                let conv = ScopeGuard::into_inner(conv);
                if matches!(e, ClaudeError::AtCapacity { .. }) {
                    // Nothing changed: the conversation stays continuable.
                    self.abandon(conv, Some(key));
                } else {
                    self.forget(conv);
                }
                Err(e.into())
            }
        }
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
                    this.retire_expired(c).await;
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
        // A new id nobody else knows: taken at once, and the epoch later turns compare with.
        match self.leases.acquire(&conv.id).await {
            Ok(lease) => {
                conv.hold_lease(lease);
            }
            Err(e) => {
                self.forget(conv);
                return Err(e);
            }
        }
        let mut conv = self.hold(conv, None);
        let process = match self.acquire_process(&mut conv, &req).await {
            Ok(p) => p,
            Err(e) => {
                self.forget(ScopeGuard::into_inner(conv));
                return Err(e.into());
            }
        };
        for m in std::mem::take(&mut conv.replay_tail) {
            self.stage(Stage::Replay).await;
            let content = Value::Array(escape_slash(m.content));
            let replayed = match m.role {
                Role::User => waiting_on_cli(process.replay_user(&content)).await,
                Role::Assistant => waiting_on_cli(process.replay_assistant(&content)).await,
            };
            if let Err(e) = replayed {
                // The lease retires the process.
                self.forget(ScopeGuard::into_inner(conv));
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
    ) -> Result<Option<(Arc<CliProcess>, mpsc::Receiver<Event>, Usage)>, TurnError> {
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
            Some(p) => match self.pool.claim(&p) {
                Some(lease) => lease.hand_on(),
                None => {
                    conv.process = Some(p);
                    return Ok(None);
                }
            },
            None => return Ok(None),
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
        let mut leaf = None;
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
                leaf = transcript::write(
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
        conv.owner = req.owner.clone();
        conv.started = started;
        conv.leaf = leaf;
        conv.resumable = replay_tail.is_empty();
        conv.replay_tail = replay_tail;
        Ok(conv)
    }

    /// A compatible-API conversation kept under its history key for its next request. Its
    /// lease (if a turn's start still held it) is released behind the writes queued so far.
    pub(crate) fn park(&self, key: String, mut conv: Conversation) {
        let lease = conv.lease.take();
        self.registry().insert(key, conv);
        drop(lease);
    }

    /// A native conversation back in its session after a turn; a deleted session's is dropped.
    /// Its lease (if a turn's start still held it) is released after its record is saved.
    pub(crate) fn return_session(&self, mut conv: Conversation, status: &str) {
        let _lease = conv.lease.take();
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
        let process = conv.process.clone();
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
            // The workspace and the CLI's transcripts of it go once its process is gone (a
            // stopping CLI may still write there).
            let dirs = [
                transcript::project_dir(&self.cfg.claude_config_dir(), &conv.workspace),
                conv.workspace,
            ];
            let grace = Duration::from_secs(self.cfg.shutdown_grace_secs + 5);
            tokio::spawn(async move {
                if let Some(p) = process {
                    p.wait_exit(grace).await;
                }
                for dir in dirs {
                    let _ = tokio::fs::remove_dir_all(&dir).await;
                }
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

/// Remove the temporary workspaces (and the CLI's transcripts of them) that no session holds:
/// those of warm processes and of conversations that never finished a turn, left behind by a
/// gateway that was killed. Run at start, before any process starts in the workspaces dir.
pub async fn sweep_workspaces(cfg: &Config, store: &dyn Store) {
    let mut held: HashSet<PathBuf> = HashSet::new();
    let mut filter = store::SessionFilter {
        limit: store::MAX_PAGE_SIZE,
        ..Default::default()
    };
    loop {
        match store.list_sessions(&filter).await {
            Ok(page) => {
                held.extend(page.items.iter().map(|s| PathBuf::from(&s.workspace)));
                match page.next_cursor {
                    Some(c) => filter.cursor = Some(c),
                    None => break,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not list sessions; no workspace is swept");
                return;
            }
        }
    }
    // Instances sharing the data dir (Postgres): another one's warm processes and first turns
    // have workspaces no record holds yet, for at most a warm process's life and a turn's;
    // only those older than that are left behind by an instance that died.
    let shared = matches!(cfg.database(), Ok(store::DatabaseUrl::Postgres(_)));
    let min_age = Duration::from_secs(cfg.warm_ttl_secs + cfg.turn_timeout_secs + 60);
    let old_enough = |dir: &std::path::Path| {
        !shared
            || std::fs::metadata(dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= min_age)
    };
    let config = cfg.claude_config_dir();
    let mut swept = 0;
    for entry in std::fs::read_dir(cfg.workspaces_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir = entry.path();
        // Only directories the gateway made (named by a uuid) that no session holds.
        let ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| uuid::Uuid::parse_str(n).is_ok());
        if ours && dir.is_dir() && !held.contains(&dir) && old_enough(&dir) {
            let _ = std::fs::remove_dir_all(transcript::project_dir(&config, &dir));
            if std::fs::remove_dir_all(&dir).is_ok() {
                swept += 1;
            }
        }
    }
    if swept > 0 {
        tracing::info!(swept, "removed workspaces no session holds");
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
    let sandbox = super::launch::sandbox_policy(cfg, &cwd);
    LaunchSpec {
        max_retries: cfg.cli_max_retries,
        env: cfg.cli_env.clone(),
        relay: cfg.relay.clone(),
        pass_env: cfg.cli_extra_env.clone(),
        sandbox,
        ..LaunchSpec::bare(bin.to_path_buf(), cwd, cfg.claude_config_dir(), session)
    }
}

/// The warm pool's keys (provider and `--model`) of the configured warm models.
pub(crate) fn warm_keys(
    models: &crate::domain::models::ModelTable,
    warm_models: &[String],
) -> Vec<crate::claude::pool::WarmKey> {
    warm_models
        .iter()
        .filter_map(|m| models.resolve(m).map(|e| e.cli_model.clone()))
        .collect()
}
