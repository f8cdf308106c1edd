//! Anthropic Messages request → domain [`TurnRequest`]. Pure; every rejection names the
//! offending field in Anthropic's dotted form (`messages.1.content.0.type`).
//!
//! Content is already in the block format the CLI speaks, so conversion is mostly checking:
//! blocks are rebuilt from their known fields (so `cache_control`, citations and the like never
//! reach the CLI), thinking blocks in the history are dropped (the CLI's own history carries
//! them, and ours have no valid signature), and the trailing user message becomes the prompt.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::types::{MessageContent, MessagesRequest, SystemPrompt};
use crate::domain::models::{self, ModelTable};
use crate::domain::turn::{
    self, check_tool_name, check_tool_schema, merge_roles, ClaudeOptions, ClientTool, Message,
    Role, ToolChoice, TurnRequest, IMAGE_TYPES,
};
use crate::http::error::ApiError;

/// Our own fields on `/v1/messages` (see docs/claude-options.md), besides Anthropic's.
const EXTENSIONS: &[&str] = &[
    "thinking",
    "output_config",
    "effort",
    "permission_mode",
    "builtin_tools",
    "mcp_servers",
    "agent",
    "max_turns",
    "session_id",
];

/// Parse a body, naming the field when its shape is wrong.
pub fn parse(body: &[u8]) -> Result<MessagesRequest, ApiError> {
    crate::http::body::parse(body, &crate::http::body::ANTHROPIC)
}

/// Build the domain turn. `models` resolves the public model id.
pub fn to_turn(req: &MessagesRequest, models: &ModelTable) -> Result<TurnRequest, ApiError> {
    let model = models
        .resolve(&req.model)
        .ok_or_else(|| ApiError::ModelNotFound(req.model.clone()))?;
    let max_output_tokens = match req.max_tokens {
        None => return Err(ApiError::bad_request("max_tokens", "Field required")),
        Some(0) => {
            return Err(ApiError::bad_request(
                "max_tokens",
                "Input should be greater than or equal to 1",
            ))
        }
        n => n,
    };
    let tools = client_tools(req.tools.as_deref())?;
    let (tool_choice, parallel_tool_calls) = tool_choice(req.tool_choice.as_ref(), &tools)?;
    let conv = conversation(req)?;
    let stop = stop_sequences(req.stop_sequences.as_deref())?;
    let client_user = req
        .metadata
        .as_ref()
        .and_then(|m| m.user_id.clone())
        .filter(|u| !u.is_empty());
    Ok(TurnRequest {
        model_id: req.model.clone(),
        cli_model: model.cli_model.clone(),
        system: conv.system,
        history: conv.history,
        prompt: conv.prompt,
        max_output_tokens,
        stop,
        client_user,
        key: None,
        owner: String::new(),
        tools,
        tool_choice,
        parallel_tool_calls,
        builtin_tools: turn::builtin_tools(req.extra.get("builtin_tools"))?,
        slash_commands: false,
        approved_tools: None,
        denied_tools: vec![],
        source: crate::store::source::ANTHROPIC,
        options: options(req)?,
        json_schema: None,
        mcp_servers: crate::domain::mcp::parse_refs(req.extra.get("mcp_servers"), "mcp_servers")?,
    })
}

/// The body for the upstream's `count_tokens`: the conversation as the gateway would hand it
/// to the model (thinking dropped, blocks cleaned), under the model id the upstream knows.
pub fn count_tokens_body(req: &MessagesRequest, models: &ModelTable) -> Result<Value, ApiError> {
    let model = models
        .resolve(&req.model)
        .ok_or_else(|| ApiError::ModelNotFound(req.model.clone()))?;
    let tools = client_tools(req.tools.as_deref())?;
    let conv = conversation(req)?;
    let mut all = conv.history;
    all.push(Message::user(conv.prompt));
    let messages: Vec<Value> = merge_roles(&all)
        .into_iter()
        .map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": m.content})
        })
        .collect();
    let mut body = json!({
        "model": models::upstream_model_id(model.cli_model.model.as_deref()),
        "messages": messages,
    });
    if let Some(s) = conv.system {
        body["system"] = json!(s);
    }
    if !tools.is_empty() {
        body["tools"] = tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    Ok(body)
}

/// Request fields that were accepted but have no effect.
pub fn ignored_params(req: &MessagesRequest) -> Vec<String> {
    let mut out: Vec<String> = req
        .extra
        .keys()
        .filter(|k| !EXTENSIONS.contains(&k.as_str()))
        .cloned()
        .collect();
    if let Some(Value::Object(oc)) = req.extra.get("output_config") {
        out.extend(
            oc.keys()
                .filter(|k| *k != "effort")
                .map(|k| format!("output_config.{k}")),
        );
    }
    out
}

/// Claude Code options: the shared extensions, plus Anthropic's own `output_config.effort`
/// (the top-level `effort` wins), plus sampling.
fn options(req: &MessagesRequest) -> Result<ClaudeOptions, ApiError> {
    let mut o = turn::claude_options(&req.extra)?;
    if o.effort.is_none() {
        if let Some(e) = req.extra.get("output_config").and_then(|c| c.get("effort")) {
            if !e.is_null() {
                let mut f = Map::new();
                f.insert("effort".into(), e.clone());
                o.effort = turn::claude_options(&f)
                    .map_err(|_| {
                        ApiError::bad_request(
                            "output_config.effort",
                            format!("effort must be one of {}", turn::EFFORTS.join(", ")),
                        )
                    })?
                    .effort;
            }
        }
    }
    for (name, value, max) in [
        ("temperature", req.temperature, 1.0),
        ("top_p", req.top_p, 1.0),
    ] {
        if let Some(x) = value {
            if !(0.0..=max).contains(&x) {
                return Err(ApiError::bad_request(
                    name,
                    if x < 0.0 {
                        "Input should be greater than or equal to 0".to_string()
                    } else {
                        format!("Input should be less than or equal to {max}")
                    },
                ));
            }
            o.sampling.insert(name.into(), json!(x));
        }
    }
    if let Some(k) = req.top_k {
        o.sampling.insert("top_k".into(), json!(k));
    }
    Ok(o)
}

fn stop_sequences(stops: Option<&[String]>) -> Result<Vec<String>, ApiError> {
    let stops = stops.unwrap_or_default();
    if let Some(k) = stops.iter().position(|s| s.trim().is_empty()) {
        return Err(ApiError::bad_request(
            format!("stop_sequences.{k}"),
            "stop sequences must contain non-whitespace characters",
        ));
    }
    Ok(stops.to_vec())
}

/// System prompt, earlier messages, and the new user message's blocks.
struct Conversation {
    system: Option<String>,
    history: Vec<Message>,
    prompt: Vec<Value>,
}

fn conversation(req: &MessagesRequest) -> Result<Conversation, ApiError> {
    let mut system: Vec<String> = system_prompt(req.system.as_ref())?.into_iter().collect();
    if req.messages.is_empty() {
        return Err(ApiError::bad_request(
            "messages",
            "at least one message is required",
        ));
    }
    let mut messages: Vec<Message> = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let blocks = match &m.content {
            MessageContent::Text(s) => vec![json!({"type": "text", "text": s})],
            MessageContent::Blocks(b) => b.clone(),
        };
        let message = match m.role.as_str() {
            "user" => {
                if blocks.is_empty() {
                    return Err(ApiError::bad_request(
                        format!("messages.{i}.content"),
                        "a user message needs at least one content block",
                    ));
                }
                let content = blocks
                    .iter()
                    .enumerate()
                    .map(|(j, b)| user_block(b, &format!("messages.{i}.content.{j}")))
                    .collect::<Result<Vec<_>, _>>()?;
                Message::user(content)
            }
            "assistant" => {
                let mut content = Vec::new();
                for (j, b) in blocks.iter().enumerate() {
                    if let Some(b) = assistant_block(b, &format!("messages.{i}.content.{j}"))? {
                        content.push(b);
                    }
                }
                Message {
                    role: Role::Assistant,
                    content,
                }
            }
            // A system message mid-conversation (the `mid-conversation-system` beta; the Claude
            // Code CLI sends its agent listing this way). The CLI can only take system text at
            // the start, so it joins the system prompt: still a system instruction, in order.
            "system" => {
                if let Some(text) = system_text(&blocks, &format!("messages.{i}.content"))? {
                    system.push(text);
                }
                continue;
            }
            _ => {
                return Err(ApiError::bad_request(
                    format!("messages.{i}.role"),
                    "Input should be 'user', 'assistant' or 'system'",
                ))
            }
        };
        messages.push(message);
    }
    check_tool_pairs(&messages)?;
    let prompt = turn::take_prompt(&mut messages);
    if prompt.is_empty() {
        return Err(ApiError::bad_request(
            "",
            "This model does not support assistant message prefill. The conversation must end with a user message.",
        ));
    }
    Ok(Conversation {
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        history: messages,
        prompt,
    })
}

fn system_prompt(system: Option<&SystemPrompt>) -> Result<Option<String>, ApiError> {
    match system {
        None => Ok(None),
        Some(SystemPrompt::Text(s)) => Ok((!s.trim().is_empty()).then(|| s.clone())),
        Some(SystemPrompt::Blocks(blocks)) => system_text(blocks, "system"),
    }
}

/// The text of system content blocks (text blocks only), joined; `None` when blank.
fn system_text(blocks: &[Value], at: &str) -> Result<Option<String>, ApiError> {
    let text = blocks
        .iter()
        .enumerate()
        .map(|(k, b)| {
            if b.get("type").and_then(Value::as_str) != Some("text") {
                return Err(ApiError::bad_request(
                    format!("{at}.{k}.type"),
                    "system content blocks must be text blocks",
                ));
            }
            b.get("text")
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        format!("{at}.{k}.text"),
                        "Input should be a valid string",
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?
        .join("\n\n");
    Ok((!text.trim().is_empty()).then_some(text))
}

fn block_type<'a>(b: &'a Value, at: &str) -> Result<&'a str, ApiError> {
    if !b.is_object() {
        return Err(ApiError::bad_request(
            at,
            "Input should be a valid dictionary",
        ));
    }
    b.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("{at}.type"), "Field required"))
}

fn text_block(b: &Value, at: &str) -> Result<Value, ApiError> {
    b.get("text")
        .and_then(Value::as_str)
        .map(|t| json!({"type": "text", "text": t}))
        .ok_or_else(|| {
            ApiError::bad_request(format!("{at}.text"), "Input should be a valid string")
        })
}

pub(crate) fn user_block(b: &Value, at: &str) -> Result<Value, ApiError> {
    match block_type(b, at)? {
        "text" => text_block(b, at),
        "image" => image_block(b, at),
        "document" => {
            let source = b
                .get("source")
                .filter(|s| s.is_object())
                .ok_or_else(|| ApiError::bad_request(format!("{at}.source"), "Field required"))?;
            let mut out = json!({"type": "document", "source": source});
            for k in ["title", "context"] {
                if let Some(v) = b.get(k).filter(|v| v.is_string()) {
                    out[k] = v.clone();
                }
            }
            Ok(out)
        }
        "tool_result" => tool_result_block(b, at),
        other => Err(ApiError::bad_request(
            format!("{at}.type"),
            format!("Unsupported content block type '{other}' in a user message; expected text, image, document or tool_result"),
        )),
    }
}

/// An image block, base64 or URL source; the base64 data is checked here, where the error can
/// still name the block.
fn image_block(b: &Value, at: &str) -> Result<Value, ApiError> {
    let source = b
        .get("source")
        .filter(|s| s.is_object())
        .ok_or_else(|| ApiError::bad_request(format!("{at}.source"), "Field required"))?;
    let field = |k: &str| source.get(k).and_then(Value::as_str);
    match field("type") {
        Some("base64") => {
            let media_type = field("media_type").unwrap_or_default();
            if !IMAGE_TYPES.contains(&media_type) {
                return Err(ApiError::bad_request(
                    format!("{at}.source.media_type"),
                    format!(
                        "unsupported image type '{media_type}'; expected one of {}",
                        IMAGE_TYPES.join(", ")
                    ),
                ));
            }
            let data = field("data").ok_or_else(|| {
                ApiError::bad_request(format!("{at}.source.data"), "Field required")
            })?;
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| {
                    ApiError::bad_request(
                        format!("{at}.source.data"),
                        format!("the image data is not valid base64: {e}"),
                    )
                })?;
            Ok(
                json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data.trim()}}),
            )
        }
        Some("url") => match field("url") {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                Ok(json!({"type": "image", "source": {"type": "url", "url": u}}))
            }
            _ => Err(ApiError::bad_request(
                format!("{at}.source.url"),
                "an image URL must be an http:// or https:// URL",
            )),
        },
        other => Err(ApiError::bad_request(
            format!("{at}.source.type"),
            format!(
                "Unsupported image source type '{}'; expected base64 or url",
                other.unwrap_or("")
            ),
        )),
    }
}

fn tool_result_block(b: &Value, at: &str) -> Result<Value, ApiError> {
    let id = b
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("{at}.tool_use_id"), "Field required"))?;
    let content = match b.get("content") {
        None | Some(Value::Null) => json!(""),
        Some(Value::String(s)) => json!(s),
        Some(Value::Array(parts)) => Value::Array(
            parts
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    let pat = format!("{at}.content.{k}");
                    match block_type(p, &pat)? {
                        "text" => text_block(p, &pat),
                        "image" => image_block(p, &pat),
                        other => Err(ApiError::bad_request(
                            format!("{pat}.type"),
                            format!("Unsupported block type '{other}' in a tool result; expected text or image"),
                        )),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => {
            return Err(ApiError::bad_request(
                format!("{at}.content"),
                "content must be a string or an array of content blocks",
            ))
        }
    };
    let mut out = json!({"type": "tool_result", "tool_use_id": id, "content": content});
    match b.get("is_error") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(e)) => out["is_error"] = json!(e),
        Some(_) => {
            return Err(ApiError::bad_request(
                format!("{at}.is_error"),
                "is_error must be a boolean",
            ))
        }
    }
    Ok(out)
}

/// An assistant block for the history; `None` for thinking, which is dropped.
fn assistant_block(b: &Value, at: &str) -> Result<Option<Value>, ApiError> {
    match block_type(b, at)? {
        "text" => text_block(b, at).map(Some),
        "thinking" | "redacted_thinking" => Ok(None),
        "tool_use" => {
            let id = b
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request(format!("{at}.id"), "Field required"))?;
            let name = b
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request(format!("{at}.name"), "Field required"))?;
            let input = match b.get("input") {
                None | Some(Value::Null) => json!({}),
                Some(v @ Value::Object(_)) => v.clone(),
                Some(_) => {
                    return Err(ApiError::bad_request(
                        format!("{at}.input"),
                        "Input should be a valid dictionary",
                    ))
                }
            };
            Ok(Some(
                json!({"type": "tool_use", "id": id, "name": name, "input": input}),
            ))
        }
        other => Err(ApiError::bad_request(
            format!("{at}.type"),
            format!("Unsupported content block type '{other}' in an assistant message; expected text, thinking or tool_use"),
        )),
    }
}

/// Every `tool_use` is answered by a `tool_result` in the user message right after it, and
/// every `tool_result` answers a `tool_use` of the assistant message right before, as
/// Anthropic's API requires.
fn check_tool_pairs(messages: &[Message]) -> Result<(), ApiError> {
    let mut open: Vec<String> = Vec::new();
    // Index of the assistant message whose calls are open.
    let mut opened_at = 0;
    for (i, m) in messages.iter().enumerate() {
        match m.role {
            Role::Assistant => {
                if let Some(id) = open.first() {
                    return Err(unanswered(opened_at, id));
                }
                open = m
                    .content
                    .iter()
                    .filter(|b| b["type"] == "tool_use")
                    .filter_map(|b| b["id"].as_str().map(String::from))
                    .collect();
                opened_at = i;
            }
            Role::User => {
                for (j, b) in m.content.iter().enumerate() {
                    if b["type"] != "tool_result" {
                        continue;
                    }
                    let id = b["tool_use_id"].as_str().unwrap_or_default();
                    match open.iter().position(|o| o == id) {
                        Some(p) => {
                            open.remove(p);
                        }
                        _ => {
                            return Err(ApiError::bad_request(
                                format!("messages.{i}.content.{j}"),
                                format!("unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."),
                            ))
                        }
                    }
                }
                // The first user message after the calls must answer all of them.
                if let Some(id) = open.first() {
                    return Err(unanswered(opened_at, id));
                }
            }
        }
    }
    Ok(())
}

fn unanswered(at: usize, id: &str) -> ApiError {
    ApiError::bad_request(
        format!("messages.{at}"),
        format!("`tool_use` ids were found without `tool_result` blocks immediately after: {id}. Each `tool_use` block must have a corresponding `tool_result` block in the next message."),
    )
}

fn client_tools(tools: Option<&[Value]>) -> Result<Vec<ClientTool>, ApiError> {
    let mut out: Vec<ClientTool> = Vec::new();
    for (i, t) in tools.unwrap_or_default().iter().enumerate() {
        let at = |f: &str| format!("tools.{i}.{f}");
        if !t.is_object() {
            return Err(ApiError::bad_request(
                format!("tools.{i}"),
                "Input should be a valid dictionary",
            ));
        }
        match t.get("type").and_then(Value::as_str) {
            None | Some("custom") => {}
            Some(other) => {
                return Err(ApiError::bad_request(
                    at("type"),
                    format!("Only custom tools (name, description, input_schema) are supported, not '{other}'"),
                ))
            }
        }
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request(at("name"), "Field required"))?;
        check_tool_name(name).map_err(|why| ApiError::bad_request(at("name"), why))?;
        if out.iter().any(|o| o.name == name) {
            return Err(ApiError::bad_request(
                at("name"),
                format!("Duplicate tool name '{name}'"),
            ));
        }
        let schema = t
            .get("input_schema")
            .filter(|s| !s.is_null())
            .ok_or_else(|| {
                ApiError::bad_request(
                    at("input_schema"),
                    format!("Field required (tool '{name}')"),
                )
            })?;
        check_tool_schema(schema).map_err(|why| {
            ApiError::bad_request(
                at("input_schema"),
                format!("Invalid input_schema for tool '{name}': {why}"),
            )
        })?;
        let description = match t.get("description") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(d)) => d.clone(),
            Some(_) => {
                return Err(ApiError::bad_request(
                    at("description"),
                    format!("description of tool '{name}' must be a string"),
                ))
            }
        };
        out.push(ClientTool {
            name: name.to_string(),
            description,
            parameters: schema.clone(),
        });
    }
    Ok(out)
}

/// Anthropic's `tool_choice` → the domain's choice, and whether parallel calls are allowed.
fn tool_choice(
    choice: Option<&Value>,
    tools: &[ClientTool],
) -> Result<(ToolChoice, bool), ApiError> {
    let Some(c) = choice.filter(|c| !c.is_null()) else {
        return Ok((ToolChoice::Auto, true));
    };
    let parallel = match c.get("disable_parallel_tool_use") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(d)) => !d,
        Some(_) => {
            return Err(ApiError::bad_request(
                "tool_choice.disable_parallel_tool_use",
                "disable_parallel_tool_use must be a boolean",
            ))
        }
    };
    let kind = c
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("tool_choice.type", "Field required"))?;
    let choice = match kind {
        "auto" => ToolChoice::Auto,
        "none" => ToolChoice::None,
        "any" if tools.is_empty() => {
            return Err(ApiError::bad_request(
                "tool_choice.type",
                "tool_choice 'any' needs tools",
            ))
        }
        "any" => ToolChoice::Required,
        "tool" => {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("tool_choice.name", "Field required"))?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(ApiError::bad_request(
                    "tool_choice.name",
                    format!("tool_choice names '{name}', which is not among the tools"),
                ));
            }
            ToolChoice::Named(name.to_string())
        }
        other => {
            return Err(ApiError::bad_request(
                "tool_choice.type",
                format!("Unknown tool_choice type '{other}'; expected auto, any, tool or none"),
            ))
        }
    };
    Ok((choice, parallel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::models::default_table;

    fn table() -> ModelTable {
        ModelTable::new(&default_table())
    }

    fn turn(body: Value) -> Result<TurnRequest, ApiError> {
        let req = parse(body.to_string().as_bytes())?;
        to_turn(&req, &table())
    }

    fn base(messages: Value) -> Value {
        json!({"model": "sonnet", "max_tokens": 100, "messages": messages})
    }

    fn with(mut body: Value, k: &str, v: Value) -> Value {
        body[k] = v;
        body
    }

    use crate::api::bad_param as param;

    fn user(t: &str) -> Value {
        json!({"role": "user", "content": t})
    }

    #[test]
    fn system_history_prompt_and_parameters() {
        let t = turn(json!({"model": "sonnet", "max_tokens": 50,
            "system": [{"type": "text", "text": "S1", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "S2"}],
            "messages": [user("q1"),
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "x"}, {"type": "text", "text": "a1"}]},
                {"role": "user", "content": [{"type": "text", "text": "q2", "cache_control": {"type": "ephemeral"}}]}],
            "stop_sequences": ["END"], "metadata": {"user_id": "u-7"},
            "temperature": 0.3, "top_p": 0.9, "top_k": 5}))
        .unwrap();
        assert_eq!(t.system.as_deref(), Some("S1\n\nS2"));
        assert_eq!(t.history.len(), 2);
        // Thinking is dropped from the history.
        assert_eq!(
            t.history[1].content,
            vec![json!({"type": "text", "text": "a1"})]
        );
        // Blocks are rebuilt: no cache_control reaches the CLI.
        assert_eq!(t.prompt, vec![json!({"type": "text", "text": "q2"})]);
        assert_eq!(t.max_output_tokens, Some(50));
        assert_eq!(t.stop, vec!["END"]);
        assert_eq!(t.client_user.as_deref(), Some("u-7"));
        assert_eq!(t.cli_model.model.as_deref(), Some("sonnet"));
        assert_eq!(t.options.sampling["temperature"], 0.3);
        assert_eq!(t.options.sampling["top_p"], 0.9);
        assert_eq!(t.options.sampling["top_k"], 5);
        let plain = turn(with(base(json!([user("x")])), "system", json!("S"))).unwrap();
        assert_eq!(plain.system.as_deref(), Some("S"));
        assert_eq!(plain.prompt[0]["text"], "x");
    }

    #[test]
    fn images_pass_through_as_image_blocks() {
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
        let t = turn(base(json!([{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "text", "text": "what"}]}])))
        .unwrap();
        assert_eq!(t.prompt[0]["source"]["data"], png);
        assert_eq!(t.prompt[1]["source"]["url"], "https://example.com/a.png");
        let bad = turn(base(json!([{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "%%%"}}]}])));
        assert_eq!(param(bad.unwrap_err()), "messages.0.content.0.source.data");
        let bmp = turn(base(json!([{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": png}}]}])));
        assert_eq!(
            param(bmp.unwrap_err()),
            "messages.0.content.0.source.media_type"
        );
    }

    #[test]
    fn rejections_name_the_field_anthropic_style() {
        let cases = [
            (json!({"max_tokens": 5, "messages": [user("x")]}), "model"),
            (json!({"model": "sonnet", "max_tokens": 5}), "messages"),
            (
                json!({"model": "sonnet", "messages": [user("x")]}),
                "max_tokens",
            ),
            (
                with(base(json!([user("x")])), "max_tokens", json!("many")),
                "max_tokens",
            ),
            (base(json!("hi")), "messages"),
            (base(json!([])), "messages"),
            (
                base(json!([{"role": "robot", "content": "x"}])),
                "messages.0.role",
            ),
            (
                base(json!([{"role": "user", "content": 5}])),
                "messages.0.content",
            ),
            (
                base(json!([user("x"), {"role": "user", "content": [{"type": "video"}]}])),
                "messages.1.content.0.type",
            ),
            (
                base(
                    json!([user("x"), {"role": "assistant", "content": [{"type": "server_tool_use"}]}, user("z")]),
                ),
                "messages.1.content.0.type",
            ),
            (
                with(base(json!([user("x")])), "temperature", json!(1.5)),
                "temperature",
            ),
            (
                with(
                    base(json!([user("x")])),
                    "stop_sequences",
                    json!(["ok", " "]),
                ),
                "stop_sequences.1",
            ),
            (
                with(
                    base(json!([user("x")])),
                    "system",
                    json!([{"type": "image"}]),
                ),
                "system.0.type",
            ),
            (
                with(
                    base(json!([user("x")])),
                    "thinking",
                    json!({"type": "enabled"}),
                ),
                "thinking.budget_tokens",
            ),
            (
                with(base(json!([user("x")])), "effort", json!("huge")),
                "effort",
            ),
            (
                with(
                    base(json!([user("x")])),
                    "output_config",
                    json!({"effort": "huge"}),
                ),
                "output_config.effort",
            ),
        ];
        for (body, expected) in cases {
            let e = turn(body.clone()).unwrap_err();
            let shown = e.anthropic_body()["error"]["message"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(param(e), expected, "{body}");
            assert!(shown.starts_with(&format!("{expected}: ")), "{shown}");
        }
        assert!(matches!(
            turn(json!({"model": "gpt-4o", "max_tokens": 5, "messages": [user("x")]})).unwrap_err(),
            ApiError::ModelNotFound(_)
        ));
        // Worded as the real API words it, with no field in front.
        let prefill = turn(base(
            json!([user("x"), {"role": "assistant", "content": "y"}]),
        ));
        assert_eq!(
            prefill.unwrap_err().anthropic_body()["error"]["message"],
            "This model does not support assistant message prefill. The conversation must end with a user message."
        );
    }

    #[test]
    fn system_messages_mid_conversation_join_the_system_prompt() {
        let t = turn(json!({"model": "sonnet", "max_tokens": 10, "system": "top",
            "messages": [user("q1"), {"role": "system", "content": "agents: a, b"},
                {"role": "assistant", "content": "a1"},
                {"role": "system", "content": [{"type": "text", "text": "late"}]}, user("q2")]}))
        .unwrap();
        assert_eq!(t.system.as_deref(), Some("top\n\nagents: a, b\n\nlate"));
        assert_eq!(t.history.len(), 2);
        assert_eq!(t.prompt[0]["text"], "q2");
        // As the Claude Code CLI sends it: the system message after the new user message.
        let t = turn(json!({"model": "sonnet", "max_tokens": 10,
            "messages": [user("q"), {"role": "system", "content": "agents"}]}))
        .unwrap();
        assert_eq!(t.system.as_deref(), Some("agents"));
        assert_eq!(t.prompt[0]["text"], "q");
        let bad = turn(base(
            json!([{"role": "system", "content": [{"type": "image"}]}, user("q")]),
        ));
        assert_eq!(param(bad.unwrap_err()), "messages.0.content.0.type");
    }

    fn weather() -> Value {
        json!({"name": "get_weather", "description": "d", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
    }

    #[test]
    fn tools_and_tool_choice() {
        let t = turn(with(
            with(base(json!([user("x")])), "tools", json!([weather()])),
            "tool_choice",
            json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}),
        ))
        .unwrap();
        assert_eq!(t.tools[0].name, "get_weather");
        assert_eq!(t.tools[0].parameters["required"][0], "city");
        assert_eq!(t.tool_choice, ToolChoice::Named("get_weather".into()));
        assert!(!t.parallel_tool_calls);
        let any = turn(with(
            with(base(json!([user("x")])), "tools", json!([weather()])),
            "tool_choice",
            json!({"type": "any"}),
        ))
        .unwrap();
        assert_eq!(any.tool_choice, ToolChoice::Required);
        assert!(any.parallel_tool_calls);
        let none = turn(with(
            with(base(json!([user("x")])), "tools", json!([weather()])),
            "tool_choice",
            json!({"type": "none"}),
        ))
        .unwrap();
        assert!(none.offered_tools().is_empty());
        for (tools, choice, expected, named) in [
            (
                json!([{"name": "f", "input_schema": {"type": "string"}}]),
                Value::Null,
                "tools.0.input_schema",
                "'f'",
            ),
            (
                json!([weather(), {"name": "g"}]),
                Value::Null,
                "tools.1.input_schema",
                "'g'",
            ),
            (
                json!([{"name": "has space", "input_schema": {"type": "object"}}]),
                Value::Null,
                "tools.0.name",
                "'has space'",
            ),
            (
                json!([{"type": "web_search_20250305", "name": "web_search"}]),
                Value::Null,
                "tools.0.type",
                "web_search",
            ),
            (
                json!([weather()]),
                json!({"type": "tool", "name": "nope"}),
                "tool_choice.name",
                "'nope'",
            ),
            (
                json!([weather()]),
                json!({"type": "maybe"}),
                "tool_choice.type",
                "'maybe'",
            ),
        ] {
            let e = turn(with(
                with(base(json!([user("x")])), "tools", tools),
                "tool_choice",
                choice,
            ))
            .unwrap_err();
            assert!(e.to_string().contains(named), "{e}");
            assert_eq!(param(e), expected);
        }
    }

    fn call(id: &str) -> Value {
        json!({"type": "tool_use", "id": id, "name": "get_weather", "input": {"city": "Paris"}})
    }

    fn result(id: &str, content: Value) -> Value {
        json!({"type": "tool_result", "tool_use_id": id, "content": content})
    }

    #[test]
    fn tool_results_become_the_prompt() {
        let t = turn(with(
            base(json!([user("weather?"),
                {"role": "assistant", "content": [{"type": "text", "text": "checking"}, call("t1"), call("t2")]},
                {"role": "user", "content": [result("t2", json!("rain")), result("t1", json!([{"type": "text", "text": "sun"}]))]}])),
            "tools",
            json!([weather()]),
        ))
        .unwrap();
        assert_eq!(t.history.len(), 2);
        assert_eq!(t.history[1].content[1]["type"], "tool_use");
        assert_eq!(t.history[1].content[2]["input"]["city"], "Paris");
        assert_eq!(t.prompt.len(), 2);
        assert_eq!(t.prompt[0]["tool_use_id"], "t2");
        assert_eq!(t.prompt[1]["content"][0]["text"], "sun");
    }

    #[test]
    fn unanswered_or_unknown_tool_results_are_named() {
        let missing = turn(base(json!([user("w"),
            {"role": "assistant", "content": [call("t1"), call("t2")]},
            {"role": "user", "content": [result("t1", json!("sun"))]}])));
        let e = missing.unwrap_err();
        assert!(e.to_string().contains("t2"), "{e}");
        assert_eq!(param(e), "messages.1");
        let unknown = turn(base(json!([user("w"),
            {"role": "assistant", "content": [call("t1")]},
            {"role": "user", "content": [result("t1", json!("sun")), result("zz", json!("?"))]}])));
        let e = unknown.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("unexpected `tool_use_id` found in `tool_result` blocks: zz."),
            "{e}"
        );
        assert_eq!(param(e), "messages.2.content.1");
    }

    #[test]
    fn claude_options_as_native_fields() {
        let t = turn(
            json!({"model": "sonnet", "max_tokens": 5000, "messages": [user("x")],
            "thinking": {"type": "enabled", "budget_tokens": 2048}, "effort": "low",
            "permission_mode": "plan", "builtin_tools": ["Read"], "agent": "general-purpose",
            "max_turns": 3, "session_id": "s-1"}),
        )
        .unwrap();
        assert_eq!(t.options.thinking_budget, Some(2048));
        assert_eq!(t.options.effort.as_deref(), Some("low"));
        assert_eq!(t.options.permission_mode.as_deref(), Some("plan"));
        assert_eq!(t.options.agent.as_deref(), Some("general-purpose"));
        assert_eq!(t.options.max_turns, Some(3));
        assert_eq!(t.options.session_id.as_deref(), Some("s-1"));
        assert_eq!(t.builtin_tools, vec!["Read"]);
        let off = turn(with(
            base(json!([user("x")])),
            "thinking",
            json!({"type": "disabled"}),
        ))
        .unwrap();
        assert_eq!(off.options.thinking_budget, Some(0));
        let oc = turn(with(
            base(json!([user("x")])),
            "output_config",
            json!({"effort": "max"}),
        ))
        .unwrap();
        assert_eq!(oc.options.effort.as_deref(), Some("max"));
        for (k, v) in [
            ("permission_mode", json!("bypassPermissions")),
            ("max_turns", json!(0)),
            ("agent", json!("a b")),
            ("builtin_tools", json!("Read")),
        ] {
            assert_eq!(
                param(turn(with(base(json!([user("x")])), k, v)).unwrap_err()),
                k
            );
        }
    }

    #[test]
    fn count_tokens_body_is_the_cleaned_conversation() {
        let req = parse(
            json!({"model": "sonnet", "system": "S", "tools": [weather()], "messages": [user("q1"),
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ""}, {"type": "text", "text": "a1"}]},
                user("q2")]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let body = count_tokens_body(&req, &table()).unwrap();
        assert_eq!(body["model"], "claude-sonnet-5");
        assert_eq!(body["system"], "S");
        assert_eq!(body["tools"][0]["name"], "get_weather");
        assert_eq!(body["messages"].as_array().unwrap().len(), 3);
        assert_eq!(
            body["messages"][1]["content"],
            json!([{"type": "text", "text": "a1"}])
        );
        assert_eq!(body["messages"][2]["role"], "user");
    }

    #[test]
    fn ignored_params_are_reported() {
        let req = parse(
            json!({"model": "sonnet", "max_tokens": 5, "messages": [user("x")], "service_tier": "auto",
                "effort": "low", "output_config": {"effort": "low", "format": {}}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let mut ignored = ignored_params(&req);
        ignored.sort();
        assert_eq!(ignored, vec!["output_config.format", "service_tier"]);
    }
}
