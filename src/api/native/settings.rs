//! Native API handlers for a session's run-time settings and what its process reports:
//! `PATCH /api/sessions/{id}`, its context, thinking, context usage, cost, MCP status,
//! `resume` and stopping a subagent task. Extract, call the domain
//! (`crate::domain::settings`), render. Never touches processes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value;

use super::handlers::{body, Result};
use crate::domain::settings::{SessionPatch, Thinking};
use crate::domain::{audit, policy};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::AppState;

/// A string field: absent, null or a string.
fn text(v: &Value, k: &str) -> std::result::Result<Option<Option<String>>, ApiError> {
    match v.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(ApiError::bad_request(k, format!("{k} must be a string"))),
    }
}

fn thinking(v: &Value, k: &str) -> std::result::Result<Thinking, ApiError> {
    serde_json::from_value(v.clone()).map_err(|e| {
        ApiError::bad_request(
            k,
            format!("{k} must be {{\"type\": \"enabled\"|\"disabled\"|\"adaptive\", \"budget_tokens\"?}}: {e}"),
        )
    })
}

const PATCHABLE: &[&str] = &[
    "model",
    "permission_mode",
    "title",
    "thinking",
    "effort",
    "max_turns",
];

#[utoipa::path(
    patch, path = "/api/sessions/{id}", tag = "native", operation_id = "settings_patch_session",
    params(("id" = String, Path, description = "The session's id")),
    request_body = super::bodies::SessionPatchBody,
    responses((status = 200, description = "The session, changed", body = crate::domain::session_table::SessionInfo))
)]
pub async fn patch_session(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    let v: Value = body(&bytes)?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("", "the body must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| !PATCHABLE.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            k.as_str(),
            format!(
                "'{k}' cannot be changed here; settable: {}",
                PATCHABLE.join(", ")
            ),
        )
        .into());
    }
    let max_turns = match v.get("max_turns") {
        None => None,
        Some(n) => Some(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("max_turns", "max_turns must be a positive integer")
                })?,
        ),
    };
    let patch = SessionPatch {
        model: text(&v, "model")?.flatten(),
        permission_mode: text(&v, "permission_mode")?.flatten(),
        title: text(&v, "title")?.flatten(),
        effort: text(&v, "effort")?.flatten(),
        thinking: v
            .get("thinking")
            .map(|t| thinking(t, "thinking"))
            .transpose()?,
        max_turns,
    };
    let refused = |d| app.audit.refused(&caller, Some(&id), d);
    if let Some(m) = &patch.model {
        policy::check_model(caller.policy(), &app.models.current(), m, "model").map_err(refused)?;
    }
    if let Some(m) = &patch.permission_mode {
        policy::permission_mode(caller.policy(), Some(m), "permission_mode").map_err(refused)?;
    }
    let info = app.conversations.patch_session(&id, patch).await?;
    audit::settings_changed(&app.audit, &caller, &id, "settings", v);
    Ok(Json(info).into_response())
}

/// `{system_prompt?, append_system_prompt?}`; `null` removes one.
#[utoipa::path(
    put, path = "/api/sessions/{id}/context", tag = "native", operation_id = "settings_put_context",
    params(("id" = String, Path, description = "The session's id")),
    request_body = super::bodies::ContextBody,
    responses((status = 200, description = "The session, changed", body = crate::domain::session_table::SessionInfo))
)]
pub async fn put_context(
    State(app): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    let v: Value = body(&bytes)?;
    let (sp, ap) = (
        text(&v, "system_prompt")?,
        text(&v, "append_system_prompt")?,
    );
    if sp.is_none() && ap.is_none() {
        return Err(ApiError::bad_request(
            "system_prompt",
            "give system_prompt, append_system_prompt or both",
        )
        .into());
    }
    Ok(Json(app.conversations.set_context(&id, sp, ap).await?).into_response())
}

#[utoipa::path(
    post, path = "/api/sessions/{id}/thinking", tag = "native", operation_id = "settings_post_thinking",
    params(("id" = String, Path, description = "The session's id")),
    request_body = crate::domain::settings::Thinking,
    responses((status = 200, description = "The session, changed", body = crate::domain::session_table::SessionInfo))
)]
pub async fn post_thinking(
    State(app): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    let v: Value = body(&bytes)?;
    if v.get("type").is_none() {
        return Err(ApiError::bad_request("type", "type is required").into());
    }
    let t = thinking(&v, "type")?;
    Ok(Json(app.conversations.set_thinking(&id, t).await?).into_response())
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/context-usage", tag = "native", operation_id = "settings_context_usage",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200, description = "The CLI's own `get_context_usage` answer, as its version writes it", body = Object))
)]
pub async fn context_usage(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(Json(app.conversations.context_usage(&id).await?).into_response())
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/cost", tag = "native", operation_id = "settings_cost",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200, description = "The session's cost, tokens and turns, in all and by model", body = crate::domain::settings::SessionCost))
)]
pub async fn cost(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(app.conversations.session_cost(&id).await?).into_response())
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/mcp", tag = "native", operation_id = "settings_mcp",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200, description = "`{session_id, mcpServers}`: the CLI's MCP status entries, as it writes them", body = Object))
)]
pub async fn mcp(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(app.conversations.session_mcp(&id).await?).into_response())
}

#[utoipa::path(
    post, path = "/api/sessions/{id}/resume", tag = "native", operation_id = "settings_resume",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200, description = "The session, with a live process", body = crate::domain::session_table::SessionInfo))
)]
pub async fn resume(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(app.conversations.resume_session(&id).await?).into_response())
}

#[utoipa::path(
    post, path = "/api/sessions/{id}/tasks/{task_id}/stop", tag = "native", operation_id = "settings_stop_task",
    params(("id" = String, Path, description = "The session's id"), ("task_id" = String, Path, description = "The background task's id")),
    responses((status = 200, description = "The task was stopped", body = super::types::TaskStopped))
)]
pub async fn stop_task(
    State(app): State<AppState>,
    Path((id, task_id)): Path<(String, String)>,
) -> Result<Response> {
    app.conversations.stop_task(&id, &task_id).await?;
    Ok(Json(super::types::TaskStopped {
        stopped: true,
        task_id,
    })
    .into_response())
}
