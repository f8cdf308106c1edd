//! The one place per-key limits are enforced: a middleware on every route, acting on the
//! turn-making ones (a POST that runs a turn: chat completions, responses, messages, a native
//! session's messages and commands, continuing a Claude Code session).
//!
//! Owns the wire side of limits: a refusal is a 429 in the API's own shape with `retry-after`
//! and OpenAI's `x-ratelimit-*` headers, and an admitted request's response carries the same
//! headers with what is left. The turn's concurrency slot lives in the response body, so it
//! is given back however the turn ends: the body's end (done, error, interrupt) or its drop
//! (the client went away). Must not: count anything itself (the domain's `limits` does) or
//! read the store.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;

use crate::domain::limits::{RateHeaders, TurnSlot};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::AppState;

/// Whether `method path` runs a turn (and so is limited).
pub fn is_turn(method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    if matches!(
        path,
        "/v1/chat/completions" | "/v1/responses" | "/v1/messages"
    ) {
        return true;
    }
    if let Some(rest) = path.strip_prefix("/api/sessions/") {
        let mut parts = rest.split('/').skip(1);
        return matches!(
            (parts.next(), parts.next(), parts.next()),
            (Some("messages"), None, _) | (Some("commands"), Some(_), None)
        );
    }
    path.starts_with("/api/claude-sessions/") && path.ends_with("/continue")
}

pub async fn enforce(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if !is_turn(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let Some(caller) = req.extensions().get::<Caller>() else {
        return next.run(req).await;
    };
    match app
        .conversations
        .limits
        .admit(&caller.owner, caller.limits())
    {
        Ok(admitted) => {
            let mut resp = next.run(req).await;
            put_headers(resp.headers_mut(), &admitted.headers);
            match admitted.slot {
                Some(slot) => resp.map(|b| {
                    Body::new(Slotted {
                        inner: b,
                        slot: Some(slot),
                    })
                }),
                None => resp,
            }
        }
        Err(e) => {
            tracing::info!(key = %caller.owner, limit = %e, "request refused by a key limit");
            let headers = e.headers();
            let mut resp = ApiError::Limit(e).response_for_path(req.uri().path());
            put_headers(resp.headers_mut(), &headers);
            resp
        }
    }
}

/// OpenAI's `x-ratelimit-*` headers, for the limits the key has.
fn put_headers(h: &mut HeaderMap, r: &RateHeaders) {
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    if let Some((limit, remaining, reset)) = r.requests {
        put("x-ratelimit-limit-requests", limit.to_string());
        put("x-ratelimit-remaining-requests", remaining.to_string());
        put("x-ratelimit-reset-requests", duration(reset));
    }
    if let Some((limit, remaining, reset)) = r.tokens {
        put("x-ratelimit-limit-tokens", limit.to_string());
        put("x-ratelimit-remaining-tokens", remaining.to_string());
        put("x-ratelimit-reset-tokens", duration(reset));
    }
}

/// A duration as OpenAI writes its resets: `1m30s`, `6s`, `250ms`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let m = (secs / 60.0).floor() as u64;
    let s = secs - (m * 60) as f64;
    let s = if s.fract() == 0.0 {
        format!("{}s", s as u64)
    } else {
        format!("{s:.1}s")
    };
    if m > 0 {
        format!("{m}m{s}")
    } else {
        s
    }
}

/// A response body holding its turn's slot until it ends or is dropped. The slot goes back
/// before the last frame is handed on, so a client that read the whole answer and asks again
/// at once finds it free.
struct Slotted {
    inner: Body,
    slot: Option<TurnSlot>,
}

impl http_body::Body for Slotted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if ended {
            self.slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_routes_are_the_posts_that_run_turns() {
        let post = Method::POST;
        for p in [
            "/v1/chat/completions",
            "/v1/responses",
            "/v1/messages",
            "/api/sessions/abc/messages",
            "/api/sessions/abc/commands/compact",
            "/api/claude-sessions/xyz/continue",
        ] {
            assert!(is_turn(&post, p), "{p}");
        }
        for p in [
            "/v1/messages/count_tokens",
            "/v1/models",
            "/api/sessions",
            "/api/sessions/abc/commands",
            "/api/sessions/abc/interrupt",
            "/api/sessions/abc/messagesx",
            "/api/sessions/abc/tools/Read",
        ] {
            assert!(!is_turn(&post, p), "{p}");
        }
        assert!(!is_turn(&Method::GET, "/v1/chat/completions"));
    }

    #[test]
    fn resets_read_like_openais() {
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_secs(6)), "6s");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(duration(Duration::from_secs(90)), "1m30s");
    }

    #[tokio::test]
    async fn the_slot_goes_back_when_the_body_ends() {
        let limits = crate::domain::limits::Limits::new(Default::default());
        let lim = crate::domain::tenants::KeyLimits {
            max_concurrency: Some(1),
            ..Default::default()
        };
        let slot = limits.admit("a", &lim).unwrap().slot;
        assert_eq!(limits.running("a"), 1);
        let body = Body::new(Slotted {
            inner: Body::from("hello"),
            slot,
        });
        let bytes = axum::body::to_bytes(body, 1024).await.unwrap();
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(limits.running("a"), 0);
        let slot = limits.admit("a", &lim).unwrap().slot;
        drop(Body::new(Slotted {
            inner: Body::from("x"),
            slot,
        }));
        assert_eq!(limits.running("a"), 0);
    }
}
