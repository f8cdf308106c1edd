//! Native events as the API shows them: the envelope (`seq`, `turn_id`, `ts`,
//! `session_id`, `cli_session_id`), SSE framing with `id: <seq>`, history entries replayed as
//! the events they were, and where a watcher resumes (`Last-Event-ID`, `?after=`).
//!
//! Must not: number events (the domain's outlet does) or decide what a watcher missed (the
//! domain's `watch` does).

use std::convert::Infallible;

use axum::http::HeaderMap;
use axum::response::sse::Event as SseEvent;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::session_table::millis_to_ts;
use crate::domain::stamp::Stamped;
use crate::domain::watch::Watched;
use crate::http::error::ApiError;
use crate::store::StoredEvent;

/// `?after=SEQ` of the watcher streams.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AfterQuery {
    #[serde(default)]
    pub after: Option<String>,
}

/// Where a watcher resumes: `?after=` wins over `Last-Event-ID` (an explicit choice over what
/// the browser remembered).
pub(super) fn resume_after(q: &AfterQuery, headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    if let Some(a) = &q.after {
        return parse_seq(a).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "after",
                format!("after must be a sequence number (0 or more), not '{a}'"),
            )
        });
    }
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(parse_seq)
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "Last-Event-ID",
                    "Last-Event-ID must be the seq of an event this stream sent",
                )
            }),
    }
}

fn parse_seq(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A live event: `session_id` is the native session's (stable for the session's life); the
/// CLI's own, which changes (after the first turn, after `/clear`), is `cli_session_id`.
pub(super) fn event_json(s: &Stamped, session: &str) -> Value {
    let mut v = serde_json::to_value(&s.event).unwrap_or(Value::Null);
    envelope(&mut v, session, s.seq, s.turn_id.as_deref(), s.at_millis);
    if !s.stored {
        if let Some(obj) = v.as_object_mut() {
            // Not an entry of its own: it sorts after entry `seq`, and a resumed stream does
            // not start from it.
            obj.insert("stored".into(), json!(false));
        }
    }
    v
}

/// A history entry as the event it was recorded from (the shapes live events have).
pub(super) fn stored_json(e: &StoredEvent, session: &str) -> Value {
    let p = &e.payload;
    let mut v = match e.kind.as_str() {
        "user" => json!({"type": "user_message", "content": p["content"]}),
        "assistant" => json!({"type": "text", "text": p["text"]}),
        "thinking" => json!({"type": "thinking", "text": p["text"]}),
        "result" => with_type("done", p),
        "error" => {
            let mut v = with_type("error", &p["error"]);
            v["message"] = p["message"].clone();
            v
        }
        other => with_type(other, p),
    };
    envelope(
        &mut v,
        session,
        e.seq as u64,
        Some(&e.turn_id),
        e.created_at,
    );
    v["replayed"] = json!(true);
    v
}

fn with_type(kind: &str, payload: &Value) -> Value {
    let mut v = match payload {
        Value::Object(m) => Value::Object(m.clone()),
        _ => json!({}),
    };
    v["type"] = json!(kind);
    v
}

fn envelope(v: &mut Value, session: &str, seq: u64, turn: Option<&str>, at: i64) {
    let Some(obj) = v.as_object_mut() else { return };
    if let Some(cli) = obj.remove("session_id") {
        obj.insert("cli_session_id".into(), cli);
    }
    obj.insert("session_id".into(), json!(session));
    obj.insert("seq".into(), json!(seq));
    obj.insert("turn_id".into(), json!(turn));
    obj.insert("ts".into(), json!(millis_to_ts(at)));
}

pub(super) fn watched_json(w: &Watched, session: &str) -> Value {
    match w {
        Watched::Live(s) => event_json(s, session),
        Watched::Stored(e) => stored_json(e, session),
        Watched::Lagged(n) => json!({"type": "lagged", "skipped": n}),
        Watched::Shutdown => json!({"type": "shutdown"}),
    }
}

/// One SSE frame; an entry of the history gets `id: <seq>`, so a reconnecting `EventSource`
/// resumes after it (an unstored event keeps the last id, as SSE does without one).
pub(super) fn sse_event(v: &Value) -> SseEvent {
    let kind = v["type"].as_str().unwrap_or("event").to_string();
    let ev = SseEvent::default().event(kind).data(v.to_string());
    match (v["stored"].as_bool(), v["seq"].as_u64()) {
        (None, Some(seq)) if seq > 0 => ev.id(seq.to_string()),
        _ => ev,
    }
}

pub(super) fn watch_events(
    session: String,
    watched: impl Stream<Item = Watched> + Send + 'static,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    watched.map(move |w| Ok(sse_event(&watched_json(&w, &session))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn after_wins_over_last_event_id_and_bad_values_name_their_field() {
        let mut h = HeaderMap::new();
        h.insert("last-event-id", HeaderValue::from_static("7"));
        assert_eq!(resume_after(&AfterQuery::default(), &h).unwrap(), Some(7));
        let q = AfterQuery {
            after: Some("3".into()),
        };
        assert_eq!(resume_after(&q, &h).unwrap(), Some(3));
        assert_eq!(
            resume_after(&AfterQuery::default(), &HeaderMap::new()).unwrap(),
            None
        );
        for bad in ["-1", "x", "", "1.5"] {
            let q = AfterQuery {
                after: Some(bad.into()),
            };
            let e = resume_after(&q, &HeaderMap::new()).unwrap_err();
            assert_eq!(e.native_body()["error"]["param"], "after", "{bad}");
        }
        h.insert("last-event-id", HeaderValue::from_static("abc"));
        let e = resume_after(&AfterQuery::default(), &h).unwrap_err();
        assert_eq!(e.native_body()["error"]["param"], "Last-Event-ID");
    }

    #[test]
    fn a_history_entry_replays_as_its_event_with_the_same_envelope() {
        let e = StoredEvent {
            session_id: "s".into(),
            seq: 4,
            turn_id: "t1".into(),
            kind: "result".into(),
            payload: json!({"stop_reason": "end_turn", "session_id": "cli-1"}),
            created_at: 1_764_700_000_120,
        };
        let v = stored_json(&e, "native-1");
        assert_eq!(v["type"], "done");
        assert_eq!(v["seq"], 4);
        assert_eq!(v["turn_id"], "t1");
        assert_eq!(v["session_id"], "native-1");
        assert_eq!(v["cli_session_id"], "cli-1");
        assert!(v["ts"].as_str().unwrap().ends_with(".120Z"), "{v}");
    }
}
