//! OpenAI request → domain [`TurnRequest`]. Pure; every rejection names the offending field.

use base64::Engine as _;
use serde_json::{json, Value};

use super::types::{ChatCompletionRequest, ChatMessage, MessageContent};
use crate::error::ApiError;
use crate::models::ModelTable;
use crate::turn::{Message, Role, TurnRequest};

/// Parameters the CLI cannot honour. They are accepted and ignored (see the README).
pub const IGNORED_PARAMS: &[&str] = &[
    "temperature",
    "top_p",
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
    "reasoning_effort",
    "web_search_options",
    "verbosity",
];

const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Parse a body, naming the field when its shape is wrong.
pub fn parse(body: &[u8]) -> Result<ChatCompletionRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("", format!("The request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("", "The request body must be a JSON object"));
    }
    for required in ["model", "messages"] {
        if value.get(required).is_none() {
            return Err(ApiError::bad_request(
                required,
                format!("Missing required parameter: '{required}'"),
            ));
        }
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_request(
            path.clone(),
            format!("Invalid value for '{path}': {}", e.into_inner()),
        )
    })
}

/// Build the domain turn. `models` resolves the public model id.
pub fn to_turn(req: &ChatCompletionRequest, models: &ModelTable) -> Result<TurnRequest, ApiError> {
    let model = models
        .resolve(&req.model)
        .ok_or_else(|| ApiError::ModelNotFound(req.model.clone()))?;
    if let Some(n) = req.n {
        if n != 1 {
            return Err(ApiError::bad_request("n", "Only n=1 is supported: Claude Code produces one completion per request"));
        }
    }
    if req.tools.as_ref().is_some_and(|t| !t.as_array().is_some_and(Vec::is_empty)) {
        return Err(ApiError::bad_request(
            "tools",
            "Client function calling is not supported by this gateway version",
        ));
    }
    let max_output_tokens = match (req.max_completion_tokens, req.max_tokens) {
        (Some(0), _) => return Err(ApiError::bad_request("max_completion_tokens", "must be at least 1")),
        (None, Some(0)) => return Err(ApiError::bad_request("max_tokens", "must be at least 1")),
        (a, b) => a.or(b),
    };
    let stop = req.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    if stop.len() > 4 {
        return Err(ApiError::bad_request("stop", "At most 4 stop sequences are allowed"));
    }

    let mut system_parts: Vec<String> = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("messages", "'messages' must contain at least one message"));
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
    if let Some(instruction) = response_format_instruction(req.response_format.as_ref())? {
        system_parts.push(instruction);
    }
    let last = messages.pop().filter(|m| m.role == Role::User).ok_or_else(|| {
        ApiError::bad_request(
            format!("messages[{}].role", req.messages.len() - 1),
            "The last message must be a user message",
        )
    })?;
    let system = (!system_parts.is_empty()).then(|| system_parts.join("\n\n"));
    Ok(TurnRequest {
        model_id: req.model.clone(),
        cli_model: model.cli_model.clone(),
        system,
        history: messages,
        prompt: last.content,
        max_output_tokens,
        stop,
        client_user: req.user.clone(),
    })
}

/// Request parameters that were accepted but have no effect.
pub fn ignored_params(req: &ChatCompletionRequest) -> Vec<&str> {
    req.extra.keys().map(String::as_str).collect()
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
                    .ok_or_else(|| ApiError::bad_request(format!("messages[{i}].content[{j}].text"), "text must be a string")),
                _ => Err(ApiError::bad_request(
                    format!("messages[{i}].content[{j}].type"),
                    format!("Only text parts are allowed in a {} message", m.role),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join("\n")),
        None => Err(ApiError::bad_request(format!("messages[{i}].content"), "content is required")),
    }
}

fn user_blocks(m: &ChatMessage, i: usize) -> Result<Vec<Value>, ApiError> {
    match &m.content {
        Some(MessageContent::Text(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(MessageContent::Parts(parts)) => {
            if parts.is_empty() {
                return Err(ApiError::bad_request(format!("messages[{i}].content"), "content must not be empty"));
            }
            parts
                .iter()
                .enumerate()
                .map(|(j, p)| user_part(p, i, j))
                .collect()
        }
        None => Err(ApiError::bad_request(format!("messages[{i}].content"), "content is required for user messages")),
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
                .ok_or_else(|| ApiError::bad_request(at(".image_url.url"), "image_url.url is required"))?;
            image_block(url).map_err(|msg| ApiError::bad_request(at(".image_url.url"), msg))
        }
        Some(other) => Err(ApiError::bad_request(
            at(".type"),
            format!("Unsupported content part type '{other}'; expected text or image_url"),
        )),
        None => Err(ApiError::bad_request(at(".type"), "content part type is required")),
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
        return Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data.trim()}}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err("image URLs must be data:, https:// or http:// URLs".into())
}

fn assistant_message(m: &ChatMessage, i: usize) -> Result<Message, ApiError> {
    let mut content = Vec::new();
    match &m.content {
        Some(MessageContent::Text(s)) if !s.is_empty() => content.push(json!({"type": "text", "text": s})),
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
            .ok_or_else(|| ApiError::bad_request(at(".function.name"), "function name is required"))?;
        let args = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
        let input: Value = serde_json::from_str(if args.trim().is_empty() { "{}" } else { args })
            .map_err(|e| ApiError::bad_request(at(".function.arguments"), format!("arguments must be a JSON string: {e}")))?;
        content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(Message {
        role: Role::Assistant,
        content,
    })
}

fn tool_result(m: &ChatMessage, i: usize) -> Result<Value, ApiError> {
    let id = m
        .tool_call_id
        .as_deref()
        .ok_or_else(|| ApiError::bad_request(format!("messages[{i}].tool_call_id"), "tool messages need a tool_call_id"))?;
    let text = text_only(m, i)?;
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": text}))
}

/// `response_format` as far as the CLI allows: the model is instructed through the system
/// prompt (the CLI has no JSON mode of its own).
fn response_format_instruction(rf: Option<&Value>) -> Result<Option<String>, ApiError> {
    let Some(rf) = rf else { return Ok(None) };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(
            "Respond with a single valid JSON object and nothing else: no prose, no code fences.".into(),
        )),
        Some("json_schema") => {
            let schema = rf
                .pointer("/json_schema/schema")
                .ok_or_else(|| ApiError::bad_request("response_format.json_schema.schema", "a schema is required"))?;
            Ok(Some(format!(
                "Respond with a single valid JSON value that conforms to this JSON Schema, and nothing else: no prose, no code fences.\n{schema}"
            )))
        }
        Some(other) => Err(ApiError::bad_request(
            "response_format.type",
            format!("Unsupported response_format type '{other}'; expected text, json_object or json_schema"),
        )),
        None => Err(ApiError::bad_request("response_format.type", "response_format.type is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{default_table, ModelTable};

    fn turn(body: Value) -> Result<TurnRequest, ApiError> {
        let req = parse(body.to_string().as_bytes())?;
        to_turn(&req, &ModelTable::new(&default_table()))
    }

    fn param(e: ApiError) -> String {
        match e {
            ApiError::BadRequest { param, .. } => param.unwrap_or_default(),
            other => panic!("not a bad request: {other:?}"),
        }
    }

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
        assert_eq!(t.cli_model.as_deref(), Some("sonnet"));
        assert_eq!(t.max_output_tokens, Some(50));
        assert_eq!(t.stop, vec!["END"]);
    }

    #[test]
    fn images_become_image_blocks() {
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
        let t = turn(json!({"model":"default","messages":[{"role":"user","content":[
            {"type":"text","text":"what"},
            {"type":"image_url","image_url":{"url":format!("data:image/png;base64,{png}")}},
            {"type":"image_url","image_url":{"url":"https://example.com/a.png"}}
        ]}]}))
        .unwrap();
        assert_eq!(t.prompt[1]["source"]["type"], "base64");
        assert_eq!(t.prompt[1]["source"]["media_type"], "image/png");
        assert_eq!(t.prompt[2]["source"]["url"], "https://example.com/a.png");
        let bad = turn(json!({"model":"default","messages":[{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"ftp://x"}}]}]}));
        assert_eq!(param(bad.unwrap_err()), "messages[0].content[0].image_url.url");
    }

    #[test]
    fn rejections_name_the_field() {
        assert_eq!(param(turn(json!({"messages":[]})).unwrap_err()), "model");
        assert_eq!(param(turn(json!({"model":"sonnet"})).unwrap_err()), "messages");
        assert_eq!(
            param(turn(json!({"model":"sonnet","messages":[{"role":"user","content":5}]})).unwrap_err()),
            "messages[0].content"
        );
        assert_eq!(
            param(turn(json!({"model":"sonnet","messages":[{"role":"wizard","content":"x"}]})).unwrap_err()),
            "messages[0].role"
        );
        assert_eq!(
            param(turn(json!({"model":"sonnet","n":2,"messages":[{"role":"user","content":"x"}]})).unwrap_err()),
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

    #[test]
    fn json_mode_is_an_instruction() {
        let t = turn(json!({"model":"sonnet","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"x"}]})).unwrap();
        assert!(t.system.unwrap().contains("JSON object"));
    }

    #[test]
    fn ignored_params_are_reported() {
        let req = parse(json!({"model":"sonnet","temperature":1,"seed":3,"messages":[{"role":"user","content":"x"}]}).to_string().as_bytes()).unwrap();
        let mut ignored = ignored_params(&req);
        ignored.sort();
        assert_eq!(ignored, vec!["seed", "temperature"]);
    }
}
