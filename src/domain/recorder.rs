//! History entries: a turn's events joined into whole entries (deltas into whole texts), for
//! native sessions and the compatible APIs' conversations alike (`outlet` writes them).
//!
//! Must not: touch the store or know where events come from.

use serde_json::{json, Value};

use crate::claude::Event;

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
                tool_use_id,
            } => entries.push((
                "permission_request",
                json!({"request_id": request_id, "tool_name": tool_name, "input": input,
                       "tool_use_id": tool_use_id}),
            )),
            Event::Retry {
                attempt,
                max_retries,
                delay_ms,
                error_status,
                error,
            } => {
                self.flush(&mut entries);
                entries.push((
                    "retry",
                    json!({"attempt": attempt, "max_retries": max_retries, "delay_ms": delay_ms,
                           "error_status": error_status, "error": error}),
                ));
            }
            // What the CLI reports besides the answer: a watcher that reconnects reads these
            // back from the history as it would have seen them live.
            Event::Status { .. }
            | Event::RateLimit { .. }
            | Event::Compacted { .. }
            | Event::Task { .. }
            | Event::Subagent { .. } => {
                self.flush(&mut entries);
                let kind = match ev {
                    Event::Status { .. } => "status",
                    Event::RateLimit { .. } => "rate_limit",
                    Event::Compacted { .. } => "compacted",
                    Event::Task { .. } => "task",
                    _ => "subagent",
                };
                let mut payload = serde_json::to_value(ev).unwrap_or(Value::Null);
                if let Some(obj) = payload.as_object_mut() {
                    obj.remove("type");
                }
                entries.push((kind, payload));
            }
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
