//! Internal events → OpenAI responses: one `chat.completion` object, or an SSE stream of
//! `chat.completion.chunk`s ending in `data: [DONE]`. Both are folds over the same events.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;

use super::types::{
    AssistantMessage, ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice, Delta,
    FunctionCallOut, FunctionDeltaOut, ToolCallDeltaOut, ToolCallOut, UsageOut,
};
use crate::claude::{Event, StopReason};
use crate::domain::conversations::TurnHandle;
use crate::http::error::ApiError;
use crate::http::metrics::TurnTimer;

pub const FINGERPRINT: &str = concat!("ccgw-", env!("CARGO_PKG_VERSION"));

/// What every chunk and completion of one response shares.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub include_usage: bool,
}

impl ResponseMeta {
    pub fn new(model: &str, include_usage: bool) -> Self {
        ResponseMeta {
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            model: model.to_string(),
            include_usage,
        }
    }
}

pub fn finish_reason(r: &StopReason) -> &'static str {
    match r {
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        _ => "stop",
    }
}

/// Wait for the whole turn and build one completion.
pub async fn collect(
    mut handle: TurnHandle,
    meta: &ResponseMeta,
) -> Result<ChatCompletion, ApiError> {
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut calls: Vec<ToolCallOut> = Vec::new();
    while let Some(ev) = handle.events.recv().await {
        match ev {
            Event::TextDelta { text } => content.push_str(&text),
            Event::ThinkingDelta { text } => reasoning.push_str(&text),
            Event::ToolCall {
                id,
                name,
                input,
                client: true,
            } => calls.push(ToolCallOut {
                id,
                kind: "function",
                function: FunctionCallOut {
                    name,
                    arguments: input.to_string(),
                },
            }),
            Event::Error(e) => return Err(e.into()),
            Event::Done(summary) => {
                return Ok(ChatCompletion {
                    id: meta.id.clone(),
                    object: "chat.completion",
                    created: meta.created,
                    model: meta.model.clone(),
                    choices: vec![Choice {
                        index: 0,
                        message: AssistantMessage {
                            role: "assistant",
                            content: (!content.is_empty() || calls.is_empty()).then_some(content),
                            reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                            refusal: None,
                            tool_calls: (!calls.is_empty()).then_some(calls),
                        },
                        finish_reason: finish_reason(&summary.stop_reason),
                        logprobs: None,
                    }],
                    usage: Some(summary.usage.into()),
                    system_fingerprint: FINGERPRINT.into(),
                });
            }
            _ => {}
        }
    }
    Err(ApiError::Claude(crate::claude::ClaudeError::protocol(
        "the turn ended without a result",
    )))
}

/// Stream the turn as SSE chunks, exactly as OpenAI sends them.
pub fn stream(
    handle: TurnHandle,
    meta: ResponseMeta,
    timer: TurnTimer,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let mut events = handle.events;
    // Tool-call ids in the order the client first saw them: their index in `tool_calls`.
    let mut call_index: Vec<String> = Vec::new();
    let s = async_stream::stream! {
        yield Ok(data(&chunk(&meta, Delta { role: Some("assistant"), content: Some(String::new()), ..Default::default() }, None)));
        while let Some(ev) = events.recv().await {
            match ev {
                Event::TextDelta { text } => {
                    yield Ok(data(&chunk(&meta, Delta { content: Some(text), ..Default::default() }, None)));
                }
                Event::ThinkingDelta { text } => {
                    yield Ok(data(&chunk(&meta, Delta { reasoning_content: Some(text), ..Default::default() }, None)));
                }
                Event::ToolCallStart { id, name, client: true } => {
                    call_index.push(id.clone());
                    let d = ToolCallDeltaOut { index: call_index.len() - 1, id: Some(id), kind: Some("function"),
                        function: FunctionDeltaOut { name: Some(name), arguments: String::new() } };
                    yield Ok(data(&chunk(&meta, Delta { tool_calls: Some(vec![d]), ..Default::default() }, None)));
                }
                Event::ToolCallDelta { id, partial_json, client: true } => {
                    if let Some(index) = call_index.iter().position(|c| *c == id) {
                        let d = ToolCallDeltaOut { index, id: None, kind: None,
                            function: FunctionDeltaOut { name: None, arguments: partial_json } };
                        yield Ok(data(&chunk(&meta, Delta { tool_calls: Some(vec![d]), ..Default::default() }, None)));
                    }
                }
                // A call that did not stream (no partial messages for it) arrives whole.
                Event::ToolCall { id, name, input, client: true } if !call_index.contains(&id) => {
                    call_index.push(id.clone());
                    let d = ToolCallDeltaOut { index: call_index.len() - 1, id: Some(id), kind: Some("function"),
                        function: FunctionDeltaOut { name: Some(name), arguments: input.to_string() } };
                    yield Ok(data(&chunk(&meta, Delta { tool_calls: Some(vec![d]), ..Default::default() }, None)));
                }
                Event::Done(summary) => {
                    yield Ok(data(&chunk(&meta, Delta::default(), Some(finish_reason(&summary.stop_reason)))));
                    if meta.include_usage {
                        let usage: UsageOut = summary.usage.into();
                        yield Ok(data(&ChatCompletionChunk {
                            choices: vec![],
                            usage: Some(Some(usage)),
                            ..chunk(&meta, Delta::default(), None)
                        }));
                    }
                    yield Ok(SseEvent::default().data("[DONE]"));
                    timer.finish();
                    break;
                }
                Event::Error(e) => {
                    // Headers are gone already: the error travels as an SSE event, then the
                    // stream ends.
                    yield Ok(data(&ApiError::from(e).openai_body()));
                    break;
                }
                _ => {}
            }
        }
    };
    Sse::new(s).keep_alive(KeepAlive::default())
}

fn chunk(meta: &ResponseMeta, delta: Delta, finish: Option<&'static str>) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: meta.id.clone(),
        object: "chat.completion.chunk",
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
            logprobs: None,
        }],
        system_fingerprint: FINGERPRINT.into(),
        usage: meta.include_usage.then_some(None),
    }
}

fn data<T: Serialize>(v: &T) -> SseEvent {
    SseEvent::default().data(serde_json::to_string(v).unwrap_or_else(|_| "{}".into()))
}
