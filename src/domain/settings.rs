//! A native session's settings at run time: what `PATCH /api/sessions/{id}`, its context and
//! thinking change, and what a session's live process reports through the control protocol
//! (context usage, MCP status), its cost, reopening it (`resume`) and stopping one of its
//! subagent tasks. A setting the CLI can change in a running process goes through its control
//! request; one only a launch flag sets takes effect in the next turn's new process, which
//! resumes the conversation. Must not: know about HTTP.

use std::sync::Arc;
use std::time::Duration;

use scopeguard::ScopeGuard;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::conversations::{Conversations, TurnError};
use super::session_table::{now, session_record, view, SessionInfo};
use crate::domain::turn::{EFFORTS, MIN_THINKING_BUDGET, PERMISSION_MODES};

/// How long a control request to a session's process may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

/// Cost, tokens and turns: a session's in all, or one model's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CostTotals {
    pub cost_usd: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub turns: i64,
    pub duration_ms: i64,
}

impl CostTotals {
    fn add(&mut self, o: &CostTotals) {
        self.cost_usd += o.cost_usd;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cache_creation_input_tokens += o.cache_creation_input_tokens;
        self.cache_read_input_tokens += o.cache_read_input_tokens;
        self.turns += o.turns;
        self.duration_ms += o.duration_ms;
    }
}

/// `GET /api/sessions/{id}/cost`: the totals, and (`by_model`) each model's, in the order the
/// store gives them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionCost {
    #[serde(flatten)]
    pub total: CostTotals,
    #[schema(value_type = std::collections::BTreeMap<String, CostTotals>)]
    pub by_model: serde_json::Map<String, Value>,
    pub session_id: String,
}

/// How the model thinks: `enabled` (with `budget_tokens`), `disabled` or `adaptive` (the
/// model's own default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Thinking {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u32>,
}

impl Thinking {
    pub fn check(&self, param: &str) -> Result<(), TurnError> {
        match (self.kind.as_str(), self.budget_tokens) {
            ("enabled", Some(n)) if n >= MIN_THINKING_BUDGET => Ok(()),
            ("enabled", _) => Err(TurnError::invalid(
                format!("{param}.budget_tokens"),
                format!("enabled thinking needs budget_tokens of at least {MIN_THINKING_BUDGET}"),
            )),
            ("disabled" | "adaptive", None) => Ok(()),
            ("disabled" | "adaptive", Some(_)) => Err(TurnError::invalid(
                format!("{param}.budget_tokens"),
                "budget_tokens goes with type enabled only",
            )),
            (other, _) => Err(TurnError::invalid(
                format!("{param}.type"),
                format!("Unknown thinking type '{other}'; expected enabled, disabled or adaptive"),
            )),
        }
    }

    /// The CLI's `max_thinking_tokens`: `Some(0)` off, `None` the model's default.
    pub fn budget(&self) -> Option<u32> {
        match self.kind.as_str() {
            "disabled" => Some(0),
            "enabled" => self.budget_tokens,
            _ => None,
        }
    }
}

/// The settings a session has beyond its record's own columns (stored apart, as one object).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionSettings {
    #[serde(default)]
    pub thinking: Option<Thinking>,
    #[serde(default)]
    pub effort: Option<String>,
    #[serde(default)]
    pub max_turns: Option<u32>,
    /// Added to the system prompt (the CLI's own, an agent's, or the session's).
    #[serde(default)]
    pub append_system_prompt: Option<String>,
    /// Tools the model may not use, whatever else allows them (`tool-permissions`).
    #[serde(default)]
    pub denied_tools: Vec<String>,
    /// External MCP servers the session enabled (see `domain::mcp`).
    #[serde(default)]
    pub mcp_servers: Vec<crate::domain::mcp::McpRef>,
}

/// What `PATCH /api/sessions/{id}` may change; `None` keeps a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SessionPatch {
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub title: Option<String>,
    pub thinking: Option<Thinking>,
    pub effort: Option<String>,
    pub max_turns: Option<u32>,
}

impl SessionPatch {
    /// Only settings that may change while a turn runs (the permission mode goes to the
    /// running CLI at once; the title is the gateway's).
    fn safe_mid_turn(&self) -> bool {
        self.model.is_none()
            && self.thinking.is_none()
            && self.effort.is_none()
            && self.max_turns.is_none()
    }
}

impl Conversations {
    /// Change a session's settings from its next turn. 409 while a turn runs, unless only
    /// the permission mode or title change.
    pub async fn patch_session(
        self: &Arc<Self>,
        id: &str,
        p: SessionPatch,
    ) -> Result<SessionInfo, TurnError> {
        let cli_model = match &p.model {
            Some(m) => Some(
                self.models
                    .resolve(m)
                    .ok_or_else(|| {
                        TurnError::invalid(
                            "model",
                            format!("The model '{m}' is not served by this gateway"),
                        )
                    })?
                    .cli_model
                    .clone(),
            ),
            None => None,
        };
        if let Some(m) = p
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
        if let Some(e) = p.effort.as_deref().filter(|e| !EFFORTS.contains(e)) {
            return Err(TurnError::invalid(
                "effort",
                format!(
                    "Unknown effort '{e}'; expected one of {}",
                    EFFORTS.join(", ")
                ),
            ));
        }
        if p.max_turns == Some(0) {
            return Err(TurnError::invalid(
                "max_turns",
                "max_turns must be at least 1",
            ));
        }
        if let Some(t) = &p.thinking {
            t.check("thinking")?;
        }
        self.ensure_session(id).await?;
        let mid_turn = p.safe_mid_turn();
        let (info, running) = {
            let mut sessions = self.sessions.lock();
            let slot = sessions.get_mut(id).ok_or_else(|| not_found(id))?;
            if slot.conv.is_none() && !mid_turn {
                return Err(busy(id));
            }
            let i = &mut slot.info;
            if let Some(m) = p.model {
                i.model = m;
                slot.cli_model = cli_model.unwrap_or_default();
            }
            if p.permission_mode.is_some() {
                i.permission_mode = p.permission_mode.clone();
            }
            if p.title.is_some() {
                i.title = p.title;
            }
            if p.thinking.is_some() {
                i.settings.thinking = p.thinking;
            }
            if p.effort.is_some() {
                i.settings.effort = p.effort;
            }
            if p.max_turns.is_some() {
                i.settings.max_turns = p.max_turns;
            }
            i.updated_at = now();
            (view(slot), slot.running.clone())
        };
        // The running turn's next tool call already follows the new mode.
        if let (Some(mode), Some(proc_)) = (&p.permission_mode, running) {
            if let Err(e) = proc_
                .control(
                    json!({"subtype": "set_permission_mode", "mode": mode}),
                    CONTROL_TIMEOUT,
                )
                .await
            {
                tracing::warn!(session = %id, error = %e, "the running CLI refused the permission mode");
            }
        }
        self.save_session(&info).await?;
        Ok(info)
    }

    /// The system prompt and what is added to it, from the next turn (in a new process: the
    /// CLI fixes its system prompt at `initialize`).
    pub async fn set_context(
        self: &Arc<Self>,
        id: &str,
        system_prompt: Option<Option<String>>,
        append: Option<Option<String>>,
    ) -> Result<SessionInfo, TurnError> {
        self.ensure_session(id).await?;
        let (info, old) = {
            let mut sessions = self.sessions.lock();
            let slot = sessions.get_mut(id).ok_or_else(|| not_found(id))?;
            let conv = slot.conv.as_mut().ok_or_else(|| busy(id))?;
            if let Some(s) = system_prompt {
                slot.info.system_prompt = s.clone();
                conv.system = s;
            }
            if let Some(a) = append {
                slot.info.settings.append_system_prompt = a;
            }
            let old = conv.process.take();
            slot.info.updated_at = now();
            (view(slot), old)
        };
        if let Some(p) = old {
            self.pool.retire(&p);
        }
        self.save_session(&info).await?;
        Ok(info)
    }

    pub async fn set_thinking(
        self: &Arc<Self>,
        id: &str,
        thinking: Thinking,
    ) -> Result<SessionInfo, TurnError> {
        thinking.check("thinking")?;
        self.patch_session(
            id,
            SessionPatch {
                thinking: Some(thinking),
                ..Default::default()
            },
        )
        .await
    }

    /// `get_context_usage` of the session's process (started from its transcript if it has
    /// none).
    pub async fn context_usage(self: &Arc<Self>, id: &str) -> Result<Value, TurnError> {
        self.session_control(id, json!({"subtype": "get_context_usage"}))
            .await
    }

    pub async fn mcp_status(self: &Arc<Self>, id: &str) -> Result<Value, TurnError> {
        self.session_control(id, json!({"subtype": "mcp_status"}))
            .await
    }

    /// Stop one of the running turn's subagent tasks.
    pub async fn stop_task(self: &Arc<Self>, id: &str, task_id: &str) -> Result<(), TurnError> {
        self.ensure_session(id).await?;
        let running = {
            let sessions = self.sessions.lock();
            sessions
                .get(id)
                .ok_or_else(|| not_found(id))?
                .running
                .clone()
        };
        let p = running.ok_or_else(|| {
            TurnError::Busy(format!(
                "No turn runs in session {id}, so no task '{task_id}' runs"
            ))
        })?;
        // The CLI answers a stop of a task it does not know with success.
        if !self.tasks.is_running(id, task_id) {
            return Err(TurnError::NotFound(format!(
                "No task '{task_id}' runs in session {id}"
            )));
        }
        p.control(
            json!({"subtype": "stop_task", "task_id": task_id}),
            CONTROL_TIMEOUT,
        )
        .await
        .map(|_| ())
        .map_err(|e| match e {
            crate::claude::ClaudeError::Protocol { .. } => {
                TurnError::NotFound(format!("No task '{task_id}' runs in session {id}"))
            }
            other => other.into(),
        })
    }

    /// Cost, tokens and turns of the session, in all and by model.
    pub async fn session_cost(self: &Arc<Self>, id: &str) -> Result<SessionCost, TurnError> {
        self.ensure_session(id).await?;
        let rows =
            self.store.usage_by_model(id).await.map_err(|e| {
                TurnError::Claude(crate::claude::ClaudeError::protocol(e.to_string()))
            })?;
        let mut cost = SessionCost {
            total: CostTotals::default(),
            by_model: serde_json::Map::new(),
            session_id: id.to_string(),
        };
        for (model, u) in rows {
            let entry = CostTotals {
                cost_usd: u.cost_usd.unwrap_or(0.0),
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cache_creation_input_tokens: u.cache_creation_input_tokens,
                cache_read_input_tokens: u.cache_read_input_tokens,
                turns: u.requests,
                duration_ms: u.duration_ms,
            };
            cost.total.add(&entry);
            cost.by_model
                .insert(model, serde_json::to_value(entry).unwrap_or(Value::Null));
        }
        Ok(cost)
    }

    /// Reopen a session: make sure a live process holds its conversation (started from its
    /// transcript, or rebuilt from its history). Idempotent; 409 while a turn runs.
    pub async fn resume_session(self: &Arc<Self>, id: &str) -> Result<SessionInfo, TurnError> {
        self.ensure_session(id).await?;
        let (conv, req) = {
            let mut sessions = self.sessions.lock();
            let slot = sessions.get_mut(id).ok_or_else(|| not_found(id))?;
            let conv = slot.conv.take().ok_or_else(|| busy(id))?;
            let req = super::sessions::session_request(slot, vec![], None, Default::default());
            (conv, req)
        };
        if conv.process.as_ref().is_some_and(|p| p.is_alive()) {
            self.return_session(conv, "idle");
            return self.session(id).await.ok_or_else(|| not_found(id));
        }
        let mut conv = self.hold(conv, None);
        if conv.started && !self.ready_to_resume(&mut conv).await {
            self.rebuild_transcript(&mut conv).await;
        }
        match self.acquire_process(&mut conv, &req).await {
            Ok(lease) => {
                let p = lease.hand_on();
                self.pool.release(&p);
                let mut conv = ScopeGuard::into_inner(conv);
                conv.process = Some(p);
                self.return_session(conv, "idle");
            }
            Err(e) => {
                self.return_session(ScopeGuard::into_inner(conv), "error");
                return Err(e.into());
            }
        }
        self.session(id).await.ok_or_else(|| not_found(id))
    }

    /// A control request to the session's process: the running turn's, else its idle one
    /// (held like a turn meanwhile), else one started by `resume`.
    pub(crate) async fn session_control(
        self: &Arc<Self>,
        id: &str,
        request: Value,
    ) -> Result<Value, TurnError> {
        self.ensure_session(id).await?;
        for _ in 0..2 {
            let taken = {
                let mut sessions = self.sessions.lock();
                let slot = sessions.get_mut(id).ok_or_else(|| not_found(id))?;
                if let Some(p) = slot.running.clone() {
                    Err(p)
                } else {
                    let live = slot
                        .conv
                        .as_ref()
                        .is_some_and(|c| c.process.as_ref().is_some_and(|p| p.is_alive()));
                    if live {
                        Ok(Some((slot.conv.take(), slot.info.status.clone())))
                    } else {
                        Ok(None)
                    }
                }
            };
            match taken {
                Err(running) => return Ok(running.control(request, CONTROL_TIMEOUT).await?),
                Ok(Some((Some(conv), status))) => {
                    let p = conv.process.clone().ok_or_else(|| busy(id))?;
                    let result = match self.pool.claim(&p) {
                        Some(lease) => {
                            let r = lease.control(request.clone(), CONTROL_TIMEOUT).await;
                            self.pool.release(&lease.hand_on());
                            r
                        }
                        None => Err(crate::claude::ClaudeError::protocol(
                            "the session's process is busy",
                        )),
                    };
                    self.return_session(conv, &status);
                    return Ok(result?);
                }
                Ok(_) => {
                    self.resume_session(id).await?;
                }
            }
        }
        Err(busy(id))
    }

    async fn ensure_session(self: &Arc<Self>, id: &str) -> Result<(), TurnError> {
        self.session(id)
            .await
            .map(|_| ())
            .ok_or_else(|| not_found(id))
    }

    /// Save a session's record and its settings.
    pub(crate) async fn save_session(&self, info: &SessionInfo) -> Result<(), TurnError> {
        let settings = serde_json::to_value(&info.settings).unwrap_or(Value::Null);
        let store_err = |e: crate::store::StoreError| {
            TurnError::Claude(crate::claude::ClaudeError::protocol(e.to_string()))
        };
        self.store
            .update_session(&session_record(info))
            .await
            .map_err(store_err)?;
        self.store
            .put_session_settings(&info.id, &settings)
            .await
            .map_err(store_err)?;
        Ok(())
    }
}

fn not_found(id: &str) -> TurnError {
    TurnError::NotFound(format!("No session with the id '{id}'"))
}

fn busy(id: &str) -> TurnError {
    TurnError::Busy(format!(
        "Session {id} is busy with a turn; change it when the turn has ended"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(kind: &str, budget: Option<u32>) -> Thinking {
        Thinking {
            kind: kind.into(),
            budget_tokens: budget,
        }
    }

    #[test]
    fn thinking_is_checked_and_becomes_a_budget() {
        assert_eq!(t("enabled", Some(2048)).budget(), Some(2048));
        assert_eq!(t("disabled", None).budget(), Some(0));
        assert_eq!(t("adaptive", None).budget(), None);
        assert!(t("enabled", Some(2048)).check("thinking").is_ok());
        for (bad, param) in [
            (t("enabled", None), "thinking.budget_tokens"),
            (t("enabled", Some(10)), "thinking.budget_tokens"),
            (t("disabled", Some(2048)), "thinking.budget_tokens"),
            (t("sometimes", None), "thinking.type"),
        ] {
            match bad.check("thinking") {
                Err(TurnError::Invalid { param: p, .. }) => assert_eq!(p, param),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn only_the_mode_and_title_change_mid_turn() {
        let p = SessionPatch {
            permission_mode: Some("acceptEdits".into()),
            title: Some("t".into()),
            ..Default::default()
        };
        assert!(p.safe_mid_turn());
        let p = SessionPatch {
            model: Some("haiku".into()),
            ..Default::default()
        };
        assert!(!p.safe_mid_turn());
    }
}
