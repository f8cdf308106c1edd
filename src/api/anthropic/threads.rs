//! Anthropic's message threads (the `message-threads-2026-08-12` beta), which
//! `@anthropic-ai/sdk`'s tool runner uses by default: `"thread": {"type": "create"}` asks the
//! server to hold the conversation under the reply's `id`; `{"type": "continue",
//! "previous_message_id": ...}` sends only the new messages, and neither `system` nor `tools`
//! (the thread keeps the ones it was created with).
//!
//! The gateway already holds the conversation (its CLI session), so a thread is a chain of
//! stored replies: each keeps the messages its turn added and its reply, the first also the
//! `system` and `tools`. A `continue` is expanded back into the full request, which then finds
//! its live conversation like any full history would. An unknown `previous_message_id` is
//! answered as the API does, with `error.details.error_code: "thread_not_found"`, so the SDK
//! falls back to sending the whole history. Pure, apart from the records it builds.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::types::{InputMessage, MessageResponse, MessagesRequest, SystemPrompt};
use crate::http::error::ApiError;
use crate::store::StoredReply;

/// The kind of the stored replies of threads.
pub const KIND: &str = "thread";

/// A request's `thread` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Thread {
    Create,
    Continue { previous_message_id: String },
}

/// Take the `thread` field out of the request (so it is not reported as ignored).
pub fn take(req: &mut MessagesRequest) -> Result<Option<Thread>, ApiError> {
    let v = match req.extra.remove("thread") {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    match v.get("type").and_then(Value::as_str) {
        Some("create") => Ok(Some(Thread::Create)),
        Some("continue") => match v.get("previous_message_id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(Some(Thread::Continue {
                previous_message_id: id.to_string(),
            })),
            _ => Err(ApiError::bad_request(
                "thread.previous_message_id",
                "Field required",
            )),
        },
        Some(_) => Err(ApiError::bad_request(
            "thread.type",
            "Input should be 'create' or 'continue'",
        )),
        None => Err(ApiError::bad_request("thread.type", "Field required")),
    }
}

/// Turn a `continue` into the full request it stands for: the thread's `system` and `tools`,
/// and its messages before the request's own. `chain` is the thread from its start.
pub fn expand(req: &mut MessagesRequest, chain: &[Arc<StoredReply>]) -> Result<(), ApiError> {
    let root = chain.first().map(|r| &r.body);
    let kept_system: Option<SystemPrompt> = root
        .and_then(|b| b.get("system"))
        .filter(|v| !v.is_null())
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let kept_tools: Option<Vec<Value>> = root
        .and_then(|b| b.get("tools"))
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    for (field, changed) in [
        ("system", req.system.is_some() && req.system != kept_system),
        ("tools", req.tools.is_some() && req.tools != kept_tools),
    ] {
        if changed {
            return Err(ApiError::bad_request(
                field,
                format!("`{field}` cannot be changed when continuing a thread: the thread keeps the `{field}` it was created with"),
            ));
        }
    }
    req.system = kept_system;
    req.tools = kept_tools;
    let mut messages = Vec::new();
    for r in chain {
        let earlier: Vec<InputMessage> = r
            .body
            .get("messages")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default();
        messages.extend(earlier);
    }
    messages.append(&mut req.messages);
    req.messages = messages;
    Ok(())
}

/// The stored reply of one threaded turn: the messages it added and its reply (and, when it
/// created the thread, the `system` and `tools`).
pub fn record(
    thread: &Thread,
    system: Option<&SystemPrompt>,
    tools: Option<&Vec<Value>>,
    added: &[InputMessage],
    reply: &MessageResponse,
    owner: &str,
) -> StoredReply {
    let mut messages: Vec<Value> = added
        .iter()
        .filter_map(|m| serde_json::to_value(m).ok())
        .collect();
    messages.push(json!({"role": "assistant", "content": reply.content}));
    let (previous_id, body) = match thread {
        Thread::Create => (
            None,
            json!({"system": system, "tools": tools, "messages": messages}),
        ),
        Thread::Continue {
            previous_message_id,
        } => (
            Some(previous_message_id.clone()),
            json!({"messages": messages}),
        ),
    };
    StoredReply {
        id: reply.id.clone(),
        kind: KIND.to_string(),
        owner: owner.to_string(),
        previous_id,
        body,
        created_at: crate::store::now_millis(),
    }
}

/// A `continue` from a message the gateway does not hold (unknown, expired, another key's).
pub fn not_found(previous_message_id: &str) -> Response {
    let e = ApiError::NotFound(format!(
        "thread not found: no thread holds the message '{previous_message_id}'"
    ));
    let mut body = e.anthropic_body();
    body["error"]["message"] = json!(e.to_string());
    body["error"]["details"] = json!({"error_code": "thread_not_found"});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::anthropic::convert;

    fn req(v: Value) -> MessagesRequest {
        convert::parse(v.to_string().as_bytes()).unwrap()
    }

    fn reply(id: &str, text: &str) -> MessageResponse {
        let meta = crate::api::anthropic::render::ResponseMeta {
            id: id.into(),
            model: "sonnet".into(),
        };
        meta.message(
            vec![super::super::types::ContentBlock::Text { text: text.into() }],
            None,
        )
    }

    #[test]
    fn a_continue_becomes_the_whole_conversation() {
        let mut first = req(json!({"model": "sonnet", "max_tokens": 10, "system": "S",
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "thread": {"type": "create"}, "messages": [{"role": "user", "content": "q1"}]}));
        let t1 = take(&mut first).unwrap().unwrap();
        assert_eq!(t1, Thread::Create);
        assert!(!first.extra.contains_key("thread"));
        let r1 = record(
            &t1,
            first.system.as_ref(),
            first.tools.as_ref(),
            &first.messages,
            &reply("msg_1", "a1"),
            "me",
        );
        assert_eq!(r1.previous_id, None);

        let mut next = req(json!({"model": "sonnet", "max_tokens": 10,
            "thread": {"type": "continue", "previous_message_id": "msg_1"},
            "messages": [{"role": "user", "content": "q2"}]}));
        let t2 = take(&mut next).unwrap().unwrap();
        let added = next.messages.clone();
        expand(&mut next, &[Arc::new(r1.clone())]).unwrap();
        assert_eq!(next.system, Some(SystemPrompt::Text("S".into())));
        assert_eq!(next.tools.as_ref().unwrap()[0]["name"], "f");
        let roles: Vec<&str> = next.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        let r2 = record(&t2, None, None, &added, &reply("msg_2", "a2"), "me");
        assert_eq!(r2.previous_id.as_deref(), Some("msg_1"));
        assert_eq!(r2.body["messages"].as_array().unwrap().len(), 2);

        // A continue may repeat the thread's system prompt, not change it.
        let mut changed = req(
            json!({"model": "sonnet", "max_tokens": 10, "system": "other",
            "messages": [{"role": "user", "content": "q2"}]}),
        );
        let e = expand(&mut changed, &[Arc::new(r1)]).unwrap_err();
        assert!(e.to_string().contains("`system`"));
    }

    #[test]
    fn bad_thread_fields_are_named() {
        for (thread, param) in [
            (json!({"type": "fork"}), "thread.type"),
            (json!({"type": "continue"}), "thread.previous_message_id"),
        ] {
            let mut r = req(json!({"model": "sonnet", "max_tokens": 1, "thread": thread,
                "messages": [{"role": "user", "content": "q"}]}));
            assert_eq!(crate::api::bad_param(take(&mut r).unwrap_err()), param);
        }
    }
}
