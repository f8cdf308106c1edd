//! Native sessions: conversations with a stable id that clients address directly (the native
//! API), rather than by their message history (the compatible APIs).
//!
//! A session owns a workspace (a directory the client named, or a temporary one), a CLI session
//! and, while it is used, a live process. Its events go to the requester and to any number of
//! watchers; a recorder keeps them as history. Tool permissions the session's policy does not
//! settle wait for an answer over HTTP. Knows nothing about HTTP itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use scopeguard::ScopeGuard;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use super::conversation::{Conversation, TurnError, TurnHandle};
use super::conversations::Conversations;
pub use super::session_table::SessionInfo;
use super::session_table::{
    info_from, millis_to_rfc3339, now, session_record, view, Held, SessionSlot,
};
use super::stamp::Stamped;
use super::watch::{self, Watched};
use crate::claude::control::PermissionBroker;
use crate::claude::transcript;
use crate::domain::turn::{ClaudeOptions, TurnRequest, PERMISSION_MODES};
use crate::store::{self, StoreError};

/// How long a message waits for its session while something other than a turn holds it (a
/// control request may start the session's process first: a few seconds).
const HOLD_WAIT: Duration = Duration::from_secs(30);

/// What a client asks for when it creates a session.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    pub model_id: String,
    pub cli_model: crate::domain::models::CliModel,
    pub agent: Option<String>,
    pub system_prompt: Option<String>,
    /// A directory of the client's; `None` makes a temporary one.
    pub workspace: Option<PathBuf>,
    pub permission_mode: Option<String>,
    /// Built-in tools the model may use (within the deployment's allowlist).
    pub tools: Vec<String>,
    /// Of those, the ones that run without asking (also `mcp__NAME` or `mcp__NAME__tool` of
    /// an enabled MCP server).
    pub allowed_tools: Vec<String>,
    pub title: Option<String>,
    /// External MCP servers the session enables.
    pub mcp_servers: Vec<crate::domain::mcp::McpRef>,
    /// The key that makes it (`Caller::owner`).
    pub owner: String,
    /// The project it is made in (one the owner may see; its defaults already applied).
    pub project_id: Option<String>,
}

/// One entry of a session's history: `seq`, `turn_id` and `ts` are the ones its live event
/// carried (`at` is `ts`, kept for older clients).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub seq: u64,
    pub turn_id: String,
    pub kind: String,
    pub payload: Value,
    pub ts: String,
    pub at: String,
}

impl From<store::StoredEvent> for HistoryEntry {
    fn from(e: store::StoredEvent) -> Self {
        let ts = super::session_table::millis_to_ts(e.created_at);
        HistoryEntry {
            seq: e.seq as u64,
            turn_id: e.turn_id,
            kind: e.kind,
            payload: e.payload,
            at: millis_to_rfc3339(e.created_at),
            ts,
        }
    }
}

/// What one request asks for on top of its session's settings, for that turn only.
#[derive(Debug, Clone, Default)]
pub struct TurnOverrides {
    pub max_output_tokens: Option<u32>,
    /// `Some(0)`: thinking off.
    pub thinking_budget: Option<u32>,
    pub sampling: serde_json::Map<String, Value>,
    pub stop: Vec<String>,
}

impl TurnOverrides {
    pub fn of(req: &TurnRequest) -> Self {
        TurnOverrides {
            max_output_tokens: req.max_output_tokens,
            thinking_budget: req.options.thinking_budget,
            sampling: req.options.sampling.clone(),
            stop: req.stop.clone(),
        }
    }
}

/// Which sessions to list.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub status: Option<String>,
    pub model: Option<String>,
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this owner's sessions (a user key's listing; an admin's `?owner=`).
    pub owner: Option<String>,
    pub project_id: Option<String>,
}

impl Conversations {
    pub async fn create_session(
        self: &Arc<Self>,
        spec: NewSession,
    ) -> Result<SessionInfo, TurnError> {
        self.check_tools_param(&spec.tools, "tools")?;
        if let Some(agent) = &spec.agent {
            self.check_agent(agent, "agent").await?;
        }
        self.check_mcp(&spec.mcp_servers, "mcp_servers")?;
        let of_mcp = |t: &str| {
            spec.mcp_servers.iter().any(|r| {
                let prefix = format!("mcp__{}", r.name());
                t == prefix
                    || t.strip_prefix(&prefix)
                        .is_some_and(|rest| rest.starts_with("__"))
            })
        };
        if let Some(t) = spec
            .allowed_tools
            .iter()
            .find(|t| !spec.tools.contains(t) && !of_mcp(t))
        {
            return Err(TurnError::invalid(
                "allowed_tools",
                format!("'{t}' is not among the session's tools or its MCP servers' tools"),
            ));
        }
        if let Some(m) = spec
            .permission_mode
            .as_deref()
            .filter(|m| !PERMISSION_MODES.contains(m))
        {
            return Err(TurnError::invalid(
                "permission_mode",
                format!(
                    "Unknown permission mode '{m}'; expected one of {}",
                    PERMISSION_MODES.join(", ")
                ),
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (workspace, temp) = match &spec.workspace {
            Some(dir) => (self.check_workspace(dir)?, false),
            None => (self.cfg.workspaces_dir().join(&id), true),
        };
        let at = now();
        let info = SessionInfo {
            id: id.clone(),
            cli_session_id: uuid::Uuid::new_v4().to_string(),
            workspace: workspace.display().to_string(),
            workspace_is_temp: temp,
            model: spec.model_id.clone(),
            agent: spec.agent.clone(),
            permission_mode: spec.permission_mode.clone(),
            system_prompt: spec.system_prompt.clone(),
            tools: spec.tools.clone(),
            allowed_tools: spec.allowed_tools.clone(),
            title: spec.title.clone(),
            status: "idle".into(),
            forked_from: None,
            owner: spec.owner.clone(),
            project_id: spec.project_id.clone(),
            created_at: at.clone(),
            updated_at: at,
            live: false,
            settings: super::settings::SessionSettings {
                mcp_servers: spec.mcp_servers.clone(),
                ..Default::default()
            },
            transcript_leaf: None,
            turn_mark: None,
        };
        self.store
            .create_session(&session_record(&info))
            .await
            .map_err(store_error)?;
        if let Some(p) = &info.project_id {
            self.store
                .set_session_project(&info.id, Some(p))
                .await
                .map_err(store_error)?;
        }
        if !info.settings.mcp_servers.is_empty() {
            self.save_session(&info).await?;
        }
        self.checkpoint(&info.id, &info.workspace).await;
        let conv = self.session_conversation(&info, workspace, temp);
        self.insert_slot(info.clone(), spec.cli_model, conv);
        Ok(info)
    }

    pub async fn session(self: &Arc<Self>, id: &str) -> Option<SessionInfo> {
        self.ensure_slot(id).await;
        self.sessions.lock().get(id).map(view)
    }

    /// After a restart a session exists only in the store: bring it back (without a process;
    /// its next turn resumes the CLI session from its transcript). A session deleted meanwhile
    /// is never brought back, even by a read that began before the delete.
    pub(crate) async fn ensure_slot(self: &Arc<Self>, id: &str) {
        if self.sessions.lock().contains_key(id) || self.sessions.is_deleted(id) {
            return;
        }
        let rec = match self.store.get_session(id).await {
            Ok(Some(rec)) if rec.source == store::source::NATIVE => rec,
            _ => return,
        };
        let mut info = info_from(&rec);
        info.project_id = self
            .projects_of(std::slice::from_ref(&rec.id))
            .await
            .remove(id);
        match self.store.get_session_settings(id).await {
            Ok(Some(v)) => info.settings = serde_json::from_value(v).unwrap_or_default(),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "could not read a session's settings")
            }
        }
        let workspace = PathBuf::from(&info.workspace);
        let mut conv = self.session_conversation(&info, workspace, info.workspace_is_temp);
        let cli_model = self.follow_record(&mut conv, &info);
        self.insert_slot(info, cli_model, conv);
    }

    /// Newest first; `next_cursor` continues after the last item of the page.
    pub async fn list_sessions(
        &self,
        f: &SessionFilter,
    ) -> Result<(Vec<SessionInfo>, Option<String>), TurnError> {
        let filter = store::SessionFilter {
            status: f.status.clone(),
            source: Some(store::source::NATIVE.into()),
            model: f.model.clone(),
            owner: f.owner.clone(),
            project_id: f.project_id.clone(),
            limit: f.limit as u32,
            cursor: f.cursor.clone(),
        };
        let page = self
            .store
            .list_sessions(&filter)
            .await
            .map_err(store_error)?;
        // Sessions this instance does not hold yet: their project is in the store only.
        let unheld: Vec<String> = {
            let sessions = self.sessions.lock();
            page.items
                .iter()
                .filter(|rec| !sessions.contains_key(&rec.id))
                .map(|rec| rec.id.clone())
                .collect()
        };
        let mut projects = self.projects_of(&unheld).await;
        let sessions = self.sessions.lock();
        let items = page
            .items
            .iter()
            .map(|rec| match sessions.get(&rec.id) {
                Some(slot) => view(slot),
                None => SessionInfo {
                    project_id: projects.remove(&rec.id),
                    ..info_from(rec)
                },
            })
            .collect();
        Ok((items, page.next_cursor))
    }

    /// Stop its process and forget it; a temporary workspace goes too, once its process is
    /// gone. A delete wins over a message racing it: the session is marked deleted before
    /// anything else, so nothing brings it back, and a turn still being set up never starts.
    pub async fn delete_session(self: &Arc<Self>, id: &str) -> Result<(), TurnError> {
        self.ensure_slot(id).await;
        let slot = {
            let mut sessions = self.sessions.lock();
            let slot = sessions.remove(id).ok_or_else(|| not_found(id))?;
            self.sessions.mark_deleted(id);
            slot
        };
        self.hooks.forget_session(id);
        self.store.delete_session(id).await.map_err(store_error)?;
        if let Some(p) = &slot.running {
            let _ = p.interrupt().await;
            self.pool.retire(p);
        }
        // A running turn's conversation finds no slot when it ends, and is forgotten then.
        if let Some(conv) = slot.conv {
            self.forget(conv);
        }
        self.drop_checkpoints(id).await;
        Ok(())
    }

    /// Send a message to a session. 409 while another turn runs in it.
    pub async fn session_turn(
        self: &Arc<Self>,
        id: &str,
        prompt: Vec<Value>,
        key: Option<String>,
    ) -> Result<TurnHandle, TurnError> {
        self.session_turn_with(id, prompt, key, TurnOverrides::default())
            .await
    }

    /// A session's turn with what this one request asks for on top of the session's settings
    /// (a compatible request attached to the session).
    pub async fn session_turn_with(
        self: &Arc<Self>,
        id: &str,
        prompt: Vec<Value>,
        key: Option<String>,
        over: TurnOverrides,
    ) -> Result<TurnHandle, TurnError> {
        if !self.drain.accepting() {
            return Err(TurnError::ShuttingDown);
        }
        refuse_shared_settings(&prompt)?;
        self.ensure_slot(id).await;
        let prompt = self.with_memory(id, prompt).await;
        if let Some(info) = self.session(id).await {
            self.checkpoint(id, &info.workspace).await;
        }
        let mut args = Some((prompt, key, over.clone()));
        let taken = self
            .sessions
            .take_for_turn(id, HOLD_WAIT, |slot| {
                let (prompt, key, over) = args.take()?;
                let conv = slot.conv.take()?;
                let req = session_request(slot, prompt, key, over);
                let before = std::mem::replace(&mut slot.info.status, "running".into());
                slot.info.updated_at = now();
                Some((conv, req, slot.broker.clone(), before))
            })
            .await;
        let (conv, mut req, broker, before) = match taken {
            Ok(Some(t)) => t,
            Err(Held::Gone) => return Err(not_found(id)),
            Ok(None) | Err(Held::ByTurn) | Err(Held::TooLong) => {
                return Err(TurnError::Busy(format!(
                    "Session {id} is busy with a turn; wait for it or interrupt it"
                )))
            }
        };
        if conv.awaiting.is_some() {
            self.return_session(conv, "awaiting_tools");
            return Err(TurnError::Busy(format!(
                "Session {id} waits for client tool results"
            )));
        }
        // Only the lease's holder runs the session's CLI (several instances, see `leases`).
        // Until it is held, a failure or a dropped request puts the conversation back as it
        // was, saving nothing (the record may be another instance's newer one).
        let this = self.clone();
        let mut waiting = scopeguard::guard(conv, move |conv| {
            this.put_back_unchanged(conv, &before);
        });
        let lease = self.leases.acquire(id).await?;
        if !waiting.hold_lease(lease) {
            // Another instance ran a turn since this one's last (or this one never did): what
            // it holds may be stale.
            if let Err(e) = self.refresh_session(id, &mut waiting, &mut req, over).await {
                // Still stale: the next turn here reads the session again.
                waiting.lease_epoch = None;
                return Err(e);
            }
        }
        let conv = ScopeGuard::into_inner(waiting);
        let mut conv = self.hold(conv, None);
        let live = conv.process.as_ref().is_some_and(|p| p.is_alive());
        if conv.started && !live && !self.ready_to_resume(&mut conv).await {
            self.rebuild_transcript(&mut conv).await;
        }
        let process = match self.acquire_process(&mut conv, &req).await {
            Ok(p) => p,
            Err(e) => {
                self.return_session(ScopeGuard::into_inner(conv), "error");
                return Err(e.into());
            }
        };
        process.handler().set_broker(Some(broker));
        {
            let mut sessions = self.sessions.lock();
            match sessions.get_mut(id) {
                Some(slot) => {
                    slot.running = Some(Arc::clone(&process));
                    // A warm process brings its own workspace and session id.
                    slot.info.workspace = conv.workspace.display().to_string();
                    slot.info.cli_session_id = conv.cli_session_id.clone();
                }
                None => {
                    // Deleted while its process was set up: the turn never starts.
                    drop(sessions);
                    process.retire();
                    self.forget(ScopeGuard::into_inner(conv));
                    return Err(not_found(id));
                }
            }
        }
        self.begin(conv, process, req, true).await
    }

    /// The CLI lost a session's transcript (or never wrote its last turn, the gateway having
    /// been killed first): write it again from the session's history in the store, which has
    /// every turn a client was told about. Without one, the session starts a new CLI session.
    pub(crate) async fn rebuild_transcript(&self, conv: &mut Conversation) {
        let events = match self
            .store
            .list_events(&conv.id, 0, store::MAX_EVENTS_PER_CALL)
            .await
        {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(session = %conv.id, error = %e, "could not read a session's history");
                vec![]
            }
        };
        let messages = super::history::messages(&events);
        let sid = uuid::Uuid::new_v4().to_string();
        let written = if messages.is_empty() {
            Ok(None)
        } else {
            transcript::write(
                &self.cfg.claude_config_dir(),
                &conv.workspace,
                &sid,
                &messages,
                &self.cli_version,
            )
        };
        conv.cli_session_id = sid;
        match written {
            Ok(Some(leaf)) => {
                tracing::info!(session = %conv.id, messages = messages.len(), "transcript rebuilt from the session's history");
                conv.leaf = Some(leaf);
            }
            Ok(None) => conv.started = false,
            Err(e) => {
                tracing::warn!(session = %conv.id, error = %e, "could not rebuild a transcript; the session starts afresh");
                conv.started = false;
            }
        }
    }

    /// Run the session's main thread as `agent` from its next turn (`None`: as no agent). The
    /// conversation continues, with its whole history, in a process launched with it.
    pub async fn set_session_agent(
        self: &Arc<Self>,
        id: &str,
        agent: Option<String>,
    ) -> Result<SessionInfo, TurnError> {
        if let Some(a) = &agent {
            self.check_agent(a, "agent").await?;
        }
        self.update_idle(id, |info| info.agent = agent).await
    }

    /// Change an idle session's record (409 while a turn runs) and save it.
    pub(crate) async fn update_idle(
        self: &Arc<Self>,
        id: &str,
        change: impl FnOnce(&mut SessionInfo),
    ) -> Result<SessionInfo, TurnError> {
        self.ensure_slot(id).await;
        let (rec, info) = {
            let mut sessions = self.sessions.lock();
            let slot = sessions.get_mut(id).ok_or_else(|| not_found(id))?;
            if slot.conv.is_none() {
                return Err(TurnError::Busy(format!(
                    "Session {id} is busy with a turn; change it when the turn has ended"
                )));
            }
            change(&mut slot.info);
            slot.info.updated_at = now();
            (session_record(&slot.info), view(slot))
        };
        self.store.update_session(&rec).await.map_err(store_error)?;
        Ok(info)
    }

    /// Stop the turn running in a session. False when none runs.
    pub async fn interrupt_session(self: &Arc<Self>, id: &str) -> Result<bool, TurnError> {
        self.ensure_slot(id).await;
        let running = {
            let sessions = self.sessions.lock();
            let slot = sessions.get(id).ok_or_else(|| not_found(id))?;
            slot.running.clone()
        };
        match running {
            Some(p) => p.interrupt().await.map(|_| true).map_err(TurnError::from),
            None => Ok(false),
        }
    }

    /// Answer a pending permission request with a `can_use_tool` response.
    pub fn answer_permission(
        &self,
        id: &str,
        request_id: &str,
        response: Value,
    ) -> Result<(), TurnError> {
        let broker = {
            let sessions = self.sessions.lock();
            sessions
                .get(id)
                .ok_or_else(|| not_found(id))?
                .broker
                .clone()
        };
        if broker.resolve(request_id, response) {
            Ok(())
        } else {
            Err(TurnError::NotFound(format!(
                "No permission request '{request_id}' is waiting in session {id}"
            )))
        }
    }

    pub async fn watch(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<broadcast::Receiver<Stamped>, TurnError> {
        self.ensure_slot(id).await;
        let sessions = self.sessions.lock();
        Ok(sessions
            .get(id)
            .ok_or_else(|| not_found(id))?
            .bus
            .subscribe())
    }

    /// Watch a session from after `after` (the history it missed, then live; see
    /// [`watch::resume`]), or live only. A watcher that falls behind catches up from the
    /// history.
    pub async fn watch_from(
        self: &Arc<Self>,
        id: &str,
        after: Option<u64>,
    ) -> Result<impl futures::Stream<Item = Watched> + Send + 'static, TurnError> {
        // Subscribed before the history is read: nothing committed in between is missed.
        let rx = self.watch(id).await?;
        let watched = watch::resume(self.store.clone(), id.to_string(), rx, after);
        Ok(watch::until_closed(watched, self.drain.subscribe()))
    }

    pub async fn history(self: &Arc<Self>, id: &str) -> Result<Vec<HistoryEntry>, TurnError> {
        self.ensure_slot(id).await;
        if !self.sessions.lock().contains_key(id) {
            return Err(not_found(id));
        }
        let events = self
            .store
            .list_events(id, 0, store::MAX_EVENTS_PER_CALL)
            .await
            .map_err(store_error)?;
        Ok(events.into_iter().map(HistoryEntry::from).collect())
    }

    pub(crate) fn check_builtin_tools(&self, tools: &[String]) -> Result<(), TurnError> {
        self.check_tools_param(tools, "builtin_tools")
    }

    /// Every tool must be allowed by the deployment; `param` is the field's name in the API
    /// that asked (`tools` on the native API, `builtin_tools` on the compatible ones).
    pub(crate) fn check_tools_param(&self, tools: &[String], param: &str) -> Result<(), TurnError> {
        match tools.iter().find(|t| !self.cfg.builtin_tools.contains(t)) {
            None => Ok(()),
            Some(t) => Err(TurnError::invalid(
                param,
                format!(
                    "The built-in tool '{t}' is not allowed by this gateway's policy (allowed: {})",
                    if self.cfg.builtin_tools.is_empty() {
                        "none".to_string()
                    } else {
                        self.cfg.builtin_tools.join(", ")
                    }
                ),
            )),
        }
    }

    /// Where a session's record says its transcript stands, put on its conversation: whether
    /// it has started (a clean turn was recorded, or, for a session recorded before these were
    /// kept, the CLI has a transcript), its leaf and its turn mark, which the next resume
    /// checks the transcript against. Returns the record's CLI model.
    pub(crate) fn follow_record(
        &self,
        conv: &mut Conversation,
        info: &SessionInfo,
    ) -> crate::domain::models::CliModel {
        conv.started = info.transcript_leaf.is_some()
            || transcript::session_file(
                &self.cfg.claude_config_dir(),
                &conv.workspace,
                &info.cli_session_id,
            )
            .is_file();
        conv.leaf = info.transcript_leaf.clone();
        if let Some(mark) = &info.turn_mark {
            conv.turn_mark = mark.clone();
        }
        self.models
            .resolve(&info.model)
            .map(|m| m.cli_model.clone())
            .unwrap_or_default()
    }

    pub(crate) fn session_conversation(
        &self,
        info: &SessionInfo,
        workspace: PathBuf,
        temp: bool,
    ) -> Conversation {
        let mut conv = Conversation::blank(
            info.id.clone(),
            info.cli_session_id.clone(),
            workspace,
            info.system_prompt.clone(),
        );
        conv.workspace_is_temp = temp;
        conv.native = Some(info.id.clone());
        conv.owner = info.owner.clone();
        conv
    }

    /// Hold a session's slot (a deleted session is never brought back).
    pub(crate) fn insert_slot(
        self: &Arc<Self>,
        info: SessionInfo,
        cli_model: crate::domain::models::CliModel,
        mut conv: Conversation,
    ) {
        let (bus, _) = broadcast::channel(1024);
        conv.bus = Some(bus.clone());
        let id = info.id.clone();
        let slot = SessionSlot {
            info,
            cli_model,
            conv: Some(conv),
            running: None,
            bus,
            broker: PermissionBroker::new(Duration::from_secs(self.cfg.permission_timeout_secs)),
        };
        let mut sessions = self.sessions.lock();
        if !sessions.contains_key(&id) && !self.sessions.is_deleted(&id) {
            sessions.insert(id, slot);
        }
    }
}

/// A session's next turn as its record and settings say, with one request's overrides.
pub(crate) fn session_request(
    slot: &super::session_table::SessionSlot,
    prompt: Vec<Value>,
    key: Option<String>,
    over: TurnOverrides,
) -> TurnRequest {
    let info = &slot.info;
    let s = &info.settings;
    TurnRequest {
        model_id: info.model.clone(),
        cli_model: slot.cli_model.clone(),
        system: info.system_prompt.clone(),
        prompt,
        builtin_tools: info.tools.clone(),
        approved_tools: Some(info.allowed_tools.clone()),
        denied_tools: s.denied_tools.clone(),
        mcp_servers: s.mcp_servers.clone(),
        parallel_tool_calls: true,
        slash_commands: true,
        key,
        owner: info.owner.clone(),
        max_output_tokens: over.max_output_tokens,
        stop: over.stop,
        options: ClaudeOptions {
            permission_mode: info.permission_mode.clone(),
            agent: info.agent.clone(),
            thinking_budget: over
                .thinking_budget
                .or_else(|| s.thinking.as_ref().and_then(|t| t.budget())),
            effort: s.effort.clone(),
            append_system: s.append_system_prompt.clone(),
            max_turns: s.max_turns,
            sampling: over.sampling,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// `/config` (`/settings`) writes the CLI's settings file, which every session of this
/// gateway shares, and switches the running process's model: a session's commands must change
/// that session only. The CLI runs the last text block as a command when it starts with `/`.
fn refuse_shared_settings(prompt: &[Value]) -> Result<(), TurnError> {
    let last = prompt
        .iter()
        .rev()
        .find(|b| b["type"] == "text")
        .and_then(|b| b["text"].as_str())
        .unwrap_or("");
    let command = last.split_whitespace().next().unwrap_or("");
    if last.starts_with('/') && matches!(command, "/config" | "/settings") {
        return Err(TurnError::invalid(
            "content",
            format!(
                "{command} would change the CLI settings every session shares; a session's \
                 model and permissions are set when it is created"
            ),
        ));
    }
    Ok(())
}

pub(crate) fn store_error(e: StoreError) -> TurnError {
    match e {
        StoreError::NotFound(m) => TurnError::NotFound(m),
        StoreError::Invalid(m) => TurnError::invalid("cursor", m),
        other => TurnError::Claude(crate::claude::ClaudeError::protocol(format!(
            "store: {other}"
        ))),
    }
}

pub(crate) fn not_found(id: &str) -> TurnError {
    TurnError::NotFound(format!("No session with the id '{id}'"))
}
