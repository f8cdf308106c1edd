//! Native API tool endpoints: the catalog, a session's tool-call history, direct tool calls and
//! the tool-status WebSocket. Extract, call the domain, render or map the error.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::claude::Event;
use crate::domain::direct_tools::DirectTool;
use crate::domain::tool_calls::{self, ToolCallFilter};
use crate::domain::tool_catalog;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, NativeError};
use crate::http::{ws_auth, AppState};

type Result<T> = std::result::Result<T, NativeError>;

pub async fn list(State(app): State<AppState>) -> Json<Value> {
    Json(json!({"data": tool_catalog::catalog(&app.cfg.builtin_tools)}))
}

#[derive(Debug, Deserialize)]
pub struct CallsQuery {
    pub tool: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

pub async fn calls(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CallsQuery>,
) -> Result<Response> {
    let after = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c
            .parse()
            .map_err(|_| ApiError::bad_request("cursor", "cursor must be a next_cursor value"))?,
    };
    let filter = ToolCallFilter {
        tool: q.tool,
        after,
        limit: q.limit.unwrap_or(50),
    };
    let (data, next_cursor) = app.conversations.tool_calls(&id, &filter).await?;
    Ok(Json(json!({"data": data, "next_cursor": next_cursor})).into_response())
}

pub async fn call(
    State(app): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    let tool = DirectTool::from_url(&name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "No direct tool '{name}'; expected read, glob, grep, search, edit, write or bash"
        ))
    })?;
    let input: Value = crate::http::body::parse(&bytes, &crate::http::body::NATIVE)?;
    let out = app
        .conversations
        .direct_tool(&id, tool, input, caller.label())
        .await?;
    Ok(Json(out).into_response())
}

/// Only tool-call status: started, permission requested and decided, result, duration.
pub async fn stream(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    let (events, decisions) = app.conversations.watch_tools(&id).await?;
    Ok(ws
        .protocols([ws_auth::PROTOCOL])
        .on_upgrade(move |socket| serve(socket, events, decisions)))
}

async fn serve(
    mut socket: WebSocket,
    mut events: broadcast::Receiver<Event>,
    mut decisions: broadcast::Receiver<Value>,
) {
    let mut started = HashMap::new();
    loop {
        let frame = tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => match tool_calls::status_frame(&ev, &mut started) {
                    Some(f) => f,
                    None => continue,
                },
                Err(broadcast::error::RecvError::Lagged(n)) => json!({"type": "lagged", "skipped": n}),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            d = decisions.recv() => match d {
                Ok(f) => f,
                Err(broadcast::error::RecvError::Lagged(n)) => json!({"type": "lagged", "skipped": n}),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
        };
        if socket
            .send(WsMessage::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
}
