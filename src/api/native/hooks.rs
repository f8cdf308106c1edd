//! Native API hook endpoints: a session's subscriptions (`/api/sessions/{id}/hooks`) and the
//! answers to its waiting decide requests. Extract, call the domain, render or map the error.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::handlers::{body, Result};
use crate::domain::hooks::{HookAnswer, HookSpec};
use crate::http::auth::Caller;
use crate::http::AppState;

/// `{event, matcher?, mode, url?, timeout_secs?, default?}` → the subscription, 201.
#[utoipa::path(
    post, path = "/api/sessions/{id}/hooks", tag = "native", operation_id = "hooks_subscribe",
    params(("id" = String, Path, description = "The session's id")),
    request_body = crate::domain::hooks::HookSpec,
    responses((status = 201, description = "The subscription", body = crate::domain::hooks::Subscription))
)]
pub async fn subscribe(
    State(app): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    let spec: HookSpec = body(&bytes)?;
    let sub = app.conversations.subscribe_hook(&id, spec).await?;
    Ok((StatusCode::CREATED, Json(sub)).into_response())
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/hooks", tag = "native", operation_id = "hooks_list",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200, description = "The session's subscriptions and the decide requests waiting for an answer", body = crate::domain::hooks::hub::HookList))
)]
pub async fn list(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(app.conversations.hooks_of(&id).await?).into_response())
}

#[utoipa::path(
    delete, path = "/api/sessions/{id}/hooks/{hook_id}", tag = "native", operation_id = "hooks_remove",
    params(("id" = String, Path, description = "The session's id"), ("hook_id" = String, Path, description = "The hook subscription's id")),
    responses((status = 200, description = "The subscription is gone", body = super::types::Deleted))
)]
pub async fn remove(
    State(app): State<AppState>,
    Path((id, hook_id)): Path<(String, String)>,
) -> Result<Response> {
    app.conversations.unsubscribe_hook(&id, &hook_id).await?;
    Ok(Json(super::types::Deleted {
        deleted: true,
        id: hook_id,
    })
    .into_response())
}

/// The CLI's hook output fields, flat or in `hookSpecificOutput`.
#[utoipa::path(
    post, path = "/api/sessions/{id}/hooks/requests/{request_id}", tag = "native", operation_id = "hooks_answer",
    params(("id" = String, Path, description = "The session's id"), ("request_id" = String, Path, description = "The pending request's id")),
    request_body = crate::domain::hooks::HookAnswer,
    responses((status = 200, description = "The decision reached the waiting hook", body = crate::domain::hooks::hub::HookDecision))
)]
pub async fn answer(
    State(app): State<AppState>,
    Path((id, request_id)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    let a: HookAnswer = body(&bytes)?;
    let out = app
        .conversations
        .answer_hook(
            &id,
            &request_id,
            a,
            caller.label().as_deref().unwrap_or("client"),
        )
        .await?;
    Ok(Json(out).into_response())
}
