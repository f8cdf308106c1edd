//! The gateway's hooks: the deployment's subscriptions (from the config, on every session)
//! and each session's own, the decide requests waiting for an answer over the API, and the
//! dispatch of the CLI's hook calls to them ([`SessionHooks`], one per process).
//!
//! Every decision is recorded in one place, [`record`], in the log and the audit trail; the
//! hub also carries the audit log's writer for the rest of the session domain (see
//! [`HookHub::audit`]), and its dispatchers audit the gateway's own tool decisions
//! ([`HookDispatch::decided`]). Must not: wait on anything while
//! routing a call (it runs on the process's reader), or keep a session's hooks after the
//! session is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{
    public_input, webhook, Checked, HookAnswer, HookEvent, HookSettings, HookSpec, Merged, Mode,
    Outcome, Subscription,
};
use crate::claude::control::{HookCall, HookDispatch, HookStep, ToolDecision};
use crate::claude::Event;
use crate::config::Config;
use crate::domain::conversation::TurnError;
use crate::domain::conversations::Conversations;
use crate::domain::session_table::now;

/// A decide request waiting for an answer over the API.
struct Pending {
    session: String,
    event: HookEvent,
    view: PendingView,
    /// The answer, and who gave it (the caller's key label).
    tx: oneshot::Sender<(Checked, String)>,
}

/// A waiting request as the API lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PendingView {
    pub request_id: String,
    pub hook_event: HookEvent,
    pub hook_ids: Vec<String>,
    pub input: Value,
    pub timeout_secs: u64,
    pub created_at: String,
}

pub struct HookHub {
    settings: HookSettings,
    deployment: Vec<Subscription>,
    sessions: Mutex<HashMap<String, Vec<Subscription>>>,
    pending: Mutex<HashMap<String, Pending>>,
    client: reqwest::Client,
    /// The audit log's writer, set once at start-up (`server`); before that nothing is kept.
    audit: std::sync::OnceLock<crate::domain::audit::AuditLog>,
}

impl HookHub {
    /// The deployment's hooks. `Config::validate` refused bad ones before the start; should
    /// they come here anyway, no hook runs and the error is logged.
    pub fn new(cfg: &Config) -> HookHub {
        HookHub::build(cfg).unwrap_or_else(|e| {
            tracing::error!(target: "ccgw::hooks", error = %e, "hook settings are not valid: no hooks run");
            HookHub {
                settings: HookSettings {
                    webhook_hosts: vec![],
                    default_timeout_secs: 30,
                    max_timeout_secs: 30,
                    events: vec![],
                    default_outcome: Outcome::Deny,
                    webhook_retries: 0,
                    secret: None,
                },
                deployment: vec![],
                sessions: Mutex::default(),
                pending: Mutex::default(),
                client: webhook::client(),
                audit: std::sync::OnceLock::new(),
            }
        })
    }

    /// The deployment's hooks, checked (a bad `[[hooks]]` entry is an error naming it).
    pub fn build(cfg: &Config) -> Result<HookHub, String> {
        let settings = HookSettings::from_config(cfg)?;
        let deployment = cfg
            .hooks
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let sub = settings
                    .subscription(spec, "deployment")
                    .map_err(|e| match e {
                        TurnError::Invalid { param, message } => {
                            format!("hooks[{i}].{param}: {message}")
                        }
                        other => format!("hooks[{i}]: {other}"),
                    })?;
                // The compatible APIs' conversations have nobody to answer over the API.
                if sub.asks_the_api() {
                    return Err(format!(
                        "hooks[{i}].url: a deployment's decide hook is answered by a webhook"
                    ));
                }
                Ok(sub)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HookHub {
            settings,
            deployment,
            sessions: Mutex::default(),
            pending: Mutex::default(),
            client: webhook::client(),
            audit: std::sync::OnceLock::new(),
        })
    }

    /// Give the hub the audit log's writer (once; later calls are ignored).
    pub fn set_audit(&self, audit: crate::domain::audit::AuditLog) {
        let _ = self.audit.set(audit);
    }

    /// Queue an audit entry (nothing when the gateway runs without an audit writer).
    pub fn audit(&self, e: crate::domain::audit::Entry) {
        if let Some(a) = self.audit.get() {
            a.record(e);
        }
    }

    /// The dispatcher of the process serving `session` (a native session, or a compatible-API
    /// conversation, which has the deployment's hooks only).
    pub fn for_session(self: &Arc<Self>, session: &str) -> Arc<dyn HookDispatch> {
        Arc::new(SessionHooks {
            hub: self.clone(),
            session: session.to_string(),
        })
    }

    fn subscriptions(&self, session: &str) -> Vec<Subscription> {
        let own = self
            .sessions
            .lock()
            .map(|s| s.get(session).cloned().unwrap_or_default())
            .unwrap_or_default();
        self.deployment.iter().cloned().chain(own).collect()
    }

    fn matching(&self, session: &str, event: HookEvent, input: &Value) -> Vec<Subscription> {
        let wants = |s: &&Subscription| s.wants(event, input);
        let mut out: Vec<Subscription> = self.deployment.iter().filter(wants).cloned().collect();
        if let Ok(sessions) = self.sessions.lock() {
            if let Some(own) = sessions.get(session) {
                out.extend(own.iter().filter(wants).cloned());
            }
        }
        out
    }

    fn pending_of(&self, session: &str) -> Vec<PendingView> {
        self.pending
            .lock()
            .map(|p| {
                p.values()
                    .filter(|p| p.session == session)
                    .map(|p| p.view.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A deleted session's subscriptions and waiting requests go with it.
    pub fn forget_session(&self, session: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(session);
        }
        if let Ok(mut p) = self.pending.lock() {
            p.retain(|_, p| p.session != session);
        }
    }
}

/// A session's subscriptions and waiting requests, as `GET …/hooks` shows them.
/// An answered decide request: what the hook was told.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HookDecision {
    pub request_id: String,
    pub decision: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookList {
    pub data: Vec<Subscription>,
    pub pending: Vec<PendingView>,
}

impl Conversations {
    async fn known_session(self: &Arc<Self>, id: &str) -> Result<(), TurnError> {
        match self.session(id).await {
            Some(_) => Ok(()),
            None => Err(TurnError::NotFound(format!("No session {id}"))),
        }
    }

    pub async fn subscribe_hook(
        self: &Arc<Self>,
        id: &str,
        spec: HookSpec,
    ) -> Result<Subscription, TurnError> {
        self.known_session(id).await?;
        let sub = self.hooks.settings.subscription(&spec, "session")?;
        if let Ok(mut s) = self.hooks.sessions.lock() {
            s.entry(id.to_string()).or_default().push(sub.clone());
        }
        tracing::info!(target: "ccgw::hooks", session = id, hook_id = %sub.id,
            event = sub.event.as_str(), mode = ?sub.mode, webhook = sub.url.is_some(), "hook subscribed");
        Ok(sub)
    }

    pub async fn hooks_of(self: &Arc<Self>, id: &str) -> Result<HookList, TurnError> {
        self.known_session(id).await?;
        Ok(HookList {
            data: self.hooks.subscriptions(id),
            pending: self.hooks.pending_of(id),
        })
    }

    pub async fn unsubscribe_hook(
        self: &Arc<Self>,
        id: &str,
        hook_id: &str,
    ) -> Result<(), TurnError> {
        self.known_session(id).await?;
        if self.hooks.deployment.iter().any(|s| s.id == hook_id) {
            return Err(TurnError::Forbidden(format!(
                "The hook {hook_id} is the deployment's; it is removed in the config"
            )));
        }
        let removed = self.hooks.sessions.lock().is_ok_and(|mut s| {
            s.get_mut(id).is_some_and(|subs| {
                let before = subs.len();
                subs.retain(|s| s.id != hook_id);
                subs.len() < before
            })
        });
        if !removed {
            return Err(TurnError::NotFound(format!(
                "Session {id} has no hook {hook_id}"
            )));
        }
        tracing::info!(target: "ccgw::hooks", session = id, hook_id, "hook removed");
        Ok(())
    }

    /// Answer a waiting decide request with the CLI's hook output fields. A bad answer is a
    /// 400 and leaves the request waiting.
    pub async fn answer_hook(
        self: &Arc<Self>,
        id: &str,
        request_id: &str,
        answer: HookAnswer,
        by: &str,
    ) -> Result<HookDecision, TurnError> {
        self.known_session(id).await?;
        let not_waiting = || {
            TurnError::NotFound(format!(
                "No hook request {request_id} waits in session {id}"
            ))
        };
        let event = {
            let pending = self.hooks.pending.lock().map_err(|_| not_waiting())?;
            match pending.get(request_id) {
                Some(p) if p.session == id => p.event,
                _ => return Err(not_waiting()),
            }
        };
        let checked = answer.check(event)?;
        let decision = checked.decision();
        let waiter = self
            .hooks
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(request_id))
            .ok_or_else(not_waiting)?;
        waiter
            .tx
            .send((checked, by.to_string()))
            .map_err(|_| not_waiting())?;
        Ok(HookDecision {
            request_id: request_id.to_string(),
            decision,
        })
    }

    /// Give a process the hooks of the conversation it serves.
    pub(crate) fn hook_process(&self, p: &crate::claude::process::CliProcess, conversation: &str) {
        p.handler()
            .set_hooks(Some(self.hooks.for_session(conversation)));
    }
}

/// The dispatcher of one process: the hub, seen from the session it serves.
pub struct SessionHooks {
    hub: Arc<HookHub>,
    session: String,
}

/// One answer to a hook call, and where it came from.
struct Answered {
    hook_ids: Vec<String>,
    /// `api`, `webhook`, `default` (nobody answered in time) or `withdrawn`.
    source: &'static str,
    checked: Checked,
    /// Who answered over the API, or why a webhook gave no answer.
    detail: Option<String>,
}

impl HookDispatch for SessionHooks {
    fn route(&self, call: HookCall<'_>) -> Option<HookStep> {
        let event = HookEvent::parse(call.event)?;
        let subs = self.hub.matching(&self.session, event, call.input);
        if subs.is_empty() {
            return None;
        }
        let input = public_input(call.input);
        let request_id = call.request_id.to_string();
        let mut announce = Vec::new();
        let mut waits: Vec<BoxFuture<'static, Answered>> = Vec::new();
        let (watch, decide): (Vec<_>, Vec<_>) =
            subs.into_iter().partition(|s| s.mode == Mode::Watch);
        if !watch.is_empty() {
            announce.push(Event::Hook {
                hook_event: event.as_str().into(),
                hook_ids: watch.iter().map(|s| s.id.clone()).collect(),
                input: input.clone(),
            });
        }
        for s in watch.iter().filter(|s| s.webhook.is_some()) {
            // The turn goes on: the webhook is told, and its answer is not awaited.
            let fut = self.webhook(s, event, &request_id, &input);
            tokio::spawn(async move {
                let a = fut.await;
                if let Some(detail) = a.detail {
                    tracing::warn!(target: "ccgw::hooks", hook_ids = ?a.hook_ids, error = %detail, "watch webhook not delivered");
                }
            });
        }
        let (api, hooks): (Vec<_>, Vec<_>) = decide.into_iter().partition(|s| s.asks_the_api());
        if !api.is_empty() {
            let timeout = api.iter().map(|s| s.timeout_secs).max().unwrap_or(1);
            // The strictest default of the subscriptions that wait.
            let default = if api.iter().any(|s| s.default == Outcome::Deny) {
                Outcome::Deny
            } else {
                Outcome::Continue
            };
            let hook_ids: Vec<String> = api.iter().map(|s| s.id.clone()).collect();
            let view = PendingView {
                request_id: request_id.clone(),
                hook_event: event,
                hook_ids: hook_ids.clone(),
                input: input.clone(),
                timeout_secs: timeout,
                created_at: now(),
            };
            let (tx, rx) = oneshot::channel();
            if let Ok(mut p) = self.hub.pending.lock() {
                p.insert(
                    request_id.clone(),
                    Pending {
                        session: self.session.clone(),
                        event,
                        view,
                        tx,
                    },
                );
            }
            announce.push(Event::HookRequest {
                request_id: request_id.clone(),
                hook_event: event.as_str().into(),
                hook_ids: hook_ids.clone(),
                input: input.clone(),
                timeout_secs: timeout,
            });
            let hub = self.hub.clone();
            let rid = request_id.clone();
            waits.push(Box::pin(async move {
                let got = tokio::time::timeout(Duration::from_secs(timeout), rx).await;
                if let Ok(mut p) = hub.pending.lock() {
                    p.remove(&rid);
                }
                let first = hook_ids.first().cloned().unwrap_or_default();
                let (source, checked, detail) = match got {
                    Ok(Ok((c, by))) => ("api", c, Some(format!("answered by {by}"))),
                    // Withdrawn by the CLI (its answer is then ignored) or dropped with
                    // the session: the default holds, so nothing runs unasked.
                    Ok(Err(_)) => (
                        "withdrawn",
                        Checked::default_for(event, default, &first),
                        None,
                    ),
                    Err(_) => (
                        "default",
                        Checked::default_for(event, default, &first),
                        None,
                    ),
                };
                Answered {
                    hook_ids,
                    source,
                    checked,
                    detail,
                }
            }));
        }
        for s in &hooks {
            waits.push(self.webhook(s, event, &request_id, &input));
        }
        if waits.is_empty() {
            return Some(HookStep {
                announce,
                answer: Box::pin(std::future::ready(json!({"continue": true}))),
            });
        }
        let (session, tool, hub) = (
            self.session.clone(),
            input["tool_name"].as_str().map(String::from),
            self.hub.clone(),
        );
        Some(HookStep {
            announce,
            answer: Box::pin(async move {
                let mut merged = Merged::default();
                for a in join_all(waits).await {
                    record(&hub, &session, &request_id, event, tool.as_deref(), &a);
                    merged.add(a.checked);
                }
                merged.cli_output(event)
            }),
        })
    }

    fn decided(&self, d: ToolDecision<'_>) {
        use crate::domain::audit::{self, kind, Entry};
        let tool_kind = audit::tool_kind(d.tool);
        if d.stage == "pre_tool_use" {
            // Every model tool call passes the gateway's check before it runs: the call.
            self.hub.audit(audit::tool_call(
                &self.session,
                d.tool,
                tool_kind,
                d.input,
                json!({"tool_use_id": d.tool_use_id,
                       "outcome": if d.allowed { "allowed" } else { "refused" },
                       "reason": d.reason}),
            ));
            if d.allowed {
                return;
            }
        }
        let (input, truncated) = audit::cap_input(d.input);
        self.hub.audit(
            Entry::new(kind::PERMISSION_DECISION)
                .session(&self.session)
                .subject(d.tool)
                .detail(json!({
                    "decision": if d.allowed { "allowed" } else { "denied" },
                    // Nobody answering leaves the gateway's default: refused.
                    "by": if d.stage == "unanswered" { d.reason.unwrap_or("timeout") } else { "policy" },
                    "stage": d.stage,
                    "tool_use_id": d.tool_use_id,
                    "tool_kind": tool_kind,
                    "reason": d.reason,
                    "input": input,
                    "input_truncated": truncated,
                })),
        );
    }

    fn cancel(&self, request_id: &str) {
        // Dropping the waiter ends its wait at once.
        if let Ok(mut p) = self.hub.pending.lock() {
            p.remove(request_id);
        }
    }
}

impl SessionHooks {
    /// Deliver a call to a subscription's webhook; its answer (or the default).
    fn webhook(
        &self,
        s: &Subscription,
        event: HookEvent,
        request_id: &str,
        input: &Value,
    ) -> BoxFuture<'static, Answered> {
        let hub = self.hub.clone();
        let url = s.webhook.clone();
        let (hook_id, mode, timeout, default) = (s.id.clone(), s.mode, s.timeout_secs, s.default);
        let body = json!({
            "session_id": self.session,
            "request_id": request_id,
            "hook_id": hook_id,
            "hook_event": event.as_str(),
            "mode": mode,
            "input": input,
        });
        Box::pin(async move {
            let hook_ids = vec![hook_id.clone()];
            let fallback = |detail: String| Answered {
                hook_ids: hook_ids.clone(),
                source: "default",
                checked: Checked::default_for(event, default, &hook_id),
                detail: Some(detail),
            };
            let (Some(url), Some(secret)) = (url, hub.settings.secret.as_deref()) else {
                return fallback("no webhook or no signing secret".into());
            };
            let answer = webhook::deliver(
                &hub.client,
                &url,
                secret,
                &body,
                hub.settings.webhook_retries,
                Duration::from_secs(timeout),
            )
            .await;
            match answer.map_err(|e| e.to_string()).and_then(|a| {
                a.check(event)
                    .map_err(|e| format!("the webhook's answer: {e}"))
            }) {
                Ok(checked) => Answered {
                    hook_ids: hook_ids.clone(),
                    source: "webhook",
                    checked,
                    detail: None,
                },
                Err(detail) => fallback(detail),
            }
        })
    }
}

/// The one place a hook decision is recorded: the log, and the audit trail (a PreToolUse
/// decision as a permission decision, any other event's as a hook decision).
fn record(
    hub: &HookHub,
    session: &str,
    request_id: &str,
    event: HookEvent,
    tool: Option<&str>,
    a: &Answered,
) {
    use crate::domain::audit::{kind, Entry};
    let by = match a.source {
        // "answered by LABEL": the key that answered over the API.
        "api" => a
            .detail
            .as_deref()
            .and_then(|d| d.strip_prefix("answered by "))
            .map(|l| format!("key:{l}"))
            .unwrap_or_else(|| "key".into()),
        other => format!("hook_{other}"),
    };
    let entry_kind = if event == HookEvent::PreToolUse {
        kind::PERMISSION_DECISION
    } else {
        kind::HOOK_DECISION
    };
    let mut e = Entry::new(entry_kind)
        .session(session)
        .subject(tool.unwrap_or(event.as_str()))
        .detail(json!({
            "decision": a.checked.decision(),
            "by": by,
            "hook_event": event.as_str(),
            "hook_ids": a.hook_ids,
            "request_id": request_id,
            "source": a.source,
        }));
    if a.source == "api" {
        e = e.by_label(by.strip_prefix("key:").map(String::from));
    }
    hub.audit(e);
    tracing::info!(
        target: "ccgw::hooks",
        session,
        request_id,
        event = event.as_str(),
        tool,
        hook_ids = ?a.hook_ids,
        source = a.source,
        decision = a.checked.decision(),
        detail = a.detail.as_deref(),
        "hook decision"
    );
}
