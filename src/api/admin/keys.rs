//! `/admin/api/keys`: API keys for an admin key. Creating and rotating answer with the secret,
//! the only time it is shown. Must not: keep or log a secret.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;

use crate::domain::audit::{self, kind};
use crate::domain::tenants::{NewKey, Role};
use crate::http::auth::Caller;
use crate::http::error::{ApiError, NativeError};
use crate::http::AppState;

type Result<T> = std::result::Result<T, NativeError>;

/// Only an admin key manages keys. A user key is told the route needs an admin, not that it is
/// missing: the route exists for every deployment.
pub(crate) fn admin_only(caller: &Caller) -> std::result::Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden("This route needs an admin key".into()))
    }
}

/// `GET /admin/api/keys`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub data: Vec<crate::domain::tenants::KeyInfo>,
}

#[utoipa::path(
    get, path = "/admin/api/keys", tag = "admin", operation_id = "admin_keys_list",
    responses((status = 200, description = "Every key (never a secret)", body = KeyList))
)]
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    admin_only(&caller)?;
    let data = app.keys.list().await?;
    Ok(Json(KeyList { data }).into_response())
}

#[utoipa::path(
    post, path = "/admin/api/keys", tag = "admin", operation_id = "admin_keys_create",
    request_body = crate::domain::tenants::NewKey,
    responses((status = 201, description = "The key, with its secret: the only time it is shown", body = crate::domain::tenants::IssuedKey))
)]
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    admin_only(&caller)?;
    let new: NewKey = crate::http::body::parse(&bytes, &crate::http::body::NATIVE)?;
    // The first key turns authentication on: were it a user key, nobody could manage keys.
    if !app.keys.enabled() && new.role != Some(Role::Admin) {
        return Err(ApiError::bad_request(
            "role",
            "The gateway has no keys yet: the first key must be an admin key (\"role\": \"admin\")",
        )
        .into());
    }
    let issued = app.keys.create(new).await?;
    tracing::info!(key = %issued.key.id, name = %issued.key.name, by = ?caller.label(), "API key created");
    audit::key_event(&app.audit, kind::KEY_CREATED, Some(&caller), &issued.key);
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

#[utoipa::path(
    get, path = "/admin/api/keys/{id}", tag = "admin", operation_id = "admin_keys_get",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "The key", body = crate::domain::tenants::KeyInfo))
)]
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response> {
    admin_only(&caller)?;
    Ok(Json(app.keys.get(&id).await?).into_response())
}

#[utoipa::path(
    delete, path = "/admin/api/keys/{id}", tag = "admin", operation_id = "admin_keys_revoke",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "The key, revoked", body = crate::domain::tenants::KeyInfo))
)]
pub async fn revoke(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response> {
    admin_only(&caller)?;
    let key = app.keys.revoke(&id).await?;
    tracing::info!(key = %key.id, by = ?caller.label(), "API key revoked");
    audit::key_event(&app.audit, kind::KEY_REVOKED, Some(&caller), &key);
    Ok(Json(key).into_response())
}

#[utoipa::path(
    post, path = "/admin/api/keys/{id}/rotate", tag = "admin", operation_id = "admin_keys_rotate",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "The key, with its new secret", body = crate::domain::tenants::IssuedKey))
)]
pub async fn rotate(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response> {
    admin_only(&caller)?;
    let issued = app.keys.rotate(&id).await?;
    tracing::info!(key = %issued.key.id, by = ?caller.label(), "API key rotated");
    audit::key_event(&app.audit, kind::KEY_ROTATED, Some(&caller), &issued.key);
    Ok(Json(issued).into_response())
}
