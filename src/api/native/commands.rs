//! Native API handlers for slash commands: `GET /api/commands`, `GET /api/sessions/{id}/commands`
//! and `POST /api/sessions/{id}/commands/{name}` (JSON or SSE). Extract, call the domain
//! (`crate::domain::commands`), render. Never touches processes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value;

use super::handlers::{body, collect, sse, turn_events, Result};
use super::types::{CommandAnswer, CommandReply, CommandTurn};
use crate::domain::commands::CommandRun;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::AppState;

#[utoipa::path(
    get, path = "/api/commands", tag = "native", operation_id = "commands_list",
    responses((status = 200, description = "Every slash command: the CLI's and the workspace's", body = super::types::CommandList))
)]
pub async fn list(State(app): State<AppState>) -> Result<Response> {
    let data = app.conversations.list_commands().await?;
    Ok(Json(super::types::CommandList { data }).into_response())
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/commands", tag = "native", operation_id = "commands_session_list",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200, description = "The commands of the session's workspace", body = super::types::CommandList))
)]
pub async fn session_list(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let data = app.conversations.session_commands(&id).await?;
    Ok(Json(super::types::CommandList { data }).into_response())
}

/// `{args?: string | [string], stream?: bool}`.
#[utoipa::path(
    post, path = "/api/sessions/{id}/commands/{name}", tag = "native", operation_id = "commands_run",
    params(("id" = String, Path, description = "The session's id"), ("name" = String, Path, description = "The name (tool, command, agent or MCP server) in the path")),
    request_body = super::bodies::CommandBody,
    responses((status = 200, description = "The command's reply; with `stream: true`, SSE: a `command_result` event, or the turn's events",
        content((super::types::CommandReply = "application/json"), (String = "text/event-stream"))))
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
            let reply = CommandReply::Answer(CommandAnswer {
                command,
                output,
                structured,
                session_id: id,
            });
            if stream {
                let s = futures::stream::once(async move {
                    Ok::<_, std::convert::Infallible>(
                        SseEvent::default()
                            .event("command_result")
                            .json_data(&reply)
                            .unwrap_or_default(),
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
                Some("cost") => serde_json::to_value(app.conversations.session_cost(&id).await?)
                    .unwrap_or(Value::Null),
                Some("compact") => r.compact.clone().unwrap_or(Value::Null),
                _ => Value::Null,
            };
            let output = if r.result_text.is_empty() {
                r.text.clone()
            } else {
                r.result_text.clone()
            };
            Ok(Json(CommandReply::Turn(Box::new(CommandTurn {
                reply: r,
                command,
                output,
                structured,
            })))
            .into_response())
        }
    }
}
