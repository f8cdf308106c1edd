//! Internal events → Anthropic responses: one `message` object, or Anthropic's named SSE
//! events (`message_start`, `ping`, `content_block_start` / `_delta` / `_stop`,
//! `message_delta`, `message_stop`). Both are folds over the same [`Blocks`] fold, so the
//! streamed and the whole message always agree.
//!
//! Content blocks follow the events as they arrive: thinking, text and the client's tool
//! calls each open a block and close the one before. Built-in tool calls are not shown to
//! the client, but they end the current block, so text written after a tool ran starts a
//! new one.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde_json::Value;

use super::types::{
    BlockDelta, ContentBlock, MessageDeltaBody, MessageResponse, StreamEvent, UsageOut,
};
use crate::claude::{ClaudeError, Event, StopReason, TurnSummary};
use crate::domain::conversations::TurnHandle;
use crate::http::error::ApiError;
use crate::http::metrics::TurnTimer;

/// What every event of one response shares.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    pub id: String,
    /// The model id the client asked for.
    pub model: String,
}

impl ResponseMeta {
    pub fn new(model: &str) -> Self {
        ResponseMeta {
            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            model: model.to_string(),
        }
    }

    pub fn message(
        &self,
        content: Vec<ContentBlock>,
        summary: Option<&TurnSummary>,
    ) -> MessageResponse {
        let (stop_reason, stop_sequence) = match summary {
            Some(s) => stop_reason(&s.stop_reason),
            None => (None, None),
        };
        MessageResponse {
            id: self.id.clone(),
            kind: "message",
            role: "assistant",
            model: self.model.clone(),
            content,
            stop_reason,
            stop_sequence,
            usage: summary.map(|s| s.usage.into()).unwrap_or_default(),
        }
    }
}

/// Anthropic's `stop_reason` and `stop_sequence`. A turn cut short by the CLI's own limits
/// (max turns, an interrupt) ended normally as far as the client can tell.
pub fn stop_reason(r: &StopReason) -> (Option<&'static str>, Option<String>) {
    match r {
        StopReason::MaxTokens => (Some("max_tokens"), None),
        StopReason::ToolUse => (Some("tool_use"), None),
        StopReason::StopSequence(s) => (Some("stop_sequence"), (!s.is_empty()).then(|| s.clone())),
        StopReason::Other(o) if o == "refusal" => (Some("refusal"), None),
        StopReason::Other(o) if o == "pause_turn" => (Some("pause_turn"), None),
        _ => (Some("end_turn"), None),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Open {
    Thinking,
    Text,
    Tool(String),
}

/// Turns events into content-block events with the right indexes.
#[derive(Debug, Default)]
pub struct Blocks {
    next: usize,
    open: Option<(usize, Open)>,
    started_calls: HashSet<String>,
}

impl Blocks {
    /// The block events an event adds.
    pub fn on(&mut self, ev: &Event) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        match ev {
            Event::ThinkingDelta { text } if !text.is_empty() => {
                let index = self.ensure(Open::Thinking, &mut out, || ContentBlock::Thinking {
                    thinking: String::new(),
                    signature: String::new(),
                });
                out.push(StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::ThinkingDelta {
                        thinking: text.clone(),
                    },
                });
            }
            // The upstream's signature ends its thinking block, as on the real API.
            Event::ThinkingSignature { signature } => {
                if let Some((index, Open::Thinking)) = &self.open {
                    out.push(StreamEvent::ContentBlockDelta {
                        index: *index,
                        delta: BlockDelta::SignatureDelta {
                            signature: signature.clone(),
                        },
                    });
                }
            }
            Event::TextDelta { text } if !text.is_empty() => {
                let index = self.ensure(Open::Text, &mut out, || ContentBlock::Text {
                    text: String::new(),
                });
                out.push(StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::TextDelta { text: text.clone() },
                });
            }
            Event::ToolCallStart {
                id,
                name,
                client: true,
            } => {
                self.started_calls.insert(id.clone());
                self.open_new(Open::Tool(id.clone()), &mut out, tool_block(id, name));
            }
            Event::ToolCallDelta {
                id,
                partial_json,
                client: true,
            } => {
                if let Some((index, Open::Tool(open))) = &self.open {
                    if open == id {
                        out.push(StreamEvent::ContentBlockDelta {
                            index: *index,
                            delta: BlockDelta::InputJsonDelta {
                                partial_json: partial_json.clone(),
                            },
                        });
                    }
                }
            }
            Event::ToolCall {
                id,
                name,
                input,
                client: true,
            } => {
                if self.started_calls.insert(id.clone()) {
                    // A call that did not stream arrives whole: one block with all its input.
                    let index =
                        self.open_new(Open::Tool(id.clone()), &mut out, tool_block(id, name));
                    out.push(StreamEvent::ContentBlockDelta {
                        index,
                        delta: BlockDelta::InputJsonDelta {
                            partial_json: input.to_string(),
                        },
                    });
                }
                if matches!(&self.open, Some((_, Open::Tool(open))) if open == id) {
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

    /// Close the last block; the turn is over.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        self.close().into_iter().collect()
    }

    fn close(&mut self) -> Option<StreamEvent> {
        self.open
            .take()
            .map(|(index, _)| StreamEvent::ContentBlockStop { index })
    }

    fn ensure(
        &mut self,
        kind: Open,
        out: &mut Vec<StreamEvent>,
        block: impl FnOnce() -> ContentBlock,
    ) -> usize {
        match &self.open {
            Some((index, open)) if *open == kind => *index,
            _ => self.open_new(kind, out, block()),
        }
    }

    fn open_new(&mut self, kind: Open, out: &mut Vec<StreamEvent>, block: ContentBlock) -> usize {
        out.extend(self.close());
        let index = self.next;
        self.next += 1;
        self.open = Some((index, kind));
        out.push(StreamEvent::ContentBlockStart {
            index,
            content_block: block,
        });
        index
    }
}

fn tool_block(id: &str, name: &str) -> ContentBlock {
    ContentBlock::ToolUse {
        id: id.to_string(),
        name: name.to_string(),
        input: Value::Object(Default::default()),
    }
}

/// Content blocks built from block events, as a client SDK accumulates them.
#[derive(Debug, Default)]
struct Content {
    blocks: Vec<ContentBlock>,
    json: HashMap<usize, String>,
}

impl Content {
    fn apply(&mut self, ev: StreamEvent) {
        match ev {
            StreamEvent::ContentBlockStart { content_block, .. } => self.blocks.push(content_block),
            StreamEvent::ContentBlockDelta { index, delta } => {
                match (self.blocks.get_mut(index), delta) {
                    (Some(ContentBlock::Text { text }), BlockDelta::TextDelta { text: t }) => {
                        text.push_str(&t)
                    }
                    (
                        Some(ContentBlock::Thinking { thinking, .. }),
                        BlockDelta::ThinkingDelta { thinking: t },
                    ) => thinking.push_str(&t),
                    (
                        Some(ContentBlock::Thinking { signature, .. }),
                        BlockDelta::SignatureDelta { signature: s },
                    ) => *signature = s,
                    (
                        Some(ContentBlock::ToolUse { .. }),
                        BlockDelta::InputJsonDelta { partial_json },
                    ) => self.json.entry(index).or_default().push_str(&partial_json),
                    _ => {}
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                if let (Some(ContentBlock::ToolUse { input, .. }), Some(json)) =
                    (self.blocks.get_mut(index), self.json.remove(&index))
                {
                    if let Ok(v) = serde_json::from_str(&json) {
                        *input = v;
                    }
                }
            }
            _ => {}
        }
    }

    /// The complete input of a call, which wins over what its fragments said.
    fn set_input(&mut self, id: &str, value: &Value) {
        for b in &mut self.blocks {
            if let ContentBlock::ToolUse { id: bid, input, .. } = b {
                if bid == id {
                    *input = value.clone();
                }
            }
        }
    }
}

/// Block events and the message they add up to, as a client SDK accumulates them: the
/// streamed and the whole message are one fold.
#[derive(Debug, Default)]
struct Message {
    fold: Blocks,
    content: Content,
}

impl Message {
    fn on(&mut self, ev: &Event) -> Vec<StreamEvent> {
        let out = self.fold.on(ev);
        out.iter().for_each(|e| self.content.apply(e.clone()));
        if let Event::ToolCall {
            id,
            input,
            client: true,
            ..
        } = ev
        {
            self.content.set_input(id, input);
        }
        out
    }

    /// The last block events, and the whole message.
    fn finish(
        mut self,
        meta: &ResponseMeta,
        summary: &TurnSummary,
    ) -> (Vec<StreamEvent>, MessageResponse) {
        let out = self.fold.finish();
        out.iter().for_each(|e| self.content.apply(e.clone()));
        (out, meta.message(self.content.blocks, Some(summary)))
    }
}

/// Wait for the whole turn and build one message.
pub async fn collect(
    mut handle: TurnHandle,
    meta: &ResponseMeta,
) -> Result<MessageResponse, ApiError> {
    let mut message = Message::default();
    while let Some(ev) = handle.events.recv().await {
        match ev {
            Event::Error(e) => return Err(e.into()),
            Event::Done(summary) => return Ok(message.finish(meta, &summary).1),
            ev => {
                message.on(&ev);
            }
        }
    }
    Err(ended_early().into())
}

fn ended_early() -> ClaudeError {
    ClaudeError::protocol("the turn ended without a result")
}

/// Stream the turn as Anthropic's named SSE events. `on_message` gets the whole message just
/// before `message_stop` (a thread keeps it).
///
/// The status is decided by the first event that shows the turn under way: a turn that fails
/// before any output is an ordinary HTTP error (so SDKs see its status and can retry), a
/// failure after that an `error` event.
pub async fn stream(
    mut handle: TurnHandle,
    meta: ResponseMeta,
    timer: TurnTimer,
    on_message: impl FnOnce(&MessageResponse) + Send + 'static,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let first = handle.under_way().await?;
    // `message_start` carries the input tokens the upstream reported at its own start.
    let mut start = meta.message(vec![], None);
    if let Event::StepStart { usage } = &first {
        start.usage = UsageOut::from(*usage);
    }
    let mut events = handle.events;
    let s = async_stream::stream! {
        yield Ok(sse(&StreamEvent::MessageStart { message: start }));
        yield Ok(sse(&StreamEvent::Ping));
        let mut message = Message::default();
        let mut pending = VecDeque::from([first]);
        let mut on_message = Some(on_message);
        loop {
            let ev = match pending.pop_front() {
                Some(ev) => ev,
                None => match events.recv().await {
                    Some(ev) => ev,
                    None => {
                        yield Ok(error_event(&ended_early().into()));
                        break;
                    }
                },
            };
            match ev {
                Event::Done(summary) => {
                    let (last, whole) = std::mem::take(&mut message).finish(&meta, &summary);
                    for e in last {
                        yield Ok(sse(&e));
                    }
                    if let Some(f) = on_message.take() {
                        f(&whole);
                    }
                    let (stop_reason, stop_sequence) = stop_reason(&summary.stop_reason);
                    yield Ok(sse(&StreamEvent::MessageDelta {
                        delta: MessageDeltaBody { stop_reason, stop_sequence },
                        usage: UsageOut::from(summary.usage),
                    }));
                    yield Ok(sse(&StreamEvent::MessageStop));
                    timer.finish();
                    break;
                }
                Event::Error(e) => {
                    // Headers are gone already: the error travels as an `error` event.
                    yield Ok(error_event(&e.into()));
                    break;
                }
                ev => {
                    for e in message.on(&ev) {
                        yield Ok(sse(&e));
                    }
                }
            }
        }
    };
    // Anthropic's keep-alive is a `ping` event, which its SDKs skip.
    let ping = sse(&StreamEvent::Ping);
    Ok(Sse::new(s).keep_alive(KeepAlive::new().event(ping)))
}

fn sse(ev: &StreamEvent) -> SseEvent {
    SseEvent::default()
        .event(ev.name())
        .data(serde_json::to_string(ev).unwrap_or_else(|_| "{}".into()))
}

fn error_event(e: &ApiError) -> SseEvent {
    SseEvent::default()
        .event("error")
        .data(e.anthropic_body().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(evs: &[StreamEvent]) -> Vec<String> {
        evs.iter()
            .map(|e| match e {
                StreamEvent::ContentBlockStart { index, .. } => format!("start{index}"),
                StreamEvent::ContentBlockDelta { index, .. } => format!("delta{index}"),
                StreamEvent::ContentBlockStop { index } => format!("stop{index}"),
                other => other.name().to_string(),
            })
            .collect()
    }

    fn text(t: &str) -> Event {
        Event::TextDelta { text: t.into() }
    }

    fn run(events: &[Event]) -> (Vec<StreamEvent>, Content) {
        let mut fold = Blocks::default();
        let mut out: Vec<StreamEvent> = events.iter().flat_map(|e| fold.on(e)).collect();
        out.extend(fold.finish());
        let mut content = Content::default();
        for e in out.clone() {
            content.apply(e);
        }
        (out, content)
    }

    #[test]
    fn thinking_then_text_then_tools_get_their_indexes() {
        let events = [
            Event::ThinkingDelta { text: "hm".into() },
            Event::ThinkingDelta { text: "m".into() },
            Event::ThinkingSignature {
                signature: "EqSig=".into(),
            },
            text("a"),
            text("b"),
            Event::ToolCallStart {
                id: "t1".into(),
                name: "f".into(),
                client: true,
            },
            Event::ToolCallDelta {
                id: "t1".into(),
                partial_json: "{\"x\":".into(),
                client: true,
            },
            Event::ToolCallDelta {
                id: "t1".into(),
                partial_json: "1}".into(),
                client: true,
            },
            Event::ToolCall {
                id: "t1".into(),
                name: "f".into(),
                input: json!({"x": 1}),
                client: true,
            },
            // A call that never streamed.
            Event::ToolCall {
                id: "t2".into(),
                name: "g".into(),
                input: json!({}),
                client: true,
            },
        ];
        let (out, content) = run(&events);
        assert_eq!(
            names(&out),
            vec![
                "start0", "delta0", "delta0", "delta0", "stop0", "start1", "delta1", "delta1",
                "stop1", "start2", "delta2", "delta2", "stop2", "start3", "delta3", "stop3"
            ]
        );
        assert_eq!(
            content.blocks,
            vec![
                ContentBlock::Thinking {
                    thinking: "hmm".into(),
                    signature: "EqSig=".into()
                },
                ContentBlock::Text { text: "ab".into() },
                ContentBlock::ToolUse {
                    id: "t1".into(),
                    name: "f".into(),
                    input: json!({"x": 1})
                },
                ContentBlock::ToolUse {
                    id: "t2".into(),
                    name: "g".into(),
                    input: json!({})
                },
            ]
        );
    }

    #[test]
    fn builtin_tools_are_hidden_but_split_text() {
        let events = [
            text("before"),
            Event::ToolCallStart {
                id: "b".into(),
                name: "Read".into(),
                client: false,
            },
            Event::ToolCall {
                id: "b".into(),
                name: "Read".into(),
                input: json!({}),
                client: false,
            },
            Event::ToolResult {
                tool_use_id: "b".into(),
                content: json!("x"),
                is_error: false,
            },
            text("after"),
        ];
        let (_, content) = run(&events);
        assert_eq!(
            content.blocks,
            vec![
                ContentBlock::Text {
                    text: "before".into()
                },
                ContentBlock::Text {
                    text: "after".into()
                },
            ]
        );
    }

    #[test]
    fn stop_reasons_map_to_anthropic() {
        assert_eq!(stop_reason(&StopReason::EndTurn), (Some("end_turn"), None));
        assert_eq!(stop_reason(&StopReason::ToolUse), (Some("tool_use"), None));
        assert_eq!(
            stop_reason(&StopReason::MaxTokens),
            (Some("max_tokens"), None)
        );
        assert_eq!(
            stop_reason(&StopReason::StopSequence("END".into())),
            (Some("stop_sequence"), Some("END".into()))
        );
        assert_eq!(stop_reason(&StopReason::MaxTurns), (Some("end_turn"), None));
    }

    #[test]
    fn stream_events_serialize_in_anthropic_shape() {
        let e = StreamEvent::ContentBlockDelta {
            index: 2,
            delta: BlockDelta::InputJsonDelta {
                partial_json: "{".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{"}})
        );
        assert_eq!(
            serde_json::to_value(StreamEvent::Ping).unwrap(),
            json!({"type": "ping"})
        );
        let meta = ResponseMeta::new("sonnet");
        let start = serde_json::to_value(StreamEvent::MessageStart {
            message: meta.message(vec![], None),
        })
        .unwrap();
        assert_eq!(start["message"]["type"], "message");
        assert_eq!(start["message"]["content"], json!([]));
        assert_eq!(start["message"]["stop_reason"], Value::Null);
        assert!(start["message"]["id"].as_str().unwrap().starts_with("msg_"));
    }
}
