//! Anthropic endpoint handlers: extract, call the domain, render or map the error.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::convert;
use super::render::{self, ResponseMeta};
use super::types::CountTokensResponse;
use crate::domain::cli_wait::with_cli_wait;
use crate::http::error::AnthropicError;
use crate::http::metrics::TurnTimer;
use crate::http::ws_auth::{key_of, KeyId};
use crate::http::AppState;

pub async fn messages(
    State(app): State<AppState>,
    key: Option<Extension<KeyId>>,
    body: Bytes,
) -> Result<Response, AnthropicError> {
    let timer = TurnTimer::start();
    let req = convert::parse(&body)?;
    let mut turn = convert::to_turn(&req, &app.models)?;
    turn.key = key_of(key);
    let ignored = convert::ignored_params(&req);
    if !ignored.is_empty() {
        tracing::debug!(?ignored, "parameters accepted but not honoured by the CLI");
    }
    let meta = ResponseMeta::new(&req.model);
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

pub async fn count_tokens(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Json<CountTokensResponse>, AnthropicError> {
    let req = convert::parse(&body)?;
    let upstream_body = convert::count_tokens_body(&req, &app.models)?;
    let input_tokens = app.upstream.count_tokens(&upstream_body).await?;
    Ok(Json(CountTokensResponse { input_tokens }))
}
