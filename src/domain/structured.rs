//! Structured output: a turn asked to answer with JSON valid against a schema (OpenAI's strict
//! `json_schema`, the Responses API's `text.format`).
//!
//! The CLI enforces the schema itself (`initialize.jsonSchema`, docs/cli-notes.md §3): it gives
//! the model a `StructuredOutput` tool, checks each call against the schema, asks again when the
//! model answers with text, and reports the valid object in its `result`. This module turns a
//! turn's events into what a client of a JSON mode expects: the object as the answer's only
//! text, and the model's prose and its `StructuredOutput` calls left out. A turn that ends
//! without a valid object fails. It must not look at what the adapters render.

use serde_json::Value;
use std::time::Duration;

use crate::claude::{ClaudeError, Event, StopReason};
use crate::domain::conversation::TurnHandle;

/// The tool through which the CLI takes structured output.
const TOOL: &str = "StructuredOutput";

/// The same turn, with its answer replaced by its structured output.
pub(crate) fn enforce(handle: TurnHandle) -> TurnHandle {
    let TurnHandle {
        conversation_id,
        mut events,
        cli_wait,
    } = handle;
    // The turn's own outlet enforces the lag limit; this one only passes events on.
    let (mut tx, rx) = crate::domain::outlet::outlet(None, None, Duration::from_secs(3600));
    tokio::spawn(async move {
        let mut filter = Filter::default();
        loop {
            let ev = tokio::select! {
                ev = events.recv() => ev,
                // The client went away: dropping `events` ends the turn, as it would have.
                _ = tx.closed() => break,
            };
            let Some(ev) = ev else { break };
            let terminal = ev.is_terminal();
            for out in filter.on(ev) {
                if out.is_terminal() {
                    tx.deliver(out).await;
                } else if tx.send(out).await.is_err() {
                    return;
                }
            }
            if terminal {
                break;
            }
        }
    });
    TurnHandle {
        conversation_id,
        events: rx,
        cli_wait,
    }
}

#[derive(Debug, Default)]
struct Filter {
    value: Option<Value>,
    /// Ids of the `StructuredOutput` calls, whose results are the CLI's, not the client's.
    calls: Vec<String>,
}

impl Filter {
    fn on(&mut self, ev: Event) -> Vec<Event> {
        match ev {
            // Prose around the object is not part of a JSON answer.
            Event::TextDelta { .. } => vec![],
            Event::StructuredOutput { value } => {
                self.value = Some(value);
                vec![]
            }
            Event::ToolCallStart {
                ref id,
                ref name,
                client: false,
            }
            | Event::ToolCall {
                ref id,
                ref name,
                client: false,
                ..
            } if name == TOOL => {
                if !self.calls.contains(id) {
                    self.calls.push(id.clone());
                }
                vec![]
            }
            Event::ToolCallDelta { ref id, .. }
            | Event::ToolResult {
                tool_use_id: ref id,
                ..
            } if self.calls.contains(id) => {
                vec![]
            }
            // A step that ends on client tool calls pauses the turn; the answer comes later.
            Event::Done(s) if s.stop_reason == StopReason::ToolUse && self.value.is_none() => {
                vec![Event::Done(s)]
            }
            Event::Done(mut s) => match self.value.take() {
                Some(v) => {
                    if s.stop_reason == StopReason::ToolUse {
                        // The CLI ends the turn on the StructuredOutput call itself.
                        s.stop_reason = StopReason::EndTurn;
                    }
                    vec![
                        Event::TextDelta {
                            text: v.to_string(),
                        },
                        Event::Done(s),
                    ]
                }
                None => vec![Event::Error(ClaudeError::NoStructuredOutput)],
            },
            other => vec![other],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::TurnSummary;
    use serde_json::json;

    fn done(stop_reason: StopReason) -> Event {
        Event::Done(TurnSummary {
            stop_reason,
            usage: Default::default(),
            cost_usd: None,
            duration_ms: None,
            num_turns: None,
            leaf: None,
            session_id: String::new(),
            result_text: String::new(),
        })
    }

    fn run(events: Vec<Event>) -> Vec<Event> {
        let mut f = Filter::default();
        events.into_iter().flat_map(|e| f.on(e)).collect()
    }

    #[test]
    fn the_object_is_the_whole_answer() {
        let out = run(vec![
            Event::TextDelta {
                text: "Sure: ".into(),
            },
            Event::ToolCallStart {
                id: "s".into(),
                name: TOOL.into(),
                client: false,
            },
            Event::ToolCallDelta {
                id: "s".into(),
                partial_json: "{".into(),
                client: false,
            },
            Event::ToolCall {
                id: "s".into(),
                name: TOOL.into(),
                input: json!({"a": 1}),
                client: false,
            },
            Event::ToolResult {
                tool_use_id: "s".into(),
                content: json!("ok"),
                is_error: false,
            },
            Event::StructuredOutput {
                value: json!({"a": 1}),
            },
            done(StopReason::ToolUse),
        ]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(&out[0], Event::TextDelta { text } if text == r#"{"a":1}"#));
        assert!(matches!(&out[1], Event::Done(s) if s.stop_reason == StopReason::EndTurn));
    }

    #[test]
    fn no_valid_object_is_an_error_but_a_tool_pause_is_not() {
        let out = run(vec![
            Event::TextDelta { text: "no".into() },
            done(StopReason::EndTurn),
        ]);
        assert!(matches!(
            &out[..],
            [Event::Error(ClaudeError::NoStructuredOutput)]
        ));
        let paused = run(vec![
            Event::ToolCall {
                id: "c".into(),
                name: "f".into(),
                input: json!({}),
                client: true,
            },
            done(StopReason::ToolUse),
        ]);
        assert_eq!(paused.len(), 2);
        assert!(matches!(&paused[1], Event::Done(s) if s.stop_reason == StopReason::ToolUse));
    }
}
