//! Native API handlers for slash commands: `GET /api/commands`, `GET /api/sessions/{id}/commands`
//! and `POST /api/sessions/{id}/commands/{name}` (JSON or SSE). Extract, call the domain
//! (`crate::domain::commands`), render. Never touches processes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::handlers::{body, collect, sse, turn_events, Result};
use crate::domain::commands::CommandRun;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::AppState;

#[utoipa::path(
    get, path = "/api/commands", tag = "native", operation_id = "commands_list",
    responses((status = 200, description = "OK", body = Object))
)]
pub async fn list(State(app): State<AppState>) -> Result<Response> {
    Ok(Json(json!({"data": app.conversations.list_commands().await?})).into_response())
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/commands", tag = "native", operation_id = "commands_session_list",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200, description = "OK", body = Object))
)]
pub async fn session_list(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(json!({"data": app.conversations.session_commands(&id).await?})).into_response())
}

/// `{args?: string | [string], stream?: bool}`.
#[utoipa::path(
    post, path = "/api/sessions/{id}/commands/{name}", tag = "native", operation_id = "commands_run",
    params(("id" = String, Path, description = "The session's id"), ("name" = String, Path, description = "The name (tool, command, agent or MCP server) in the path")),
    request_body(content = Object, description = "A JSON object"),
    responses((status = 200, description = "OK", body = Object))
)]
pub async fn run(
    State(app): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    let v: Value = body(&bytes)?;
    let args = match v.get("args") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => s.split_whitespace().map(String::from).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str().map(String::from).ok_or_else(|| {
                    ApiError::bad_request(format!("args[{i}]"), "each argument must be a string")
                })
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(_) => {
            return Err(
                ApiError::bad_request("args", "args must be a string or a list of strings").into(),
            )
        }
    };
    let stream = match v.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad_request("stream", "stream must be a boolean").into()),
    };
    let command = name.trim_start_matches('/').to_string();
    let run = app
        .conversations
        .run_command(&id, &command, args, caller.label())
        .await?;
    match run {
        CommandRun::Answer { output, structured } => {
            let reply = json!({"command": command, "output": output, "structured": structured, "session_id": id});
            if stream {
                let s = futures::stream::once(async move {
                    Ok::<_, std::convert::Infallible>(
                        SseEvent::default()
                            .event("command_result")
                            .data(reply.to_string()),
                    )
                });
                return Ok(sse(s).into_response());
            }
            Ok(Json(reply).into_response())
        }
        CommandRun::Turn { handle, structured } => {
            if stream {
                return Ok(sse(turn_events(id, handle)).into_response());
            }
            let r = collect(id.clone(), handle).await?;
            let structured = match structured {
                _ if r.stop_reason == "permission_required" => Value::Null,
                Some("context") => app.conversations.context_usage(&id).await?,
                Some("cost") => app.conversations.session_cost(&id).await?,
                Some("compact") => r.compact.clone().unwrap_or(Value::Null),
                _ => Value::Null,
            };
            let output = if r.result_text.is_empty() {
                r.text.clone()
            } else {
                r.result_text.clone()
            };
            let mut reply = serde_json::to_value(&r).unwrap_or_else(|_| json!({}));
            reply["command"] = json!(command);
            reply["output"] = json!(output);
            reply["structured"] = structured;
            Ok(Json(reply).into_response())
        }
    }
}
