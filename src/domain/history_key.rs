//! The history key: a stable name for "this system prompt and exactly these messages", so a
//! request whose history this gateway produced finds its conversation again. A reply is
//! hashed as it streams ([`ReplyKey`]), so a long answer is never held in memory for it.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::turn::{tool_result_text, Message, Role};

/// A stable key for "this system prompt and exactly these messages".
///
/// What a client sends back differs in form from what it received (OpenAI clients echo the
/// assistant text as a string, drop thinking, may add whitespace), so the key covers what the
/// conversation means: roles, trimmed text, images, tool calls and results. Consecutive
/// messages of one role count as one.
pub fn history_key<'a>(
    system: Option<&str>,
    messages: impl IntoIterator<Item = &'a Message>,
) -> String {
    let mut k = KeyWriter::new(system);
    for m in messages {
        k.message(m);
    }
    k.finish()
}

/// [`history_key`], written one message at a time.
pub struct KeyWriter {
    // The digest of the compact JSON document
    // `{"system":S,"messages":[[is_user,[block,…]],…]}` (stored keys depend on these exact
    // bytes), written straight into the hash: building the document first cost more than the
    // rest of a request (bench/RESULTS.md).
    w: Digest256,
    /// The role of the message group being written.
    group: Option<Role>,
}

impl KeyWriter {
    pub fn new(system: Option<&str>) -> Self {
        let mut w = Digest256 {
            hash: Sha256::new(),
            buf: Vec::with_capacity(DIGEST_BUF),
        };
        w.raw(b"{\"system\":");
        w.json(system.map(str::trim).unwrap_or(""));
        w.raw(b",\"messages\":[");
        KeyWriter { w, group: None }
    }

    pub fn message(&mut self, m: &Message) {
        let mut blocks = m.content.iter().filter(|b| is_canonical(b)).peekable();
        if blocks.peek().is_none() {
            return;
        }
        self.open(m.role);
        for (i, b) in blocks.enumerate() {
            if i > 0 {
                self.w.raw(b",");
            }
            write_canonical_block(&mut self.w, b);
        }
    }

    /// Start a block of `role`: a separator within its group, or a new group.
    fn open(&mut self, role: Role) {
        match self.group {
            Some(r) if r == role => self.w.raw(b","),
            open => {
                if open.is_some() {
                    self.w.raw(b"]],");
                }
                self.w.raw(if role == Role::User {
                    b"[true,["
                } else {
                    b"[false,["
                });
                self.group = Some(role);
            }
        }
    }

    pub fn finish(mut self) -> String {
        if self.group.is_some() {
            self.w.raw(b"]]");
        }
        self.w.raw(b"]}");
        hex::encode(self.w.finish())
    }

    /// The key of this history followed by an assistant reply that arrives in pieces: the
    /// reply is hashed as it streams, never held in memory.
    pub fn reply(self) -> ReplyKey {
        ReplyKey {
            key: self,
            started: false,
            pending: String::new(),
        }
    }
}

/// A history key whose last message is an assistant reply written piece by piece: the same
/// key [`history_key`] gives for the history plus `{"type":"text","text":<the whole reply>}`
/// (and the reply's tool calls). Whitespace is trimmed at both ends as it would be there.
pub struct ReplyKey {
    key: KeyWriter,
    /// The reply's text block is open (its first non-whitespace character was written).
    started: bool,
    /// Whitespace seen since the last other character: written only if more text follows.
    pending: String,
}

impl ReplyKey {
    pub fn push(&mut self, piece: &str) {
        let mut rest = piece;
        if !self.started {
            rest = rest.trim_start();
            if rest.is_empty() {
                return;
            }
            self.key.open(Role::Assistant);
            self.key.w.raw(b"{\"t\":\"");
            self.started = true;
        }
        let body = rest.trim_end();
        if !body.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.fragment(&pending);
            self.fragment(body);
        }
        self.pending.push_str(&rest[body.len()..]);
    }

    /// JSON-escaped text without its quotes (escaping is per character, so pieces escape the
    /// same apart as together).
    fn fragment(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Ok(quoted) = serde_json::to_string(text) {
            let inner = &quoted.as_bytes()[1..quoted.len() - 1];
            self.key.w.raw(inner);
        }
    }

    /// The key, with the reply's tool calls (`[id, name, input]`) after its text.
    pub fn finish(mut self, calls: &[(String, String, Value)]) -> String {
        if self.started {
            self.key.w.raw(b"\"}");
        }
        for (id, name, input) in calls {
            self.key.open(Role::Assistant);
            let block =
                serde_json::json!({"type": "tool_use", "id": id, "name": name, "input": input});
            write_canonical_block(&mut self.key.w, &block);
        }
        self.key.finish()
    }
}

const DIGEST_BUF: usize = 8192;

/// A SHA-256 fed by `serde_json` writers, through a buffer: they write a few bytes at a time.
struct Digest256 {
    hash: Sha256,
    buf: Vec<u8>,
}

impl Digest256 {
    fn raw(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > DIGEST_BUF {
            self.hash.update(&self.buf);
            self.buf.clear();
        }
        if bytes.len() > DIGEST_BUF {
            self.hash.update(bytes);
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn finish(mut self) -> impl AsRef<[u8]> {
        self.hash.update(&self.buf);
        self.hash.finalize()
    }

    fn json<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        // Writing into a hash cannot fail, and these values always serialize.
        let _ = serde_json::to_writer(&mut *self, v);
    }
}

impl std::io::Write for Digest256 {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.raw(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether a block counts for the history key (see [`write_canonical_block`]).
fn is_canonical(b: &Value) -> bool {
    match b.get("type").and_then(Value::as_str) {
        Some("text") => b
            .get("text")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.trim().is_empty()),
        Some("image" | "tool_use" | "tool_result") => true,
        _ => false,
    }
}

/// A block's meaning: trimmed text `{"t":…}`, an image's source `{"i":…}`, a tool call
/// `{"u":[id,name,input]}`, a tool result `{"r":[tool_use_id,text]}`.
fn write_canonical_block(w: &mut Digest256, b: &Value) {
    let field = |k: &str| b.get(k).unwrap_or(&Value::Null);
    match b.get("type").and_then(Value::as_str) {
        Some("text") => {
            w.raw(b"{\"t\":");
            w.json(b.get("text").and_then(Value::as_str).unwrap_or("").trim());
        }
        Some("image") => {
            w.raw(b"{\"i\":");
            w.json(field("source"));
        }
        Some("tool_use") => {
            w.raw(b"{\"u\":[");
            w.json(field("id"));
            w.raw(b",");
            w.json(field("name"));
            w.raw(b",");
            w.json(field("input"));
            w.raw(b"]");
        }
        _ => {
            w.raw(b"{\"r\":[");
            w.json(field("tool_use_id"));
            w.raw(b",");
            w.json(&tool_result_text(b));
            w.raw(b"]");
        }
    }
    w.raw(b"}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The first implementation, kept as the reference the streamed key must equal.
    fn reference_key(system: Option<&str>, messages: &[Message]) -> String {
        let mut canon: Vec<(Role, Vec<Value>)> = Vec::new();
        for m in messages {
            let blocks: Vec<Value> = m.content.iter().filter_map(canonical_block).collect();
            if blocks.is_empty() {
                continue;
            }
            match canon.last_mut() {
                Some((role, existing)) if *role == m.role => existing.extend(blocks),
                _ => canon.push((m.role, blocks)),
            }
        }
        let doc = json!({
            "system": system.map(str::trim).unwrap_or(""),
            "messages": canon.iter().map(|(r, b)| json!([matches!(r, Role::User), b])).collect::<Vec<_>>(),
        });
        hex::encode(Sha256::digest(doc.to_string().as_bytes()))
    }

    fn canonical_block(b: &Value) -> Option<Value> {
        match b.get("type").and_then(Value::as_str)? {
            "text" => {
                let t = b.get("text").and_then(Value::as_str)?.trim();
                (!t.is_empty()).then(|| json!({"t": t}))
            }
            "image" => Some(json!({"i": b.get("source")})),
            "tool_use" => Some(json!({"u": [b.get("id"), b.get("name"), b.get("input")]})),
            "tool_result" => Some(json!({"r": [b.get("tool_use_id"), tool_result_text(b)]})),
            _ => None,
        }
    }

    #[test]
    fn streamed_history_key_equals_the_reference_document_digest() {
        let img = json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR\u{e9}=="}});
        let call = json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris", "n": 1.5, "nested": [1, {"b": null, "a": true}]}});
        let result = json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": " sunny "}, {"type": "text", "text": "\"21C\"\n"}]});
        let blocks = [
            json!({"type": "text", "text": "  hello \u{1f600} \"quoted\" \\ back\tslash\u{0007} "}),
            json!({"type": "text", "text": "   "}),
            json!({"type": "text"}),
            json!({"type": "thinking", "thinking": "hidden"}),
            json!({"no_type": 1}),
            json!({"type": "image"}),
            json!({"type": "tool_use", "name": "partial"}),
            json!({"type": "tool_result", "tool_use_id": "t2", "content": "plain result"}),
            json!({"type": "tool_result", "tool_use_id": "t3"}),
            img,
            call,
            result,
        ];
        // Histories of every shape: roles repeating and alternating, empty messages, blocks
        // that count and blocks that do not.
        let mut histories: Vec<Vec<Message>> = vec![vec![]];
        for n in 1..=24usize {
            let history = (0..n)
                .map(|i| Message {
                    role: if (i * 7 + n) % 3 == 0 {
                        Role::Assistant
                    } else {
                        Role::User
                    },
                    content: (0..(i + n) % 4)
                        .map(|j| blocks[(i * 5 + j * 3 + n) % blocks.len()].clone())
                        .collect(),
                })
                .collect();
            histories.push(history);
        }
        // Long ones too: pieces larger than the hash's buffer, and many small ones.
        let big = "x\u{e9}\"".repeat(5000);
        histories.push(vec![
            Message::user(vec![json!({"type": "text", "text": big})]),
            Message::assistant_text("ok"),
        ]);
        histories.push(
            (0..400)
                .map(|i| Message::user(vec![blocks[i % blocks.len()].clone()]))
                .collect(),
        );
        for (k, h) in histories.iter().enumerate() {
            for system in [None, Some(""), Some("  You are terse. "), Some("é\n\"s\"")] {
                assert_eq!(
                    history_key(system, h),
                    reference_key(system, h),
                    "history #{k}, system {system:?}"
                );
            }
        }
        // Chained iterators give the same key as the collected history.
        let h = &histories[6];
        let tail = Message::assistant_text("extra");
        let mut whole = h.clone();
        whole.push(tail.clone());
        assert_eq!(
            history_key(None, h.iter().chain([&tail])),
            reference_key(None, &whole)
        );
    }

    fn text(role: Role, t: &str) -> Message {
        Message {
            role,
            content: vec![json!({"type":"text","text":t})],
        }
    }

    #[test]
    fn history_key_ignores_form_but_not_meaning() {
        let a = vec![text(Role::User, "hi"), text(Role::Assistant, "hello ")];
        let b = vec![
            text(Role::User, " hi"),
            Message {
                role: Role::Assistant,
                content: vec![
                    json!({"type":"thinking","thinking":"..."}),
                    json!({"type":"text","text":"hello"}),
                ],
            },
        ];
        assert_eq!(history_key(Some("S"), &a), history_key(Some("S"), &b));
        assert_ne!(history_key(Some("S"), &a), history_key(Some("T"), &a));
        assert_ne!(history_key(None, &a), history_key(None, &a[..1]));
        let c = vec![text(Role::User, "hi"), text(Role::Assistant, "bye")];
        assert_ne!(history_key(None, &a), history_key(None, &c));
        // Consecutive messages of one role are one message.
        let split = vec![text(Role::User, "a"), text(Role::User, "b")];
        let joined = vec![Message {
            role: Role::User,
            content: vec![
                json!({"type":"text","text":"a"}),
                json!({"type":"text","text":"b"}),
            ],
        }];
        assert_eq!(history_key(None, &split), history_key(None, &joined));
    }

    #[test]
    fn a_streamed_reply_keys_like_the_whole_reply() {
        let history = vec![
            text(Role::User, "q"),
            text(Role::Assistant, "a"),
            text(Role::User, "q2"),
        ];
        let calls = vec![(
            "t1".to_string(),
            "f".to_string(),
            json!({"x": [1, "\u{e9}"]}),
        )];
        let replies = [
            "",
            "   ",
            " hello  world \n",
            "x",
            "\"quoted\"\t\u{7}é",
            "a \n\n b  ",
        ];
        for reply in replies {
            for with_calls in [false, true] {
                let calls: &[(String, String, Value)] = if with_calls { &calls } else { &[] };
                let mut whole_reply = vec![json!({"type": "text", "text": reply})];
                whole_reply.extend(calls.iter().map(|(id, name, input)| {
                    json!({"type": "tool_use", "id": id, "name": name, "input": input})
                }));
                let mut whole = history.clone();
                whole.push(Message {
                    role: Role::Assistant,
                    content: whole_reply,
                });
                let want = history_key(Some("s"), &whole);
                // Every way of cutting the reply into pieces.
                let chars: Vec<char> = reply.chars().collect();
                for step in 1..=chars.len().max(1) {
                    let mut k = KeyWriter::new(Some("s"));
                    for m in &history {
                        k.message(m);
                    }
                    let mut r = k.reply();
                    for piece in chars.chunks(step) {
                        r.push(&piece.iter().collect::<String>());
                    }
                    assert_eq!(r.finish(calls), want, "{reply:?} in pieces of {step}");
                }
            }
        }
    }
}
