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

use crate::http::error::ApiError;
use crate::http::AppState;

/// Who made a request: a fingerprint of its API key (`""` when the gateway has no keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller(pub String);

impl Caller {
    fn of_key(key: &str) -> Caller {
        use sha2::Digest as _;
        Caller(hex::encode(&sha2::Sha256::digest(key.as_bytes())[..12]))
    }
}

pub async fn require_key(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    if app.cfg.api_keys.is_empty() {
        req.extensions_mut().insert(Caller::default());
        return next.run(req).await;
    }
    let refusal = match presented_key(req.headers()) {
        Some(k)
            if app
                .cfg
                .api_keys
                .iter()
                .any(|valid| ct_eq(valid.as_bytes(), k.as_bytes())) =>
        {
            let caller = Caller::of_key(k);
            req.extensions_mut().insert(caller);
            return next.run(req).await;
        }
        Some(_) => ApiError::Unauthorized("Invalid API key".into()),
        None => ApiError::Unauthorized(
            "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'".into(),
        ),
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
        assert_eq!(Caller::of_key("k1"), Caller::of_key("k1"));
        assert_ne!(Caller::of_key("k1"), Caller::of_key("k2"));
        assert!(!Caller::of_key("secret-key-1").0.contains("secret"));
    }
}
