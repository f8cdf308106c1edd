//! Native API handlers for external MCP servers: the configured ones with their tools
//! (`GET /api/mcp-servers`), and reconnecting or toggling one of a session's
//! (`POST /api/sessions/{id}/mcp/{name}/reconnect|toggle`). Extract, call the domain
//! (`crate::domain::mcp_status`), render. Never touches processes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::handlers::{body, Result};
use crate::http::AppState;

/// `POST …/toggle`: `enabled` sets the state; without it the server's state flips.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
struct Toggle {
    #[serde(default)]
    enabled: Option<bool>,
}

#[utoipa::path(
    get, path = "/api/mcp-servers", tag = "native", operation_id = "mcp_list",
    responses((status = 200, description = "The configured MCP servers, each with what the CLI last reported of it (free JSON: the CLI's own fields)", body = Object))
)]
pub async fn list(State(app): State<AppState>) -> Result<Response> {
    Ok(Json(app.conversations.mcp_servers().await?).into_response())
}

#[utoipa::path(
    post, path = "/api/sessions/{id}/mcp/{name}/reconnect", tag = "native", operation_id = "mcp_reconnect",
    params(("id" = String, Path, description = "The session's id"), ("name" = String, Path, description = "The name (tool, command, agent or MCP server) in the path")),
    responses((status = 200, description = "The server's entry, as `GET /api/sessions/{id}/mcp` shows it (the CLI's own fields)", body = Object))
)]
pub async fn reconnect(
    State(app): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response> {
    Ok(Json(app.conversations.mcp_reconnect(&id, &name).await?).into_response())
}

#[utoipa::path(
    post, path = "/api/sessions/{id}/mcp/{name}/toggle", tag = "native", operation_id = "mcp_toggle",
    params(("id" = String, Path, description = "The session's id"), ("name" = String, Path, description = "The name (tool, command, agent or MCP server) in the path")),
    request_body = Toggle,
    responses((status = 200, description = "The server's entry, as `GET /api/sessions/{id}/mcp` shows it (the CLI's own fields)", body = Object))
)]
pub async fn toggle(
    State(app): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Response> {
    let req: Toggle = body(&bytes)?;
    Ok(Json(
        app.conversations
            .mcp_toggle(&id, &name, req.enabled)
            .await?,
    )
    .into_response())
}
