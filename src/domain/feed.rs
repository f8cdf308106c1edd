//! The gateway-wide live feed: every event of every conversation (native sessions and the
//! compatible APIs' conversations alike), each stamped with who and what it belongs to.
//!
//! Owns: the broadcast the console's home, its timelines and the compatible-API recorder read
//! from, and the per-turn context ([`FeedTurn`]) a turn publishes through.
//!
//! Must not: block or slow the turn that publishes. The broadcast is a ring of
//! [`FEED_CAPACITY`] items per subscriber: a watcher that falls that far behind loses the
//! oldest items and is told how many (`Lagged`); the publisher never waits for anyone. Knows
//! no HTTP; the wire shape is this module's `Serialize`.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::claude::Event;

/// How far a watcher may fall behind before it loses items.
pub const FEED_CAPACITY: usize = 1024;

/// What every item of one turn shares.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
    pub event: Event,
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
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        *next += 1;
        let item = Arc::new(FeedItem {
            id: *next,
            ts,
            meta: meta.clone(),
            seq: None,
            event: event.clone(),
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
