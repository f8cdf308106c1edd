//! What the relay learns from the traffic it forwards: the usage of each model request (read
//! from the response's SSE events, or its JSON body), the upstream's rate-limit headers, and
//! its errors. Pure bookkeeping; it forwards nothing and never holds a credential.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

/// Requests remembered for `/health` and the console (newest last).
const RECENT: usize = 100;
/// A JSON (non-streamed) response body is copied up to this size to read its usage.
pub(crate) const MAX_JSON_COPY: usize = 4 * 1024 * 1024;

/// Token counts of one model request, as the upstream reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl RequestUsage {
    /// Fold in a `usage` object: a later report of a count replaces an earlier one (the final
    /// `message_delta` carries the final output count).
    fn merge(&mut self, usage: &Value) {
        let set = |field: &mut u64, key: &str| {
            if let Some(n) = usage.get(key).and_then(Value::as_u64) {
                *field = n;
            }
        };
        set(&mut self.input_tokens, "input_tokens");
        set(&mut self.output_tokens, "output_tokens");
        set(
            &mut self.cache_creation_input_tokens,
            "cache_creation_input_tokens",
        );
        set(&mut self.cache_read_input_tokens, "cache_read_input_tokens");
    }
}

/// One request the relay forwarded.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// Who sent it (the conversation or process the token was issued for).
    pub label: String,
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    pub status: u16,
    pub usage: Option<RequestUsage>,
    /// From the request's start to the response's last byte.
    pub duration_ms: u64,
    /// The upstream's error message, for an error status or a failed connection.
    pub error: Option<String>,
    pub at: String,
}

/// Reads usage out of a response as its bytes pass: SSE `data:` lines with a `usage` (in
/// `message_start` and `message_delta`), or, for a JSON body, the body's own `usage`.
#[derive(Debug, Default)]
pub(crate) struct UsageTap {
    sse: bool,
    line: Vec<u8>,
    json: Vec<u8>,
    usage: Option<RequestUsage>,
}

impl UsageTap {
    pub(crate) fn new(sse: bool) -> Self {
        Self {
            sse,
            ..Self::default()
        }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if !self.sse {
            if self.json.len() + chunk.len() <= MAX_JSON_COPY {
                self.json.extend_from_slice(chunk);
            }
            return;
        }
        for &b in chunk {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.on_line(&line);
            } else if self.line.len() < MAX_JSON_COPY {
                self.line.push(b);
            }
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        let Some(data) = line
            .strip_prefix(b"data:")
            .map(|d| d.strip_prefix(b" ").unwrap_or(d))
        else {
            return;
        };
        // Only the few events that carry usage are parsed; text deltas are passed over.
        if !contains(data, b"\"usage\"") {
            return;
        }
        if let Ok(event) = serde_json::from_slice::<Value>(data) {
            let usage = event
                .pointer("/message/usage")
                .or_else(|| event.get("usage"));
            if let Some(u) = usage {
                self.usage.get_or_insert_with(Default::default).merge(u);
            }
        }
    }

    /// The usage seen, once the response has ended.
    pub(crate) fn finish(&mut self) -> Option<RequestUsage> {
        if !self.sse && !self.json.is_empty() {
            if let Ok(body) = serde_json::from_slice::<Value>(&self.json) {
                if let Some(u) = body.get("usage") {
                    self.usage.get_or_insert_with(Default::default).merge(u);
                }
            }
        }
        self.usage
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The upstream's latest rate-limit headers (`anthropic-ratelimit-*`, `retry-after`), by name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RateLimits {
    pub headers: BTreeMap<String, String>,
    /// When they were seen.
    pub at: Option<String>,
}

/// Whether a response header is one of the upstream's rate-limit headers.
pub(crate) fn is_rate_limit_header(name: &str) -> bool {
    name.starts_with("anthropic-ratelimit-") || name == "retry-after"
}

/// Everything the relay keeps about its traffic.
#[derive(Debug, Default)]
pub struct Ledger {
    inner: Mutex<LedgerInner>,
}

#[derive(Debug, Default)]
struct LedgerInner {
    recent: VecDeque<RequestRecord>,
    rate_limits: RateLimits,
    last_error: Option<RequestRecord>,
    requests: u64,
    errors: u64,
    totals: RequestUsage,
}

/// A summary for `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerSummary {
    pub requests: u64,
    pub errors: u64,
    pub usage: RequestUsage,
    pub rate_limits: RateLimits,
    pub last_error: Option<RequestRecord>,
}

impl Ledger {
    pub(crate) fn record(&self, record: RequestRecord) {
        let mut l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        l.requests += 1;
        if let Some(u) = &record.usage {
            l.totals.input_tokens += u.input_tokens;
            l.totals.output_tokens += u.output_tokens;
            l.totals.cache_creation_input_tokens += u.cache_creation_input_tokens;
            l.totals.cache_read_input_tokens += u.cache_read_input_tokens;
        }
        if record.error.is_some() {
            l.errors += 1;
            l.last_error = Some(record.clone());
        }
        if l.recent.len() == RECENT {
            l.recent.pop_front();
        }
        l.recent.push_back(record);
    }

    pub(crate) fn rate_limits_seen(&self, headers: BTreeMap<String, String>, at: String) {
        if headers.is_empty() {
            return;
        }
        let mut l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        l.rate_limits = RateLimits {
            headers,
            at: Some(at),
        };
    }

    /// The newest requests, oldest first.
    pub fn recent(&self) -> Vec<RequestRecord> {
        let l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        l.recent.iter().cloned().collect()
    }

    pub fn summary(&self) -> LedgerSummary {
        let l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        LedgerSummary {
            requests: l.requests,
            errors: l.errors,
            usage: l.totals,
            rate_limits: l.rate_limits.clone(),
            last_error: l.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_usage_from_sse_split_anywhere() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"say \\\"usage\\\"\"}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":42}}\n\n",
        );
        for split in [1, 7, 50, stream.len()] {
            let mut tap = UsageTap::new(true);
            for chunk in stream.as_bytes().chunks(split) {
                tap.feed(chunk);
            }
            assert_eq!(
                tap.finish(),
                Some(RequestUsage {
                    input_tokens: 12,
                    output_tokens: 42,
                    cache_creation_input_tokens: 0,
                    cache_read_input_tokens: 3,
                }),
                "split {split}"
            );
        }
    }

    #[test]
    fn reads_usage_from_a_json_body_and_none_from_others() {
        let mut tap = UsageTap::new(false);
        let body = json!({"id": "m", "usage": {"input_tokens": 5, "output_tokens": 6}}).to_string();
        tap.feed(&body.as_bytes()[..10]);
        tap.feed(&body.as_bytes()[10..]);
        assert_eq!(tap.finish().unwrap().output_tokens, 6);
        let mut tap = UsageTap::new(false);
        tap.feed(b"not json");
        assert_eq!(tap.finish(), None);
    }

    #[test]
    fn the_ledger_keeps_totals_errors_and_a_bounded_history() {
        let ledger = Ledger::default();
        let rec = |usage: Option<RequestUsage>, error: Option<&str>| RequestRecord {
            label: "c".into(),
            method: "POST".into(),
            path: "/v1/messages".into(),
            model: None,
            status: if error.is_some() { 529 } else { 200 },
            usage,
            duration_ms: 1,
            error: error.map(String::from),
            at: "t".into(),
        };
        let u = RequestUsage {
            input_tokens: 2,
            output_tokens: 3,
            ..Default::default()
        };
        for _ in 0..150 {
            ledger.record(rec(Some(u), None));
        }
        ledger.record(rec(None, Some("overloaded")));
        let s = ledger.summary();
        assert_eq!(s.requests, 151);
        assert_eq!(s.errors, 1);
        assert_eq!(s.usage.output_tokens, 450);
        assert_eq!(s.last_error.unwrap().error.as_deref(), Some("overloaded"));
        assert_eq!(ledger.recent().len(), RECENT);
        assert!(is_rate_limit_header(
            "anthropic-ratelimit-requests-remaining"
        ));
        assert!(!is_rate_limit_header("content-type"));
    }
}
