//! What the gateway is doing right now, kept from the live feed: each recent conversation's
//! status, tokens, cost and duration, totals by model and by key, and time to first token.
//!
//! Owns: an in-memory, bounded summary ([`MAX_TRACKED`] conversations, the least recently
//! active dropped first). Updated synchronously by `feed` for every item (a map update under
//! a lock: microseconds, so it never slows a turn).
//!
//! Must not: hold anything that must survive a restart (the store has that) or any secret.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use super::feed::FeedItem;
use crate::claude::{Event, StopReason};

/// Conversations kept in memory.
pub const MAX_TRACKED: usize = 1000;
/// Items of one running turn kept for a timeline opened mid-turn.
pub const MAX_INFLIGHT: usize = 5000;
/// And at most about this many bytes of their text: a long answer is not kept twice in
/// memory; past it the timeline shows the turn once it is recorded.
pub const MAX_INFLIGHT_BYTES: usize = 1 << 20;
/// And all running turns' together (a turn whose client left keeps its items until the
/// conversation's next turn ends or it is dropped): memory stays bounded in bytes.
pub const MAX_INFLIGHT_TOTAL_BYTES: usize = 16 << 20;
/// Per turn: from its user line reaching the CLI to the first token (text, thinking or tool).
pub const TTFT: &str = "ccgw_time_to_first_token_seconds";

/// One conversation as the console's home shows it.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ConversationActivity {
    pub id: String,
    pub source: String,
    pub model: String,
    pub key: Option<String>,
    pub user: Option<String>,
    /// running, awaiting_permission, awaiting_tools, idle or error.
    pub status: String,
    /// The first user text, shortened.
    pub title: Option<String>,
    /// Unix milliseconds.
    pub started_at: i64,
    pub updated_at: i64,
    pub turns: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Wall time of its turns in the gateway, summed.
    pub duration_ms: u64,
    pub tool_calls: u64,
    pub errors: u64,
    /// The turn running now (or the last one).
    pub turn_id: String,
}

/// Requests and tokens of one model or one key.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Totals {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

#[derive(Default)]
struct Inner {
    convs: HashMap<String, ConversationActivity>,
    /// Per running turn: when it started, and whether its first token came yet.
    turns: HashMap<String, (i64, bool)>,
    by_model: HashMap<String, Totals>,
    by_key: HashMap<String, Totals>,
    /// The running turn's items of each conversation: a timeline opened mid-turn starts from
    /// these (a compatible-API turn is recorded only when it ends, and a native one's text only
    /// when each block is whole).
    inflight: HashMap<String, Vec<FeedItem>>,
    /// About how many bytes of text each conversation's `inflight` holds.
    inflight_bytes: HashMap<String, usize>,
    /// The bytes of the items each conversation's `inflight` kept, and all together.
    kept_bytes: HashMap<String, usize>,
    inflight_total: usize,
}

impl Inner {
    fn drop_inflight(&mut self, id: &str) {
        self.inflight.remove(id);
        if let Some(kept) = self.kept_bytes.remove(id) {
            self.inflight_total -= kept;
        }
        self.inflight_bytes.remove(id);
    }
}

#[derive(Default)]
pub struct Activity {
    inner: Mutex<Inner>,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Each update leaves the maps consistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn observe(&self, item: &FeedItem) {
        let mut inner = self.lock();
        let m = &item.meta;
        let ttft = match &item.event {
            Event::UserMessage { .. } => {
                inner.turns.insert(m.turn_id.clone(), (item.ts, false));
                None
            }
            Event::TextDelta { .. } | Event::ThinkingDelta { .. } | Event::ToolCallStart { .. } => {
                match inner.turns.get_mut(&m.turn_id) {
                    Some((start, seen)) if !*seen => {
                        *seen = true;
                        Some(item.ts - *start)
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(ms) = ttft {
            ::metrics::histogram!(TTFT).record(ms.max(0) as f64 / 1000.0);
        }
        let turn_start = inner.turns.get(&m.turn_id).map(|t| t.0);
        let c = inner
            .convs
            .entry(m.conversation_id.clone())
            .or_insert_with(|| ConversationActivity {
                id: m.conversation_id.clone(),
                source: m.source.clone(),
                started_at: item.ts,
                ..Default::default()
            });
        c.model = m.model.clone();
        if m.key.is_some() {
            c.key = m.key.clone();
        }
        if m.user.is_some() {
            c.user = m.user.clone();
        }
        c.updated_at = item.ts;
        c.turn_id = m.turn_id.clone();
        let mut finished = None;
        match &item.event {
            Event::UserMessage { content } => {
                c.status = "running".into();
                if c.title.is_none() {
                    c.title = first_text(content).map(|t| shorten(&t, 80));
                }
            }
            Event::PermissionRequest { .. } => c.status = "awaiting_permission".into(),
            Event::ToolResult { .. } => c.status = "running".into(),
            Event::ToolCall { .. } => c.tool_calls += 1,
            Event::Done(s) => {
                c.status = if s.stop_reason == StopReason::ToolUse {
                    "awaiting_tools"
                } else {
                    "idle"
                }
                .into();
                c.turns += 1;
                c.input_tokens += s.usage.prompt_tokens();
                c.output_tokens += s.usage.output_tokens;
                c.cost_usd += s.cost_usd.unwrap_or(0.0);
                if let Some(start) = turn_start {
                    c.duration_ms += (item.ts - start).max(0) as u64;
                }
                finished = Some(Totals {
                    requests: 1,
                    input_tokens: s.usage.prompt_tokens(),
                    output_tokens: s.usage.output_tokens,
                    cost_usd: s.cost_usd.unwrap_or(0.0),
                });
            }
            Event::Error(_) => {
                c.status = "error".into();
                c.errors += 1;
                c.turns += 1;
                if let Some(start) = turn_start {
                    c.duration_ms += (item.ts - start).max(0) as u64;
                }
                finished = Some(Totals {
                    requests: 1,
                    ..Default::default()
                });
            }
            _ => {}
        }
        if item.event.is_terminal() {
            inner.drop_inflight(&m.conversation_id);
        } else {
            let size = item_bytes(item);
            let bytes = inner
                .inflight_bytes
                .entry(m.conversation_id.clone())
                .or_default();
            *bytes += size;
            let room = *bytes <= MAX_INFLIGHT_BYTES
                && inner.inflight_total + size <= MAX_INFLIGHT_TOTAL_BYTES;
            let list = inner.inflight.entry(m.conversation_id.clone()).or_default();
            if room && list.len() < MAX_INFLIGHT {
                list.push(item.clone());
                *inner
                    .kept_bytes
                    .entry(m.conversation_id.clone())
                    .or_default() += size;
                inner.inflight_total += size;
            }
        }
        if let Some(t) = finished {
            inner.turns.remove(&m.turn_id);
            add(inner.by_model.entry(m.model.clone()).or_default(), &t);
            let key = m.key.clone().unwrap_or_else(|| "(no key)".into());
            add(inner.by_key.entry(key).or_default(), &t);
        }
        if inner.convs.len() > MAX_TRACKED {
            if let Some(oldest) = inner
                .convs
                .values()
                .min_by_key(|c| c.updated_at)
                .map(|c| c.id.clone())
            {
                inner.convs.remove(&oldest);
                inner.drop_inflight(&oldest);
            }
        }
    }

    /// Recent conversations, the most recently active first.
    pub fn recent(&self, limit: usize) -> Vec<ConversationActivity> {
        let mut all: Vec<ConversationActivity> = self.lock().convs.values().cloned().collect();
        all.sort_by_key(|c| std::cmp::Reverse(c.updated_at));
        all.truncate(limit);
        all
    }

    /// The running turn's items so far, oldest first (none between turns).
    pub fn inflight(&self, id: &str) -> Vec<FeedItem> {
        self.lock().inflight.get(id).cloned().unwrap_or_default()
    }

    pub fn get(&self, id: &str) -> Option<ConversationActivity> {
        self.lock().convs.get(id).cloned()
    }

    /// Totals by model and by key since start-up.
    pub fn totals(&self) -> (HashMap<String, Totals>, HashMap<String, Totals>) {
        let inner = self.lock();
        (inner.by_model.clone(), inner.by_key.clone())
    }
}

/// About what an item holds: its text (bounded by the feed) and a little for the rest.
fn item_bytes(item: &FeedItem) -> usize {
    let text = match &item.event {
        Event::TextDelta { text } | Event::ThinkingDelta { text } => text.len(),
        Event::UserMessage { content } => value_bytes(content),
        Event::ToolCall { input, .. } | Event::PermissionRequest { input, .. } => {
            value_bytes(input)
        }
        Event::ToolResult { content, .. } => value_bytes(content),
        _ => 0,
    };
    text + 256
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(value_bytes).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + value_bytes(v)).sum(),
        _ => 8,
    }
}

fn add(into: &mut Totals, t: &Totals) {
    into.requests += t.requests;
    into.input_tokens += t.input_tokens;
    into.output_tokens += t.output_tokens;
    into.cost_usd += t.cost_usd;
}

/// The first text of a message's content (a string or content blocks).
pub fn first_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(blocks) => blocks
            .iter()
            .find_map(|b| b.get("text").and_then(Value::as_str).map(String::from)),
        _ => None,
    }
    .map(|t| t.trim().to_string())
    .filter(|t| !t.is_empty())
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::claude::{TurnSummary, Usage};
    use crate::domain::feed::TurnMeta;

    fn item(id: u64, ts: i64, conv: &str, event: Event) -> FeedItem {
        FeedItem {
            id,
            ts,
            meta: Arc::new(TurnMeta {
                conversation_id: conv.into(),
                source: "openai".into(),
                model: "sonnet".into(),
                key: Some("key-aa".into()),
                user: None,
                turn_id: format!("t-{conv}"),
            }),
            seq: None,
            event,
            cut: None,
        }
    }

    #[test]
    fn a_turn_moves_a_conversation_through_its_statuses_and_sums_it() {
        let a = Activity::default();
        let text =
            serde_json::json!([{"type": "text", "text": "What is the weather in Paris today?"}]);
        a.observe(&item(1, 1000, "c", Event::UserMessage { content: text }));
        assert_eq!(a.get("c").unwrap().status, "running");
        a.observe(&item(2, 1100, "c", Event::TextDelta { text: "x".into() }));
        assert_eq!(
            a.inflight("c").len(),
            2,
            "a timeline opened now starts here"
        );
        let done = TurnSummary {
            stop_reason: StopReason::EndTurn,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                cache_read_input_tokens: 2,
                cache_creation_input_tokens: 0,
            },
            cost_usd: Some(0.5),
            duration_ms: None,
            num_turns: None,
            leaf: None,
            session_id: String::new(),
            result_text: String::new(),
        };
        a.observe(&item(3, 1500, "c", Event::Done(done)));
        let c = a.get("c").unwrap();
        assert_eq!(c.status, "idle");
        assert_eq!((c.input_tokens, c.output_tokens, c.turns), (12, 5, 1));
        assert_eq!(c.duration_ms, 500);
        assert_eq!(
            c.title.as_deref(),
            Some("What is the weather in Paris today?")
        );
        let (by_model, by_key) = a.totals();
        assert_eq!(by_model["sonnet"].requests, 1);
        assert_eq!(by_key["key-aa"].output_tokens, 5);
    }

    #[test]
    fn memory_is_bounded() {
        let a = Activity::default();
        for i in 0..(MAX_TRACKED + 50) {
            a.observe(&item(
                i as u64,
                i as i64,
                &format!("c{i}"),
                Event::TextDelta { text: "x".into() },
            ));
        }
        assert_eq!(a.recent(usize::MAX).len(), MAX_TRACKED);
        assert!(a.get("c0").is_none());
        assert_eq!(a.recent(1)[0].id, format!("c{}", MAX_TRACKED + 49));
    }

    #[test]
    fn running_turns_keep_a_bounded_number_of_bytes_together() {
        let a = Activity::default();
        let text = "x".repeat(16 * 1024);
        // Many turns that never end (their clients left), each under its own limit.
        let convs = 2 * MAX_INFLIGHT_TOTAL_BYTES / MAX_INFLIGHT_BYTES;
        for c in 0..convs {
            for i in 0..(MAX_INFLIGHT_BYTES / text.len()) {
                a.observe(&item(
                    i as u64,
                    i as i64,
                    &format!("c{c}"),
                    Event::TextDelta { text: text.clone() },
                ));
            }
        }
        let kept: usize = (0..convs)
            .flat_map(|c| a.inflight(&format!("c{c}")))
            .map(|i| item_bytes(&i))
            .sum();
        assert!(kept <= MAX_INFLIGHT_TOTAL_BYTES, "{kept}");
        assert!(kept > MAX_INFLIGHT_TOTAL_BYTES / 2, "{kept}");
        // A turn that ends gives its room back.
        a.observe(&item(
            0,
            0,
            "c0",
            Event::Error(crate::claude::ClaudeError::protocol("x")),
        ));
        a.observe(&item(1, 1, "c0", Event::TextDelta { text: text.clone() }));
        assert!(a.inflight("c0").len() == 1);
    }
}
