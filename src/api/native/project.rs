//! Native API handlers for a session's project: `POST /api/sessions/{id}/project/init` (the
//! CLI's `/init`, answered with the `CLAUDE.md` it wrote) and `PUT
//! /api/sessions/{id}/project/workspace` (move the session to another workspace). Extract, call
//! the domain (`crate::domain::commands`, `memory`, `project`), render. Never touches processes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value;

use super::handlers::{body, collect, Result};
use super::types::{InitAnswer, InitReply, InitTurn};
use crate::domain::commands::CommandRun;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::AppState;

/// `{args?}`: a string added to `/init` (instructions for the model). The reply is the turn's
/// (as a message's) with `claude_md`, the workspace's memory file afterwards; while the turn
/// waits on a permission (Write), `stop_reason` is `permission_required` and `claude_md` null.
#[utoipa::path(
    post, path = "/api/sessions/{id}/project/init", tag = "native", operation_id = "project_init",
    params(("id" = String, Path, description = "The session's id")),
    request_body = super::bodies::InitBody,
    responses((status = 200, description = "The `/init` command's reply, with the memory file it wrote", body = super::types::InitReply))
)]
pub async fn init(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    let v: Value = body(&bytes)?;
    let args = match v.get("args") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(_) => return Err(ApiError::bad_request("args", "args must be a string").into()),
    };
    let run = app
        .conversations
        .run_command(&id, "init", args, caller.label())
        .await?;
    let command = "init".to_string();
    let reply = match run {
        CommandRun::Answer { output, .. } => InitReply::Answer(InitAnswer {
            claude_md: app.conversations.memory(&id).await?,
            session_id: id,
            output,
            command,
        }),
        CommandRun::Turn { handle, .. } => {
            let r = collect(id.clone(), handle).await?;
            let claude_md = if r.stop_reason == "permission_required" {
                None
            } else {
                Some(app.conversations.memory(&id).await?)
            };
            InitReply::Turn(Box::new(InitTurn {
                reply: r,
                command,
                claude_md,
            }))
        }
    };
    Ok(Json(reply).into_response())
}

/// `{path}`: an existing absolute directory inside `workspace_roots`.
#[utoipa::path(
    put, path = "/api/sessions/{id}/project/workspace", tag = "native", operation_id = "project_move_workspace",
    params(("id" = String, Path, description = "The session's id")),
    request_body = super::bodies::WorkspaceBody,
    responses((status = 200, description = "The session, in its new workspace", body = crate::domain::session_table::SessionInfo))
)]
pub async fn move_workspace(
    State(app): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    let v: Value = body(&bytes)?;
    let path = match v.get("path") {
        Some(Value::String(p)) if !p.is_empty() => std::path::PathBuf::from(p),
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request("path", "path is required (a directory)").into())
        }
        Some(_) => return Err(ApiError::bad_request("path", "path must be a string").into()),
    };
    Ok(Json(app.conversations.move_workspace(&id, &path).await?).into_response())
}
