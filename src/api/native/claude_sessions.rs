//! `/api/claude-sessions`: the machine's own Claude Code sessions (when `claude_sessions_dir`
//! is set): list, view read-only, continue as a native session.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::http::error::{ApiError, NativeError};
use crate::http::AppState;

type Result<T> = std::result::Result<T, NativeError>;

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ContinueSession {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[utoipa::path(
    get, path = "/api/claude-sessions", tag = "admin", operation_id = "claude_sessions_list",
    responses((status = 200, description = "The machine's Claude Code sessions", body = super::types::ClaudeSessionList))
)]
pub async fn list(State(app): State<AppState>) -> Result<Response> {
    let data = app.conversations.list_claude_sessions()?;
    Ok(Json(super::types::ClaudeSessionList { data }).into_response())
}

#[utoipa::path(
    get, path = "/api/claude-sessions/{id}", tag = "admin", operation_id = "claude_sessions_get",
    params(("id" = String, Path, description = "The CLI's own session id")),
    responses((status = 200, description = "The session and its history, read-only", body = super::types::ClaudeSessionView))
)]
pub async fn get(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let (session, history) = app.conversations.claude_session(&id)?;
    Ok(Json(super::types::ClaudeSessionView {
        session,
        history,
        read_only: true,
    })
    .into_response())
}

/// Continue it as a native session (`201` with the session).
#[utoipa::path(
    post, path = "/api/claude-sessions/{id}/continue", tag = "admin", operation_id = "claude_sessions_resume",
    params(("id" = String, Path, description = "The CLI's own session id")),
    request_body = ContinueSession,
    responses((status = 201, description = "The native session that continues it", body = crate::domain::session_table::SessionInfo))
)]
pub async fn resume(
    State(app): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    let req: ContinueSession = if bytes.is_empty() {
        ContinueSession::default()
    } else {
        crate::http::body::parse(&bytes, &crate::http::body::NATIVE)?
    };
    let model_id = req.model.unwrap_or_else(|| "default".into());
    let model = app
        .models
        .resolve(&model_id)
        .ok_or_else(|| ApiError::ModelNotFound(model_id.clone()))?;
    let info = app
        .conversations
        .continue_claude_session(&id, model_id, model.cli_model.clone(), req.title)
        .await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}
