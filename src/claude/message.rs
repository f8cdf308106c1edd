//! One message of a conversation history, in the Messages API's shape (Anthropic content
//! blocks: `text`, `image`, `tool_use`, `tool_result`): what transcripts are written from and
//! histories are replayed from. The domain builds these; the driver only reads them.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    /// Anthropic content blocks.
    pub content: Vec<Value>,
}

impl Message {
    pub fn user(content: Vec<Value>) -> Self {
        Message {
            role: Role::User,
            content,
        }
    }

    pub fn assistant_text(text: &str) -> Self {
        Message {
            role: Role::Assistant,
            content: vec![json!({"type": "text", "text": text})],
        }
    }
}

/// Consecutive messages of one role as one message (the Messages API wants them alternating).
pub fn merge_roles(messages: &[Message]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for m in messages.iter().filter(|m| !m.content.is_empty()) {
        match out.last_mut() {
            Some(last) if last.role == m.role => last.content.extend(m.content.iter().cloned()),
            _ => out.push(m.clone()),
        }
    }
    out
}
