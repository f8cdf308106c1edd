//! The ownership check of every route under `/api/sessions/{id}/...` and of the console: one
//! layer each, applied to a group of routes in the router, so no route can forget it.
//!
//! [`sessions`]: a user key reaches only its own sessions. Another key's session is answered
//! exactly as a missing one is (404, the native error shape, "No session with the id '…'"),
//! so its existence does not leak; an admin key passes. For a user key, an id that is no
//! session gets the same 404 from here too, so the two cannot be told apart even by a request
//! a route would refuse for its input first (an admin's falls through to the route's own 404).
//!
//! [`admin_only`]: the console's routes (every conversation, the live feed, the dashboard's
//! stats, the machine's own Claude Code sessions) need an admin key: a user key gets 403.
//!
//! Must not: decide anything else about the request (policy and limits are other layers), or
//! touch a session: it only asks the domain who owns one.

use std::collections::HashMap;

use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::caller::Caller;
use crate::http::error::{ApiError, NativeError};
use crate::http::AppState;

/// The layer of the session routes (`{id}` is the session).
pub async fn sessions(
    State(app): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    req: Request,
    next: Next,
) -> Response {
    // `auth` puts a caller on every request; without one (a bug) nothing is let through.
    let caller = req.extensions().get::<Caller>();
    if caller.is_some_and(Caller::is_admin) {
        return next.run(req).await;
    }
    let me = caller.map(|c| c.owner.clone());
    let Some(id) = params.get("id") else {
        return next.run(req).await;
    };
    match app.conversations.session_owner(id).await {
        Ok(Some(owner)) if me.as_deref() == Some(owner.as_str()) => next.run(req).await,
        // Another key's session and a missing one get this same answer from here, before any
        // route checks its input (a few do so before they look the session up, and the hook
        // routes word a missing session otherwise): nothing tells them apart.
        Ok(_) => NativeError::from(ApiError::NotFound(format!("No session with the id '{id}'")))
            .into_response(),
        Err(e) => NativeError::from(e).into_response(),
    }
}

/// The layer of the console's routes: admin keys only.
pub async fn admin_only(req: Request, next: Next) -> Response {
    match req.extensions().get::<Caller>() {
        Some(caller) if caller.is_admin() => next.run(req).await,
        _ => NativeError::from(ApiError::Forbidden("This route needs an admin key".into()))
            .into_response(),
    }
}
