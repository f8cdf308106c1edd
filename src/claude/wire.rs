//! The CLI's stream-json and control-protocol messages, as lenient serde types.
//!
//! Parsing never fails on an unknown `type`, subtype or field: unknown lines become
//! [`CliLine::Other`] and unknown fields are kept in `extra`. Only a line that is not JSON at
//! all is an error. This module builds the lines we write to the CLI too; it does no I/O.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// One line the CLI printed on stdout.
#[derive(Debug, Clone)]
pub enum CliLine {
    System(SystemLine),
    Assistant(MessageLine),
    User(MessageLine),
    StreamEvent(StreamEventLine),
    Result(ResultLine),
    ControlRequest(ControlRequestLine),
    ControlResponse(ControlResponseLine),
    ControlCancel { request_id: String },
    Other(Value),
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct SystemLine {
    #[serde(default)]
    pub subtype: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct MessageLine {
    #[serde(default)]
    pub message: Value,
    #[serde(default)]
    pub parent_tool_use_id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessageLine {
    pub fn content_blocks(&self) -> Vec<Value> {
        match self.message.get("content") {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            _ => Vec::new(),
        }
    }

    pub fn message_id(&self) -> Option<&str> {
        self.message.get("id").and_then(Value::as_str)
    }

    pub fn model(&self) -> Option<&str> {
        self.message.get("model").and_then(Value::as_str)
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct StreamEventLine {
    #[serde(default)]
    pub event: Value,
    #[serde(default)]
    pub parent_tool_use_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct ResultLine {
    #[serde(default)]
    pub subtype: String,
    #[serde(default)]
    pub is_error: bool,
    #[serde(default)]
    pub api_error_status: Option<u16>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub usage: Value,
    #[serde(default)]
    pub total_cost_usd: Option<f64>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub num_turns: Option<u64>,
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub terminal_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ControlRequestLine {
    pub request_id: String,
    #[serde(default)]
    pub request: Value,
}

impl ControlRequestLine {
    pub fn subtype(&self) -> &str {
        self.request
            .get("subtype")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// The inner `response` object of a `control_response` line.
#[derive(Debug, Clone, Deserialize)]
pub struct ControlResponseLine {
    #[serde(default)]
    pub subtype: String,
    pub request_id: String,
    #[serde(default)]
    pub response: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Parse one stdout line. Errors only when the line is not JSON at all.
///
/// A line of a known type is read straight into its type; only lines that are not (unknown
/// types, odd shapes) are read into a [`Value`]. Every line of every turn passes here, and
/// reading each one twice (a `Value`, a copy, then the type) was the gateway's largest cost
/// per streamed chunk (bench/RESULTS.md).
pub fn parse_line(line: &str) -> Result<CliLine, serde_json::Error> {
    #[derive(Deserialize)]
    struct Peek<'a> {
        #[serde(rename = "type", borrow, default)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct ResponseEnvelope {
        response: ControlResponseLine,
    }
    #[derive(Deserialize)]
    struct CancelLine {
        request_id: String,
    }
    // Only an object has a type (a struct would also read from an array, by position).
    let kind = if line.trim_start().starts_with('{') {
        serde_json::from_str::<Peek>(line).ok().and_then(|p| p.kind)
    } else {
        None
    };
    let typed = match kind.as_deref() {
        Some("system") => serde_json::from_str(line).map(CliLine::System).ok(),
        Some("assistant") => serde_json::from_str(line).map(CliLine::Assistant).ok(),
        Some("user") => serde_json::from_str(line).map(CliLine::User).ok(),
        Some("stream_event") => serde_json::from_str(line).map(CliLine::StreamEvent).ok(),
        Some("result") => serde_json::from_str(line).map(CliLine::Result).ok(),
        Some("control_request") => serde_json::from_str(line).map(CliLine::ControlRequest).ok(),
        Some("control_response") => serde_json::from_str::<ResponseEnvelope>(line)
            .map(|e| CliLine::ControlResponse(e.response))
            .ok(),
        Some("control_cancel_request") => serde_json::from_str::<CancelLine>(line)
            .map(|c| CliLine::ControlCancel {
                request_id: c.request_id,
            })
            .ok(),
        _ => None,
    };
    // A known type with an unexpected shape is kept rather than dropped: tolerance over
    // strictness, since the protocol is undocumented and changes between CLI versions.
    match typed {
        Some(l) => Ok(l),
        None => Ok(CliLine::Other(serde_json::from_str(line)?)),
    }
}

/// A user turn: `content` is a string or an array of Messages-API content blocks. The CLI
/// gives the message the `uuid` in its transcript, so a turn that never ended can be found.
pub fn user_line(content: &Value, uuid: &str) -> String {
    json!({
        "type": "user",
        "message": {"role": "user", "content": content},
        "parent_tool_use_id": null,
        "session_id": "",
        "uuid": uuid,
    })
    .to_string()
}

/// A user message added to the history without a model call (`shouldQuery: false`); the CLI
/// answers it with an empty `result` (`num_turns: 0`).
pub fn history_user_line(content: &Value) -> String {
    json!({
        "type": "user",
        "message": {"role": "user", "content": content},
        "parent_tool_use_id": null,
        "session_id": "",
        "shouldQuery": false,
    })
    .to_string()
}

/// An assistant message added to the history as it is read. `id` must be unique, or the CLI
/// merges it with its neighbours; `model` must be present, or the CLI stalls.
pub fn history_assistant_line(id: &str, content: &Value) -> String {
    json!({
        "type": "assistant",
        "message": {"id": id, "type": "message", "role": "assistant", "model": "ccgw-replay", "content": content},
        "parent_tool_use_id": null,
        "session_id": "",
    })
    .to_string()
}

pub fn control_request_line(request_id: &str, request: &Value) -> String {
    json!({"type": "control_request", "request_id": request_id, "request": request}).to_string()
}

pub fn control_success_line(request_id: &str, response: &Value) -> String {
    json!({
        "type": "control_response",
        "response": {"subtype": "success", "request_id": request_id, "response": response},
    })
    .to_string()
}

pub fn control_error_line(request_id: &str, error: &str) -> String {
    json!({
        "type": "control_response",
        "response": {"subtype": "error", "request_id": request_id, "error": error},
    })
    .to_string()
}

/// The `initialize` control request: per-conversation configuration sent after spawn.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Initialize {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append_system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sdk_mcp_servers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<Value>,
    /// Hook registrations (`{"PreToolUse":[{"matcher":…,"hookCallbackIds":[…]}]}`); the CLI
    /// then asks us through `hook_callback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Value>,
}

impl Initialize {
    pub fn to_request(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Some(obj) = v.as_object_mut() {
            obj.insert("subtype".into(), json!("initialize"));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_lines_and_keeps_unknown_fields() {
        let line = r#"{"type":"system","subtype":"init","session_id":"s1","model":"m","tools":["a"],"brand_new":1}"#;
        match parse_line(line).unwrap() {
            CliLine::System(s) => {
                assert_eq!(s.subtype, "init");
                assert_eq!(s.session_id.as_deref(), Some("s1"));
                assert_eq!(s.extra["brand_new"], 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_type_is_other_not_error() {
        assert!(matches!(
            parse_line(r#"{"type":"from_the_future","x":1}"#).unwrap(),
            CliLine::Other(_)
        ));
        assert!(matches!(
            parse_line(r#"{"no_type":true}"#).unwrap(),
            CliLine::Other(_)
        ));
        assert!(parse_line("not json").is_err());
    }

    #[test]
    fn known_type_with_odd_shape_is_kept_as_other() {
        // `request_id` must be a string; a number makes the typed parse fail.
        let v = parse_line(r#"{"type":"control_request","request_id":5}"#).unwrap();
        assert!(matches!(v, CliLine::Other(_)));
        for odd in [
            r#"["control_request","r1",{}]"#,
            r#"{"type":5,"subtype":"init"}"#,
            r#"{"type":"control_response"}"#,
            r#"{"type":"control_response","response":{"subtype":"success"}}"#,
            r#"{"type":"control_cancel_request","request_id":7}"#,
            "42",
        ] {
            match parse_line(odd).unwrap() {
                CliLine::Other(v) => assert_eq!(v, serde_json::from_str::<Value>(odd).unwrap()),
                other => panic!("{odd}: {other:?}"),
            }
        }
        assert!(parse_line(r#"{"type":"system"} trailing"#).is_err());
        // Escapes in the type are still read.
        assert!(matches!(
            parse_line(r#"{"type":"syst\u0065m","subtype":"init"}"#).unwrap(),
            CliLine::System(_)
        ));
    }

    #[test]
    fn parses_control_response_and_cancel() {
        let ok = r#"{"type":"control_response","response":{"subtype":"success","request_id":"r1","response":{"a":1}}}"#;
        match parse_line(ok).unwrap() {
            CliLine::ControlResponse(r) => {
                assert_eq!(r.request_id, "r1");
                assert_eq!(r.response.unwrap()["a"], 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cancel = r#"{"type":"control_cancel_request","request_id":"r2"}"#;
        assert!(matches!(
            parse_line(cancel).unwrap(),
            CliLine::ControlCancel { request_id } if request_id == "r2"
        ));
    }

    #[test]
    fn result_line_reads_error_fields() {
        let line = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":529,"result":"API Error: 529","session_id":"s","usage":{"input_tokens":3}}"#;
        match parse_line(line).unwrap() {
            CliLine::Result(r) => {
                assert!(r.is_error);
                assert_eq!(r.api_error_status, Some(529));
                assert_eq!(r.usage["input_tokens"], 3);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn builds_input_lines() {
        let u: Value = serde_json::from_str(&user_line(&json!("hi"), "u-1")).unwrap();
        assert_eq!(u["type"], "user");
        assert_eq!(u["uuid"], "u-1");
        assert_eq!(u["message"]["content"], "hi");
        let init = Initialize {
            system_prompt: Some("S".into()),
            ..Default::default()
        }
        .to_request();
        assert_eq!(init["subtype"], "initialize");
        assert_eq!(init["systemPrompt"], "S");
        assert!(init.get("sdkMcpServers").is_none());
    }
}
