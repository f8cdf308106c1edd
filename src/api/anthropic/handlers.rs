//! Anthropic endpoint handlers: extract, call the domain, render or map the error.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::convert;
use super::render::{self, ResponseMeta};
use super::threads::{self, Thread};
use super::types::CountTokensResponse;
use crate::domain::cli_wait::with_cli_wait;
use crate::http::auth::Caller;
use crate::http::error::AnthropicError;
use crate::http::metrics::TurnTimer;
use crate::http::AppState;

#[utoipa::path(
    post, path = "/v1/messages", tag = "anthropic", operation_id = "messages",
    request_body = super::types::MessagesRequest,
    responses((status = 200, description = "The message; with `stream: true`, named SSE events (`message_start` ... `message_stop`)", content((super::types::MessageResponse = "application/json"), (super::types::StreamEvent = "text/event-stream"))))
)]
pub async fn messages(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, AnthropicError> {
    let timer = TurnTimer::start();
    let mut req = convert::parse(&body)?;
    let thread = threads::take(&mut req)?;
    // What this turn adds to its thread: the request as sent, before a `continue` is expanded.
    let (system, tools, added) = (req.system.clone(), req.tools.clone(), req.messages.clone());
    if let Some(Thread::Continue {
        previous_message_id,
    }) = &thread
    {
        let chain = app
            .conversations
            .reply_chain(previous_message_id, threads::KIND, &caller.owner)
            .await?;
        let Some(chain) = chain else {
            return Ok(threads::not_found(previous_message_id));
        };
        threads::expand(&mut req, &chain)?;
    }
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
    let meta = ResponseMeta::new(&req.model);
    let handle = with_cli_wait(timer.cli_wait(), app.conversations.start_turn(turn)).await?;
    let conversation = handle.conversation_id.clone();
    // A threaded turn's reply is kept before the client hears the turn is done, so that the
    // next `continue` finds it.
    let keep = move |message: &super::types::MessageResponse| {
        if let Some(t) = &thread {
            let record = threads::record(
                t,
                system.as_ref(),
                tools.as_ref(),
                &added,
                message,
                &caller.owner,
            );
            // Queued at once; not awaited here (the next `continue` on this instance finds it
            // in memory). The Responses API awaits it before its reply.
            drop(app.conversations.put_reply(record));
        }
    };
    let resp = if req.stream.unwrap_or(false) {
        let mut resp = render::stream(handle, meta, timer, keep)
            .await?
            .into_response();
        crate::http::metrics::stamp_conversation(&mut resp, &conversation);
        resp
    } else {
        let message = render::collect(handle, &meta).await?;
        keep(&message);
        let mut resp = Json(message).into_response();
        timer.stamp(&mut resp, &conversation);
        resp
    };
    Ok(resp)
}

#[utoipa::path(
    post, path = "/v1/messages/count_tokens", tag = "anthropic", operation_id = "count_tokens",
    request_body(content = super::types::MessagesRequest, description = "A Messages request; `max_tokens` is not needed"),
    responses((status = 200, description = "The prompt's token count", body = CountTokensResponse))
)]
pub async fn count_tokens(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Json<CountTokensResponse>, AnthropicError> {
    let mut req = convert::parse(&body)?;
    threads::take(&mut req)?;
    let table = app.models.current();
    let upstream_body = convert::count_tokens_body(&req, &table)?;
    // A provider's model is counted by its provider.
    let input_tokens = match table.provider_of(&req.model) {
        Some(p) => {
            p.upstream(crate::domain::providers::process_env)
                .count_tokens(&upstream_body)
                .await?
        }
        None => app.upstream.count_tokens(&upstream_body).await?,
    };
    Ok(Json(CountTokensResponse { input_tokens }))
}
