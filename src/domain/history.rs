//! A native session's history: the events of its turns joined into the entries clients read
//! back (`user`, `assistant`, `thinking`, `tool_call`, `tool_result`, `permission_request`,
//! `result`, `error`; joined by [`Joiner`], the same joiner the compatible APIs' conversations are recorded with),
//! and those entries turned back into messages, to rebuild a transcript the CLI never wrote or
//! lost. The turn's driver records; the store keeps. Pure: no I/O.

use serde_json::{json, Value};

pub(crate) use crate::domain::recorder::Joiner;
use crate::domain::turn::{Message, Role};
use crate::store::StoredEvent;

/// The conversation a session's history holds: the messages of every turn that ended with a
/// result (a failed turn never reached the model's history). Thinking is left out: it cannot
/// be replayed without its signature.
pub(crate) fn messages(events: &[StoredEvent]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    let mut turn: Vec<Message> = Vec::new();
    let push = |turn: &mut Vec<Message>, role: Role, block: Value| match turn.last_mut() {
        Some(m) if m.role == role => m.content.push(block),
        _ => turn.push(Message {
            role,
            content: vec![block],
        }),
    };
    for e in events {
        let p = &e.payload;
        match e.kind.as_str() {
            "user" => {
                turn.clear();
                let content = match &p["content"] {
                    Value::Array(blocks) => blocks.clone(),
                    Value::String(s) => vec![json!({"type": "text", "text": s})],
                    _ => vec![],
                };
                turn.push(Message::user(content));
            }
            "assistant" if !turn.is_empty() => push(
                &mut turn,
                Role::Assistant,
                json!({"type": "text", "text": p["text"]}),
            ),
            "tool_call" if !turn.is_empty() => push(
                &mut turn,
                Role::Assistant,
                json!({"type": "tool_use", "id": p["id"], "name": p["name"], "input": p["input"]}),
            ),
            "tool_result" if !turn.is_empty() => push(
                &mut turn,
                Role::User,
                json!({"type": "tool_result", "tool_use_id": p["tool_use_id"],
                    "content": p["content"], "is_error": p["is_error"]}),
            ),
            "result" if turn.last().is_some_and(|m| m.role == Role::Assistant) => {
                out.append(&mut turn)
            }
            "result" | "error" => turn.clear(),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::{ClaudeError, Event, StopReason, TurnSummary};

    fn done() -> Event {
        Event::Done(TurnSummary {
            stop_reason: StopReason::EndTurn,
            usage: Default::default(),
            cost_usd: None,
            duration_ms: None,
            num_turns: None,
            session_id: String::new(),
            result_text: String::new(),
            leaf: None,
        })
    }

    fn record(events: &[Event]) -> Vec<StoredEvent> {
        let mut r = Joiner::default();
        events
            .iter()
            .flat_map(|ev| r.push(ev))
            .enumerate()
            .map(|(i, (kind, payload))| StoredEvent {
                session_id: "s".into(),
                seq: i as i64 + 1,
                turn_id: "t".into(),
                kind: kind.into(),
                payload,
                created_at: 0,
            })
            .collect()
    }

    fn user(text: &str) -> Event {
        Event::UserMessage {
            content: json!([{"type": "text", "text": text}]),
        }
    }

    fn text(t: &str) -> Event {
        Event::TextDelta { text: t.into() }
    }

    #[test]
    fn deltas_become_whole_entries() {
        let h = record(&[user("hi"), text("hel"), text("lo"), done()]);
        let kinds: Vec<&str> = h.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, vec!["user", "assistant", "result"]);
        assert_eq!(h[1].payload["text"], "hello");
    }

    #[test]
    fn the_history_of_clean_turns_becomes_messages() {
        let h = record(&[
            user("one"),
            text("first"),
            Event::ToolCall {
                id: "t1".into(),
                name: "Read".into(),
                input: json!({"file_path": "a"}),
                client: false,
            },
            Event::ToolResult {
                tool_use_id: "t1".into(),
                content: json!("data"),
                is_error: false,
            },
            text("read it"),
            done(),
            user("failed"),
            text("partial"),
            Event::Error(ClaudeError::protocol("x")),
            user("two"),
            text("second"),
            done(),
        ]);
        let m = messages(&h);
        let roles: Vec<Role> = m.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            vec![
                Role::User,
                Role::Assistant,
                Role::User,
                Role::Assistant,
                Role::User,
                Role::Assistant
            ]
        );
        assert_eq!(m[1].content[1]["type"], "tool_use");
        assert_eq!(m[2].content[0]["tool_use_id"], "t1");
        assert_eq!(m[4].content[0]["text"], "two");
        assert!(
            !format!("{m:?}").contains("partial"),
            "a failed turn is left out"
        );
    }
}
