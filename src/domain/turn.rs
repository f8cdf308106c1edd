//! The domain request every adapter builds: one new user message on top of a history.
//!
//! Messages use Anthropic content blocks (`text`, `image`, `tool_use`, `tool_result`), the
//! format the CLI speaks, so adapters convert once and the driver never converts again. Also
//! here: stop-sequence matching, which the gateway enforces itself because the CLI has no
//! option for it. The history key that finds a conversation again is in `history_key`.

use serde_json::Value;

pub use crate::claude::message::{merge_roles, Message, Role};
pub use crate::claude::tools::ClientTool;

/// Which client tools the model is offered (OpenAI `tool_choice`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    #[default]
    Auto,
    /// No client tools are offered at all.
    None,
    /// Every tool is offered and the model is told it must call one.
    Required,
    /// Only this tool is offered, and the model is told to call it.
    Named(String),
}

/// Claude Code features beyond what the compatible APIs can say: `extra_body` on the OpenAI
/// endpoint, extra fields on the Anthropic one, plain fields on the native API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaudeOptions {
    /// `Some(0)` turns thinking off; a budget applies to models with a fixed thinking budget.
    pub thinking_budget: Option<u32>,
    /// low, medium, high, xhigh or max.
    pub effort: Option<String>,
    /// default, acceptEdits, plan, dontAsk or auto.
    pub permission_mode: Option<String>,
    /// Run the main thread as this agent.
    pub agent: Option<String>,
    pub max_turns: Option<u32>,
    /// Sampling fields passed to the model as they are (`temperature`, `top_p`, `top_k`).
    pub sampling: serde_json::Map<String, Value>,
    /// Attach to this native session instead of matching the history.
    pub session_id: Option<String>,
    /// Added to the system prompt at `initialize` (a native session's context).
    pub append_system: Option<String>,
}

pub const EFFORTS: &[&str] = &["low", "medium", "high", "xhigh", "max"];
pub const PERMISSION_MODES: &[&str] = &["default", "acceptEdits", "plan", "dontAsk", "auto"];

/// Image media types the Messages API accepts.
pub const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Longest client tool name: the model sees it behind the `mcp__client__` prefix, and the
/// Messages API allows 64 characters in all.
pub const MAX_TOOL_NAME: usize = 64 - crate::claude::tools::PREFIX.len();

/// The Messages API's smallest thinking budget.
pub const MIN_THINKING_BUDGET: u32 = 1024;

/// A request field the domain cannot accept: which one (`param`, in dotted form) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    pub param: String,
    pub message: String,
}

impl InvalidField {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidField {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// 1 to `max` ASCII letters, digits, `_` or `-`: what a tool's (or an MCP server's) name may
/// hold.
pub(crate) fn is_plain_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A client tool name the model can be given.
pub fn check_tool_name(name: &str) -> Result<(), String> {
    if is_plain_name(name, MAX_TOOL_NAME) {
        Ok(())
    } else {
        Err(format!(
            "Invalid tool name '{name}': use 1 to {MAX_TOOL_NAME} letters, digits, '_' or '-'"
        ))
    }
}

/// The model needs an object schema for tool input; catch the mistakes that would otherwise
/// fail deep inside the CLI or upstream.
pub fn check_tool_schema(p: &Value) -> Result<(), String> {
    let obj = p.as_object().ok_or("it must be a JSON Schema object")?;
    match obj.get("type") {
        Some(Value::String(t)) if t == "object" => {}
        None if obj.contains_key("properties") => {}
        _ => return Err("its type must be \"object\"".into()),
    }
    if let Some(props) = obj.get("properties") {
        let props = props.as_object().ok_or("properties must be an object")?;
        if let Some((k, _)) = props
            .iter()
            .find(|(_, v)| !v.is_object() && !v.is_boolean())
        {
            return Err(format!("property '{k}' must be a schema object"));
        }
    }
    if let Some(req) = obj.get("required") {
        let ok = req
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return Err("required must be an array of property names".into());
        }
    }
    Ok(())
}

/// What the answer must be: OpenAI's `response_format`, the Responses API's `text.format`.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputFormat {
    Text,
    JsonObject,
    JsonSchema { schema: Value, strict: bool },
}

impl OutputFormat {
    /// An instruction for the system prompt (what the model is only asked for), and the schema
    /// the CLI enforces (`strict`: the CLI's structured output, so the answer is valid against
    /// it). `param` names the schema field in errors.
    pub fn split(self, param: &str) -> Result<(Option<String>, Option<Value>), InvalidField> {
        match self {
            OutputFormat::Text => Ok((None, None)),
            OutputFormat::JsonObject => Ok((
                Some("Respond with a single valid JSON object and nothing else: no prose, no code fences.".into()),
                None,
            )),
            OutputFormat::JsonSchema { schema, strict: true } => {
                // The schema becomes the input schema of the CLI's `StructuredOutput` tool.
                check_tool_schema(&schema).map_err(|why| {
                    InvalidField::new(
                        param,
                        format!("A strict schema must describe a JSON object: {why}"),
                    )
                })?;
                Ok((None, Some(schema)))
            }
            OutputFormat::JsonSchema { schema, strict: false } => Ok((
                Some(format!(
                    "Respond with a single valid JSON value that conforms to this JSON Schema, and nothing else: no prose, no code fences.\n{schema}"
                )),
                None,
            )),
        }
    }
}

/// `builtin_tools`: names of built-in Claude Code tools (the domain checks them against the
/// deployment's allowlist).
pub fn builtin_tools(v: Option<&Value>) -> Result<Vec<String>, InvalidField> {
    let bad = || {
        InvalidField::new(
            "builtin_tools",
            "builtin_tools must be an array of tool names",
        )
    };
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| t.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// The Claude Code options both compatible endpoints accept as extra top-level request fields
/// (what an OpenAI SDK's `extra_body` sends): `thinking`, `effort`, `permission_mode`, `agent`,
/// `max_turns` and `session_id`. Sampling is left to the adapters (their ranges differ).
/// A `null` field counts as absent.
pub fn claude_options(
    fields: &serde_json::Map<String, Value>,
) -> Result<ClaudeOptions, InvalidField> {
    let get = |k: &str| fields.get(k).filter(|v| !v.is_null());
    let mut o = ClaudeOptions {
        thinking_budget: get("thinking").map(thinking_budget).transpose()?.flatten(),
        ..Default::default()
    };
    if let Some(v) = get("effort") {
        o.effort = Some(one_of("effort", v, EFFORTS)?);
    }
    if let Some(v) = get("permission_mode") {
        o.permission_mode = Some(one_of("permission_mode", v, PERMISSION_MODES)?);
    }
    if let Some(v) = get("agent") {
        o.agent = Some(identifier("agent", v, &[':', '.'])?);
    }
    if let Some(v) = get("max_turns") {
        let n = v
            .as_u64()
            .filter(|n| *n >= 1)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                InvalidField::new("max_turns", "max_turns must be a positive integer")
            })?;
        o.max_turns = Some(n);
    }
    if let Some(v) = get("session_id") {
        o.session_id = Some(identifier("session_id", v, &[])?);
    }
    Ok(o)
}

/// `thinking` in Anthropic's shape: `{"type":"enabled","budget_tokens":N}` gives `Some(N)`,
/// `{"type":"disabled"}` gives `Some(0)`, `{"type":"adaptive"}` leaves the model's default.
pub fn thinking_budget(v: &Value) -> Result<Option<u32>, InvalidField> {
    let kind = v.get("type").and_then(Value::as_str).ok_or_else(|| {
        InvalidField::new(
            "thinking.type",
            r#"thinking must be {"type":"enabled","budget_tokens":N}, {"type":"disabled"} or {"type":"adaptive"}"#,
        )
    })?;
    match kind {
        "disabled" => Ok(Some(0)),
        "adaptive" => Ok(None),
        "enabled" => v
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= MIN_THINKING_BUDGET)
            .map(Some)
            .ok_or_else(|| {
                InvalidField::new(
                    "thinking.budget_tokens",
                    format!("budget_tokens must be an integer of at least {MIN_THINKING_BUDGET}"),
                )
            }),
        other => Err(InvalidField::new(
            "thinking.type",
            format!("Unknown thinking type '{other}'; expected enabled, disabled or adaptive"),
        )),
    }
}

fn one_of(param: &str, v: &Value, allowed: &[&str]) -> Result<String, InvalidField> {
    v.as_str()
        .filter(|s| allowed.contains(s))
        .map(String::from)
        .ok_or_else(|| {
            InvalidField::new(
                param,
                format!("{param} must be one of {}", allowed.join(", ")),
            )
        })
}

/// A name that goes on the CLI's command line: letters, digits, `-`, `_` and `extra`.
fn identifier(param: &str, v: &Value, extra: &[char]) -> Result<String, InvalidField> {
    v.as_str()
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 128
                && s.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c)
                })
        })
        .map(String::from)
        .ok_or_else(|| {
            let also: String = extra.iter().map(|c| format!(", '{c}'")).collect();
            InvalidField::new(
                param,
                format!("{param} must be a name of 1 to 128 letters, digits, '-', '_'{also}"),
            )
        })
}

/// One turn as the domain sees it.
#[derive(Debug, Clone, Default)]
pub struct TurnRequest {
    /// The public model id the client asked for (echoed back in responses).
    pub model_id: String,
    /// The provider and CLI `--model` value it runs as.
    pub cli_model: crate::domain::models::CliModel,
    pub system: Option<String>,
    /// Every message before the new one.
    pub history: Vec<Message>,
    /// The new user message's content blocks.
    pub prompt: Vec<Value>,
    pub max_output_tokens: Option<u32>,
    pub stop: Vec<String>,
    /// Who asked, for the logs (`user` / `metadata` of the request).
    pub client_user: Option<String>,
    /// Which API key sent it, as a label to show (`Caller::label`), never the secret.
    pub key: Option<String>,
    /// The key's owner id (`Caller::owner`): what the conversation's records belong to.
    pub owner: String,
    /// The client's function tools.
    pub tools: Vec<ClientTool>,
    pub tool_choice: ToolChoice,
    /// `false` allows at most one client tool call per model step.
    pub parallel_tool_calls: bool,
    /// Built-in Claude Code tools asked for (must be within the deployment's allowlist).
    pub builtin_tools: Vec<String>,
    /// Run a prompt starting with `/` as a slash command (native API) instead of as text.
    pub slash_commands: bool,
    /// Tools that run without asking. `None`: every requested built-in tool (the compatible
    /// endpoints, where nobody could be asked). `Some`: only these; the rest are asked about.
    pub approved_tools: Option<Vec<String>>,
    /// Tools refused whatever else allows them (a session's `denied_tools`).
    pub denied_tools: Vec<String>,
    /// Which API the request came from (`store::source`); empty means OpenAI.
    pub source: &'static str,
    pub options: ClaudeOptions,
    /// Structured output: the answer must be a JSON value valid against this schema (an
    /// object schema). The CLI enforces it with its `StructuredOutput` tool
    /// (`initialize.jsonSchema`); see `domain::structured`.
    pub json_schema: Option<Value>,
    /// External MCP servers enabled for this turn (`mcp_servers`; see `domain::mcp`).
    pub mcp_servers: Vec<crate::domain::mcp::McpRef>,
}

impl TurnRequest {
    /// The client tools the model is actually offered, per `tool_choice`.
    pub fn offered_tools(&self) -> Vec<ClientTool> {
        match &self.tool_choice {
            ToolChoice::None => vec![],
            ToolChoice::Named(n) => self
                .tools
                .iter()
                .filter(|t| &t.name == n)
                .cloned()
                .collect(),
            _ => self.tools.clone(),
        }
    }

    /// Instructions appended to the system prompt to carry `tool_choice` and
    /// `parallel_tool_calls`, which the CLI has no option for.
    pub fn tool_instructions(&self) -> Option<String> {
        let mut parts = Vec::new();
        match &self.tool_choice {
            ToolChoice::Required if !self.tools.is_empty() => parts.push(
                "You must call at least one of the available tools before you answer.".to_string(),
            ),
            ToolChoice::Named(n) => parts.push(format!(
                "You must call the tool {} before you answer.",
                crate::claude::tools::model_name(n)
            )),
            _ => {}
        }
        if !self.parallel_tool_calls && !self.offered_tools().is_empty() {
            parts.push("Call at most one tool at a time.".into());
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// Take the new message off the end of a conversation: every trailing user message (the APIs
/// merge consecutive ones; tool results are user messages), as one list of blocks. Empty when
/// the conversation does not end with a user message.
pub fn take_prompt(messages: &mut Vec<Message>) -> Vec<Value> {
    let mut prompt = Vec::new();
    while messages.last().is_some_and(|m| m.role == Role::User) {
        if let Some(m) = messages.pop() {
            prompt.splice(0..0, m.content);
        }
    }
    prompt
}

/// Where a history must be split for a CLI to load it faithfully: the head can go into a
/// transcript file, which must end with a complete assistant message (the CLI drops a trailing
/// `tool_use` whose result is not in the file, and invents a reply after a trailing user
/// message); the tail (the last exchange, when it ends in tool calls) is replayed over stdin.
pub fn split_for_transcript(history: &[Message]) -> (Vec<Message>, Vec<Message>) {
    let merged = merge_roles(history);
    let ends_in_tool_use = merged.last().is_some_and(|m| {
        m.role == Role::Assistant && m.content.iter().any(|b| b["type"] == "tool_use")
    });
    if !ends_in_tool_use {
        return (merged, vec![]);
    }
    let cut = merged.len().saturating_sub(2);
    let cut = if merged.get(cut).is_some_and(|m| m.role == Role::User) {
        cut
    } else {
        merged.len() - 1
    };
    let tail = merged[cut..].to_vec();
    (merged[..cut].to_vec(), tail)
}

/// The text of a `tool_result` block whose content is a string or text blocks.
pub fn tool_result_text(b: &Value) -> String {
    match b.get("content") {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("")
            .trim()
            .to_string(),
        _ => String::new(),
    }
}

/// Finds stop sequences in streamed text. Text that could be the start of a stop sequence is
/// held back until the next piece shows whether it is one, so a client never sees any part of
/// a matched sequence.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    matched: Option<String>,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            ..Default::default()
        }
    }

    pub fn matched(&self) -> Option<&str> {
        self.matched.as_deref()
    }

    /// Feed a piece of text; returns what may be shown now.
    pub fn push(&mut self, piece: &str) -> String {
        if self.matched.is_some() {
            return String::new();
        }
        if self.stops.is_empty() {
            return piece.to_string();
        }
        self.held.push_str(piece);
        // Earliest match wins.
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|i| (i, s.clone())))
            .min_by_key(|(i, _)| *i);
        if let Some((i, s)) = hit {
            let out = self.held[..i].to_string();
            self.held.clear();
            self.matched = Some(s);
            return out;
        }
        // Keep the longest suffix that is a prefix of some stop sequence.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.held, s))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        out
    }

    /// The stream ended without a match: release what was held back.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of `stop`.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = stop.len().saturating_sub(1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && stop.is_char_boundary(n)
                && text.ends_with(&stop[..n])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(role: Role, t: &str) -> Message {
        Message {
            role,
            content: vec![json!({"type":"text","text":t})],
        }
    }

    #[test]
    fn split_keeps_a_dangling_tool_call_out_of_the_transcript() {
        let call = Message {
            role: Role::Assistant,
            content: vec![json!({"type":"tool_use","id":"t","name":"f","input":{}})],
        };
        let h = vec![
            text(Role::User, "a"),
            text(Role::Assistant, "b"),
            text(Role::User, "c"),
            call.clone(),
        ];
        let (head, tail) = split_for_transcript(&h);
        assert_eq!(head.len(), 2);
        assert_eq!(head[1].role, Role::Assistant);
        assert_eq!(tail.len(), 2);
        assert_eq!(tail[1], call);
        let (head, tail) = split_for_transcript(&h[..2]);
        assert_eq!((head.len(), tail.len()), (2, 0));
        let (head, tail) = split_for_transcript(&[text(Role::User, "a"), call]);
        assert_eq!((head.len(), tail.len()), (0, 2));
    }

    fn options(v: Value) -> Result<ClaudeOptions, InvalidField> {
        claude_options(v.as_object().unwrap())
    }

    #[test]
    fn claude_options_parse_every_field() {
        let o = options(
            json!({"thinking": {"type": "enabled", "budget_tokens": 2048},
            "effort": "high", "permission_mode": "acceptEdits", "agent": "general-purpose",
            "max_turns": 2, "session_id": "0b6f5c1e-aaaa-bbbb-cccc-123456789abc"}),
        )
        .unwrap();
        assert_eq!(o.thinking_budget, Some(2048));
        assert_eq!(o.effort.as_deref(), Some("high"));
        assert_eq!(o.permission_mode.as_deref(), Some("acceptEdits"));
        assert_eq!(o.agent.as_deref(), Some("general-purpose"));
        assert_eq!(o.max_turns, Some(2));
        assert_eq!(
            o.session_id.as_deref(),
            Some("0b6f5c1e-aaaa-bbbb-cccc-123456789abc")
        );
        assert!(o.sampling.is_empty());
        let off = options(json!({"thinking": {"type": "disabled"}, "effort": null})).unwrap();
        assert_eq!(off.thinking_budget, Some(0));
        assert_eq!(off.effort, None);
        let adaptive = options(json!({"thinking": {"type": "adaptive"}})).unwrap();
        assert_eq!(adaptive.thinking_budget, None);
        assert_eq!(options(json!({})).unwrap(), ClaudeOptions::default());
        // Plugin agents are namespaced.
        assert!(options(json!({"agent": "plugin:reviewer"})).is_ok());
    }

    #[test]
    fn claude_options_reject_bad_values_naming_the_field() {
        for (body, param) in [
            (json!({"thinking": true}), "thinking.type"),
            (json!({"thinking": {"type": "sometimes"}}), "thinking.type"),
            (
                json!({"thinking": {"type": "enabled"}}),
                "thinking.budget_tokens",
            ),
            (
                json!({"thinking": {"type": "enabled", "budget_tokens": 100}}),
                "thinking.budget_tokens",
            ),
            (json!({"effort": "extreme"}), "effort"),
            (json!({"effort": 3}), "effort"),
            (
                json!({"permission_mode": "bypassPermissions"}),
                "permission_mode",
            ),
            (json!({"agent": ""}), "agent"),
            (json!({"agent": "--help me"}), "agent"),
            (json!({"max_turns": 0}), "max_turns"),
            (json!({"max_turns": -1}), "max_turns"),
            (json!({"max_turns": "3"}), "max_turns"),
            (json!({"session_id": "../etc"}), "session_id"),
        ] {
            assert_eq!(options(body.clone()).unwrap_err().param, param, "{body}");
        }
        assert_eq!(
            builtin_tools(Some(&json!(["Read", 1]))).unwrap_err().param,
            "builtin_tools"
        );
        assert_eq!(builtin_tools(Some(&json!(["Read"]))).unwrap(), vec!["Read"]);
    }

    #[test]
    fn tool_names_and_schemas_are_checked() {
        assert!(check_tool_name("get_weather-2").is_ok());
        assert!(check_tool_name("").is_err());
        assert!(check_tool_name("has space").is_err());
        assert!(check_tool_name(&"x".repeat(MAX_TOOL_NAME + 1)).is_err());
        assert!(check_tool_schema(&json!({"type": "object"})).is_ok());
        assert!(check_tool_schema(&json!({"properties": {"a": {}}})).is_ok());
        assert!(check_tool_schema(&json!({"type": "string"})).is_err());
        assert!(check_tool_schema(&json!({"type": "object", "required": [1]})).is_err());
    }

    #[test]
    fn stop_matcher_cuts_at_the_sequence_across_pieces() {
        let mut m = StopMatcher::new(vec!["END".into()]);
        let mut out = String::new();
        for p in ["hello E", "N", "D and more"] {
            out.push_str(&m.push(p));
        }
        assert_eq!(out, "hello ");
        assert_eq!(m.matched(), Some("END"));
        assert_eq!(m.push("x"), "");
    }

    #[test]
    fn stop_matcher_releases_false_starts() {
        let mut m = StopMatcher::new(vec!["END".into(), "\n\n".into()]);
        let mut out = m.push("an E");
        out.push_str(&m.push("Nd"));
        out.push_str(&m.push("\n"));
        out.push_str(&m.finish());
        assert_eq!(out, "an ENd\n");
        assert_eq!(m.matched(), None);
    }

    #[test]
    fn stop_matcher_earliest_wins_and_handles_unicode() {
        let mut m = StopMatcher::new(vec!["ü!".into(), "b".into()]);
        assert_eq!(m.push("aü!b"), "a");
        assert_eq!(m.matched(), Some("ü!"));
        let mut none = StopMatcher::new(vec![]);
        assert_eq!(none.push("abc"), "abc");
    }
}
