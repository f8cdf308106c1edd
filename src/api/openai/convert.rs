//! OpenAI request → domain [`TurnRequest`]. Pure; every rejection names the offending field.

use base64::Engine as _;
use serde_json::{json, Value};

use super::types::{ChatCompletionRequest, ChatMessage, MessageContent};
use crate::domain::models::ModelTable;
use crate::domain::turn::{
    self, check_tool_name, check_tool_schema, ClaudeOptions, ClientTool, Message, OutputFormat,
    Role, ToolChoice, TurnRequest, IMAGE_TYPES,
};
use crate::http::error::ApiError;

/// Sampling parameters passed to the model as they are (through `CLAUDE_CODE_EXTRA_BODY`).
const SAMPLING: &[(&str, f64, f64)] = &[("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)];

/// Parameters the CLI cannot honour. They are accepted and ignored (see the README).
pub const IGNORED_PARAMS: &[&str] = &[
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "service_tier",
    "store",
    "prediction",
    "modalities",
    "audio",
    "web_search_options",
    "verbosity",
];

/// Parse a body, naming the field when its shape is wrong.
pub fn parse(body: &[u8]) -> Result<ChatCompletionRequest, ApiError> {
    crate::http::body::parse(body, &crate::http::body::OPENAI)
}

/// Build the domain turn. `models` resolves the public model id.
pub fn to_turn(req: &ChatCompletionRequest, models: &ModelTable) -> Result<TurnRequest, ApiError> {
    let model = models
        .resolve(&req.model)
        .ok_or_else(|| ApiError::ModelNotFound(req.model.clone()))?;
    if let Some(n) = req.n {
        if n != 1 {
            return Err(ApiError::bad_request(
                "n",
                "Only n=1 is supported: Claude Code produces one completion per request",
            ));
        }
    }
    let tools = function_tools(req.tools.as_ref(), true)?;
    let tool_choice = tool_choice(req.tool_choice.as_ref(), &tools)?;
    let builtin_tools = turn::builtin_tools(req.extra.get("builtin_tools"))?;
    let options = ClaudeOptions {
        sampling: sampling(&req.extra)?,
        ..claude_options(&req.extra)?
    };
    validate_tool_results(&req.messages)?;
    let max_output_tokens = match (req.max_completion_tokens, req.max_tokens) {
        (Some(0), _) => {
            return Err(ApiError::bad_request(
                "max_completion_tokens",
                "must be at least 1",
            ))
        }
        (None, Some(0)) => return Err(ApiError::bad_request("max_tokens", "must be at least 1")),
        (a, b) => a.or(b),
    };
    let stop = req.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    if stop.len() > 4 {
        return Err(ApiError::bad_request(
            "stop",
            "At most 4 stop sequences are allowed",
        ));
    }

    let mut system_parts: Vec<String> = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    if req.messages.is_empty() {
        return Err(ApiError::bad_request(
            "messages",
            "'messages' must contain at least one message",
        ));
    }
    for (i, m) in req.messages.iter().enumerate() {
        match m.role.as_str() {
            "system" | "developer" => system_parts.push(text_only(m, i)?),
            "user" => messages.push(Message::user(user_blocks(m, i)?)),
            "assistant" => messages.push(assistant_message(m, i)?),
            "tool" => messages.push(Message::user(vec![tool_result(m, i)?])),
            other => {
                return Err(ApiError::bad_request(
                    format!("messages[{i}].role"),
                    format!("Unsupported role '{other}'; expected system, developer, user, assistant or tool"),
                ))
            }
        }
    }
    let (instruction, json_schema) = response_format(req.response_format.as_ref())?;
    system_parts.extend(instruction);
    let prompt = turn::take_prompt(&mut messages);
    if prompt.is_empty() {
        return Err(ApiError::bad_request(
            format!("messages[{}].role", req.messages.len() - 1),
            "The last message must be a user or tool message",
        ));
    }
    let system = (!system_parts.is_empty()).then(|| system_parts.join("\n\n"));
    Ok(TurnRequest {
        model_id: req.model.clone(),
        cli_model: model.cli_model.clone(),
        system,
        history: messages,
        prompt,
        max_output_tokens,
        stop,
        client_user: req.user.clone(),
        key: None,
        owner: String::new(),
        tools,
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
        builtin_tools,
        slash_commands: false,
        approved_tools: None,
        denied_tools: vec![],
        source: crate::store::source::OPENAI,
        options,
        json_schema,
        mcp_servers: crate::domain::mcp::parse_refs(req.extra.get("mcp_servers"), "mcp_servers")?,
    })
}

/// The Claude options of `extra_body`, plus OpenAI's own `reasoning_effort`.
fn claude_options(extra: &serde_json::Map<String, Value>) -> Result<ClaudeOptions, ApiError> {
    let mut o = turn::claude_options(extra)?;
    reasoning_effort(&mut o, extra.get("reasoning_effort"), "reasoning_effort")?;
    Ok(o)
}

/// OpenAI's reasoning effort (`reasoning_effort`; the Responses API's `reasoning.effort`) as
/// Claude Code's: `minimal` is the lowest effort Claude Code has, `low`; `none` turns thinking
/// off. An explicit `effort` or `thinking` wins over it.
pub fn reasoning_effort(
    o: &mut ClaudeOptions,
    v: Option<&Value>,
    param: &str,
) -> Result<(), ApiError> {
    match v {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_str() {
            Some("none") if o.thinking_budget.is_none() => o.thinking_budget = Some(0),
            Some("none") => {}
            Some("minimal") => {
                o.effort.get_or_insert_with(|| "low".into());
            }
            Some(e) if turn::EFFORTS.contains(&e) => {
                o.effort.get_or_insert_with(|| e.to_string());
            }
            _ => {
                return Err(ApiError::bad_request(
                    param,
                    format!(
                        "{param} must be one of none, minimal, {}",
                        turn::EFFORTS.join(", ")
                    ),
                ))
            }
        },
    }
    Ok(())
}

/// `temperature` and `top_p` of a request's fields. OpenAI allows temperature up to 2;
/// Anthropic's API takes 0..=1, so it is clamped. Shared with the Responses API.
pub fn sampling(
    fields: &serde_json::Map<String, Value>,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let mut out = serde_json::Map::new();
    for (name, lo, hi) in SAMPLING {
        match fields.get(*name) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let x = v
                    .as_f64()
                    .filter(|x| (*lo..=*hi).contains(x))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            *name,
                            format!("{name} must be a number from {lo} to {hi}"),
                        )
                    })?;
                out.insert(name.to_string(), json!(x.min(1.0)));
            }
        }
    }
    Ok(out)
}

/// Our own extensions, accepted as top-level fields (what `extra_body` sends); see
/// docs/claude-options.md.
const EXTENSIONS: &[&str] = &[
    "builtin_tools",
    "mcp_servers",
    "temperature",
    "top_p",
    "thinking",
    "effort",
    "reasoning_effort",
    "permission_mode",
    "agent",
    "max_turns",
    "session_id",
];

/// Function tools: Chat Completions nests each definition under `function` (`nested`); the
/// Responses API has `name`, `description` and `parameters` on the tool itself.
pub fn function_tools(tools: Option<&Value>, nested: bool) -> Result<Vec<ClientTool>, ApiError> {
    let Some(tools) = tools.filter(|t| !t.is_null()) else {
        return Ok(vec![]);
    };
    let list = tools
        .as_array()
        .ok_or_else(|| ApiError::bad_request("tools", "tools must be an array"))?;
    let mut out: Vec<ClientTool> = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let at = |f: &str| format!("tools[{i}]{f}");
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(ApiError::bad_request(
                at(".type"),
                "Only tools of type 'function' are supported",
            ));
        }
        let (f, def) = if nested {
            let f = t
                .get("function")
                .filter(|f| f.is_object())
                .ok_or_else(|| ApiError::bad_request(at(".function"), "function is required"))?;
            (f, ".function")
        } else {
            (t, "")
        };
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request(at(&format!("{def}.name")), "name is required"))?;
        check_tool_name(name)
            .map_err(|why| ApiError::bad_request(at(&format!("{def}.name")), why))?;
        if out.iter().any(|o| o.name == name) {
            return Err(ApiError::bad_request(
                at(&format!("{def}.name")),
                format!("Duplicate tool name '{name}'"),
            ));
        }
        let parameters = match f.get("parameters") {
            None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
            Some(p) => {
                check_tool_schema(p).map_err(|why| {
                    ApiError::bad_request(
                        at(&format!("{def}.parameters")),
                        format!("Invalid parameters schema for tool '{name}': {why}"),
                    )
                })?;
                p.clone()
            }
        };
        out.push(ClientTool {
            name: name.to_string(),
            description: f
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            parameters,
        });
    }
    Ok(out)
}

/// `tool_choice`: `auto`, `none`, `required`, or one function (Chat Completions names it at
/// `function.name`, the Responses API at `name`).
pub fn tool_choice(choice: Option<&Value>, tools: &[ClientTool]) -> Result<ToolChoice, ApiError> {
    match choice {
        None | Some(Value::Null) => Ok(ToolChoice::Auto),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" if tools.is_empty() => Err(ApiError::bad_request(
                "tool_choice",
                "tool_choice 'required' needs tools",
            )),
            "required" => Ok(ToolChoice::Required),
            other => Err(ApiError::bad_request(
                "tool_choice",
                format!("Unknown tool_choice '{other}'"),
            )),
        },
        Some(v) => {
            let name = v
                .pointer("/function/name")
                .or_else(|| v.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::bad_request("tool_choice.function.name", "function.name is required")
                })?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(ApiError::bad_request(
                    "tool_choice.function.name",
                    format!("tool_choice names '{name}', which is not among the tools"),
                ));
            }
            Ok(ToolChoice::Named(name.to_string()))
        }
    }
}

/// Every `tool` message answers a call of the assistant message before it, and every call is
/// answered before the conversation goes on (as OpenAI requires).
fn validate_tool_results(messages: &[ChatMessage]) -> Result<(), ApiError> {
    let mut open: Vec<String> = Vec::new();
    let missing = |open: &[String]| {
        ApiError::bad_request(
            "messages",
            format!("The result for the tool call '{}' is missing: send a tool message with that tool_call_id", open[0]),
        )
    };
    for (i, m) in messages.iter().enumerate() {
        match m.role.as_str() {
            "assistant" | "user" if !open.is_empty() => return Err(missing(&open)),
            "assistant" => {
                open = m
                    .tool_calls
                    .iter()
                    .flatten()
                    .filter_map(|c| c.get("id").and_then(Value::as_str).map(String::from))
                    .collect();
            }
            "tool" => {
                let id = m.tool_call_id.as_deref().unwrap_or_default();
                match open.iter().position(|o| o == id) {
                    Some(p) => {
                        open.remove(p);
                    }
                    None => {
                        return Err(ApiError::bad_request(
                            format!("messages[{i}].tool_call_id"),
                            format!(
                            "No assistant tool call with the id '{id}' precedes this tool message"
                        ),
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    if open.is_empty() {
        Ok(())
    } else {
        Err(missing(&open))
    }
}

/// Request parameters that were accepted but have no effect.
pub fn ignored_params(req: &ChatCompletionRequest) -> Vec<&str> {
    req.extra
        .keys()
        .map(String::as_str)
        .filter(|k| !EXTENSIONS.contains(k))
        .collect()
}

fn text_only(m: &ChatMessage, i: usize) -> Result<String, ApiError> {
    match &m.content {
        Some(MessageContent::Text(s)) => Ok(s.clone()),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match p.get("type").and_then(Value::as_str) {
                Some("text") => p
                    .get("text")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            format!("messages[{i}].content[{j}].text"),
                            "text must be a string",
                        )
                    }),
                _ => Err(ApiError::bad_request(
                    format!("messages[{i}].content[{j}].type"),
                    format!("Only text parts are allowed in a {} message", m.role),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join("\n")),
        None => Err(ApiError::bad_request(
            format!("messages[{i}].content"),
            "content is required",
        )),
    }
}

fn user_blocks(m: &ChatMessage, i: usize) -> Result<Vec<Value>, ApiError> {
    match &m.content {
        Some(MessageContent::Text(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(MessageContent::Parts(parts)) => {
            if parts.is_empty() {
                return Err(ApiError::bad_request(
                    format!("messages[{i}].content"),
                    "content must not be empty",
                ));
            }
            parts
                .iter()
                .enumerate()
                .map(|(j, p)| user_part(p, i, j))
                .collect()
        }
        None => Err(ApiError::bad_request(
            format!("messages[{i}].content"),
            "content is required for user messages",
        )),
    }
}

fn user_part(p: &Value, i: usize, j: usize) -> Result<Value, ApiError> {
    let at = |f: &str| format!("messages[{i}].content[{j}]{f}");
    match p.get("type").and_then(Value::as_str) {
        Some("text") => p
            .get("text")
            .and_then(Value::as_str)
            .map(|t| json!({"type": "text", "text": t}))
            .ok_or_else(|| ApiError::bad_request(at(".text"), "text must be a string")),
        Some("image_url") => {
            let url = p
                .pointer("/image_url/url")
                .or_else(|| p.get("image_url").filter(|v| v.is_string()))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::bad_request(at(".image_url.url"), "image_url.url is required")
                })?;
            image_block(url).map_err(|msg| ApiError::bad_request(at(".image_url.url"), msg))
        }
        Some(other) => Err(ApiError::bad_request(
            at(".type"),
            format!("Unsupported content part type '{other}'; expected text or image_url"),
        )),
        None => Err(ApiError::bad_request(
            at(".type"),
            "content part type is required",
        )),
    }
}

/// A data: URL becomes a base64 image block; an http(s) URL a URL image source.
pub fn image_block(url: &str) -> Result<Value, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or("a data: URL needs a ',' before its data")?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or("only base64 data: URLs are supported")?;
        if !IMAGE_TYPES.contains(&media_type) {
            return Err(format!(
                "unsupported image type '{media_type}'; expected one of {}",
                IMAGE_TYPES.join(", ")
            ));
        }
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("the image data is not valid base64: {e}"))?;
        return Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data.trim()}}),
        );
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err("image URLs must be data:, https:// or http:// URLs".into())
}

fn assistant_message(m: &ChatMessage, i: usize) -> Result<Message, ApiError> {
    let mut content = Vec::new();
    match &m.content {
        Some(MessageContent::Text(s)) if !s.is_empty() => {
            content.push(json!({"type": "text", "text": s}))
        }
        Some(MessageContent::Parts(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = p.get("text").and_then(Value::as_str) {
                            content.push(json!({"type": "text", "text": t}));
                        }
                    }
                    Some("refusal") => {}
                    _ => {
                        return Err(ApiError::bad_request(
                            format!("messages[{i}].content[{j}].type"),
                            "assistant content parts must be text or refusal",
                        ))
                    }
                }
            }
        }
        _ => {}
    }
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let at = |f: &str| format!("messages[{i}].tool_calls[{j}]{f}");
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request(at(".id"), "tool call id is required"))?;
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::bad_request(at(".function.name"), "function name is required")
            })?;
        let args = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("{}");
        let input: Value = serde_json::from_str(if args.trim().is_empty() { "{}" } else { args })
            .map_err(|e| {
            ApiError::bad_request(
                at(".function.arguments"),
                format!("arguments must be a JSON string: {e}"),
            )
        })?;
        content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(Message {
        role: Role::Assistant,
        content,
    })
}

fn tool_result(m: &ChatMessage, i: usize) -> Result<Value, ApiError> {
    let id = m.tool_call_id.as_deref().ok_or_else(|| {
        ApiError::bad_request(
            format!("messages[{i}].tool_call_id"),
            "tool messages need a tool_call_id",
        )
    })?;
    let text = text_only(m, i)?;
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": text}))
}

/// `response_format`: `json_schema` with `strict: true` is enforced by the CLI's structured
/// output; `json_object` and a non-strict schema are asked for in the system prompt.
fn response_format(rf: Option<&Value>) -> Result<(Option<String>, Option<Value>), ApiError> {
    let Some(rf) = rf.filter(|v| !v.is_null()) else {
        return Ok((None, None));
    };
    let format = match rf.get("type").and_then(Value::as_str) {
        Some("text") => OutputFormat::Text,
        Some("json_object") => OutputFormat::JsonObject,
        Some("json_schema") => OutputFormat::JsonSchema {
            schema: rf
                .pointer("/json_schema/schema")
                .cloned()
                .ok_or_else(|| ApiError::bad_request("response_format.json_schema.schema", "a schema is required"))?,
            strict: rf.pointer("/json_schema/strict").and_then(Value::as_bool).unwrap_or(false),
        },
        Some(other) => return Err(ApiError::bad_request(
            "response_format.type",
            format!("Unsupported response_format type '{other}'; expected text, json_object or json_schema"),
        )),
        None => return Err(ApiError::bad_request("response_format.type", "response_format.type is required")),
    };
    Ok(format.split("response_format.json_schema.schema")?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::models::{default_table, ModelTable};

    fn turn(body: Value) -> Result<TurnRequest, ApiError> {
        let req = parse(body.to_string().as_bytes())?;
        to_turn(&req, &ModelTable::new(&default_table()))
    }

    use crate::api::bad_param as param;

    #[test]
    fn splits_system_history_and_prompt() {
        let t = turn(json!({"model":"sonnet","messages":[
            {"role":"system","content":"S1"},
            {"role":"developer","content":[{"type":"text","text":"S2"}]},
            {"role":"user","content":"q1"},
            {"role":"assistant","content":"a1"},
            {"role":"user","content":[{"type":"text","text":"q2"}]}
        ],"max_tokens":50,"stop":"END","temperature":0.2}))
        .unwrap();
        assert_eq!(t.system.as_deref(), Some("S1\n\nS2"));
        assert_eq!(t.history.len(), 2);
        assert_eq!(t.history[1].role, Role::Assistant);
        assert_eq!(t.prompt[0]["text"], "q2");
        assert_eq!(t.cli_model.model.as_deref(), Some("sonnet"));
        assert_eq!(t.max_output_tokens, Some(50));
        assert_eq!(t.stop, vec!["END"]);
    }

    #[test]
    fn images_become_image_blocks() {
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
        let t = turn(
            json!({"model":"default","messages":[{"role":"user","content":[
                {"type":"text","text":"what"},
                {"type":"image_url","image_url":{"url":format!("data:image/png;base64,{png}")}},
                {"type":"image_url","image_url":{"url":"https://example.com/a.png"}}
            ]}]}),
        )
        .unwrap();
        assert_eq!(t.prompt[1]["source"]["type"], "base64");
        assert_eq!(t.prompt[1]["source"]["media_type"], "image/png");
        assert_eq!(t.prompt[2]["source"]["url"], "https://example.com/a.png");
        let bad = turn(
            json!({"model":"default","messages":[{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"ftp://x"}}]}]}),
        );
        assert_eq!(
            param(bad.unwrap_err()),
            "messages[0].content[0].image_url.url"
        );
    }

    #[test]
    fn rejections_name_the_field() {
        assert_eq!(param(turn(json!({"messages":[]})).unwrap_err()), "model");
        assert_eq!(
            param(turn(json!({"model":"sonnet"})).unwrap_err()),
            "messages"
        );
        assert_eq!(
            param(
                turn(json!({"model":"sonnet","messages":[{"role":"user","content":5}]}))
                    .unwrap_err()
            ),
            "messages[0].content"
        );
        assert_eq!(
            param(
                turn(json!({"model":"sonnet","messages":[{"role":"wizard","content":"x"}]}))
                    .unwrap_err()
            ),
            "messages[0].role"
        );
        assert_eq!(
            param(
                turn(json!({"model":"sonnet","n":2,"messages":[{"role":"user","content":"x"}]}))
                    .unwrap_err()
            ),
            "n"
        );
        assert_eq!(
            param(turn(json!({"model":"sonnet","messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y"}]})).unwrap_err()),
            "messages[1].role"
        );
        assert_eq!(
            param(turn(json!({"model":"sonnet","response_format":{"type":"xml"},"messages":[{"role":"user","content":"x"}]})).unwrap_err()),
            "response_format.type"
        );
        assert!(matches!(
            turn(json!({"model":"gpt-4o","messages":[{"role":"user","content":"x"}]})).unwrap_err(),
            ApiError::ModelNotFound(_)
        ));
        let not_json = parse(b"{nope").unwrap_err();
        assert!(matches!(not_json, ApiError::BadRequest { .. }));
    }

    fn weather() -> Value {
        json!({"type":"function","function":{"name":"get_weather","description":"d","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}})
    }

    #[test]
    fn tools_and_tool_choice() {
        let t = turn(json!({"model":"sonnet","tools":[weather()],"tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false,"messages":[user_msg("x")]})).unwrap();
        assert_eq!(t.tools[0].name, "get_weather");
        assert_eq!(t.tools[0].parameters["required"][0], "city");
        assert_eq!(t.tool_choice, ToolChoice::Named("get_weather".into()));
        assert!(!t.parallel_tool_calls);
        let none = turn(json!({"model":"sonnet","tools":[weather()],"tool_choice":"none","messages":[user_msg("x")]})).unwrap();
        assert!(none.offered_tools().is_empty());
        let bad = turn(
            json!({"model":"sonnet","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"string"}}}],"messages":[user_msg("x")]}),
        );
        let e = bad.unwrap_err();
        assert!(e.to_string().contains("'f'"));
        assert_eq!(param(e), "tools[0].function.parameters");
        let bad_name = turn(
            json!({"model":"sonnet","tools":[{"type":"function","function":{"name":"has space"}}],"messages":[user_msg("x")]}),
        );
        assert_eq!(param(bad_name.unwrap_err()), "tools[0].function.name");
        let unknown_choice = turn(
            json!({"model":"sonnet","tools":[weather()],"tool_choice":{"type":"function","function":{"name":"nope"}},"messages":[user_msg("x")]}),
        );
        assert_eq!(
            param(unknown_choice.unwrap_err()),
            "tool_choice.function.name"
        );
    }

    fn call(id: &str) -> Value {
        json!({"id":id,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}})
    }

    #[test]
    fn tool_results_become_the_prompt() {
        let t = turn(json!({"model":"sonnet","tools":[weather()],"messages":[
            user_msg("weather?"),
            {"role":"assistant","content":null,"tool_calls":[call("c1"), call("c2")]},
            {"role":"tool","tool_call_id":"c2","content":"rain"},
            {"role":"tool","tool_call_id":"c1","content":"sun"}
        ]}))
        .unwrap();
        assert_eq!(t.history.len(), 2);
        assert_eq!(t.history[1].content[0]["type"], "tool_use");
        assert_eq!(t.history[1].content[0]["input"]["city"], "Paris");
        assert_eq!(t.prompt.len(), 2);
        assert_eq!(t.prompt[0]["tool_use_id"], "c2");
        assert_eq!(t.prompt[1]["content"], "sun");
    }

    #[test]
    fn missing_or_unknown_tool_results_name_the_id() {
        let missing = turn(json!({"model":"sonnet","tools":[weather()],"messages":[
            user_msg("w"), {"role":"assistant","tool_calls":[call("c1"), call("c2")]},
            {"role":"tool","tool_call_id":"c1","content":"sun"}]}));
        assert!(missing.unwrap_err().to_string().contains("'c2'"));
        let unknown = turn(json!({"model":"sonnet","tools":[weather()],"messages":[
            user_msg("w"), {"role":"assistant","tool_calls":[call("c1")]},
            {"role":"tool","tool_call_id":"c1","content":"sun"},
            {"role":"tool","tool_call_id":"zz","content":"?"}]}));
        let e = unknown.unwrap_err();
        assert!(e.to_string().contains("'zz'"));
        assert_eq!(param(e), "messages[3].tool_call_id");
    }

    #[test]
    fn builtin_tools_extension() {
        let t = turn(json!({"model":"sonnet","builtin_tools":["Read"],"messages":[user_msg("x")]}))
            .unwrap();
        assert_eq!(t.builtin_tools, vec!["Read"]);
        let bad = turn(json!({"model":"sonnet","builtin_tools":"Read","messages":[user_msg("x")]}));
        assert_eq!(param(bad.unwrap_err()), "builtin_tools");
    }

    #[test]
    fn claude_options_through_extra_body() {
        let t = turn(json!({"model":"sonnet","messages":[user_msg("x")],
            "thinking":{"type":"enabled","budget_tokens":4096},"effort":"medium",
            "permission_mode":"plan","agent":"general-purpose","max_turns":1,"session_id":"abc"}))
        .unwrap();
        assert_eq!(t.options.thinking_budget, Some(4096));
        assert_eq!(t.options.effort.as_deref(), Some("medium"));
        assert_eq!(t.options.permission_mode.as_deref(), Some("plan"));
        assert_eq!(t.options.agent.as_deref(), Some("general-purpose"));
        assert_eq!(t.options.max_turns, Some(1));
        assert_eq!(t.options.session_id.as_deref(), Some("abc"));
        let off = turn(json!({"model":"sonnet","messages":[user_msg("x")],"thinking":{"type":"disabled"},"temperature":0.5})).unwrap();
        assert_eq!(off.options.thinking_budget, Some(0));
        assert_eq!(off.options.sampling["temperature"], 0.5);
        for (bad, p) in [
            (json!({"thinking":{"type":"on"}}), "thinking.type"),
            (json!({"effort":"extreme"}), "effort"),
            (json!({"permission_mode":"yolo"}), "permission_mode"),
            (json!({"max_turns":0}), "max_turns"),
            (json!({"agent":7}), "agent"),
            (json!({"reasoning_effort":"ultra"}), "reasoning_effort"),
        ] {
            let mut body = bad.clone();
            body["model"] = json!("sonnet");
            body["messages"] = json!([user_msg("x")]);
            assert_eq!(param(turn(body).unwrap_err()), p, "{bad}");
        }
    }

    #[test]
    fn reasoning_effort_maps_to_effort() {
        let effort = |re: &str, extra: Value| {
            let mut body =
                json!({"model":"sonnet","messages":[user_msg("x")],"reasoning_effort":re});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            turn(body).unwrap().options
        };
        assert_eq!(effort("minimal", json!({})).effort.as_deref(), Some("low"));
        assert_eq!(effort("low", json!({})).effort.as_deref(), Some("low"));
        assert_eq!(effort("high", json!({})).effort.as_deref(), Some("high"));
        assert_eq!(effort("none", json!({})).thinking_budget, Some(0));
        // An explicit effort wins.
        assert_eq!(
            effort("low", json!({"effort":"max"})).effort.as_deref(),
            Some("max")
        );
    }

    fn user_msg(t: &str) -> Value {
        json!({"role":"user","content":t})
    }

    #[test]
    fn json_mode_is_an_instruction() {
        let t = turn(json!({"model":"sonnet","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"x"}]})).unwrap();
        assert!(t.system.unwrap().contains("JSON object"));
        assert_eq!(t.json_schema, None);
    }

    #[test]
    fn a_strict_schema_is_enforced_not_asked_for() {
        let schema =
            json!({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]});
        let rf = |strict: bool| json!({"type":"json_schema","json_schema":{"name":"p","schema":schema,"strict":strict}});
        let t =
            turn(json!({"model":"sonnet","response_format":rf(true),"messages":[user_msg("x")]}))
                .unwrap();
        assert_eq!(t.json_schema.as_ref(), Some(&schema));
        assert_eq!(t.system, None);
        let loose =
            turn(json!({"model":"sonnet","response_format":rf(false),"messages":[user_msg("x")]}))
                .unwrap();
        assert_eq!(loose.json_schema, None);
        assert!(loose.system.unwrap().contains("JSON Schema"));
        let array = json!({"type":"json_schema","json_schema":{"name":"p","schema":{"type":"array"},"strict":true}});
        let e = turn(json!({"model":"sonnet","response_format":array,"messages":[user_msg("x")]}))
            .unwrap_err();
        assert_eq!(param(e), "response_format.json_schema.schema");
    }

    #[test]
    fn ignored_params_are_reported() {
        let req = parse(json!({"model":"sonnet","temperature":1,"seed":3,"effort":"low","reasoning_effort":"low","thinking":{"type":"disabled"},"max_turns":2,"messages":[{"role":"user","content":"x"}]}).to_string().as_bytes()).unwrap();
        let mut ignored = ignored_params(&req);
        ignored.sort();
        assert_eq!(ignored, vec!["seed"]);
    }
}
