//! Hooks over HTTP (docs/hooks.md): what a subscription is (event, matcher, mode, webhook),
//! how a hook call is matched to subscriptions with the CLI's own matcher rules, and how the
//! answers of API clients and webhooks become the one hook output the CLI is given.
//!
//! The hub that holds subscriptions and pending requests is in [`hub`], the signed webhook in
//! [`webhook`]. Must not: know HTTP routes, touch processes (the CLI driver calls us through
//! `claude::control::HookDispatch`), or let a hook widen what confinement or the tool policy
//! allows (the driver enforces that after us).

pub mod hub;
pub mod webhook;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::conversation::TurnError;
use crate::config::Config;

pub use hub::{HookHub, HookList, SessionHooks};

/// Check the deployment's hook settings and `[[hooks]]` entries (at start-up).
pub fn check_config(cfg: &Config) -> Result<(), String> {
    HookHub::build(cfg).map(|_| ())
}

/// The longest a decide hook may wait for its answer, in seconds (and less than the turn's
/// `idle_timeout_secs`, which would end a turn that waits longer).
pub const MAX_TIMEOUT_SECS: u64 = 600;

/// The hook events a session may subscribe to. The gateway registers all of them on every
/// process (see `claude::control::gateway_hooks`), so a subscription made after a process
/// was started, warm or not, works from the next call on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum HookEvent {
    PreToolUse,
    PostToolUse,
    UserPromptSubmit,
    Stop,
    SubagentStop,
    PreCompact,
    SessionStart,
    Notification,
}

impl HookEvent {
    pub const ALL: [HookEvent; 8] = [
        HookEvent::PreToolUse,
        HookEvent::PostToolUse,
        HookEvent::UserPromptSubmit,
        HookEvent::Stop,
        HookEvent::SubagentStop,
        HookEvent::PreCompact,
        HookEvent::SessionStart,
        HookEvent::Notification,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::PreToolUse => "PreToolUse",
            HookEvent::PostToolUse => "PostToolUse",
            HookEvent::UserPromptSubmit => "UserPromptSubmit",
            HookEvent::Stop => "Stop",
            HookEvent::SubagentStop => "SubagentStop",
            HookEvent::PreCompact => "PreCompact",
            HookEvent::SessionStart => "SessionStart",
            HookEvent::Notification => "Notification",
        }
    }

    pub fn parse(s: &str) -> Option<HookEvent> {
        HookEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The input field the CLI matches a matcher against (as its own hook runner does);
    /// `None`: the event takes no matcher.
    fn match_field(self) -> Option<&'static str> {
        match self {
            HookEvent::PreToolUse | HookEvent::PostToolUse => Some("tool_name"),
            HookEvent::SubagentStop => Some("agent_type"),
            HookEvent::PreCompact => Some("trigger"),
            HookEvent::SessionStart => Some("source"),
            HookEvent::Notification => Some("notification_type"),
            HookEvent::UserPromptSubmit | HookEvent::Stop => None,
        }
    }

    /// Whether a `decide` answer can refuse something at this event (and so whether the
    /// `deny` default outcome means anything): a tool call, or a prompt.
    fn can_refuse(self) -> bool {
        matches!(self, HookEvent::PreToolUse | HookEvent::UserPromptSubmit)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The input goes to the session's watchers (or the webhook), and the turn goes on.
    Watch,
    /// The turn waits for an answer (over the API, or from the webhook).
    Decide,
}

/// What a decide hook that nobody answered in time amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The call goes on as if there were no hook.
    Continue,
    /// A tool call is denied, a prompt blocked (other events go on).
    Deny,
}

impl Outcome {
    fn parse(s: &str) -> Option<Outcome> {
        match s {
            "continue" | "allow" => Some(Outcome::Continue),
            "deny" => Some(Outcome::Deny),
            _ => None,
        }
    }
}

/// A subscription as a client or the config file writes it (lenient: unknown fields are
/// refused by name, missing ones take the deployment's defaults).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    pub event: Option<String>,
    pub matcher: Option<String>,
    pub mode: Option<String>,
    pub url: Option<String>,
    pub timeout_secs: Option<u64>,
    /// The outcome when nobody answers: `continue` or `deny` (default: the deployment's).
    pub default: Option<String>,
}

/// A tool-name (or other) matcher, with the CLI's rules: empty or `*` matches everything;
/// names of letters, digits, `_` and `|` are an exact list; anything else is a regex that
/// must occur in the value.
#[derive(Debug, Clone)]
enum Matcher {
    All,
    Names(Vec<String>),
    Regex(regex::Regex),
}

impl Matcher {
    fn parse(m: Option<&str>) -> Result<Matcher, String> {
        let m = m.map(str::trim).unwrap_or("");
        if m.is_empty() || m == "*" {
            return Ok(Matcher::All);
        }
        if m.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '|')
        {
            return Ok(Matcher::Names(
                m.split('|')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            ));
        }
        regex::Regex::new(m)
            .map(Matcher::Regex)
            .map_err(|e| format!("the matcher is not a valid regex: {e}"))
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Names(n) => n.iter().any(|n| n == value),
            Matcher::Regex(r) => r.is_match(value),
        }
    }
}

/// One subscription: a session's, or the deployment's (from the config, on every session).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Subscription {
    pub id: String,
    pub event: HookEvent,
    pub matcher: Option<String>,
    pub mode: Mode,
    pub url: Option<String>,
    pub timeout_secs: u64,
    pub default: Outcome,
    /// `session` or `deployment`.
    pub scope: &'static str,
    #[serde(skip)]
    compiled: Arc<Matcher>,
    #[serde(skip)]
    webhook: Option<Arc<reqwest::Url>>,
}

impl Subscription {
    /// Whether this subscription wants a call of its event with this input.
    fn wants(&self, event: HookEvent, input: &Value) -> bool {
        if self.event != event {
            return false;
        }
        match event.match_field() {
            Some(field) => self
                .compiled
                .matches(input[field].as_str().unwrap_or_default()),
            None => true,
        }
    }

    /// Waits for an answer over the API (a decide hook without a webhook).
    fn asks_the_api(&self) -> bool {
        self.mode == Mode::Decide && self.webhook.is_none()
    }
}

/// The deployment's hook settings, checked once.
#[derive(Debug, Clone)]
pub struct HookSettings {
    pub webhook_hosts: Vec<String>,
    pub default_timeout_secs: u64,
    /// The longest `timeout_secs`: [`MAX_TIMEOUT_SECS`], and below `idle_timeout_secs`.
    pub max_timeout_secs: u64,
    /// The events the processes register (`hook_events`; PreToolUse always).
    pub events: Vec<HookEvent>,
    pub default_outcome: Outcome,
    pub webhook_retries: u32,
    /// The HMAC key webhook bodies are signed with (never logged).
    pub secret: Option<String>,
}

impl HookSettings {
    pub fn from_config(cfg: &Config) -> Result<HookSettings, String> {
        let default_outcome = Outcome::parse(&cfg.hook_default_outcome).ok_or_else(|| {
            format!(
                "hook_default_outcome must be continue or deny (got {:?})",
                cfg.hook_default_outcome
            )
        })?;
        // A turn with no output for `idle_timeout_secs` is ended: a hook must answer sooner.
        let max_timeout_secs = MAX_TIMEOUT_SECS
            .min(cfg.idle_timeout_secs.saturating_sub(1))
            .max(1);
        if !(1..=MAX_TIMEOUT_SECS).contains(&cfg.hook_timeout_secs) {
            return Err(format!(
                "hook_timeout_secs must be between 1 and {MAX_TIMEOUT_SECS}"
            ));
        }
        let mut events = vec![HookEvent::PreToolUse];
        for e in &cfg.hook_events {
            match HookEvent::parse(e) {
                Some(ev) if !events.contains(&ev) => events.push(ev),
                Some(_) => {}
                None => return Err(format!("hook_events names an unknown hook event '{e}'")),
            }
        }
        let secret = cfg
            .hook_secret
            .clone()
            .or_else(|| std::env::var(&cfg.hook_secret_env).ok())
            .filter(|s| !s.is_empty());
        Ok(HookSettings {
            webhook_hosts: cfg
                .hook_webhook_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            // A short `idle_timeout_secs` lowers the default rather than stop the start.
            default_timeout_secs: cfg.hook_timeout_secs.min(max_timeout_secs),
            max_timeout_secs,
            events,
            default_outcome,
            webhook_retries: cfg.hook_webhook_retries,
            secret,
        })
    }

    /// Check a subscription and fill in the defaults. Errors name the field.
    pub fn subscription(
        &self,
        spec: &HookSpec,
        scope: &'static str,
    ) -> Result<Subscription, TurnError> {
        let event_name = spec
            .event
            .as_deref()
            .ok_or_else(|| TurnError::invalid("event", "event is required"))?;
        let event = HookEvent::parse(event_name).ok_or_else(|| {
            TurnError::invalid(
                "event",
                format!(
                    "unknown hook event '{event_name}' (one of: {})",
                    HookEvent::ALL.map(HookEvent::as_str).join(", ")
                ),
            )
        })?;
        if !self.events.contains(&event) {
            return Err(TurnError::invalid(
                "event",
                format!("{event_name} is not enabled on this gateway (hook_events)"),
            ));
        }
        let matcher = spec.matcher.clone().filter(|m| !m.trim().is_empty());
        if matcher.is_some() && event.match_field().is_none() {
            return Err(TurnError::invalid(
                "matcher",
                format!("{event_name} takes no matcher"),
            ));
        }
        let compiled =
            Matcher::parse(matcher.as_deref()).map_err(|m| TurnError::invalid("matcher", m))?;
        let mode = match spec.mode.as_deref() {
            Some("watch") => Mode::Watch,
            Some("decide") => Mode::Decide,
            Some(other) => {
                return Err(TurnError::invalid(
                    "mode",
                    format!("mode must be watch or decide (got '{other}')"),
                ))
            }
            None => return Err(TurnError::invalid("mode", "mode is required")),
        };
        let timeout_secs = spec.timeout_secs.unwrap_or(self.default_timeout_secs);
        if !(1..=self.max_timeout_secs).contains(&timeout_secs) {
            return Err(TurnError::invalid(
                "timeout_secs",
                format!(
                    "timeout_secs must be between 1 and {} (the gateway ends a turn that waits longer)",
                    self.max_timeout_secs
                ),
            ));
        }
        let default = match spec.default.as_deref() {
            None => self.default_outcome,
            Some(d) => Outcome::parse(d)
                .ok_or_else(|| TurnError::invalid("default", "default must be continue or deny"))?,
        };
        let webhook = match spec.url.as_deref() {
            None => None,
            Some(url) => Some(Arc::new(
                webhook::allowed_url(url, &self.webhook_hosts)
                    .map_err(|m| TurnError::invalid("url", m))?,
            )),
        };
        if webhook.is_some() && self.secret.is_none() {
            return Err(TurnError::invalid(
                "url",
                "webhooks are signed, and this gateway has no signing secret (see hook_secret_env)",
            ));
        }
        Ok(Subscription {
            id: format!("hook_{}", uuid::Uuid::new_v4().simple()),
            event,
            matcher,
            mode,
            url: webhook.as_ref().map(|u| u.to_string()),
            timeout_secs,
            default,
            scope,
            compiled: Arc::new(compiled),
            webhook,
        })
    }
}

/// An answer to a hook call, from the API or a webhook: the CLI's hook output fields, flat
/// (`decision`/`permissionDecision`, `reason`, `additionalContext`, `updatedInput`,
/// `continue`, `stopReason`, `systemMessage`) or inside `hookSpecificOutput` as the CLI
/// writes them.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookAnswer {
    pub decision: Option<String>,
    pub permission_decision: Option<String>,
    pub reason: Option<String>,
    pub permission_decision_reason: Option<String>,
    pub additional_context: Option<String>,
    pub updated_input: Option<Value>,
    #[serde(rename = "continue")]
    pub continue_: Option<bool>,
    pub stop_reason: Option<String>,
    pub system_message: Option<String>,
    #[schema(no_recursion)]
    pub hook_specific_output: Option<Box<HookAnswer>>,
}

/// What an answer decides, normalised: a refusal, a question, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    None,
    Allow,
    Ask,
    Deny,
}

/// Answers merged into one: the strictest verdict wins, texts add up.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    verdict: Option<Verdict>,
    reasons: Vec<String>,
    contexts: Vec<String>,
    updated_input: Option<Value>,
    stop: Option<String>,
    system_messages: Vec<String>,
}

impl HookAnswer {
    /// Check an answer for `event`; errors name the field.
    pub fn check(mut self, event: HookEvent) -> Result<Checked, TurnError> {
        if let Some(inner) = self.hook_specific_output.take() {
            let inner = *inner;
            self.permission_decision = self.permission_decision.or(inner.permission_decision);
            self.permission_decision_reason = self
                .permission_decision_reason
                .or(inner.permission_decision_reason);
            self.additional_context = self.additional_context.or(inner.additional_context);
            self.updated_input = self.updated_input.or(inner.updated_input);
        }
        let said = self
            .permission_decision
            .as_deref()
            .or(self.decision.as_deref());
        let field = if self.permission_decision.is_some() {
            "permissionDecision"
        } else {
            "decision"
        };
        let verdict = match said {
            None => Verdict::None,
            Some("allow" | "approve") => Verdict::Allow,
            Some("deny" | "block") => Verdict::Deny,
            Some("ask") if event == HookEvent::PreToolUse => Verdict::Ask,
            Some(other) => {
                return Err(TurnError::invalid(
                    field,
                    format!(
                        "'{other}' is not a decision here (allow, deny{})",
                        if event == HookEvent::PreToolUse {
                            ", ask"
                        } else {
                            ""
                        }
                    ),
                ))
            }
        };
        if self.updated_input.is_some() && event != HookEvent::PreToolUse {
            return Err(TurnError::invalid(
                "updatedInput",
                "updatedInput applies to PreToolUse only",
            ));
        }
        if self.updated_input.as_ref().is_some_and(|v| !v.is_object()) {
            return Err(TurnError::invalid(
                "updatedInput",
                "updatedInput must be an object",
            ));
        }
        let reason = self.reason.or(self.permission_decision_reason);
        Ok(Checked(Merged {
            verdict: Some(verdict),
            reasons: reason.into_iter().collect(),
            contexts: self.additional_context.into_iter().collect(),
            updated_input: self.updated_input,
            stop: match self.continue_ {
                Some(false) => Some(self.stop_reason.unwrap_or_default()),
                _ => None,
            },
            system_messages: self.system_message.into_iter().collect(),
        }))
    }
}

/// An answer that passed [`HookAnswer::check`].
#[derive(Debug, Clone)]
pub struct Checked(Merged);

impl Checked {
    /// The answer of a decide hook nobody answered in time.
    pub fn default_for(event: HookEvent, outcome: Outcome, hook_id: &str) -> Checked {
        let mut m = Merged::default();
        if outcome == Outcome::Deny && event.can_refuse() {
            m.verdict = Some(Verdict::Deny);
            m.reasons
                .push(format!("The hook {hook_id} gave no answer in time."));
        }
        Checked(m)
    }

    pub fn decision(&self) -> &'static str {
        verdict_name(self.0.verdict)
    }
}

fn verdict_name(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Deny) => "deny",
        Some(Verdict::Ask) => "ask",
        Some(Verdict::Allow) => "allow",
        _ => "continue",
    }
}

impl Merged {
    pub fn add(&mut self, c: Checked) {
        let c = c.0;
        self.verdict = self.verdict.max(c.verdict);
        self.reasons.extend(c.reasons);
        self.contexts.extend(c.contexts);
        if c.updated_input.is_some() {
            self.updated_input = c.updated_input;
        }
        if self.stop.is_none() {
            self.stop = c.stop;
        }
        self.system_messages.extend(c.system_messages);
    }

    pub fn decision(&self) -> &'static str {
        verdict_name(self.verdict)
    }

    pub fn reason(&self) -> String {
        self.reasons.join("; ")
    }

    /// The hook output the CLI is given for `event` (its field names, verified against the
    /// CLI in docs/cli-notes.md).
    pub fn cli_output(&self, event: HookEvent) -> Value {
        let mut out = Map::new();
        let mut specific = Map::new();
        let reason = self.reason();
        let verdict = self.verdict.unwrap_or(Verdict::None);
        if event == HookEvent::PreToolUse {
            let decision = match verdict {
                Verdict::Deny => Some("deny"),
                Verdict::Ask => Some("ask"),
                Verdict::Allow => Some("allow"),
                Verdict::None => None,
            };
            if let Some(d) = decision {
                specific.insert("permissionDecision".into(), json!(d));
                if !reason.is_empty() {
                    specific.insert("permissionDecisionReason".into(), json!(reason));
                }
            }
            if verdict != Verdict::Deny {
                if let Some(input) = &self.updated_input {
                    specific.insert("updatedInput".into(), input.clone());
                }
            }
        } else if verdict == Verdict::Deny {
            out.insert("decision".into(), json!("block"));
            out.insert("reason".into(), json!(reason));
        }
        if !self.contexts.is_empty()
            && matches!(
                event,
                HookEvent::UserPromptSubmit | HookEvent::PostToolUse | HookEvent::SessionStart
            )
        {
            specific.insert("additionalContext".into(), json!(self.contexts.join("\n")));
        }
        if let Some(stop) = &self.stop {
            out.insert("continue".into(), json!(false));
            if !stop.is_empty() {
                out.insert("stopReason".into(), json!(stop));
            }
        }
        if !self.system_messages.is_empty() {
            out.insert(
                "systemMessage".into(),
                json!(self.system_messages.join("\n")),
            );
        }
        if !specific.is_empty() {
            specific.insert("hookEventName".into(), json!(event.as_str()));
            out.insert("hookSpecificOutput".into(), Value::Object(specific));
        }
        if out.is_empty() {
            out.insert("continue".into(), json!(true));
        }
        Value::Object(out)
    }
}

/// What watchers and webhooks are shown of a hook's input: the CLI's own, less the path of
/// its transcript file inside the gateway's data dir.
fn public_input(input: &Value) -> Value {
    let mut v = input.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("transcript_path");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HookSettings {
        HookSettings {
            webhook_hosts: vec!["hooks.example.com".into(), "127.0.0.1:9999".into()],
            default_timeout_secs: 30,
            max_timeout_secs: 600,
            events: HookEvent::ALL.to_vec(),
            default_outcome: Outcome::Deny,
            webhook_retries: 1,
            secret: Some("k".into()),
        }
    }

    fn spec(v: Value) -> HookSpec {
        serde_json::from_value(v).unwrap()
    }

    fn param(e: TurnError) -> String {
        match e {
            TurnError::Invalid { param, .. } => param,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn bad_subscriptions_name_their_field() {
        let s = settings();
        let bad = [
            (json!({"event": "Nope", "mode": "watch"}), "event"),
            (json!({"mode": "watch"}), "event"),
            (json!({"event": "PreToolUse", "mode": "peek"}), "mode"),
            (json!({"event": "PreToolUse"}), "mode"),
            (
                json!({"event": "PreToolUse", "mode": "watch", "matcher": "(["}),
                "matcher",
            ),
            (
                json!({"event": "Stop", "mode": "watch", "matcher": "Bash"}),
                "matcher",
            ),
            (
                json!({"event": "Stop", "mode": "decide", "timeout_secs": 0}),
                "timeout_secs",
            ),
            (
                json!({"event": "Stop", "mode": "decide", "timeout_secs": 601}),
                "timeout_secs",
            ),
            (
                json!({"event": "Stop", "mode": "decide", "default": "maybe"}),
                "default",
            ),
            (
                json!({"event": "Stop", "mode": "decide", "url": "http://evil.example.net/h"}),
                "url",
            ),
            (
                json!({"event": "Stop", "mode": "decide", "url": "ftp://hooks.example.com/h"}),
                "url",
            ),
            (
                json!({"event": "Stop", "mode": "decide", "url": "http://127.0.0.1:9998/h"}),
                "url",
            ),
        ];
        for (v, field) in bad {
            let e = s.subscription(&spec(v.clone()), "session").unwrap_err();
            assert_eq!(param(e), field, "{v}");
        }
        let ok = s
            .subscription(
                &spec(
                    json!({"event": "PreToolUse", "mode": "decide", "matcher": "Bash|Write",
                             "url": "https://hooks.example.com/h"}),
                ),
                "session",
            )
            .unwrap();
        assert_eq!(ok.timeout_secs, 30);
        assert_eq!(ok.default, Outcome::Deny);
        assert!(!ok.asks_the_api());
        let fewer = HookSettings {
            events: vec![HookEvent::PreToolUse],
            ..settings()
        };
        let e = fewer
            .subscription(&spec(json!({"event": "Stop", "mode": "watch"})), "session")
            .unwrap_err();
        assert_eq!(param(e), "event");
        let no_secret = HookSettings {
            secret: None,
            ..settings()
        };
        let e = no_secret
            .subscription(
                &spec(json!({"event": "Stop", "mode": "decide", "url": "https://hooks.example.com/h"})),
                "session",
            )
            .unwrap_err();
        assert_eq!(param(e), "url");
    }

    #[test]
    fn matchers_follow_the_clis_rules() {
        let s = settings();
        let sub = |m: &str| {
            s.subscription(
                &spec(json!({"event": "PreToolUse", "mode": "watch", "matcher": m})),
                "session",
            )
            .unwrap()
        };
        let call = |tool: &str| json!({"tool_name": tool});
        let e = HookEvent::PreToolUse;
        assert!(sub("Bash").wants(e, &call("Bash")));
        assert!(
            !sub("Bash").wants(e, &call("BashOutput")),
            "a name is exact"
        );
        assert!(sub("Write|Edit").wants(e, &call("Edit")));
        assert!(sub("mcp__.*").wants(e, &call("mcp__s__t")));
        assert!(sub("Bash.*").wants(e, &call("BashOutput")), "a regex");
        assert!(sub("*").wants(e, &call("Read")));
        assert!(!sub("Bash").wants(HookEvent::PostToolUse, &call("Bash")));
    }

    #[test]
    fn answers_become_the_clis_output_and_the_strictest_wins() {
        let pre = HookEvent::PreToolUse;
        let a: HookAnswer =
            serde_json::from_value(json!({"decision": "deny", "reason": "no rm"})).unwrap();
        let out = {
            let mut m = Merged::default();
            m.add(a.check(pre).unwrap());
            let allow: HookAnswer = serde_json::from_value(json!({"permissionDecision": "allow",
                "updatedInput": {"command": "ls"}}))
            .unwrap();
            m.add(allow.check(pre).unwrap());
            m.cli_output(pre)
        };
        assert_eq!(out["hookSpecificOutput"]["permissionDecision"], "deny");
        assert_eq!(
            out["hookSpecificOutput"]["permissionDecisionReason"],
            "no rm"
        );
        assert!(out["hookSpecificOutput"].get("updatedInput").is_none());

        let ctx: HookAnswer = serde_json::from_value(json!({"hookSpecificOutput":
            {"hookEventName": "UserPromptSubmit", "additionalContext": "CTX"}}))
        .unwrap();
        let mut m = Merged::default();
        m.add(ctx.check(HookEvent::UserPromptSubmit).unwrap());
        assert_eq!(
            m.cli_output(HookEvent::UserPromptSubmit),
            json!({"hookSpecificOutput": {"additionalContext": "CTX", "hookEventName": "UserPromptSubmit"}})
        );

        let bad: HookAnswer = serde_json::from_value(json!({"decision": "maybe"})).unwrap();
        assert_eq!(param(bad.check(pre).unwrap_err()), "decision");
        let bad: HookAnswer = serde_json::from_value(json!({"updatedInput": {"a": 1}})).unwrap();
        assert_eq!(
            param(bad.check(HookEvent::Stop).unwrap_err()),
            "updatedInput"
        );

        let mut m = Merged::default();
        m.add(Checked::default_for(pre, Outcome::Deny, "hook_1"));
        assert_eq!(m.decision(), "deny");
        let mut m = Merged::default();
        m.add(Checked::default_for(
            HookEvent::Stop,
            Outcome::Deny,
            "hook_1",
        ));
        assert_eq!(m.cli_output(HookEvent::Stop), json!({"continue": true}));
    }
}
