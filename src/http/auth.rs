//! Optional static API keys: `Authorization: Bearer <key>` or `x-api-key: <key>`. Refusals come
//! in the error shape of the API asked (Anthropic for `/v1/messages*`, else OpenAI).
//! Off when no key is configured. Keys are compared in constant time and never logged.
//!
//! A browser cannot set headers on a WebSocket, so a WebSocket upgrade may instead carry the
//! key as a subprotocol (`Sec-WebSocket-Protocol: ccgw, ccgw.bearer.<key>`) or a short-lived,
//! single-use ticket from `POST /api/ws-tickets` (`?ticket=…`). A key never goes in a URL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};

use crate::http::error::{ApiError, NativeError};
use crate::http::AppState;

/// The subprotocol a browser offers to be answered with (the key is never echoed back).
pub const WS_PROTOCOL: &str = "ccgw";
/// The subprotocol that carries a key: `ccgw.bearer.<key>`.
pub const WS_BEARER_PREFIX: &str = "ccgw.bearer.";
/// How long a WebSocket ticket stays good.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

pub async fn require_key(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if app.cfg.api_keys.is_empty() {
        return next.run(req).await;
    }
    let valid = |k: &str| {
        app.cfg
            .api_keys
            .iter()
            .any(|v| ct_eq(v.as_bytes(), k.as_bytes()))
    };
    let upgrade = is_websocket_upgrade(req.headers());
    let mut keys = presented_keys(req.headers());
    if upgrade {
        keys.extend(subprotocol_keys(req.headers()));
    }
    let ticket = upgrade.then(|| query_ticket(req.uri().query())).flatten();
    // Any one good credential lets the request through: a stale x-api-key next to a good
    // bearer (some SDKs send both) must not lock it out.
    if keys.iter().any(|k| valid(k)) || ticket.as_deref().is_some_and(|t| app.tickets.redeem(t)) {
        return next.run(req).await;
    }
    let refusal = if keys.is_empty() && ticket.is_none() {
        ApiError::Unauthorized(
            "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'".into(),
        )
    } else {
        ApiError::Unauthorized("Invalid API key".into())
    };
    // Each API's clients get the error in the shape they parse.
    refusal.response_for_path(req.uri().path())
}

/// `POST /api/ws-tickets`: a ticket that authenticates one WebSocket upgrade within
/// [`TICKET_TTL`].
pub async fn issue_ws_ticket(State(app): State<AppState>) -> Result<Json<Value>, NativeError> {
    let ticket = app.tickets.issue();
    Ok(Json(
        json!({"ticket": ticket, "expires_in": TICKET_TTL.as_secs()}),
    ))
}

/// Every non-empty key the request's headers carry.
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

fn is_websocket_upgrade(h: &HeaderMap) -> bool {
    h.get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The offered subprotocols, in order.
pub fn subprotocols(h: &HeaderMap) -> impl Iterator<Item = &str> {
    h.get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

fn subprotocol_keys(h: &HeaderMap) -> impl Iterator<Item = &str> {
    subprotocols(h).filter_map(|p| p.strip_prefix(WS_BEARER_PREFIX))
}

fn query_ticket(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("ticket="))
        .map(String::from)
}

/// WebSocket tickets: random, single use, short-lived, kept in memory.
#[derive(Default)]
pub struct Tickets {
    issued: Mutex<HashMap<String, Instant>>,
}

impl Tickets {
    pub fn issue(&self) -> String {
        let ticket = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut issued = self.lock();
        issued.retain(|_, at| at.elapsed() < TICKET_TTL);
        issued.insert(ticket.clone(), Instant::now());
        ticket
    }

    /// True once for a ticket issued within its lifetime.
    pub fn redeem(&self, ticket: &str) -> bool {
        self.lock()
            .remove(ticket)
            .is_some_and(|at| at.elapsed() < TICKET_TTL)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.issued.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_key_form() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(presented_keys(&h), vec!["abc"]);
        h.insert("x-api-key", "".parse().unwrap());
        assert_eq!(
            presented_keys(&h),
            vec!["abc"],
            "an empty x-api-key is no key"
        );
        h.insert("x-api-key", "xyz".parse().unwrap());
        assert_eq!(presented_keys(&h), vec!["xyz", "abc"]);
        h.insert(
            "sec-websocket-protocol",
            "ccgw, ccgw.bearer.k-123".parse().unwrap(),
        );
        assert_eq!(subprotocol_keys(&h).collect::<Vec<_>>(), vec!["k-123"]);
        assert_eq!(query_ticket(Some("a=1&ticket=t9")).as_deref(), Some("t9"));
        assert!(ct_eq(b"same", b"same"));
        assert!(!ct_eq(b"same", b"diff"));
        assert!(!ct_eq(b"same", b"samer"));
    }

    #[test]
    fn tickets_are_single_use() {
        let t = Tickets::default();
        let a = t.issue();
        assert!(t.redeem(&a));
        assert!(!t.redeem(&a));
        assert!(!t.redeem("made-up"));
    }
}
