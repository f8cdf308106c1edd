//! What the gateway commits for one native turn before it tells the client: the user message,
//! the assistant message and the result, about 2 kB. Shared by the store benchmarks
//! (`durability.rs`, `store.rs`).

use serde_json::{json, Value};

/// Turn `n`'s three history entries.
pub fn entries(n: usize) -> [(&'static str, Value); 3] {
    let text = "word ".repeat(300);
    [
        (
            "user",
            json!({"content": [{"type": "text", "text": format!("turn {n}")}]}),
        ),
        (
            "assistant",
            json!({"content": [{"type": "text", "text": text}]}),
        ),
        (
            "result",
            json!({"usage": {"input_tokens": 12, "output_tokens": 300}}),
        ),
    ]
}
