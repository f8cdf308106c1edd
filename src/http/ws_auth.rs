//! Who a request is, as the domain may know it, and how a browser's WebSocket proves it.
//!
//! Browsers cannot set headers on a WebSocket, so a WebSocket upgrade may present the key in
//! two other ways (and never in the query string, where logs and histories keep it):
//! - in `Sec-WebSocket-Protocol`: the client offers `["ccgw", "ccgw.bearer.<key>"]` and the
//!   server selects `ccgw` ([`PROTOCOL`]);
//! - with a ticket from an authenticated `POST /api/ws-tickets` (`{ticket, expires_in}`),
//!   used once as `?ticket=` within [`TICKET_TTL`].
//!
//! A ticket carries the [`Caller`] that asked for it to the WebSocket it opens.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::http::caller::Caller;
use crate::http::AppState;

/// The subprotocol the server selects.
pub const PROTOCOL: &str = "ccgw";
/// The prefix of the subprotocol that carries the key.
const BEARER_PREFIX: &str = "ccgw.bearer.";
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// Unredeemed tickets kept at most (older ones go first).
const MAX_TICKETS: usize = 10_000;

/// Single-use tickets for browser WebSockets.
#[derive(Default)]
pub struct Tickets {
    issued: Mutex<HashMap<String, (Caller, Instant)>>,
}

impl Tickets {
    pub fn issue(&self, key: Caller) -> String {
        let ticket = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.retain(|_, (_, at)| at.elapsed() < TICKET_TTL);
        if issued.len() >= MAX_TICKETS {
            if let Some(oldest) = issued
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(t, _)| t.clone())
            {
                issued.remove(&oldest);
            }
        }
        issued.insert(ticket.clone(), (key, Instant::now()));
        ticket
    }

    /// Use a ticket up: `Some(key)` when it was valid.
    pub fn redeem(&self, ticket: &str) -> Option<Caller> {
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        match issued.remove(ticket) {
            Some((key, at)) if at.elapsed() < TICKET_TTL => Some(key),
            _ => None,
        }
    }
}

fn is_websocket(h: &HeaderMap) -> bool {
    h.get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The key a WebSocket upgrade carries in `Sec-WebSocket-Protocol`.
pub fn protocol_key(h: &HeaderMap) -> Option<String> {
    if !is_websocket(h) {
        return None;
    }
    h.get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix(BEARER_PREFIX))
        .filter(|k| !k.is_empty())
        .map(String::from)
}

/// How a request without a key header fared with a ticket.
pub enum TicketCheck {
    /// None presented (or not a WebSocket upgrade).
    Absent,
    Valid,
    Invalid,
}

/// Redeem the `?ticket=` of a WebSocket upgrade; a valid one marks the request with its key.
pub fn redeem_ticket(app: &AppState, req: &mut Request) -> TicketCheck {
    if !is_websocket(req.headers()) {
        return TicketCheck::Absent;
    }
    let Some(ticket) = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("ticket="))
            .map(String::from)
    }) else {
        return TicketCheck::Absent;
    };
    match app.ws_tickets.redeem(&ticket) {
        Some(caller) => {
            req.extensions_mut().insert(caller);
            TicketCheck::Valid
        }
        None => TicketCheck::Invalid,
    }
}

/// A ticket: the upgrade's `?ticket=`, good for one connection within `expires_in` seconds.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Ticket {
    pub ticket: String,
    pub expires_in: u64,
}

/// `POST /api/ws-tickets`: a ticket for one WebSocket connection.
#[utoipa::path(
    post, path = "/api/ws-tickets", tag = "native", operation_id = "create_ticket",
    responses((status = 201, description = "A single-use ticket for a browser's WebSocket", body = Ticket))
)]
pub async fn create_ticket(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let ticket = app.ws_tickets.issue(caller);
    (
        axum::http::StatusCode::CREATED,
        Json(Ticket {
            ticket,
            expires_in: TICKET_TTL.as_secs(),
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws_headers(protocols: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("sec-websocket-protocol", protocols.parse().unwrap());
        h
    }

    #[test]
    fn the_key_rides_in_the_subprotocol_of_an_upgrade_only() {
        assert_eq!(
            protocol_key(&ws_headers("ccgw, ccgw.bearer.secret-key-1")).as_deref(),
            Some("secret-key-1")
        );
        assert_eq!(protocol_key(&ws_headers("ccgw")), None);
        let mut plain = HeaderMap::new();
        plain.insert(
            "sec-websocket-protocol",
            "ccgw.bearer.secret-key-1".parse().unwrap(),
        );
        assert_eq!(protocol_key(&plain), None, "not a WebSocket upgrade");
    }

    #[test]
    fn tickets_are_single_use() {
        let t = Tickets::default();
        let ticket = t.issue(Caller::of_static_key("secret-key-1"));
        assert!(ticket.len() >= 64);
        assert_eq!(
            t.redeem(&ticket),
            Some(Caller::of_static_key("secret-key-1"))
        );
        assert_eq!(t.redeem(&ticket), None);
        assert_eq!(t.redeem("made-up"), None);
    }
}
