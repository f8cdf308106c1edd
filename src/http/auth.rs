//! API keys: `Authorization: Bearer <key>` or `x-api-key: <key>`, checked against the
//! [`KeyRing`](crate::domain::tenants::KeyRing) in memory. Refusals come in the error shape of
//! the API asked (Anthropic for `/v1/messages*`, else OpenAI). Off when the gateway has no key
//! (none in the config, none ever stored). Keys are looked up by their SHA-256 and never logged.
//!
//! Every request that passes carries a [`Caller`]: which key made it, as a fingerprint, so that
//! what one key stores only that key can read back.

use axum::extract::{Request, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::domain::tenants::Refusal;
pub use crate::http::caller::Caller;
use crate::http::error::ApiError;
use crate::http::ws_auth;
use crate::http::AppState;

pub async fn require_key(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    if !app.keys.enabled() {
        req.extensions_mut().insert(Caller::default());
        return next.run(req).await;
    }
    // Browsers' WebSockets carry the key in a subprotocol or a ticket (see `ws_auth`).
    let mut keys: Vec<String> = presented_keys(req.headers())
        .into_iter()
        .map(String::from)
        .collect();
    keys.extend(ws_auth::protocol_key(req.headers()));
    // Any one good credential lets the request through: a stale x-api-key next to a good
    // bearer (some SDKs send both) must not lock it out.
    let mut refused = None;
    for k in &keys {
        match app.keys.authenticate(k) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                return next.run(req).await;
            }
            // Say the most telling reason: revoked or expired over unknown.
            Err(r) => refused = refused.max(Some(r)),
        }
    }
    let refusal = if let Some(r) = refused {
        ApiError::Unauthorized(
            match r {
                Refusal::Revoked => "This API key has been revoked",
                Refusal::Expired => "This API key has expired",
                Refusal::Unknown => "Invalid API key",
            }
            .into(),
        )
    } else {
        match ws_auth::redeem_ticket(&app, &mut req) {
            ws_auth::TicketCheck::Valid => return next.run(req).await,
            ws_auth::TicketCheck::Invalid => {
                ApiError::Unauthorized("Invalid or expired WebSocket ticket".into())
            }
            ws_auth::TicketCheck::Absent => ApiError::Unauthorized(
                "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'".into(),
            ),
        }
    };
    // Each API's clients get the error in the shape they parse.
    unauthorized(refusal, req.uri().path())
}

/// Whether the request may see what needs a key: no keys are configured, or it presents one.
pub fn key_ok(app: &AppState, headers: &HeaderMap) -> bool {
    !app.keys.enabled()
        || presented_keys(headers)
            .iter()
            .any(|k| app.keys.authenticate(k).is_ok())
}

/// A 401 in the shape of the API asked, saying how to authenticate (`WWW-Authenticate`).
pub fn unauthorized(err: ApiError, path: &str) -> Response {
    let mut resp = err.response_for_path(path);
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"ccgw\""),
    );
    resp
}

/// The refusal of a request that needs a key and has none that is good.
pub fn key_required(path: &str) -> Response {
    unauthorized(
        ApiError::Unauthorized(
            "Missing or invalid API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
                .into(),
        ),
        path,
    )
}

/// Every key the request presents (empty headers ignored), x-api-key first.
fn presented_keys(h: &HeaderMap) -> Vec<&str> {
    let x_api_key = h
        .get_all("x-api-key")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let bearer = h
        .get_all("authorization")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    x_api_key
        .chain(bearer)
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_header_forms() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(presented_keys(&h), vec!["abc"]);
        h.insert("x-api-key", "xyz".parse().unwrap());
        assert_eq!(presented_keys(&h), vec!["xyz", "abc"]);
        h.insert("x-api-key", "".parse().unwrap());
        assert_eq!(presented_keys(&h), vec!["abc"]);
    }
}
