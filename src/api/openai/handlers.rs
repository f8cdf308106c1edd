//! OpenAI endpoint handlers: extract, call the domain, render or map the error.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::convert;
use super::render::{self, ResponseMeta};
use super::types::{ModelList, ModelObject};
use crate::domain::cli_wait::with_cli_wait;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, OpenAiError};
use crate::http::metrics::TurnTimer;
use crate::http::AppState;

#[utoipa::path(
    post, path = "/v1/chat/completions", tag = "openai", operation_id = "chat_completions",
    request_body = super::types::ChatCompletionRequest,
    responses((status = 200, description = "The completion; with `stream: true`, `chat.completion.chunk` events (`data: {...}`, then `data: [DONE]`)", content((super::types::ChatCompletion = "application/json"), (super::types::ChatCompletionChunk = "text/event-stream"))))
)]
pub async fn chat_completions(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let timer = TurnTimer::start();
    let req = convert::parse(&body)?;
    let mut turn = convert::to_turn(&req, &app.models.current())?;
    turn.key = caller.label();
    turn.owner = caller.owner.clone();
    // Within the key's policy (model, built-in tools, permission mode, agent), else a 403.
    crate::domain::policy::check_turn(caller.policy(), &app.models.current(), &mut turn)
        .map_err(|d| app.audit.refused(&caller, None, d))?;
    let ignored = convert::ignored_params(&req);
    if !ignored.is_empty() {
        tracing::debug!(?ignored, "parameters accepted but not honoured by the CLI");
    }
    let meta = ResponseMeta::new(
        &req.model,
        req.stream_options.as_ref().is_some_and(|o| o.include_usage),
    );
    let handle = with_cli_wait(timer.cli_wait(), app.conversations.start_turn(turn)).await?;
    let conversation = handle.conversation_id.clone();
    let resp = if req.stream.unwrap_or(false) {
        let mut resp = render::stream(handle, meta, timer).await?.into_response();
        crate::http::metrics::stamp_conversation(&mut resp, &conversation);
        resp
    } else {
        let mut resp = Json(render::collect(handle, &meta).await?).into_response();
        timer.stamp(&mut resp, &conversation);
        resp
    };
    Ok(resp)
}

pub async fn list_models(State(app): State<AppState>) -> Response {
    // Rendered once: the table and `created` are fixed while the gateway serves.
    let body = app.models.current().rendered("openai", |table| {
        let list = ModelList {
            object: "list",
            data: table.all().map(|m| model_object(m, &app)).collect(),
        };
        serde_json::to_vec(&list).unwrap_or_default().into()
    });
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

pub async fn get_model(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, OpenAiError> {
    app.models
        .resolve(&id)
        .map(|m| Json(model_object(&m, &app)))
        .ok_or_else(|| ApiError::ModelNotFound(id).into())
}

fn model_object(m: &crate::domain::models::ModelEntry, app: &AppState) -> ModelObject {
    ModelObject {
        id: m.id.clone(),
        object: "model",
        created: app.started_unix,
        owned_by: m.owned_by().to_string(),
        provider: m.owned_by().to_string(),
    }
}
