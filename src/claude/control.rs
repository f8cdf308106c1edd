//! Answers the control requests the CLI sends us: tool permissions (`can_use_tool`), the
//! in-process MCP servers (`mcp_message`) and hooks (`hook_callback`).
//!
//! Permission decisions come from a [`ToolPolicy`]: deny unless the tool is allowed. Every
//! decision is logged. Before any of that, every tool call (allowed or not) passes the
//! PreToolUse hook registered by [`gateway_hooks`], answered by the process's
//! [`ToolGuard`] (the workspace confinement, which the domain supplies). MCP servers are registered by name by whoever owns the conversation
//! (the client-tool bridge); this module only routes to them. Every other hook call, and a
//! PreToolUse call the guard lets through, goes to the [`HookDispatch`] of whoever the process
//! serves (hooks over HTTP), whose answer may refuse a call but never widen what is allowed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::oneshot;

use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::event::Event;
use super::wire::ControlRequestLine;

/// An MCP server that lives inside the gateway and is reached through `mcp_message`.
pub trait SdkMcpServer: Send + Sync {
    /// Handle one JSON-RPC message; return the JSON-RPC response (also for notifications,
    /// which the CLI still expects an answer to).
    fn handle(self: Arc<Self>, message: Value) -> BoxFuture<'static, Value>;
}

/// Which tools may run. Names are exact, or an MCP server prefix like `mcp__client`.
/// `denied` wins over `allowed` and over anyone's answer: a denied tool is refused in the
/// PreToolUse hook, before the CLI's own permission rules could let it run.
#[derive(Debug, Clone, Default)]
pub struct ToolPolicy {
    pub allowed: Vec<String>,
    pub denied: Vec<String>,
}

fn matches(rule: &str, tool: &str) -> bool {
    rule == tool
        || (rule.starts_with("mcp__")
            && tool
                .strip_prefix(rule)
                .is_some_and(|rest| rest.starts_with("__")))
}

impl ToolPolicy {
    pub fn allows(&self, tool: &str) -> bool {
        !self.denies(tool) && self.allowed.iter().any(|a| matches(a, tool))
    }

    pub fn denies(&self, tool: &str) -> bool {
        self.denied.iter().any(|d| matches(d, tool))
    }
}

/// The callback id of the PreToolUse hook every process registers in `initialize`.
pub const CONFINE_HOOK_ID: &str = "ccgw_pre_tool_use";

/// The hook events every process registers, so that a session's subscriptions (made before
/// or after its process started, warm or not) can be dispatched. PreToolUse also carries the
/// workspace check.
pub const HOOK_EVENTS: [&str; 8] = [
    "PreToolUse",
    "PostToolUse",
    "UserPromptSubmit",
    "Stop",
    "SubagentStop",
    "PreCompact",
    "SessionStart",
    "Notification",
];

/// How long the CLI waits for our answer to a hook call. Without a `timeout` it gives up
/// after 30 s, withdraws the call and ends the turn with an error (docs/cli-notes.md), so it
/// must outlast the longest decide hook (600 s) and a webhook's last attempt.
pub const HOOK_CLI_TIMEOUT_SECS: u64 = 660;

/// The `initialize.hooks`: every tool call is checked before it runs, whatever the tool and
/// whatever the permission rules say (hooks run before them), and each of `events` (names
/// from [`HOOK_EVENTS`]; others are left out) reaches the gateway.
pub fn gateway_hooks(events: &[String]) -> Value {
    let hooks: serde_json::Map<String, Value> = HOOK_EVENTS
        .iter()
        .filter(|e| **e == "PreToolUse" || events.iter().any(|x| x == *e))
        .map(|e| {
            let id = if *e == "PreToolUse" {
                CONFINE_HOOK_ID.to_string()
            } else {
                format!("ccgw_{e}")
            };
            (
                e.to_string(),
                json!([{"matcher": null, "hookCallbackIds": [id], "timeout": HOOK_CLI_TIMEOUT_SECS}]),
            )
        })
        .collect();
    Value::Object(hooks)
}

/// A hook call of the CLI, for whoever subscribed to it.
pub struct HookCall<'a> {
    pub request_id: &'a str,
    pub event: &'a str,
    pub input: &'a Value,
}

/// How a hook call is answered: what watchers are told at once, and the hook output.
pub struct HookStep {
    pub announce: Vec<Event>,
    pub answer: BoxFuture<'static, Value>,
}

impl HookStep {
    fn now(answer: Value) -> HookStep {
        HookStep {
            announce: Vec::new(),
            answer: Box::pin(std::future::ready(answer)),
        }
    }
}

/// Dispatches hook calls to a session's subscriptions (the domain supplies it).
pub trait HookDispatch: Send + Sync {
    /// Called on the process's reader, so it must not wait on anything. `None`: nobody
    /// subscribes, and the call goes on at once.
    fn route(&self, call: HookCall<'_>) -> Option<HookStep>;
    /// The CLI withdrew the call (an interrupt, or its own timeout).
    fn cancel(&self, request_id: &str);
    /// What the gateway's own rules decided about a tool call (for the audit trail). Called
    /// on the reader: it must not wait.
    fn decided(&self, _decision: ToolDecision<'_>) {}
}

/// A decision of the gateway's rules on one tool call.
pub struct ToolDecision<'a> {
    /// `pre_tool_use` (every call, before it runs: the workspace check and denied tools) or
    /// `can_use_tool` (the CLI asked; the session's allowed tools answered) or `unanswered` (a
    /// request that waited for an answer over the API got none: `reason` says why).
    pub stage: &'static str,
    pub tool: &'a str,
    pub tool_use_id: &'a str,
    pub input: &'a Value,
    pub allowed: bool,
    pub reason: Option<&'a str>,
}

/// Decides, before a tool runs, whether its input may be used at all (for instance: every path
/// it names lies in the workspace). `Err` is the reason given to the model.
pub trait ToolGuard: Send + Sync {
    fn check(&self, tool: &str, input: &Value) -> Result<(), String>;
}

/// Holds permission requests that wait for a person (or program) to answer over HTTP.
pub struct PermissionBroker {
    timeout: Duration,
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
}

impl PermissionBroker {
    pub fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(PermissionBroker {
            timeout,
            pending: Mutex::default(),
        })
    }

    /// Answer a waiting request with a `can_use_tool` response. False when none waits.
    pub fn resolve(&self, request_id: &str, response: Value) -> bool {
        let waiter = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(request_id));
        waiter.is_some_and(|tx| tx.send(response).is_ok())
    }

    pub fn pending_ids(&self) -> Vec<String> {
        self.pending
            .lock()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The answer, and why it is a refusal nobody gave (`withdrawn`, `timeout`), if so.
    async fn wait(&self, request_id: &str, tool: &str) -> (Value, Option<&'static str>) {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(request_id.to_string(), tx);
        }
        let answer = tokio::time::timeout(self.timeout, rx).await;
        if let Ok(mut p) = self.pending.lock() {
            p.remove(request_id);
        }
        match answer {
            Ok(Ok(v)) => (v, None),
            Ok(Err(_)) => (
                deny(&format!("The request to use {tool} was withdrawn.")),
                Some("withdrawn"),
            ),
            Err(_) => (
                deny(&format!(
                    "Nobody answered the request to use {tool} in time."
                )),
                Some("timeout"),
            ),
        }
    }
}

fn deny(message: &str) -> Value {
    json!({"behavior": "deny", "message": message})
}

/// A PreToolUse hook output that refuses the call.
fn refusal(reason: &str) -> Value {
    json!({
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    })
}

/// A subscriber's PreToolUse output, held within the gateway's rules: its `allow` would skip
/// the CLI's permission check (`can_use_tool`), so it is dropped and the tool policy decides;
/// an `updatedInput` passes the same workspace check as the model's own input.
fn restrain(mut out: Value, guard: Option<&dyn ToolGuard>, tool: &str) -> Value {
    let Some(specific) = out
        .get_mut("hookSpecificOutput")
        .and_then(Value::as_object_mut)
    else {
        return out;
    };
    if specific.get("permissionDecision") == Some(&json!("allow")) {
        specific.remove("permissionDecision");
        specific.remove("permissionDecisionReason");
    }
    if let (Some(input), Some(g)) = (specific.get("updatedInput"), guard) {
        if let Err(reason) = g.check(tool, input) {
            return refusal(&reason);
        }
    }
    if specific.len() == 1 {
        // Only `hookEventName` is left.
        out.as_object_mut().map(|o| o.remove("hookSpecificOutput"));
        if out.as_object().is_some_and(|o| o.is_empty()) {
            return json!({"continue": true});
        }
    }
    out
}

/// Per-process answerer for CLI → gateway control requests.
#[derive(Default)]
pub struct ControlHandler {
    /// Who this process serves, for the logs (set when a warm process is taken).
    label: RwLock<String>,
    policy: RwLock<ToolPolicy>,
    mcp_servers: RwLock<HashMap<String, Arc<dyn SdkMcpServer>>>,
    /// When set, tools outside the policy are asked about instead of denied.
    broker: RwLock<Option<Arc<PermissionBroker>>>,
    /// Checks every tool call's input before it runs (the PreToolUse hook).
    guard: RwLock<Option<Arc<dyn ToolGuard>>>,
    /// The subscriptions of whoever this process serves (hooks over HTTP).
    hooks: RwLock<Option<Arc<dyn HookDispatch>>>,
}

impl ControlHandler {
    pub fn new(label: impl Into<String>, policy: ToolPolicy) -> Self {
        ControlHandler {
            label: RwLock::new(label.into()),
            policy: RwLock::new(policy),
            mcp_servers: RwLock::default(),
            broker: RwLock::default(),
            guard: RwLock::default(),
            hooks: RwLock::default(),
        }
    }

    pub fn set_hooks(&self, hooks: Option<Arc<dyn HookDispatch>>) {
        if let Ok(mut h) = self.hooks.write() {
            *h = hooks;
        }
    }

    pub fn set_guard(&self, guard: Arc<dyn ToolGuard>) {
        if let Ok(mut g) = self.guard.write() {
            *g = Some(guard);
        }
    }

    pub fn set_broker(&self, broker: Option<Arc<PermissionBroker>>) {
        if let Ok(mut b) = self.broker.write() {
            *b = broker;
        }
    }

    pub fn broker(&self) -> Option<Arc<PermissionBroker>> {
        self.broker.read().ok().and_then(|b| b.clone())
    }

    /// A `can_use_tool` that the policy does not allow and a broker will ask about.
    pub fn will_ask(&self, req: &ControlRequestLine) -> bool {
        let tool = req.request["tool_name"].as_str().unwrap_or_default();
        req.subtype() == "can_use_tool"
            && self.broker().is_some()
            && self
                .policy
                .read()
                .map(|p| !p.allows(tool) && !p.denies(tool))
                .unwrap_or(false)
    }

    fn tell(&self, d: ToolDecision<'_>) {
        if let Some(h) = self.hooks.read().ok().and_then(|h| h.clone()) {
            h.decided(d);
        }
    }

    fn denies(&self, tool: &str) -> bool {
        self.policy.read().map(|p| p.denies(tool)).unwrap_or(true)
    }

    /// The CLI withdrew a request (for instance after an interrupt).
    pub fn cancel(&self, request_id: &str) {
        if let Some(b) = self.broker() {
            if let Ok(mut p) = b.pending.lock() {
                p.remove(request_id);
            }
        }
        if let Some(h) = self.hooks.read().ok().and_then(|h| h.clone()) {
            h.cancel(request_id);
        }
    }

    pub fn label(&self) -> String {
        self.label.read().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn set_label(&self, label: &str) {
        if let Ok(mut l) = self.label.write() {
            *l = label.to_string();
        }
    }

    pub fn set_policy(&self, policy: ToolPolicy) {
        if let Ok(mut p) = self.policy.write() {
            *p = policy;
        }
    }

    pub fn register_mcp_server(&self, name: &str, server: Arc<dyn SdkMcpServer>) {
        if let Ok(mut m) = self.mcp_servers.write() {
            m.insert(name.to_string(), server);
        }
    }

    /// The `response` payload for a control request, or an error message.
    pub async fn handle(&self, req: &ControlRequestLine) -> Result<Value, String> {
        let r = &req.request;
        match req.subtype() {
            "can_use_tool" if self.will_ask(req) => {
                let tool = r["tool_name"].as_str().unwrap_or_default();
                let broker = self.broker().ok_or("no broker")?;
                let (answer, unanswered) = broker.wait(&req.request_id, tool).await;
                // An answer over the API is audited where it is given; one nobody gave, here.
                if let Some(why) = unanswered {
                    self.tell(ToolDecision {
                        stage: "unanswered",
                        tool,
                        tool_use_id: r["tool_use_id"].as_str().unwrap_or_default(),
                        input: r.get("input").unwrap_or(&Value::Null),
                        allowed: false,
                        reason: Some(why),
                    });
                }
                tracing::info!(
                    target: "ccgw::tools",
                    conversation = %self.label(),
                    tool,
                    decision = answer["behavior"].as_str().unwrap_or("deny"),
                    "tool permission answered"
                );
                // The CLI requires the input on an allow: default to the original.
                let mut answer = answer;
                if answer["behavior"] == "allow" && answer.get("updatedInput").is_none() {
                    answer["updatedInput"] = r.get("input").cloned().unwrap_or(json!({}));
                }
                Ok(answer)
            }
            "can_use_tool" => Ok(self.can_use_tool(r)),
            "mcp_message" => {
                let server_name = r["server_name"].as_str().unwrap_or_default();
                let message = r.get("message").cloned().unwrap_or(Value::Null);
                let server = self
                    .mcp_servers
                    .read()
                    .ok()
                    .and_then(|m| m.get(server_name).cloned());
                let response = match server {
                    Some(s) => s.handle(message).await,
                    None => json!({
                        "jsonrpc": "2.0",
                        "id": message.get("id").cloned().unwrap_or(Value::Null),
                        "error": {"code": -32601, "message": format!("no MCP server named {server_name}")},
                    }),
                };
                Ok(json!({ "mcp_response": response }))
            }
            "hook_callback" => Ok(self.hook_step(req).answer.await),
            other => Err(format!("Unsupported control request subtype: {other}")),
        }
    }

    /// A hook call: for PreToolUse first the workspace check and the denied tools, which no
    /// hook can override; then the subscriptions. A call the guard refuses never reaches
    /// `can_use_tool`, so no policy or person can let it through. Runs on the reader: it
    /// does not wait, and with no subscription the answer is ready at once.
    pub fn hook_step(&self, req: &ControlRequestLine) -> HookStep {
        let r = &req.request;
        let input = &r["input"];
        let event = input["hook_event_name"].as_str().unwrap_or_default();
        let pre_tool_use = r["callback_id"] == CONFINE_HOOK_ID && event == "PreToolUse";
        if pre_tool_use {
            if let Some(refusal) = self.confine(r) {
                return HookStep::now(refusal);
            }
        }
        let dispatch = self.hooks.read().ok().and_then(|h| h.clone());
        let call = HookCall {
            request_id: &req.request_id,
            event,
            input,
        };
        let Some(step) = dispatch.and_then(|d| d.route(call)) else {
            return HookStep::now(json!({"continue": true}));
        };
        // Whatever callback it came by, a tool call's answer is held to the gateway's rules.
        if event != "PreToolUse" {
            return step;
        }
        let guard = self.guard.read().ok().and_then(|g| g.clone());
        let tool = input["tool_name"].as_str().unwrap_or_default().to_string();
        let answer = step.answer;
        HookStep {
            announce: step.announce,
            answer: Box::pin(async move { restrain(answer.await, guard.as_deref(), &tool) }),
        }
    }

    /// The guard's refusal of a PreToolUse call, if it refuses.
    fn confine(&self, r: &Value) -> Option<Value> {
        let input = &r["input"];
        let tool = input["tool_name"].as_str().unwrap_or_default();
        let tool_input = input.get("tool_input").unwrap_or(&Value::Null);
        let guard = self.guard.read().ok().and_then(|g| g.clone());
        let verdict = match guard {
            _ if self.denies(tool) => Err(format!(
                "The tool {tool} is denied by this session's tool permissions."
            )),
            Some(g) => g.check(tool, tool_input),
            None => Ok(()),
        };
        let tool_use_id = r["tool_use_id"]
            .as_str()
            .or(input["tool_use_id"].as_str())
            .unwrap_or_default();
        self.tell(ToolDecision {
            stage: "pre_tool_use",
            tool,
            tool_use_id,
            input: tool_input,
            allowed: verdict.is_ok(),
            reason: verdict.as_ref().err().map(String::as_str),
        });
        match verdict {
            Ok(()) => {
                tracing::debug!(
                    target: "ccgw::tools",
                    conversation = %self.label(),
                    tool,
                    tool_use_id,
                    "tool call passed the workspace check"
                );
                None
            }
            Err(reason) => {
                tracing::warn!(
                    target: "ccgw::tools",
                    conversation = %self.label(),
                    tool,
                    tool_use_id,
                    reason = %reason,
                    decision = "deny",
                    "tool call refused before it ran"
                );
                Some(refusal(&reason))
            }
        }
    }

    fn can_use_tool(&self, r: &Value) -> Value {
        let tool = r["tool_name"].as_str().unwrap_or_default();
        let allowed = self.policy.read().map(|p| p.allows(tool)).unwrap_or(false);
        tracing::info!(
            target: "ccgw::tools",
            conversation = %self.label(),
            tool,
            tool_use_id = r["tool_use_id"].as_str().unwrap_or_default(),
            input_bytes = r.get("input").map(|i| i.to_string().len()).unwrap_or(0),
            decision = if allowed { "allow" } else { "deny" },
            "tool permission request"
        );
        self.tell(ToolDecision {
            stage: "can_use_tool",
            tool,
            tool_use_id: r["tool_use_id"].as_str().unwrap_or_default(),
            input: r.get("input").unwrap_or(&Value::Null),
            allowed,
            reason: (!allowed).then_some("not among the session's allowed tools"),
        });
        if allowed {
            json!({"behavior": "allow", "updatedInput": r.get("input").cloned().unwrap_or(json!({}))})
        } else {
            json!({"behavior": "deny", "message": format!("The gateway's policy does not allow the tool {tool}.")})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_matches_exact_names_and_mcp_prefixes() {
        let p = ToolPolicy {
            allowed: vec!["Read".into(), "mcp__client".into()],
            ..Default::default()
        };
        assert!(p.allows("Read"));
        assert!(!p.allows("ReadX"));
        assert!(p.allows("mcp__client__get_weather"));
        assert!(!p.allows("mcp__clientele__x"));
        assert!(!p.allows("Bash"));
        assert!(!ToolPolicy::default().allows("Read"));
    }

    #[tokio::test]
    async fn denies_by_default_and_allows_with_input() {
        let h = ControlHandler::new("c1", ToolPolicy::default());
        let req = ControlRequestLine {
            request_id: "r".into(),
            request: json!({"subtype":"can_use_tool","tool_name":"Bash","input":{"command":"ls"}}),
        };
        let out = h.handle(&req).await.unwrap();
        assert_eq!(out["behavior"], "deny");
        h.set_policy(ToolPolicy {
            allowed: vec!["Bash".into()],
            ..Default::default()
        });
        let out = h.handle(&req).await.unwrap();
        assert_eq!(out["behavior"], "allow");
        assert_eq!(out["updatedInput"]["command"], "ls");
    }

    #[tokio::test]
    async fn a_denied_tool_is_refused_in_the_hook_and_never_asked_about() {
        let h = ControlHandler::new(
            "c1",
            ToolPolicy {
                allowed: vec!["Read".into()],
                denied: vec!["Read".into()],
            },
        );
        h.set_broker(Some(PermissionBroker::new(Duration::from_secs(1))));
        let out = h
            .handle(&hook(json!({"file_path": "a.txt"}), CONFINE_HOOK_ID))
            .await
            .unwrap();
        assert_eq!(out["hookSpecificOutput"]["permissionDecision"], "deny");
        let req = ControlRequestLine {
            request_id: "r".into(),
            request: json!({"subtype":"can_use_tool","tool_name":"Read","input":{}}),
        };
        assert!(!h.will_ask(&req));
        assert_eq!(h.handle(&req).await.unwrap()["behavior"], "deny");
    }

    struct NoEtc;
    impl ToolGuard for NoEtc {
        fn check(&self, _tool: &str, input: &Value) -> Result<(), String> {
            match input["file_path"].as_str() {
                Some(p) if p.starts_with("/etc") => Err(format!("path '{p}' is outside")),
                _ => Ok(()),
            }
        }
    }

    fn hook(tool_input: Value, callback: &str) -> ControlRequestLine {
        ControlRequestLine {
            request_id: "h".into(),
            request: json!({"subtype": "hook_callback", "callback_id": callback, "tool_use_id": "t1",
                "input": {"hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": tool_input}}),
        }
    }

    #[tokio::test]
    async fn the_pre_tool_use_hook_asks_the_guard_even_for_allowed_tools() {
        let h = ControlHandler::new(
            "c1",
            ToolPolicy {
                allowed: vec!["Read".into()],
                ..Default::default()
            },
        );
        let out = h
            .handle(&hook(json!({"file_path": "/etc/x"}), CONFINE_HOOK_ID))
            .await
            .unwrap();
        assert_eq!(out, json!({"continue": true}), "no guard yet");
        h.set_guard(Arc::new(NoEtc));
        let out = h
            .handle(&hook(json!({"file_path": "/etc/x"}), CONFINE_HOOK_ID))
            .await
            .unwrap();
        assert_eq!(out["hookSpecificOutput"]["permissionDecision"], "deny");
        assert_eq!(out["hookSpecificOutput"]["hookEventName"], "PreToolUse");
        assert_eq!(
            out["hookSpecificOutput"]["permissionDecisionReason"],
            "path '/etc/x' is outside"
        );
        let out = h
            .handle(&hook(json!({"file_path": "a.txt"}), CONFINE_HOOK_ID))
            .await
            .unwrap();
        assert_eq!(out, json!({"continue": true}));
        // Someone else's hook id is not ours to judge.
        let out = h
            .handle(&hook(json!({"file_path": "/etc/x"}), "other"))
            .await
            .unwrap();
        assert_eq!(out, json!({"continue": true}));
        let all: Vec<String> = HOOK_EVENTS.iter().map(|e| e.to_string()).collect();
        let hooks = gateway_hooks(&all);
        assert_eq!(
            hooks["PreToolUse"][0]["hookCallbackIds"][0],
            CONFINE_HOOK_ID
        );
        assert_eq!(hooks.as_object().unwrap().len(), HOOK_EVENTS.len());
        // The workspace check is registered whatever the list says.
        let only = gateway_hooks(&["Stop".to_string()]);
        assert_eq!(
            only.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["PreToolUse", "Stop"]
        );
        assert_eq!(hooks["Stop"][0]["timeout"], HOOK_CLI_TIMEOUT_SECS);
    }

    #[test]
    fn a_subscribers_allow_defers_to_the_policy_and_its_input_is_confined() {
        let out = restrain(
            json!({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow"}}),
            Some(&NoEtc),
            "Read",
        );
        assert_eq!(out, json!({"continue": true}));
        let out = restrain(
            json!({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow",
                   "updatedInput": {"file_path": "/etc/shadow"}}}),
            Some(&NoEtc),
            "Read",
        );
        assert_eq!(out["hookSpecificOutput"]["permissionDecision"], "deny");
        let out = restrain(
            json!({"hookSpecificOutput": {"hookEventName": "PreToolUse", "updatedInput": {"file_path": "b.txt"}}}),
            Some(&NoEtc),
            "Read",
        );
        assert_eq!(
            out["hookSpecificOutput"]["updatedInput"]["file_path"],
            "b.txt"
        );
    }

    #[tokio::test]
    async fn unknown_mcp_server_and_subtype() {
        let h = ControlHandler::default();
        let req = ControlRequestLine {
            request_id: "r".into(),
            request: json!({"subtype":"mcp_message","server_name":"nope","message":{"jsonrpc":"2.0","id":3,"method":"tools/list"}}),
        };
        let out = h.handle(&req).await.unwrap();
        assert_eq!(out["mcp_response"]["id"], 3);
        assert!(out["mcp_response"]["error"].is_object());
        let req = ControlRequestLine {
            request_id: "r".into(),
            request: json!({"subtype":"what"}),
        };
        assert!(h.handle(&req).await.is_err());
    }
}
