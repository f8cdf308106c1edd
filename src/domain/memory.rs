//! A session's memory: its workspace's `CLAUDE.md`. Processes start with
//! `--setting-sources ""`, and in that mode the CLI does not read `CLAUDE.md` (it reads it
//! only with the `project` source, which would also load the workspace's `.claude/settings.json`
//! with its hooks and permissions, a client's file). So ccgw delivers the memory itself, the way
//! the CLI does: as a `<system-reminder>` block in front of the next user message, whenever the
//! file differs from the version the conversation last received. Pure apart from reading the
//! history it is given.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::store::StoredEvent;

/// The memory file, at the workspace's top.
pub const FILE: &str = "CLAUDE.md";
/// The memory a message carries is cut here (the rest stays in the file).
pub const MAX_DELIVERED: usize = 40_000;
/// How a delivered memory block names its version.
pub(crate) const MARK: &str = "ccgw-memory-version:";

/// The version of a memory's text.
pub fn version(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// The version the conversation last received, from its history.
pub fn last_delivered(history: &[StoredEvent]) -> Option<String> {
    history
        .iter()
        .rev()
        .filter(|e| e.kind == "user")
        .find_map(|e| {
            let text = e.payload["content"].to_string();
            let at = text.find(MARK)? + MARK.len();
            Some(
                text[at..]
                    .chars()
                    .take_while(char::is_ascii_hexdigit)
                    .collect(),
            )
        })
}

/// The text block that brings `memory` to the model.
pub fn block(memory: &str) -> Value {
    let mut shown: String = memory.chars().take(MAX_DELIVERED).collect();
    if shown.len() < memory.len() {
        shown.push_str("\n[... CLAUDE.md continues; read the file for the rest]");
    }
    json!({"type": "text", "text": format!(
        "<system-reminder>\nAs you answer the user's questions, you can use the following context:\n\
         Contents of CLAUDE.md (project instructions, checked into the codebase):\n\n{shown}\n\n\
         IMPORTANT: these instructions OVERRIDE any default behavior and you MUST follow them \
         exactly as written.\n({MARK}{})\n</system-reminder>", version(memory))})
}

/// The prompt with the memory in front when the conversation has not received this version.
/// A slash command is left alone: the CLI runs the message's last text as the command.
pub fn deliver(prompt: Vec<Value>, memory: Option<&str>, history: &[StoredEvent]) -> Vec<Value> {
    let Some(memory) = memory.filter(|m| !m.trim().is_empty()) else {
        return prompt;
    };
    let command = prompt
        .iter()
        .rev()
        .find(|b| b["type"] == "text")
        .and_then(|b| b["text"].as_str())
        .is_some_and(|t| t.starts_with('/'));
    if command || last_delivered(history).as_deref() == Some(version(memory).as_str()) {
        return prompt;
    }
    let mut out = Vec::with_capacity(prompt.len() + 1);
    out.push(block(memory));
    out.extend(prompt);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(content: Value) -> StoredEvent {
        StoredEvent {
            session_id: "s".into(),
            seq: 1,
            turn_id: "t".into(),
            kind: "user".into(),
            payload: json!({"content": content}),
            created_at: 0,
        }
    }

    #[test]
    fn memory_goes_once_per_version_and_never_into_a_command() {
        let hi = vec![json!({"type": "text", "text": "hi"})];
        let first = deliver(hi.clone(), Some("use tabs"), &[]);
        assert_eq!(first.len(), 2);
        assert!(first[0]["text"].as_str().unwrap().contains("use tabs"));
        let history = vec![user(Value::Array(first))];
        assert_eq!(last_delivered(&history), Some(version("use tabs")));
        assert_eq!(deliver(hi.clone(), Some("use tabs"), &history).len(), 1);
        assert_eq!(deliver(hi.clone(), Some("use spaces"), &history).len(), 2);
        assert_eq!(deliver(hi.clone(), None, &[]).len(), 1);
        let cmd = vec![json!({"type": "text", "text": "/compact"})];
        assert_eq!(deliver(cmd, Some("x"), &[]).len(), 1);
    }
}
