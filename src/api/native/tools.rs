//! Native API tool endpoints: the catalog, a session's tool-call history and tool permissions,
//! direct tool calls and the tool-status WebSocket. Extract, call the domain, render or map the error.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::domain::direct_tools::DirectTool;
use crate::domain::permissions::PermissionsChange;
use crate::domain::tool_calls::{self, ToolCallFilter};
use crate::domain::tool_catalog;
use crate::domain::{audit, policy};
use crate::http::auth::Caller;
use crate::http::error::{ApiError, NativeError};
use crate::http::{ws_auth, AppState};

type Result<T> = std::result::Result<T, NativeError>;

#[utoipa::path(
    get, path = "/api/tools", tag = "native", operation_id = "tools_list",
    responses((status = 200, description = "The tool catalog", body = super::types::ToolList))
)]
pub async fn list(State(app): State<AppState>) -> Json<super::types::ToolList> {
    Json(super::types::ToolList {
        data: tool_catalog::catalog(&app.cfg.builtin_tools),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallsQuery {
    pub tool: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/tool-calls", tag = "native", operation_id = "tools_calls",
    params(("id" = String, Path, description = "The session's id"), CallsQuery),
    responses((status = 200, description = "A page of the session's tool calls, oldest first", body = super::types::ToolCallPage))
)]
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
    Ok(Json(super::types::ToolCallPage { data, next_cursor }).into_response())
}

#[utoipa::path(
    post, path = "/api/sessions/{id}/tools/{name}", tag = "native", operation_id = "tools_call",
    params(("id" = String, Path, description = "The session's id"), ("name" = String, Path, description = "The name (tool, command, agent or MCP server) in the path")),
    request_body(content = Object, description = "A JSON object"),
    responses((status = 200, description = "The tool's result", body = crate::domain::tool_calls::DirectCall))
)]
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
    let tool_name = tool.cli_name();
    policy::check_tool(caller.policy(), tool_name, "name")
        .map_err(|d| app.audit.refused(&caller, Some(&id), d))?;
    let out = app
        .conversations
        .direct_tool(&id, tool, input.clone(), caller.label())
        .await;
    let detail = match &out {
        Ok(c) => json!({"outcome": if c.is_error { "error" } else { "ok" }, "call_id": c.id,
                        "duration_ms": c.duration_ms}),
        Err(e) => json!({"outcome": "refused", "reason": e.to_string()}),
    };
    app.audit
        .record(audit::tool_call(&id, tool_name, "direct", &input, detail).by(&caller));
    Ok(Json(out?).into_response())
}

/// Only tool-call status: started, permission requested and decided, result, duration.
#[utoipa::path(
    get, path = "/api/sessions/{id}/tools/stream", tag = "native", operation_id = "tools_stream",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 101, description = "Switching Protocols: a WebSocket"))
)]
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
    mut events: broadcast::Receiver<crate::domain::stamp::Stamped>,
    mut decisions: broadcast::Receiver<Value>,
) {
    let mut started = HashMap::new();
    loop {
        let frame = tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => match tool_calls::status_frame(&ev.event, &mut started) {
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

const PERMISSION_LISTS: [&str; 3] = ["tools", "allowed_tools", "denied_tools"];

/// One of the permission lists: absent, or a list of tool names (a bad entry is named by its
/// index, e.g. `allowed_tools[2]`).
fn tool_list(v: &Value, key: &str) -> std::result::Result<Option<Vec<String>>, ApiError> {
    let Some(list) = v.get(key) else {
        return Ok(None);
    };
    let items = list
        .as_array()
        .ok_or_else(|| ApiError::bad_request(key, format!("{key} must be a list of tool names")))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let name = item
            .as_str()
            .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| {
                ApiError::bad_request(
                    format!("{key}[{i}]"),
                    format!(
                        "{key}[{i}] must be a built-in tool's name, such as \"Read\" (rules with \
                         a specifier, like Bash(git:*), are not supported)"
                    ),
                )
            })?;
        out.push(name.to_string());
    }
    Ok(Some(out))
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/tool-permissions", tag = "native", operation_id = "tools_permissions",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200, description = "The session's tool permissions", body = crate::domain::permissions::ToolPermissions))
)]
pub async fn permissions(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(app.conversations.tool_permissions(&id).await?).into_response())
}

/// `{tools?, allowed_tools?, denied_tools?}`: each given list replaces the session's.
#[utoipa::path(
    put, path = "/api/sessions/{id}/tool-permissions", tag = "native", operation_id = "tools_put_permissions",
    params(("id" = String, Path, description = "The session's id")),
    request_body = super::bodies::ToolPermissionsBody,
    responses((status = 200, description = "The session's tool permissions, changed", body = crate::domain::permissions::ToolPermissions))
)]
pub async fn put_permissions(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    let v: Value = crate::http::body::parse(&bytes, &crate::http::body::NATIVE)?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("", "the body must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| !PERMISSION_LISTS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            k.as_str(),
            format!(
                "'{k}' is not a tool permission; give {}",
                PERMISSION_LISTS.join(", ")
            ),
        )
        .into());
    }
    let change = PermissionsChange {
        tools: tool_list(&v, "tools")?,
        allowed_tools: tool_list(&v, "allowed_tools")?,
        denied_tools: tool_list(&v, "denied_tools")?,
    };
    for (list, param) in [
        (&change.tools, "tools"),
        (&change.allowed_tools, "allowed_tools"),
    ] {
        if let Some(list) = list {
            policy::check_tools(caller.policy(), list, param)
                .map_err(|d| app.audit.refused(&caller, Some(&id), d))?;
        }
    }
    let out = app.conversations.set_tool_permissions(&id, change).await?;
    audit::settings_changed(&app.audit, &caller, &id, "tool_permissions", v);
    Ok(Json(out).into_response())
}
