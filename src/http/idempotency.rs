//! The `Idempotency-Key` header on the turn endpoints (`POST /v1/chat/completions`,
//! `/v1/messages`, `/v1/responses`, `/api/sessions/{id}/messages`): a retry with the same key
//! (and the same body) within the window gets the first response replayed, streamed ones
//! included, with `idempotent-replayed: true`, instead of a second turn. A duplicate that
//! arrives while the first still runs gets a `409` with `retry-after` (SDKs retry those) and
//! then the replay. The keeping is `domain::idempotency`; this layer only reads and copies
//! bodies.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use sha2::{Digest, Sha256};

use crate::domain::idempotency::{Begin, Stored};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::AppState;

const HEADER: &str = "idempotency-key";
/// Response headers a replay repeats (the body's type, which conversation served it).
const KEPT_HEADERS: &[&str] = &["content-type", "x-ccgw-conversation-id"];

fn replayable(method: &Method, path: &str) -> bool {
    method == Method::POST
        && (matches!(
            path,
            "/v1/chat/completions" | "/v1/messages" | "/v1/responses"
        ) || (path.starts_with("/api/sessions/") && path.ends_with("/messages")))
}

pub async fn replay(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let key = match req.headers().get(HEADER) {
        Some(k) if replayable(req.method(), &path) => k.to_str().ok().map(str::to_string),
        _ => return next.run(req).await,
    };
    let Some(key) = key.filter(|k| !k.is_empty() && k.len() <= 255) else {
        return ApiError::bad_request(
            "Idempotency-Key",
            "The Idempotency-Key header must be 1 to 255 visible ASCII characters",
        )
        .response_for_path(&path);
    };
    let owner = req
        .extensions()
        .get::<Caller>()
        .map(|c| c.owner.clone())
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, app.cfg.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::bad_request("", "The request body is too large or was cut off")
                .response_for_path(&path)
        }
    };
    let fingerprint = fingerprint(&bytes);
    match app
        .conversations
        .idempotency
        .begin(&owner, &path, &key, fingerprint)
    {
        Begin::Replay(stored) => replayed(&stored),
        Begin::InFlight => {
            let mut resp = ApiError::Conflict(
                "A request with this Idempotency-Key is still in progress; retry shortly to get its response".into(),
            )
            .response_for_path(&path);
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            resp
        }
        Begin::Mismatch => ApiError::bad_request(
            "Idempotency-Key",
            "This Idempotency-Key was already used with a different request body",
        )
        .response_for_path(&path),
        Begin::New(pending) => {
            let resp = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            let (parts, body) = resp.into_parts();
            let status = parts.status.as_u16();
            let headers: Vec<(String, String)> = KEPT_HEADERS
                .iter()
                .filter_map(|h| {
                    let v = parts.headers.get(*h)?.to_str().ok()?;
                    Some((h.to_string(), v.to_string()))
                })
                .collect();
            // The body passes through as it comes (a stream stays a stream) and is kept once
            // it ended; a client that leaves early drops `pending`, and the key is free again.
            let mut pending = Some(pending);
            let mut kept: Vec<u8> = Vec::new();
            let mut inner = body.into_data_stream();
            let tee = async_stream::stream! {
                while let Some(chunk) = inner.next().await {
                    match chunk {
                        Ok(c) => {
                            kept.extend_from_slice(&c);
                            yield Ok::<Bytes, axum::Error>(c);
                        }
                        Err(e) => {
                            yield Err(e);
                            return;
                        }
                    }
                }
                if let Some(p) = pending.take() {
                    p.finish(Stored { status, headers, body: Bytes::from(std::mem::take(&mut kept)) });
                }
            };
            Response::from_parts(parts, Body::from_stream(tee))
        }
    }
}

/// The digest of what a body means: the same JSON however a client spaced and ordered it.
fn fingerprint(bytes: &[u8]) -> [u8; 32] {
    fn canonical(v: &serde_json::Value, out: &mut Vec<u8>) {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(
                        serde_json::Value::String(k.clone()).to_string().as_bytes(),
                    );
                    out.push(b':');
                    canonical(&m[k], out);
                }
                out.push(b'}');
            }
            serde_json::Value::Array(a) => {
                out.push(b'[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    canonical(x, out);
                }
                out.push(b']');
            }
            other => out.extend_from_slice(other.to_string().as_bytes()),
        }
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => {
            let mut out = Vec::with_capacity(bytes.len());
            canonical(&v, &mut out);
            Sha256::digest(&out).into()
        }
        Err(_) => Sha256::digest(bytes).into(),
    }
}

fn replayed(stored: &Stored) -> Response {
    let mut resp = (
        axum::http::StatusCode::from_u16(stored.status).unwrap_or(axum::http::StatusCode::OK),
        stored.body.clone(),
    )
        .into_response();
    for (k, v) in &stored.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_ignores_spacing_and_key_order() {
        assert_eq!(
            fingerprint(br#"{"a": 1, "b": [1, {"y": 2, "x": 1}]}"#),
            fingerprint(br#"{"b":[1,{"x":1,"y":2}],"a":1}"#)
        );
        assert_ne!(fingerprint(br#"{"a":1}"#), fingerprint(br#"{"a":2}"#));
        assert_ne!(fingerprint(b"not json"), fingerprint(b"not json!"));
    }

    #[test]
    fn only_the_turn_endpoints_replay() {
        assert!(replayable(&Method::POST, "/v1/chat/completions"));
        assert!(replayable(&Method::POST, "/v1/responses"));
        assert!(replayable(&Method::POST, "/api/sessions/abc/messages"));
        assert!(!replayable(&Method::GET, "/v1/responses"));
        assert!(!replayable(&Method::POST, "/v1/messages/count_tokens"));
        assert!(!replayable(&Method::POST, "/api/sessions"));
    }
}
