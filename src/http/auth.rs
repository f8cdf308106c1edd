//! Optional static API keys: `Authorization: Bearer <key>` or `x-api-key: <key>`. Refusals come
//! in the error shape of the API asked (Anthropic for `/v1/messages*`, else OpenAI).
//! Off when no key is configured. Keys are compared in constant time and never logged.
//!
//! Every request that passes carries a [`Caller`]: which key made it, as a fingerprint, so that
//! what one key stores only that key can read back.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

pub use crate::http::caller::Caller;
use crate::http::error::ApiError;
use crate::http::ws_auth;
use crate::http::AppState;

pub async fn require_key(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    if app.cfg.api_keys.is_empty() {
        req.extensions_mut().insert(Caller::default());
        return next.run(req).await;
    }
    // Browsers' WebSockets carry the key in a subprotocol or a ticket (see `ws_auth`).
    let presented = presented_key(req.headers())
        .map(String::from)
        .or_else(|| ws_auth::protocol_key(req.headers()));
    let refusal = match presented {
        Some(k)
            if app
                .cfg
                .api_keys
                .iter()
                .any(|valid| ct_eq(valid.as_bytes(), k.as_bytes())) =>
        {
            let caller = Caller::of_key(&k);
            req.extensions_mut().insert(caller);
            return next.run(req).await;
        }
        Some(_) => ApiError::Unauthorized("Invalid API key".into()),
        None => match ws_auth::redeem_ticket(&app, &mut req) {
            ws_auth::TicketCheck::Valid => return next.run(req).await,
            ws_auth::TicketCheck::Invalid => {
                ApiError::Unauthorized("Invalid or expired WebSocket ticket".into())
            }
            ws_auth::TicketCheck::Absent => ApiError::Unauthorized(
                "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'".into(),
            ),
        },
    };
    // Each API's clients get the error in the shape they parse.
    refusal.response_for_path(req.uri().path())
}

fn presented_key(h: &HeaderMap) -> Option<&str> {
    if let Some(v) = h.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_header_forms() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(presented_key(&h), Some("abc"));
        h.insert("x-api-key", "xyz".parse().unwrap());
        assert_eq!(presented_key(&h), Some("xyz"));
        assert!(ct_eq(b"same", b"same"));
        assert!(!ct_eq(b"same", b"diff"));
        assert!(!ct_eq(b"same", b"samer"));
    }
}
