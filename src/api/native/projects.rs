//! `/api/projects`: projects, the defaults of the sessions made in them, and their owners (see
//! `domain::projects`). Also how a session's create request takes its project's defaults: what
//! the request leaves out, the project fills in; what it says wins.
//!
//! Must not: decide who may see a project (the domain does) or touch a session.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::handlers::{body, Result};
use super::types::CreateSession;
use crate::domain::projects::{change_of, Project};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::AppState;

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectQuery {
    /// An admin's filter: only this key's projects.
    pub owner: Option<String>,
}

#[utoipa::path(
    post, path = "/api/projects", tag = "native", operation_id = "projects_create",
    request_body = super::bodies::ProjectBody,
    responses((status = 201, description = "The project", body = crate::domain::projects::Project))
)]
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    let b: Map<String, Value> = body(&bytes)?;
    let change = change_of(&b).map_err(ApiError::from)?;
    let p = app.conversations.create_project(&caller, change).await?;
    Ok((StatusCode::CREATED, Json(p)).into_response())
}

#[utoipa::path(
    get, path = "/api/projects", tag = "native", operation_id = "projects_list",
    params(ProjectQuery),
    responses((status = 200, description = "The caller's projects (an admin's: every project, or one key's)", body = super::types::ProjectList))
)]
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ProjectQuery>,
) -> Result<Response> {
    let data = app
        .conversations
        .list_projects(&caller, q.owner.as_deref())
        .await?;
    Ok(Json(super::types::ProjectList { data }).into_response())
}

#[utoipa::path(
    get, path = "/api/projects/{id}", tag = "native", operation_id = "projects_get",
    params(("id" = String, Path, description = "The project's id")),
    responses((status = 200, description = "The project", body = crate::domain::projects::Project))
)]
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(Json(app.conversations.project(&caller, &id).await?).into_response())
}

#[utoipa::path(
    patch, path = "/api/projects/{id}", tag = "native", operation_id = "projects_update",
    params(("id" = String, Path, description = "The project's id")),
    request_body = super::bodies::ProjectBody,
    responses((status = 200, description = "The project, changed", body = crate::domain::projects::Project))
)]
pub async fn update(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    let b: Map<String, Value> = body(&bytes)?;
    let change = change_of(&b).map_err(ApiError::from)?;
    let p = app
        .conversations
        .update_project(&caller, &id, change)
        .await?;
    Ok(Json(p).into_response())
}

#[utoipa::path(
    delete, path = "/api/projects/{id}", tag = "native", operation_id = "projects_delete",
    params(("id" = String, Path, description = "The project's id")),
    responses((status = 204, description = "Done"))
)]
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    app.conversations.delete_project(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A session's create request with its project's defaults in what it leaves out.
pub(super) fn with_defaults(mut req: CreateSession, p: &Project) -> CreateSession {
    let d = &p.defaults;
    req.workspace = req.workspace.or_else(|| d.workspace.clone());
    req.model = req.model.or_else(|| d.model.clone());
    req.agent = req.agent.or_else(|| d.agent.clone());
    req.tools = req.tools.or_else(|| d.tools.clone());
    req.permission_mode = req.permission_mode.or_else(|| d.permission_mode.clone());
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::projects::ProjectDefaults;

    #[test]
    fn explicit_fields_win_over_defaults() {
        let p = Project {
            id: "proj_1".into(),
            name: "p".into(),
            description: String::new(),
            defaults: ProjectDefaults {
                model: Some("haiku".into()),
                tools: Some(vec!["Read".into()]),
                permission_mode: Some("plan".into()),
                ..Default::default()
            },
            owner: String::new(),
            created_at: String::new(),
            updated_at: String::new(),
        };
        let req = CreateSession {
            model: Some("sonnet".into()),
            tools: Some(vec![]),
            ..Default::default()
        };
        let r = with_defaults(req, &p);
        assert_eq!(r.model.as_deref(), Some("sonnet"));
        assert_eq!(
            r.tools,
            Some(vec![]),
            "an explicit empty list is not filled"
        );
        assert_eq!(r.permission_mode.as_deref(), Some("plan"));
        assert_eq!(r.agent, None);
    }
}
