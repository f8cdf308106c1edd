//! Native API handlers for agents (`/api/agents`, `PUT /api/sessions/{id}/agent`): extract,
//! call the domain (`crate::domain::agents`), render. Never touches processes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value;

use super::handlers::{body, Result};
use super::types::AgentBody;
use crate::domain::agents::AgentFields;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::AppState;

fn fields(b: AgentBody) -> AgentFields {
    AgentFields {
        description: b.description,
        prompt: b.prompt,
        tools: b.tools,
        model: b.model,
    }
}

#[utoipa::path(
    get, path = "/api/agents", tag = "native", operation_id = "agents_list",
    responses((status = 200, description = "Every agent: the gateway's and the workspace's", body = super::types::AgentList))
)]
pub async fn list(State(app): State<AppState>) -> Result<Response> {
    let data = app.conversations.list_agents().await?;
    Ok(Json(super::types::AgentList { data }).into_response())
}

#[utoipa::path(
    post, path = "/api/agents", tag = "native", operation_id = "agents_create",
    request_body = super::types::AgentBody,
    responses((status = 201, description = "The agent", body = crate::domain::agents::AgentView))
)]
pub async fn create(State(app): State<AppState>, bytes: Bytes) -> Result<Response> {
    let b: AgentBody = body(&bytes)?;
    let name = b
        .name
        .clone()
        .ok_or_else(|| ApiError::bad_request("name", "name is required"))?;
    for (field, v) in [("description", &b.description), ("prompt", &b.prompt)] {
        if v.is_none() {
            return Err(ApiError::bad_request(field, format!("{field} is required")).into());
        }
    }
    let agent = app.conversations.create_agent(&name, fields(b)).await?;
    Ok((StatusCode::CREATED, Json(agent)).into_response())
}

#[utoipa::path(
    get, path = "/api/agents/{name}/config", tag = "native", operation_id = "agents_config",
    params(("name" = String, Path, description = "The agent's name")),
    responses((status = 200, description = "The agent", body = crate::domain::agents::AgentView))
)]
pub async fn config(State(app): State<AppState>, Path(name): Path<String>) -> Result<Response> {
    Ok(Json(app.conversations.agent(&name).await?).into_response())
}

#[utoipa::path(
    put, path = "/api/agents/{name}/config", tag = "native", operation_id = "agents_update",
    params(("name" = String, Path, description = "The agent's name")),
    request_body = super::types::AgentBody,
    responses((status = 200, description = "The agent, changed", body = crate::domain::agents::AgentView))
)]
pub async fn update(
    State(app): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    let b: AgentBody = body(&bytes)?;
    if b.name.as_ref().is_some_and(|n| n != &name) {
        return Err(ApiError::bad_request("name", "an agent cannot be renamed").into());
    }
    Ok(Json(app.conversations.update_agent(&name, fields(b)).await?).into_response())
}

#[utoipa::path(
    delete, path = "/api/agents/{name}", tag = "native", operation_id = "agents_delete",
    params(("name" = String, Path, description = "The agent's name")),
    responses((status = 204, description = "Done"))
)]
pub async fn delete(State(app): State<AppState>, Path(name): Path<String>) -> Result<StatusCode> {
    app.conversations.delete_agent(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{agent}`: run the session's main thread as this agent from its next turn (`null`: none).
#[utoipa::path(
    put, path = "/api/sessions/{id}/agent", tag = "native", operation_id = "agents_set_session_agent",
    params(("id" = String, Path, description = "The session's id")),
    request_body = super::bodies::AgentChoice,
    responses((status = 200, description = "The session, changed", body = crate::domain::session_table::SessionInfo))
)]
pub async fn set_session_agent(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    let v: Value = body(&bytes)?;
    let agent = match v.get("agent") {
        None => return Err(ApiError::bad_request("agent", "agent is required").into()),
        Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => {
            return Err(
                ApiError::bad_request("agent", "agent must be an agent's name or null").into(),
            )
        }
    };
    crate::domain::policy::check_agent(caller.policy(), agent.as_deref(), "agent")
        .map_err(|d| app.audit.refused(&caller, Some(&id), d))?;
    let info = app.conversations.set_session_agent(&id, agent).await?;
    crate::domain::audit::settings_changed(&app.audit, &caller, &id, "agent", v);
    Ok(Json(info).into_response())
}
