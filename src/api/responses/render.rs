//! Internal events → a Responses API `response` object, or its typed SSE events
//! (`response.created`, `response.in_progress`, `response.output_item.added` / `.done`,
//! `response.content_part.added` / `.done`, `response.output_text.delta` / `.done`,
//! `response.function_call_arguments.delta` / `.done`, `response.reasoning_summary_part.*` and
//! `response.reasoning_summary_text.*` for thinking, then `response.completed`,
//! `response.incomplete` or `response.failed`), each with its `sequence_number`.
//!
//! Both are one [`Fold`]: output items follow the events as they come: thinking is a
//! `reasoning` item (its signature as `encrypted_content`), text a `message`, each client tool
//! call a `function_call`. Built-in tool calls are not shown, but they end the item before them.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde_json::{json, Map, Value};

use super::convert::item_id;
use crate::claude::{ClaudeError, Event, StopReason, TurnSummary, Usage};
use crate::domain::conversations::TurnHandle;
use crate::domain::turn::{Message, Role};
use crate::http::error::ApiError;
use crate::http::metrics::TurnTimer;

/// What every event of one response shares.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    pub id: String,
    pub created_at: u64,
    /// The model id the client asked for.
    pub model: String,
    /// The request fields a response repeats (`convert::echo`).
    pub echo: Map<String, Value>,
}

impl ResponseMeta {
    pub fn new(model: &str, echo: Map<String, Value>) -> Self {
        ResponseMeta {
            id: format!("resp_{}", uuid::Uuid::new_v4().simple()),
            created_at: now_secs(),
            model: model.to_string(),
            echo,
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
enum Item {
    Reasoning {
        id: String,
        text: String,
        signature: Option<String>,
    },
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// The response, built from events; the stream events it takes to get there.
#[derive(Debug)]
pub struct Fold {
    meta: ResponseMeta,
    items: Vec<Item>,
    /// The item still receiving deltas.
    open: Option<usize>,
    seq: u64,
}

impl Fold {
    pub fn new(meta: ResponseMeta) -> Self {
        Fold {
            meta,
            items: vec![],
            open: None,
            seq: 0,
        }
    }

    pub fn id(&self) -> &str {
        &self.meta.id
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self) -> Vec<Value> {
        let r = self.response("in_progress", None, None);
        vec![
            self.event("response.created", json!({"response": r})),
            self.event("response.in_progress", json!({"response": r})),
        ]
    }

    /// The stream events one turn event adds.
    pub fn on(&mut self, ev: &Event) -> Vec<Value> {
        let mut out = Vec::new();
        match ev {
            Event::ThinkingDelta { text } if !text.is_empty() => {
                let idx = self.ensure_reasoning(&mut out);
                if let Item::Reasoning { id, text: t, .. } = &mut self.items[idx] {
                    t.push_str(text);
                    let id = id.clone();
                    out.push(self.event(
                        "response.reasoning_summary_text.delta",
                        json!({"item_id": id, "output_index": idx, "summary_index": 0, "delta": text}),
                    ));
                }
            }
            Event::ThinkingSignature { signature } => {
                if let Some(idx) = self.open {
                    if let Item::Reasoning { signature: s, .. } = &mut self.items[idx] {
                        *s = Some(signature.clone());
                    }
                }
            }
            Event::TextDelta { text } if !text.is_empty() => {
                let idx = self.ensure_message(&mut out);
                if let Item::Message { id, text: t } = &mut self.items[idx] {
                    t.push_str(text);
                    let id = id.clone();
                    out.push(self.event(
                        "response.output_text.delta",
                        json!({"item_id": id, "output_index": idx, "content_index": 0, "delta": text, "logprobs": []}),
                    ));
                }
            }
            Event::ToolCallStart {
                id,
                name,
                client: true,
            } => {
                self.open_call(id, name, &mut out);
            }
            Event::ToolCallDelta {
                id,
                partial_json,
                client: true,
            } => {
                if let Some(idx) = self.call_index(id) {
                    if let Item::Call { id, arguments, .. } = &mut self.items[idx] {
                        arguments.push_str(partial_json);
                        let id = id.clone();
                        out.push(self.event(
                            "response.function_call_arguments.delta",
                            json!({"item_id": id, "output_index": idx, "delta": partial_json}),
                        ));
                    }
                }
            }
            Event::ToolCall {
                id,
                name,
                input,
                client: true,
            } => {
                let idx = match self.call_index(id) {
                    Some(idx) => idx,
                    // A call that did not stream arrives whole.
                    None => {
                        let idx = self.open_call(id, name, &mut out);
                        let args = input.to_string();
                        if let Item::Call { id, .. } = &self.items[idx] {
                            let id = id.clone();
                            out.push(self.event(
                                "response.function_call_arguments.delta",
                                json!({"item_id": id, "output_index": idx, "delta": args}),
                            ));
                        }
                        idx
                    }
                };
                // The complete input wins over what its fragments said.
                if let Item::Call { arguments, .. } = &mut self.items[idx] {
                    *arguments = input.to_string();
                }
                if self.open == Some(idx) {
                    out.extend(self.close());
                }
            }
            Event::ToolCallStart { client: false, .. } | Event::ToolCall { client: false, .. } => {
                out.extend(self.close())
            }
            _ => {}
        }
        out
    }

    /// The last item's end and the final event; and the response as it ended.
    pub fn finish(&mut self, summary: &TurnSummary) -> (Vec<Value>, Value) {
        let mut out = self.close();
        let (status, incomplete) = match summary.stop_reason {
            StopReason::MaxTokens => ("incomplete", Some(json!({"reason": "max_output_tokens"}))),
            _ => ("completed", None),
        };
        let mut r = self.response(status, Some(usage(summary.usage)), None);
        if let Some(i) = incomplete {
            r["incomplete_details"] = i;
        }
        if status == "completed" {
            r["completed_at"] = json!(now_secs());
        }
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        out.push(self.event(kind, json!({"response": r})));
        (out, r)
    }

    /// A failure after the stream began: the response as failed.
    pub fn fail(&mut self, e: &ApiError) -> Vec<Value> {
        let mut out = self.close();
        let error = json!({"code": failure_code(e), "message": e.to_string()});
        let r = self.response("failed", None, Some(error));
        out.push(self.event("response.failed", json!({"response": r})));
        out
    }

    /// The assistant message this response adds to the conversation, as a client would send
    /// it back (its text, then its function calls).
    pub fn reply_message(&self) -> Message {
        let text: String = self
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Message { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let mut content = vec![json!({"type": "text", "text": text})];
        for i in &self.items {
            if let Item::Call {
                call_id,
                name,
                arguments,
                ..
            } = i
            {
                let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
                content
                    .push(json!({"type": "tool_use", "id": call_id, "name": name, "input": input}));
            }
        }
        Message {
            role: Role::Assistant,
            content,
        }
    }

    fn response(&self, status: &str, usage: Option<Value>, error: Option<Value>) -> Value {
        let output: Vec<Value> = (0..self.items.len())
            .map(|i| {
                let status = if Some(i) == self.open {
                    "in_progress"
                } else {
                    "completed"
                };
                self.item_json(i, status)
            })
            .collect();
        let mut r = json!({
            "id": self.meta.id,
            "object": "response",
            "created_at": self.meta.created_at,
            "status": status,
            "background": false,
            "error": error,
            "incomplete_details": null,
            "model": self.meta.model,
            "output": output,
            "usage": usage,
        });
        if let Some(obj) = r.as_object_mut() {
            for (k, v) in &self.meta.echo {
                obj.insert(k.clone(), v.clone());
            }
        }
        r
    }

    fn item_json(&self, idx: usize, status: &str) -> Value {
        match &self.items[idx] {
            Item::Reasoning {
                id,
                text,
                signature,
            } => json!({
                "id": id, "type": "reasoning", "status": status,
                "summary": [{"type": "summary_text", "text": text}],
                "encrypted_content": signature,
            }),
            Item::Message { id, text } => json!({
                "id": id, "type": "message", "status": status, "role": "assistant",
                "content": if status == "in_progress" && text.is_empty() { json!([]) } else { json!([output_text(text)]) },
            }),
            Item::Call {
                id,
                call_id,
                name,
                arguments,
            } => json!({
                "id": id, "type": "function_call", "status": status,
                "call_id": call_id, "name": name, "arguments": arguments,
            }),
        }
    }

    fn event(&mut self, kind: &str, mut fields: Value) -> Value {
        fields["type"] = json!(kind);
        fields["sequence_number"] = json!(self.seq);
        self.seq += 1;
        fields
    }

    fn next_id(&self, prefix: &str) -> String {
        item_id(prefix, &self.meta.id, self.items.len())
    }

    fn add(&mut self, item: Item, out: &mut Vec<Value>) -> usize {
        out.extend(self.close());
        self.items.push(item);
        let idx = self.items.len() - 1;
        self.open = Some(idx);
        let mut added = self.item_json(idx, "in_progress");
        if let Item::Reasoning { .. } = self.items[idx] {
            added["summary"] = json!([]);
        }
        out.push(self.event(
            "response.output_item.added",
            json!({"output_index": idx, "item": added}),
        ));
        idx
    }

    fn ensure_reasoning(&mut self, out: &mut Vec<Value>) -> usize {
        if let Some(idx) = self
            .open
            .filter(|i| matches!(self.items[*i], Item::Reasoning { .. }))
        {
            return idx;
        }
        let id = self.next_id("rs");
        let idx = self.add(
            Item::Reasoning {
                id: id.clone(),
                text: String::new(),
                signature: None,
            },
            out,
        );
        out.push(self.event(
            "response.reasoning_summary_part.added",
            json!({"item_id": id, "output_index": idx, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
        ));
        idx
    }

    fn ensure_message(&mut self, out: &mut Vec<Value>) -> usize {
        if let Some(idx) = self
            .open
            .filter(|i| matches!(self.items[*i], Item::Message { .. }))
        {
            return idx;
        }
        let id = self.next_id("msg");
        let idx = self.add(
            Item::Message {
                id: id.clone(),
                text: String::new(),
            },
            out,
        );
        out.push(self.event(
            "response.content_part.added",
            json!({"item_id": id, "output_index": idx, "content_index": 0, "part": output_text("")}),
        ));
        idx
    }

    fn open_call(&mut self, call_id: &str, name: &str, out: &mut Vec<Value>) -> usize {
        let id = self.next_id("fc");
        self.add(
            Item::Call {
                id,
                call_id: call_id.to_string(),
                name: name.to_string(),
                arguments: String::new(),
            },
            out,
        )
    }

    fn call_index(&self, call_id: &str) -> Option<usize> {
        self.items
            .iter()
            .position(|i| matches!(i, Item::Call { call_id: c, .. } if c == call_id))
    }

    /// The end of the open item.
    fn close(&mut self) -> Vec<Value> {
        let Some(idx) = self.open.take() else {
            return vec![];
        };
        let mut out = Vec::new();
        match self.items[idx].clone() {
            Item::Reasoning { id, text, .. } => {
                out.push(self.event(
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": idx, "summary_index": 0, "text": text}),
                ));
                out.push(self.event(
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": idx, "summary_index": 0, "part": {"type": "summary_text", "text": text}}),
                ));
            }
            Item::Message { id, text } => {
                out.push(self.event(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": idx, "content_index": 0, "text": text, "logprobs": []}),
                ));
                out.push(self.event(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": idx, "content_index": 0, "part": output_text(&text)}),
                ));
            }
            Item::Call {
                id,
                name,
                arguments,
                ..
            } => {
                out.push(self.event(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": idx, "name": name, "arguments": arguments}),
                ));
            }
        }
        let item = self.item_json(idx, "completed");
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": idx, "item": item}),
        ));
        out
    }
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// Usage as the Responses API reports it: every input token, the cached ones, the written.
pub fn usage(u: Usage) -> Value {
    let input = u.prompt_tokens();
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u.cache_read_input_tokens, "cache_write_tokens": u.cache_creation_input_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + u.output_tokens,
    })
}

/// `response.error.code` for a failure.
fn failure_code(e: &ApiError) -> &'static str {
    match e.status().as_u16() {
        429 => "rate_limit_exceeded",
        _ => "server_error",
    }
}

fn ended_early() -> ApiError {
    ApiError::Claude(ClaudeError::protocol("the turn ended without a result"))
}

/// Wait for the whole turn: the response and the fold it was built with.
pub async fn collect(
    mut handle: TurnHandle,
    meta: ResponseMeta,
) -> Result<(Value, Fold), ApiError> {
    let mut fold = Fold::new(meta);
    while let Some(ev) = handle.events.recv().await {
        match ev {
            Event::Error(e) => return Err(e.into()),
            Event::Done(summary) => {
                let (_, r) = fold.finish(&summary);
                return Ok((r, fold));
            }
            ev => {
                fold.on(&ev);
            }
        }
    }
    Err(ended_early())
}

/// What `on_done` returns: it ends once the response is stored.
pub type Kept = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Stream the turn as typed events. `on_done` gets the finished response and its fold just
/// before `response.completed` goes out (the response is stored there, and awaited).
///
/// As on the other endpoints, the status is decided by the first event that shows the turn
/// under way: a failure before any output is a plain HTTP error; after it, `response.failed`.
pub async fn stream(
    mut handle: TurnHandle,
    meta: ResponseMeta,
    timer: TurnTimer,
    on_done: impl FnOnce(&Value, &Fold) -> Kept + Send + 'static,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let first = handle.under_way().await?;
    let mut events = handle.events;
    let s = async_stream::stream! {
        let mut fold = Fold::new(meta);
        for e in fold.start() {
            yield Ok(sse(&e));
        }
        let mut pending = Some(first);
        let mut on_done = Some(on_done);
        loop {
            let ev = match pending.take() {
                Some(ev) => ev,
                None => match events.recv().await {
                    Some(ev) => ev,
                    None => Event::Error(ClaudeError::protocol("the turn ended without a result")),
                },
            };
            match ev {
                Event::Done(summary) => {
                    let (out, r) = fold.finish(&summary);
                    if let Some(f) = on_done.take() {
                        f(&r, &fold).await;
                    }
                    for e in out {
                        yield Ok(sse(&e));
                    }
                    timer.finish();
                    break;
                }
                Event::Error(e) => {
                    for e in fold.fail(&e.into()) {
                        yield Ok(sse(&e));
                    }
                    break;
                }
                ev => {
                    for e in fold.on(&ev) {
                        yield Ok(sse(&e));
                    }
                }
            }
        }
    };
    Ok(Sse::new(s).keep_alive(KeepAlive::default()))
}

fn sse(ev: &Value) -> SseEvent {
    SseEvent::default()
        .event(ev["type"].as_str().unwrap_or("message"))
        .data(ev.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(stop_reason: StopReason) -> TurnSummary {
        TurnSummary {
            stop_reason,
            usage: Usage {
                input_tokens: 5,
                output_tokens: 3,
                cache_creation_input_tokens: 1,
                cache_read_input_tokens: 2,
            },
            cost_usd: None,
            duration_ms: None,
            num_turns: None,
            leaf: None,
            session_id: String::new(),
            result_text: String::new(),
        }
    }

    fn run(events: Vec<Event>, stop: StopReason) -> (Vec<Value>, Value, Fold) {
        let mut f = Fold::new(ResponseMeta::new("sonnet", Map::new()));
        let mut out = f.start();
        for e in &events {
            out.extend(f.on(e));
        }
        let (last, r) = f.finish(&summary(stop));
        out.extend(last);
        (out, r, f)
    }

    #[test]
    fn thinking_text_and_a_call_in_event_order() {
        let (out, r, fold) = run(
            vec![
                Event::ThinkingDelta { text: "hm".into() },
                Event::ThinkingSignature {
                    signature: "EqS=".into(),
                },
                Event::TextDelta {
                    text: "let me ".into(),
                },
                Event::TextDelta {
                    text: "look".into(),
                },
                Event::ToolCallStart {
                    id: "call_1".into(),
                    name: "f".into(),
                    client: true,
                },
                Event::ToolCallDelta {
                    id: "call_1".into(),
                    partial_json: "{\"a\":".into(),
                    client: true,
                },
                Event::ToolCallDelta {
                    id: "call_1".into(),
                    partial_json: "1}".into(),
                    client: true,
                },
                Event::ToolCall {
                    id: "call_1".into(),
                    name: "f".into(),
                    input: json!({"a": 1}),
                    client: true,
                },
            ],
            StopReason::ToolUse,
        );
        let kinds: Vec<&str> = out.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let seqs: Vec<u64> = out
            .iter()
            .map(|e| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (0..out.len() as u64).collect::<Vec<_>>());
        assert_eq!(r["status"], "completed");
        assert_eq!(r["output"][0]["encrypted_content"], "EqS=");
        assert_eq!(r["output"][1]["content"][0]["text"], "let me look");
        assert_eq!(r["output"][2]["call_id"], "call_1");
        assert_eq!(r["output"][2]["arguments"], "{\"a\":1}");
        assert_eq!(r["usage"]["input_tokens"], 8);
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 2);
        assert_eq!(r["usage"]["total_tokens"], 11);
        let reply = fold.reply_message();
        assert_eq!(reply.content[0]["text"], "let me look");
        assert_eq!(reply.content[1]["input"]["a"], 1);
        assert!(r["output"][1]["id"].as_str().unwrap().starts_with("msg_"));
    }

    #[test]
    fn max_tokens_is_incomplete_and_a_failure_is_failed() {
        let (out, r, _) = run(
            vec![Event::TextDelta { text: "x".into() }],
            StopReason::MaxTokens,
        );
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(out.last().unwrap()["type"], "response.incomplete");
        let mut f = Fold::new(ResponseMeta::new("sonnet", Map::new()));
        f.on(&Event::TextDelta { text: "x".into() });
        let failed = f.fail(&ApiError::Claude(ClaudeError::Upstream {
            status: Some(529),
            message: "overloaded".into(),
            retry_after: None,
        }));
        let last = failed.last().unwrap();
        assert_eq!(last["type"], "response.failed");
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(last["response"]["error"]["code"], "server_error");
    }
}
