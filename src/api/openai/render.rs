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
///
/// The status is decided by the first event that shows the turn under way, as on the
/// Anthropic endpoint: a turn that fails before any output is an ordinary HTTP error (a 429 or
/// 503 with `retry-after`, a 401, a 502), so SDKs see its status and retry; a failure after
/// that is an error event in the stream.
pub async fn stream(
    mut handle: TurnHandle,
    meta: ResponseMeta,
    timer: TurnTimer,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let first = handle.under_way().await?;
    let mut events = handle.events;
    let s = async_stream::stream! {
        let mut deltas = Deltas::default();
        let mut pending = Some(first);
        loop {
            let ev = match pending.take() {
                Some(ev) => ev,
                None => match events.recv().await {
                    Some(ev) => ev,
                    None => {
                        let e = ApiError::Claude(crate::claude::ClaudeError::protocol("the turn ended without a result"));
                        yield Ok(data(&e.openai_body()));
                        break;
                    }
                },
            };
            match ev {
                Event::Done(summary) => {
                    for d in deltas.finish() {
                        yield Ok(data(&chunk(&meta, d, None)));
                    }
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
                ev => {
                    for d in deltas.on(ev) {
                        yield Ok(data(&chunk(&meta, d, None)));
                    }
                }
            }
        }
    };
    Ok(Sse::new(s).keep_alive(KeepAlive::default()))
}

/// Events → chunk deltas. The first delta says `role: "assistant"`, with `content: ""` when
/// the reply starts with text and `content: null` otherwise, as OpenAI does (a client that
/// sees `""` shows an empty text part before a reply made only of tool calls).
#[derive(Debug, Default)]
struct Deltas {
    role_sent: bool,
    /// Tool-call ids in the order the client first saw them: their index in `tool_calls`.
    call_index: Vec<String>,
}

impl Deltas {
    fn on(&mut self, ev: Event) -> Vec<Delta> {
        let d = match ev {
            Event::TextDelta { text } => Delta {
                content: Some(Some(text)),
                ..Default::default()
            },
            Event::ThinkingDelta { text } => Delta {
                reasoning_content: Some(text),
                ..Default::default()
            },
            Event::ToolCallStart {
                id,
                name,
                client: true,
            } => self.new_call(id, name, String::new()),
            Event::ToolCallDelta {
                id,
                partial_json,
                client: true,
            } => match self.call_index.iter().position(|c| *c == id) {
                Some(index) => Delta {
                    tool_calls: Some(vec![ToolCallDeltaOut {
                        index,
                        id: None,
                        kind: None,
                        function: FunctionDeltaOut {
                            name: None,
                            arguments: partial_json,
                        },
                    }]),
                    ..Default::default()
                },
                None => return vec![],
            },
            // A call that did not stream (no partial messages for it) arrives whole.
            Event::ToolCall {
                id,
                name,
                input,
                client: true,
            } if !self.call_index.contains(&id) => self.new_call(id, name, input.to_string()),
            _ => return vec![],
        };
        self.with_role(d)
    }

    /// The role chunk of a reply that ended with no delta at all.
    fn finish(&mut self) -> Vec<Delta> {
        if self.role_sent {
            return vec![];
        }
        self.role_sent = true;
        vec![Delta {
            role: Some("assistant"),
            content: Some(Some(String::new())),
            ..Default::default()
        }]
    }

    fn with_role(&mut self, d: Delta) -> Vec<Delta> {
        if self.role_sent {
            return vec![d];
        }
        self.role_sent = true;
        if matches!(d.content, Some(Some(_))) {
            let role = Delta {
                role: Some("assistant"),
                content: Some(Some(String::new())),
                ..Default::default()
            };
            return vec![role, d];
        }
        vec![Delta {
            role: Some("assistant"),
            content: Some(None),
            ..d
        }]
    }

    fn new_call(&mut self, id: String, name: String, arguments: String) -> Delta {
        self.call_index.push(id.clone());
        Delta {
            tool_calls: Some(vec![ToolCallDeltaOut {
                index: self.call_index.len() - 1,
                id: Some(id),
                kind: Some("function"),
                function: FunctionDeltaOut {
                    name: Some(name),
                    arguments,
                },
            }]),
            ..Default::default()
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn run(events: Vec<Event>) -> Vec<Value> {
        let mut d = Deltas::default();
        let mut out: Vec<Delta> = events.into_iter().flat_map(|e| d.on(e)).collect();
        out.extend(d.finish());
        out.iter()
            .map(|d| serde_json::to_value(d).unwrap())
            .collect()
    }

    #[test]
    fn a_text_reply_starts_with_an_empty_content_role_chunk() {
        let out = run(vec![
            Event::TextDelta { text: "hi".into() },
            Event::TextDelta { text: "!".into() },
        ]);
        assert_eq!(out[0], json!({"role": "assistant", "content": ""}));
        assert_eq!(out[1], json!({"content": "hi"}));
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn a_tool_calls_only_reply_starts_with_null_content() {
        let out = run(vec![
            Event::ToolCallStart {
                id: "c1".into(),
                name: "f".into(),
                client: true,
            },
            Event::ToolCallDelta {
                id: "c1".into(),
                partial_json: "{}".into(),
                client: true,
            },
            // Built-in tools never reach an OpenAI client.
            Event::ToolCallStart {
                id: "b".into(),
                name: "Read".into(),
                client: false,
            },
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["role"], "assistant");
        assert_eq!(out[0]["content"], Value::Null);
        assert!(out[0].as_object().unwrap().contains_key("content"));
        assert_eq!(out[0]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(out[1]["tool_calls"][0]["function"]["arguments"], "{}");
        assert!(out[1].get("role").is_none());
    }

    #[test]
    fn an_empty_reply_still_says_its_role() {
        assert_eq!(
            run(vec![]),
            vec![json!({"role": "assistant", "content": ""})]
        );
    }
}
