//! The gateway-wide live feed: every event of every conversation (native sessions and the
//! compatible APIs' conversations alike), each stamped with who and what it belongs to.
//!
//! Owns: the broadcast the console's home, its timelines and the compatible-API recorder read
//! from, and the per-turn context ([`FeedTurn`]) a turn publishes through.
//!
//! Must not: block or slow the turn that publishes, or hold much memory. The broadcast is a
//! ring of [`FEED_CAPACITY`] items per subscriber: a watcher that falls that far behind loses
//! the oldest items and is told how many (`Lagged`); the publisher never waits for anyone. A
//! lagging watcher keeps the ring full, so each item carries at most [`FEED_ITEM_TEXT_BYTES`]
//! of text (the rest is cut and counted in `cut`): the ring stays bounded in bytes, however
//! long a prompt, an answer or a tool result is. The whole texts are in the history. Knows no
//! HTTP; the wire shape is this module's `Serialize`.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::claude::Event;

/// How far a watcher may fall behind before it loses items.
pub const FEED_CAPACITY: usize = 1024;
/// The text one item carries at most (its strings together): a full ring is at most about
/// `FEED_CAPACITY` times this.
pub const FEED_ITEM_TEXT_BYTES: usize = 16 * 1024;

/// What every item of one turn shares.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TurnMeta {
    pub conversation_id: String,
    /// `openai`, `anthropic` or `native`.
    pub source: String,
    /// The public model id.
    pub model: String,
    /// Which API key sent the turn: a short fingerprint, never the secret.
    pub key: Option<String>,
    /// The end user the client named (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    pub turn_id: String,
}

/// What a turn of this conversation publishes under.
pub(crate) fn turn_meta(
    conv: &super::conversation::Conversation,
    req: &crate::domain::turn::TurnRequest,
    turn_id: &str,
) -> TurnMeta {
    TurnMeta {
        conversation_id: conv.id.clone(),
        // A native session's conversation is native whichever API sent the turn.
        source: if conv.native.is_some() {
            crate::store::source::NATIVE.to_string()
        } else {
            conv.source.clone()
        },
        model: req.model_id.clone(),
        key: req.key.clone(),
        user: req.client_user.clone(),
        turn_id: turn_id.to_string(),
    }
}

/// One event on the feed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeedItem {
    /// Position on this instance's feed: 1-based and gapless, so a watcher sees what it missed.
    pub id: u64,
    /// Server time, unix milliseconds.
    pub ts: i64,
    #[serde(flatten)]
    pub meta: Arc<TurnMeta>,
    /// The event's sequence number in its conversation's history, when the event carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The turn's event, tagged by `type` (the same JSON as the SSE feeds').
    #[schema(value_type = Object)]
    pub event: Event,
    /// Bytes of the event's text left out of this item (see [`FEED_ITEM_TEXT_BYTES`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut: Option<u64>,
}

/// Sees every item as it is published, before any subscriber (keep it to microseconds).
pub type Observer = Box<dyn Fn(&FeedItem) + Send + Sync>;

/// The feed. Cheap to publish to; any number of subscribers.
pub struct Feed {
    tx: broadcast::Sender<Arc<FeedItem>>,
    /// Cancelled when the gateway stops, so watchers' streams end instead of holding it open.
    closing: tokio_util::sync::CancellationToken,
    /// The last id handed out; held while sending so ids reach subscribers in order.
    next: Mutex<u64>,
    observer: Option<Observer>,
}

impl Feed {
    pub fn new(capacity: usize, observer: Option<Observer>) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Feed {
            tx,
            closing: tokio_util::sync::CancellationToken::new(),
            next: Mutex::new(0),
            observer,
        }
    }

    /// End every watcher's stream (the gateway is stopping).
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Resolves once the feed is closed.
    pub fn closed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.closing.cancelled()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedItem>> {
        self.tx.subscribe()
    }

    /// The context one turn publishes its events through.
    pub fn turn(self: &Arc<Self>, meta: TurnMeta) -> FeedTurn {
        FeedTurn {
            feed: self.clone(),
            meta: Arc::new(meta),
        }
    }

    fn publish(&self, meta: &Arc<TurnMeta>, event: &Event) {
        let ts = crate::store::now_millis();
        let mut fit = Fit::new(FEED_ITEM_TEXT_BYTES);
        let event = fit.event(event);
        let cut = (fit.cut > 0).then_some(fit.cut);
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        *next += 1;
        let item = Arc::new(FeedItem {
            id: *next,
            ts,
            meta: meta.clone(),
            seq: None,
            event,
            cut,
        });
        if let Some(observe) = &self.observer {
            observe(&item);
        }
        // No subscriber is not an error: nobody is watching.
        let _ = self.tx.send(item);
    }
}

/// One turn's handle on the feed.
#[derive(Clone)]
pub struct FeedTurn {
    feed: Arc<Feed>,
    meta: Arc<TurnMeta>,
}

impl FeedTurn {
    pub fn publish(&self, event: &Event) {
        self.feed.publish(&self.meta, event);
    }

    /// The user message (or the client's tool results) that starts the turn.
    pub fn user_message(&self, prompt: &[serde_json::Value]) {
        self.publish(&Event::UserMessage {
            content: serde_json::Value::Array(prompt.to_vec()),
        });
    }
}

/// A copy of an event whose strings together hold at most a budget of bytes (each cut at a
/// character boundary); what did not fit is counted. Copies only what it keeps.
struct Fit {
    left: usize,
    cut: u64,
}

impl Fit {
    fn new(budget: usize) -> Fit {
        Fit {
            left: budget,
            cut: 0,
        }
    }

    fn str(&mut self, s: &str) -> String {
        if s.len() <= self.left {
            self.left -= s.len();
            return s.to_string();
        }
        let mut end = self.left;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.left -= end;
        self.cut += (s.len() - end) as u64;
        s[..end].to_string()
    }

    /// Strings share the budget, except a `type` (what the console needs to show the shape);
    /// array items past the budget are left out.
    fn value(&mut self, v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(self.str(s)),
            Value::Array(items) => {
                let mut kept = Vec::new();
                for item in items {
                    if self.left == 0 {
                        self.cut += text_bytes(item);
                    } else {
                        kept.push(self.value(item));
                    }
                }
                Value::Array(kept)
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| match v {
                        Value::String(_) if k == "type" => (k.clone(), v.clone()),
                        _ => (k.clone(), self.value(v)),
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn event(&mut self, ev: &Event) -> Event {
        match ev {
            Event::TextDelta { text } => Event::TextDelta {
                text: self.str(text),
            },
            Event::ThinkingDelta { text } => Event::ThinkingDelta {
                text: self.str(text),
            },
            Event::ToolCallDelta {
                id,
                partial_json,
                client,
            } => Event::ToolCallDelta {
                id: id.clone(),
                partial_json: self.str(partial_json),
                client: *client,
            },
            Event::ToolCall {
                id,
                name,
                input,
                client,
            } => Event::ToolCall {
                id: id.clone(),
                name: name.clone(),
                input: self.value(input),
                client: *client,
            },
            Event::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => Event::ToolResult {
                tool_use_id: tool_use_id.clone(),
                content: self.value(content),
                is_error: *is_error,
            },
            Event::PermissionRequest {
                request_id,
                tool_name,
                input,
                tool_use_id,
            } => Event::PermissionRequest {
                request_id: request_id.clone(),
                tool_name: tool_name.clone(),
                input: self.value(input),
                tool_use_id: tool_use_id.clone(),
            },
            Event::UserMessage { content } => Event::UserMessage {
                content: self.value(content),
            },
            Event::StructuredOutput { value } => Event::StructuredOutput {
                value: self.value(value),
            },
            Event::Done(s) => Event::Done(crate::claude::TurnSummary {
                stop_reason: s.stop_reason.clone(),
                usage: s.usage,
                cost_usd: s.cost_usd,
                duration_ms: s.duration_ms,
                num_turns: s.num_turns,
                session_id: s.session_id.clone(),
                result_text: self.str(&s.result_text),
                leaf: s.leaf.clone(),
            }),
            other => other.clone(),
        }
    }
}

/// The bytes of a value's strings.
fn text_bytes(v: &serde_json::Value) -> u64 {
    use serde_json::Value;
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(items) => items.iter().map(text_bytes).sum(),
        Value::Object(map) => map.values().map(text_bytes).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> TurnMeta {
        TurnMeta {
            conversation_id: "c1".into(),
            source: "openai".into(),
            model: "sonnet".into(),
            key: Some("key-1234abcd".into()),
            user: Some("alice".into()),
            turn_id: "t1".into(),
        }
    }

    #[tokio::test]
    async fn items_carry_their_context_in_order() {
        let feed = Arc::new(Feed::new(16, None));
        let mut rx = feed.subscribe();
        let turn = feed.turn(meta());
        turn.user_message(&[serde_json::json!({"type": "text", "text": "hi"})]);
        turn.publish(&Event::TextDelta { text: "yo".into() });
        let a = rx.recv().await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!((a.id, b.id), (1, 2));
        let v = serde_json::to_value(&*b).unwrap();
        assert_eq!(v["conversation_id"], "c1");
        assert_eq!(v["source"], "openai");
        assert_eq!(v["key"], "key-1234abcd");
        assert_eq!(v["user"], "alice");
        assert_eq!(v["turn_id"], "t1");
        assert_eq!(v["event"]["type"], "text_delta");
        assert!(v["ts"].as_i64().unwrap() > 1_600_000_000_000);
    }

    #[tokio::test]
    async fn an_item_carries_a_bounded_text_and_says_how_much_was_cut() {
        let feed = Arc::new(Feed::new(16, None));
        let mut rx = feed.subscribe();
        let turn = feed.turn(meta());
        // Multi-byte characters across the cut: it lands on a character boundary.
        let long = "é".repeat(FEED_ITEM_TEXT_BYTES);
        turn.publish(&Event::TextDelta { text: long.clone() });
        let item = rx.recv().await.unwrap();
        let Event::TextDelta { text } = &item.event else {
            panic!("{:?}", item.event)
        };
        assert!(text.len() <= FEED_ITEM_TEXT_BYTES && text.len() >= FEED_ITEM_TEXT_BYTES - 1);
        assert_eq!(item.cut, Some((long.len() - text.len()) as u64));
        // Every string of a payload counts toward one budget.
        let big = "x".repeat(FEED_ITEM_TEXT_BYTES);
        turn.user_message(&[
            serde_json::json!({"type": "text", "text": big}),
            serde_json::json!({"type": "text", "text": "tail"}),
        ]);
        let item = rx.recv().await.unwrap();
        let v = serde_json::to_value(&*item).unwrap();
        let blocks = v["event"]["content"].as_array().unwrap();
        assert_eq!(blocks.len(), 1, "what did not fit is left out");
        assert_eq!(blocks[0]["type"], "text", "the shape stays");
        assert_eq!(
            blocks[0]["text"].as_str().unwrap().len(),
            FEED_ITEM_TEXT_BYTES
        );
        assert_eq!(v["cut"], "tail".len() as u64 + "text".len() as u64);
        // A small event is whole and says nothing.
        turn.publish(&Event::TextDelta { text: "yo".into() });
        let v = serde_json::to_value(&*rx.recv().await.unwrap()).unwrap();
        assert_eq!(v["event"]["text"], "yo");
        assert!(v.get("cut").is_none());
    }

    #[tokio::test]
    async fn a_slow_watcher_lags_and_the_publisher_never_waits() {
        let feed = Arc::new(Feed::new(8, None));
        let mut slow = feed.subscribe();
        let turn = feed.turn(meta());
        let started = std::time::Instant::now();
        for i in 0..10_000 {
            turn.publish(&Event::TextDelta {
                text: i.to_string(),
            });
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 10_000 - 8),
            other => panic!("expected a lag notice, got {other:?}"),
        }
        // It goes on with the newest items.
        assert_eq!(slow.recv().await.unwrap().id, 10_000 - 7);
    }
}
