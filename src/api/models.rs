//! `GET /v1/models` and `/v1/models/{id}` serve both compatible APIs at one path: a request
//! that sends `anthropic-version` (every Anthropic SDK does) gets Anthropic's shape and error
//! shape, any other OpenAI's.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::anthropic::models::{self as anthropic_models, ListQuery};
use super::openai::handlers as openai;
use crate::http::error::{AnthropicError, ApiError};
use crate::http::AppState;

fn wants_anthropic(headers: &HeaderMap) -> bool {
    headers.contains_key("anthropic-version")
}

#[utoipa::path(
    get, path = "/v1/models", tag = "openai", tags = ["anthropic"], operation_id = "models_list",
    params(ListQuery),
    responses((status = 200, description = "OpenAI's `{object: \"list\", data}`, or, with \
        `anthropic-version`, Anthropic's page `{data, has_more, first_id, last_id}`", body = Object))
)]
pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    if !wants_anthropic(&headers) {
        return openai::list_models(State(app)).await;
    }
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return AnthropicError(ApiError::bad_request("", e.body_text())).into_response(),
    };
    match anthropic_models::page(&app.models.current(), &q, app.started_unix) {
        Ok(p) => Json(p).into_response(),
        Err(e) => AnthropicError(e).into_response(),
    }
}

#[utoipa::path(
    get, path = "/v1/models/{id}", tag = "openai", operation_id = "models_get",
    params(("id" = String, Path, description = "A model id or alias")),
    responses((status = 200, description = "The model, in OpenAI's shape or (with \
        `anthropic-version`) Anthropic's", body = Object))
)]
pub async fn get(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !wants_anthropic(&headers) {
        return openai::get_model(State(app), Path(id))
            .await
            .into_response();
    }
    match app.models.resolve(&id) {
        Some(m) => Json(anthropic_models::info(&m, app.started_unix)).into_response(),
        None => AnthropicError(ApiError::ModelNotFound(id)).into_response(),
    }
}
