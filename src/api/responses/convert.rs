//! Responses API request → domain [`TurnRequest`]. Pure, given what the request refers to
//! (the conversation before `previous_response_id`, and the items of `item_reference`s, which
//! the handler reads first); every rejection names the offending field (`input[2].call_id`).

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::types::{CreateResponse, MessageContent};
use crate::api::openai::convert::{
    function_tools, image_block, reasoning_effort, sampling, tool_choice,
};
use crate::domain::models::ModelTable;
use crate::domain::turn::{self, ClaudeOptions, Message, OutputFormat, Role, TurnRequest};
use crate::http::body::Dialect;
use crate::http::error::ApiError;

/// The kind of the replies the Responses API keeps.
pub const KIND: &str = "response";

/// OpenAI's wording, with only `model` required (`input` may be left out when
/// `previous_response_id` carries the conversation... and is checked below).
const DIALECT: Dialect = Dialect {
    required: &["model"],
    empty_is_object: false,
    path: |p| p.to_string(),
    missing: |f| format!("Missing required parameter: '{f}'"),
    invalid: |p, why| format!("Invalid value for '{p}': {why}"),
};

/// Claude Code's own fields, as top-level request fields (what `extra_body` sends).
const EXTENSIONS: &[&str] = &[
    "background",
    "conversation",
    "prompt",
    "builtin_tools",
    "mcp_servers",
    "temperature",
    "top_p",
    "thinking",
    "effort",
    "permission_mode",
    "agent",
    "max_turns",
    "session_id",
];

pub fn parse(body: &[u8]) -> Result<CreateResponse, ApiError> {
    crate::http::body::parse(body, &DIALECT)
}

/// What a request refers to, read from the stored replies before [`to_turn`].
#[derive(Debug, Default)]
pub struct Earlier {
    /// The conversation up to and including the `previous_response_id` response.
    pub history: Vec<Message>,
    /// Output items by id, for `item_reference`s.
    pub items: HashMap<String, Value>,
}

/// The domain turn, and the messages this request adds to the conversation (its input; the
/// reply follows when the response is stored).
#[derive(Debug)]
pub struct Converted {
    pub turn: TurnRequest,
    pub added: Vec<Message>,
}

/// Ids of the `item_reference`s in the input.
pub fn item_references(req: &CreateResponse) -> Vec<String> {
    match &req.input {
        Some(MessageContent::Parts(items)) => items
            .iter()
            .filter(|i| i.get("type").and_then(Value::as_str) == Some("item_reference"))
            .filter_map(|i| i.get("id").and_then(Value::as_str).map(String::from))
            .collect(),
        _ => vec![],
    }
}

/// An output item's id: its kind's prefix, the response it belongs to, its place there. The
/// response can be found from the id alone (for `item_reference`s).
pub fn item_id(prefix: &str, response_id: &str, n: usize) -> String {
    format!(
        "{prefix}_{}_{n}",
        response_id.strip_prefix("resp_").unwrap_or(response_id)
    )
}

/// The response an output item id belongs to.
pub fn response_of_item(id: &str) -> Option<String> {
    let (_, rest) = id.split_once('_')?;
    let (resp, n) = rest.rsplit_once('_')?;
    (n.parse::<usize>().is_ok() && !resp.is_empty()).then(|| format!("resp_{resp}"))
}

pub fn to_turn(
    req: &CreateResponse,
    models: &ModelTable,
    earlier: &Earlier,
) -> Result<Converted, ApiError> {
    let model = models
        .resolve(&req.model)
        .ok_or_else(|| ApiError::ModelNotFound(req.model.clone()))?;
    for (field, set) in [
        (
            "background",
            req.extra
                .get("background")
                .is_some_and(|v| v == &json!(true)),
        ),
        (
            "conversation",
            req.extra.get("conversation").is_some_and(|v| !v.is_null()),
        ),
        (
            "prompt",
            req.extra.get("prompt").is_some_and(|v| !v.is_null()),
        ),
    ] {
        if set {
            return Err(ApiError::bad_request(
                field,
                format!("'{field}' is not supported by this gateway"),
            ));
        }
    }
    if req.max_output_tokens == Some(0) {
        return Err(ApiError::bad_request(
            "max_output_tokens",
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        ));
    }
    let tools = function_tools(req.tools.as_ref(), false)?;
    let tool_choice = tool_choice(req.tool_choice.as_ref(), &tools)?;
    let mut options = ClaudeOptions {
        sampling: sampling(&req.extra)?,
        ..turn::claude_options(&req.extra)?
    };
    reasoning_effort(
        &mut options,
        req.reasoning.as_ref().and_then(|r| r.get("effort")),
        "reasoning.effort",
    )?;

    let mut system: Vec<String> = req
        .instructions
        .iter()
        .filter(|s| !s.trim().is_empty())
        .cloned()
        .collect();
    let added = match &req.input {
        None => vec![],
        Some(MessageContent::Text(s)) => {
            vec![Message::user(vec![json!({"type": "text", "text": s})])]
        }
        Some(MessageContent::Parts(items)) => input_items(items, &earlier.items, &mut system)?,
    };
    let (instruction, json_schema) = output_format(req.text.as_ref())?;
    system.extend(instruction);

    let mut messages: Vec<Message> = earlier.history.clone();
    messages.extend(added.iter().cloned());
    check_tool_outputs(&messages)?;
    let prompt = turn::take_prompt(&mut messages);
    if prompt.is_empty() {
        return Err(ApiError::bad_request(
            "input",
            "The input must end with a user message or function call outputs",
        ));
    }
    let turn = TurnRequest {
        model_id: req.model.clone(),
        cli_model: model.cli_model.clone(),
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        history: messages,
        prompt,
        max_output_tokens: req.max_output_tokens,
        stop: vec![],
        client_user: req.user.clone().or_else(|| req.safety_identifier.clone()),
        tools,
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
        builtin_tools: turn::builtin_tools(req.extra.get("builtin_tools"))?,
        slash_commands: false,
        approved_tools: None,
        denied_tools: vec![],
        source: crate::store::source::OPENAI,
        options,
        json_schema,
        key: None,
        owner: String::new(),
        mcp_servers: crate::domain::mcp::parse_refs(req.extra.get("mcp_servers"), "mcp_servers")?,
    };
    Ok(Converted { turn, added })
}

/// Request fields that were accepted but have no effect.
pub fn ignored_params(req: &CreateResponse) -> Vec<&str> {
    req.extra
        .keys()
        .map(String::as_str)
        .filter(|k| !EXTENSIONS.contains(k))
        .collect()
}

/// `text.format`: a strict `json_schema` is enforced by the CLI's structured output.
fn output_format(text: Option<&Value>) -> Result<(Option<String>, Option<Value>), ApiError> {
    let Some(format) = text.and_then(|t| t.get("format")).filter(|f| !f.is_null()) else {
        return Ok((None, None));
    };
    let f = match format.get("type").and_then(Value::as_str) {
        Some("text") => OutputFormat::Text,
        Some("json_object") => OutputFormat::JsonObject,
        Some("json_schema") => OutputFormat::JsonSchema {
            schema: format.get("schema").cloned().ok_or_else(|| {
                ApiError::bad_request(
                    "text.format.schema",
                    "Missing required parameter: 'text.format.schema'",
                )
            })?,
            strict: format
                .get("strict")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        other => {
            return Err(ApiError::bad_request(
                "text.format.type",
                format!(
                    "Unsupported text.format type '{}'; expected text, json_object or json_schema",
                    other.unwrap_or("")
                ),
            ))
        }
    };
    Ok(f.split("text.format.schema")?)
}

/// The input items as messages (system and developer messages go to `system`).
fn input_items(
    items: &[Value],
    referenced: &HashMap<String, Value>,
    system: &mut Vec<String>,
) -> Result<Vec<Message>, ApiError> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |f: &str| format!("input[{i}]{f}");
        if !item.is_object() {
            return Err(ApiError::bad_request(
                at(""),
                "an input item must be an object",
            ));
        }
        let kind = match item.get("type").and_then(Value::as_str) {
            Some(k) => k,
            None if item.get("role").is_some() => "message",
            None => {
                return Err(ApiError::bad_request(
                    at(".type"),
                    "Missing required parameter: 'type'",
                ))
            }
        };
        match kind {
            "message" => match item.get("role").and_then(Value::as_str) {
                Some("user") => out.push(Message::user(user_content(item.get("content"), &at(".content"))?)),
                Some("assistant") => out.push(assistant_text(item.get("content"), &at(".content"))?),
                Some("system" | "developer") => {
                    let text = plain_text(item.get("content"), &at(".content"))?;
                    if !text.trim().is_empty() {
                        system.push(text);
                    }
                }
                other => {
                    return Err(ApiError::bad_request(
                        at(".role"),
                        format!(
                            "Invalid value: '{}'. Supported values are: 'user', 'assistant', 'system' and 'developer'.",
                            other.unwrap_or("")
                        ),
                    ))
                }
            },
            "function_call" => out.push(function_call(item, &at)?),
            "function_call_output" => out.push(function_call_output(item, &at)?),
            // Thinking lives in the CLI's own history; what a client echoes is not needed.
            "reasoning" => {}
            "item_reference" => {
                let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
                let found = referenced.get(id).ok_or_else(|| {
                    ApiError::bad_request(at(".id"), format!("Item with id '{id}' not found."))
                })?;
                match found.get("type").and_then(Value::as_str) {
                    Some("message") => out.push(assistant_text(found.get("content"), &at(""))?),
                    Some("function_call") => out.push(function_call(found, &at)?),
                    _ => {}
                }
            }
            other => {
                return Err(ApiError::bad_request(
                    at(".type"),
                    format!("Unsupported input item type '{other}': this gateway serves messages, function calls and their outputs"),
                ))
            }
        }
    }
    Ok(out)
}

fn user_content(content: Option<&Value>, at: &str) -> Result<Vec<Value>, ApiError> {
    match content {
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) if !parts.is_empty() => parts
            .iter()
            .enumerate()
            .map(|(j, p)| user_part(p, &format!("{at}[{j}]")))
            .collect(),
        Some(Value::Array(_)) => Err(ApiError::bad_request(at, "content must not be empty")),
        _ => Err(ApiError::bad_request(
            at,
            "content must be a string or an array of content parts",
        )),
    }
}

fn user_part(p: &Value, at: &str) -> Result<Value, ApiError> {
    let field = |k: &str| p.get(k).and_then(Value::as_str);
    match field("type") {
        Some("input_text" | "text") => field("text")
            .map(|t| json!({"type": "text", "text": t}))
            .ok_or_else(|| ApiError::bad_request(format!("{at}.text"), "text must be a string")),
        Some("input_image") => match (field("image_url"), field("file_id")) {
            (Some(url), _) => image_block(url).map_err(|m| ApiError::bad_request(format!("{at}.image_url"), m)),
            (None, Some(_)) => Err(ApiError::bad_request(
                format!("{at}.file_id"),
                "file_id images are not supported: send the image as a data: or https:// image_url",
            )),
            (None, None) => Err(ApiError::bad_request(format!("{at}.image_url"), "image_url is required")),
        },
        Some("input_file") => file_part(p, at),
        other => Err(ApiError::bad_request(
            format!("{at}.type"),
            format!(
                "Unsupported content part type '{}'; expected input_text, input_image or input_file",
                other.unwrap_or("")
            ),
        )),
    }
}

/// A file: PDF (base64 data URL or URL) as a document, plain text as a text document.
fn file_part(p: &Value, at: &str) -> Result<Value, ApiError> {
    let field = |k: &str| p.get(k).and_then(Value::as_str);
    let titled = |mut doc: Value| {
        if let Some(name) = field("filename") {
            doc["title"] = json!(name);
        }
        doc
    };
    if let Some(url) = field("file_url") {
        return Ok(titled(
            json!({"type": "document", "source": {"type": "url", "url": url}}),
        ));
    }
    let Some(data) = field("file_data") else {
        return Err(ApiError::bad_request(
            format!("{at}.file_data"),
            "file_data (a data: URL) or file_url is required; file_id is not supported",
        ));
    };
    let bad = |why: &str| ApiError::bad_request(format!("{at}.file_data"), why.to_string());
    let (meta, b64) = data
        .strip_prefix("data:")
        .and_then(|r| r.split_once(','))
        .ok_or_else(|| bad("file_data must be a base64 data: URL"))?;
    let media_type = meta
        .strip_suffix(";base64")
        .ok_or_else(|| bad("only base64 data: URLs are supported"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| bad(&format!("the file data is not valid base64: {e}")))?;
    match media_type {
        "application/pdf" => Ok(titled(json!({"type": "document", "source":
            {"type": "base64", "media_type": media_type, "data": b64.trim()}}))),
        "text/plain" => Ok(titled(json!({"type": "document", "source":
            {"type": "text", "media_type": "text/plain", "data": String::from_utf8_lossy(&bytes)}}))),
        other => Err(bad(&format!(
            "unsupported file type '{other}'; expected application/pdf or text/plain"
        ))),
    }
}

/// The text of system or developer content.
fn plain_text(content: Option<&Value>, at: &str) -> Result<String, ApiError> {
    match content {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| {
                p.get("text")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            format!("{at}[{j}]"),
                            "only text content parts are allowed here",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|t| t.join("\n")),
        _ => Err(ApiError::bad_request(
            at,
            "content must be a string or an array of text parts",
        )),
    }
}

/// An assistant message as history: its text (`output_text` parts), refusals left out.
fn assistant_text(content: Option<&Value>, at: &str) -> Result<Message, ApiError> {
    let text = match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) != Some("refusal"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        None | Some(Value::Null) => String::new(),
        _ => {
            return Err(ApiError::bad_request(
                at,
                "content must be a string or an array of content parts",
            ))
        }
    };
    Ok(Message {
        role: Role::Assistant,
        content: if text.is_empty() {
            vec![]
        } else {
            vec![json!({"type": "text", "text": text})]
        },
    })
}

fn function_call(item: &Value, at: &dyn Fn(&str) -> String) -> Result<Message, ApiError> {
    let field = |k: &str| {
        item.get(k).and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad_request(
                at(&format!(".{k}")),
                format!("Missing required parameter: '{k}'"),
            )
        })
    };
    let (call_id, name) = (field("call_id")?, field("name")?);
    let args = item
        .get("arguments")
        .and_then(Value::as_str)
        .unwrap_or("{}");
    let input: Value = serde_json::from_str(if args.trim().is_empty() { "{}" } else { args })
        .map_err(|e| {
            ApiError::bad_request(
                at(".arguments"),
                format!("arguments must be a JSON string: {e}"),
            )
        })?;
    Ok(Message {
        role: Role::Assistant,
        content: vec![json!({"type": "tool_use", "id": call_id, "name": name, "input": input})],
    })
}

fn function_call_output(item: &Value, at: &dyn Fn(&str) -> String) -> Result<Message, ApiError> {
    let call_id = item.get("call_id").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request(at(".call_id"), "Missing required parameter: 'call_id'")
    })?;
    let output = match item.get("output") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    Ok(Message::user(vec![
        json!({"type": "tool_result", "tool_use_id": call_id, "content": output}),
    ]))
}

/// Every function call is answered by its output before the conversation goes on, and every
/// output answers a call, worded as OpenAI words it.
fn check_tool_outputs(messages: &[Message]) -> Result<(), ApiError> {
    let mut open: Vec<String> = Vec::new();
    for m in turn::merge_roles(messages) {
        match m.role {
            Role::Assistant => {
                if let Some(id) = open.first() {
                    return Err(no_output(id));
                }
                open = m
                    .content
                    .iter()
                    .filter(|b| b["type"] == "tool_use")
                    .filter_map(|b| b["id"].as_str().map(String::from))
                    .collect();
            }
            Role::User => {
                for b in m.content.iter().filter(|b| b["type"] == "tool_result") {
                    let id = b["tool_use_id"].as_str().unwrap_or_default();
                    match open.iter().position(|o| o == id) {
                        Some(p) => {
                            open.remove(p);
                        }
                        None => {
                            return Err(ApiError::bad_request(
                                "input",
                                format!(
                                "No tool call found for function call output with call_id {id}."
                            ),
                            ))
                        }
                    }
                }
                if let Some(id) = open.first() {
                    return Err(no_output(id));
                }
            }
        }
    }
    Ok(())
}

fn no_output(id: &str) -> ApiError {
    ApiError::bad_request(
        "input",
        format!("No tool output found for function call {id}."),
    )
}

/// The fields of the request a Response echoes.
pub fn echo(req: &CreateResponse) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("instructions".into(), json!(req.instructions));
    m.insert("max_output_tokens".into(), json!(req.max_output_tokens));
    m.insert(
        "metadata".into(),
        req.metadata.clone().unwrap_or_else(|| json!({})),
    );
    m.insert(
        "parallel_tool_calls".into(),
        json!(req.parallel_tool_calls.unwrap_or(true)),
    );
    m.insert(
        "previous_response_id".into(),
        json!(req.previous_response_id),
    );
    m.insert(
        "reasoning".into(),
        req.reasoning
            .clone()
            .unwrap_or_else(|| json!({"effort": null, "summary": null})),
    );
    m.insert("store".into(), json!(req.store.unwrap_or(true)));
    m.insert(
        "temperature".into(),
        req.extra.get("temperature").cloned().unwrap_or(json!(1.0)),
    );
    m.insert(
        "text".into(),
        req.text
            .clone()
            .unwrap_or_else(|| json!({"format": {"type": "text"}})),
    );
    m.insert(
        "tool_choice".into(),
        req.tool_choice.clone().unwrap_or_else(|| json!("auto")),
    );
    m.insert(
        "tools".into(),
        req.tools.clone().unwrap_or_else(|| json!([])),
    );
    m.insert(
        "top_p".into(),
        req.extra.get("top_p").cloned().unwrap_or(json!(1.0)),
    );
    m.insert(
        "truncation".into(),
        req.extra
            .get("truncation")
            .cloned()
            .unwrap_or(json!("disabled")),
    );
    m.insert("user".into(), json!(req.user));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::models::default_table;

    fn convert(body: Value, earlier: &Earlier) -> Result<Converted, ApiError> {
        let req = parse(body.to_string().as_bytes())?;
        to_turn(&req, &ModelTable::new(&default_table()), earlier)
    }

    use crate::api::bad_param as param;

    #[test]
    fn a_string_input_and_instructions() {
        let c = convert(
            json!({"model": "sonnet", "input": "hi", "instructions": "Be brief.",
            "max_output_tokens": 50}),
            &Earlier::default(),
        )
        .unwrap();
        assert_eq!(c.turn.system.as_deref(), Some("Be brief."));
        assert_eq!(c.turn.prompt[0]["text"], "hi");
        assert_eq!(c.turn.max_output_tokens, Some(50));
        assert_eq!(c.added.len(), 1);
    }

    #[test]
    fn items_become_messages_with_tool_calls_and_their_outputs() {
        let c = convert(json!({"model": "sonnet", "input": [
            {"role": "developer", "content": "D"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
        ], "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}),
            &Earlier::default()).unwrap();
        assert_eq!(c.turn.system.as_deref(), Some("D"));
        assert_eq!(c.turn.history.len(), 2);
        assert_eq!(c.turn.history[1].content[0]["input"]["city"], "Oslo");
        assert_eq!(c.turn.prompt[0]["tool_use_id"], "call_1");
        assert_eq!(c.turn.tools[0].name, "get_weather");
    }

    #[test]
    fn earlier_history_and_item_references() {
        let mut earlier = Earlier {
            history: vec![
                Message::user(vec![json!({"type": "text", "text": "q1"})]),
                Message::assistant_text("a1"),
            ],
            ..Default::default()
        };
        earlier.items.insert(
            "msg_abc_0".into(),
            json!({"type": "message", "content": [{"type": "output_text", "text": "a2"}]}),
        );
        let c = convert(
            json!({"model": "sonnet", "input": [
            {"role": "user", "content": "q2"}, {"type": "item_reference", "id": "msg_abc_0"},
            {"role": "user", "content": "q3"}]}),
            &earlier,
        )
        .unwrap();
        assert_eq!(c.turn.history.len(), 4);
        assert_eq!(c.turn.history[3].content[0]["text"], "a2");
        assert_eq!(c.turn.prompt[0]["text"], "q3");
        let missing = convert(
            json!({"model": "sonnet", "input": [{"type": "item_reference", "id": "msg_x_1"}]}),
            &earlier,
        );
        assert_eq!(param(missing.unwrap_err()), "input[0].id");
    }

    #[test]
    fn rejections_name_the_field() {
        let e = Earlier::default();
        for (body, p) in [
            (json!({"input": "x"}), "model"),
            (
                json!({"model": "sonnet", "input": [{"type": "computer_call"}]}),
                "input[0].type",
            ),
            (
                json!({"model": "sonnet", "input": [{"role": "wizard", "content": "x"}]}),
                "input[0].role",
            ),
            (
                json!({"model": "sonnet", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
                "input[0].content[0].file_id",
            ),
            (
                json!({"model": "sonnet", "input": "x", "tools": [{"type": "web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"model": "sonnet", "input": "x", "background": true}),
                "background",
            ),
            (
                json!({"model": "sonnet", "input": "x", "text": {"format": {"type": "json_schema", "strict": true, "schema": {"type": "array"}}}}),
                "text.format.schema",
            ),
            (
                json!({"model": "sonnet", "input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]}),
                "input",
            ),
            (
                json!({"model": "sonnet", "input": [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{"}]}),
                "input[0].arguments",
            ),
            (
                json!({"model": "sonnet", "input": [{"role": "assistant", "content": "prefill"}]}),
                "input",
            ),
            (
                json!({"model": "sonnet", "input": "x", "reasoning": {"effort": "ultra"}}),
                "reasoning.effort",
            ),
        ] {
            assert_eq!(param(convert(body.clone(), &e).unwrap_err()), p, "{body}");
        }
    }

    #[test]
    fn strict_json_schema_reasoning_and_sampling() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let c = convert(json!({"model": "sonnet", "input": "x", "temperature": 0.5,
            "reasoning": {"effort": "minimal"},
            "text": {"format": {"type": "json_schema", "name": "n", "schema": schema, "strict": true}}}),
            &Earlier::default()).unwrap();
        assert_eq!(c.turn.json_schema, Some(schema));
        assert_eq!(c.turn.options.effort.as_deref(), Some("low"));
        assert_eq!(c.turn.options.sampling["temperature"], 0.5);
    }

    #[test]
    fn item_ids_lead_back_to_their_response() {
        let id = item_id("msg", "resp_0123abcd", 2);
        assert_eq!(id, "msg_0123abcd_2");
        assert_eq!(response_of_item(&id).as_deref(), Some("resp_0123abcd"));
        assert_eq!(response_of_item("nonsense"), None);
        assert_eq!(response_of_item("fc_x_y"), None);
    }
}
