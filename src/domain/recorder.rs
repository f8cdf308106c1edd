//! History recording: a turn's events joined into whole history entries (deltas into whole
//! texts), and the recorder that keeps the compatible APIs' conversations as history, from the
//! live feed, so their timeline can be opened later. (Native sessions' turns record their own
//! history as they go, in `outlet`; both use [`Joiner`].)
//!
//! Must not: slow a turn (it reads the feed, and writes through the ordered write queue after
//! the turn's own records), or record a native session twice.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::conversations::Conversations;
use crate::claude::Event;
use crate::store::{self, StoreError};

/// Joins one conversation's events into history entries `(kind, payload)`.
#[derive(Default)]
pub(crate) struct Joiner {
    text: String,
    thinking: String,
    /// Also keep retries and the end of each model step (with its usage).
    steps: bool,
}

impl Joiner {
    /// A joiner that also keeps retries and model steps.
    pub(crate) fn with_steps() -> Joiner {
        Joiner {
            steps: true,
            ..Joiner::default()
        }
    }

    fn flush(&mut self, entries: &mut Vec<(&'static str, Value)>) {
        if !self.thinking.is_empty() {
            entries.push((
                "thinking",
                json!({"text": std::mem::take(&mut self.thinking)}),
            ));
        }
        if !self.text.is_empty() {
            entries.push(("assistant", json!({"text": std::mem::take(&mut self.text)})));
        }
    }

    /// The entries this event completes (often none: deltas wait for the rest).
    pub(crate) fn push(&mut self, ev: &Event) -> Vec<(&'static str, Value)> {
        let mut entries = Vec::new();
        match ev {
            Event::TextDelta { text } => self.text.push_str(text),
            Event::ThinkingDelta { text } => self.thinking.push_str(text),
            Event::UserMessage { content } => {
                self.flush(&mut entries);
                entries.push(("user", json!({"content": content})));
            }
            Event::ToolCall {
                id,
                name,
                input,
                client,
            } => {
                self.flush(&mut entries);
                entries.push((
                    "tool_call",
                    json!({"id": id, "name": name, "input": input, "client": client}),
                ));
            }
            Event::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => entries.push((
                "tool_result",
                json!({"tool_use_id": tool_use_id, "content": content, "is_error": is_error}),
            )),
            Event::PermissionRequest {
                request_id,
                tool_name,
                input,
                ..
            } => entries.push((
                "permission_request",
                json!({"request_id": request_id, "tool_name": tool_name, "input": input}),
            )),
            Event::Retry {
                attempt,
                max_retries,
                error_status,
                error,
                ..
            } if self.steps => entries.push((
                "retry",
                json!({"attempt": attempt, "max_retries": max_retries,
                       "error_status": error_status, "error": error}),
            )),
            Event::StepEnd { stop_reason, usage } if self.steps => {
                self.flush(&mut entries);
                entries.push((
                    "step_end",
                    json!({"stop_reason": stop_reason, "usage": usage}),
                ));
            }
            Event::Done(s) => {
                self.flush(&mut entries);
                entries.push(("result", serde_json::to_value(s).unwrap_or(Value::Null)));
            }
            Event::Error(e) => {
                self.flush(&mut entries);
                // What a client may read: never the CLI's internals (the log keeps those).
                entries.push(("error", json!({"message": e.public_message(), "error": e})));
            }
            _ => {}
        }
        entries
    }
}

/// One compatible-API turn on its way to the store.
struct Pending {
    joiner: Joiner,
    entries: Vec<(&'static str, Value)>,
    source: String,
    model: String,
}

impl Conversations {
    /// Keep the compatible APIs' conversations as history, from the feed.
    pub fn spawn_feed_recorder(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let mut rx = self.feed.subscribe();
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut turns: HashMap<String, Pending> = HashMap::new();
            loop {
                let item = match rx.recv().await {
                    Ok(item) => item,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "the history recorder fell behind the feed");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let m = &item.meta;
                if m.source == store::source::NATIVE {
                    continue;
                }
                let p = turns.entry(m.turn_id.clone()).or_insert_with(|| Pending {
                    joiner: Joiner::with_steps(),
                    entries: Vec::new(),
                    source: m.source.clone(),
                    model: m.model.clone(),
                });
                let new = p.joiner.push(&item.event);
                p.entries.extend(new);
                if !item.event.is_terminal() {
                    continue;
                }
                let Some(p) = turns.remove(&m.turn_id) else {
                    continue;
                };
                let Some(conversations) = this.upgrade() else {
                    break;
                };
                let (id, turn_id) = (m.conversation_id.clone(), m.turn_id.clone());
                let store = conversations.store.clone();
                // Behind the turn's own records in the queue, so its conversation row exists
                // when the turn ended cleanly; a failed first turn gets a row of its own.
                conversations.write(async move {
                    if let Err(e) = save(&*store, &id, &turn_id, p).await {
                        tracing::warn!(conversation = %id, error = %e, "could not record history");
                    }
                });
            }
        })
    }
}

async fn save(
    store: &dyn store::Store,
    id: &str,
    turn_id: &str,
    p: Pending,
) -> Result<(), StoreError> {
    if store.get_session(id).await?.is_none() {
        let failed = p.entries.iter().any(|(k, _)| *k == "error");
        let rec = store::Session {
            id: id.to_string(),
            status: if failed {
                store::status::ERROR
            } else {
                store::status::CLOSED
            }
            .to_string(),
            ..store::Session::new("", p.model.clone(), p.source.clone())
        };
        store.create_session(&rec).await?;
    }
    store.append_events(id, turn_id, &p.entries).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::{TurnSummary, Usage};

    #[test]
    fn deltas_become_whole_entries() {
        let mut j = Joiner::default();
        assert!(j
            .push(&Event::UserMessage {
                content: json!("hi")
            })
            .iter()
            .any(|(k, _)| *k == "user"));
        assert!(j
            .push(&Event::ThinkingDelta { text: "hm".into() })
            .is_empty());
        assert!(j.push(&Event::TextDelta { text: "a".into() }).is_empty());
        assert!(j.push(&Event::TextDelta { text: "b".into() }).is_empty());
        let end = j.push(&Event::Done(TurnSummary {
            stop_reason: crate::claude::StopReason::EndTurn,
            usage: Usage::default(),
            cost_usd: None,
            duration_ms: None,
            num_turns: None,
            leaf: None,
            session_id: String::new(),
            result_text: String::new(),
        }));
        let kinds: Vec<&str> = end.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["thinking", "assistant", "result"]);
        assert_eq!(end[1].1["text"], "ab");
    }
}
