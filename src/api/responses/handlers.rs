//! Responses API handlers: extract, read what the request refers to, call the domain, render
//! or map the error, and keep the response (unless `store: false`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::convert::{self, Converted, Earlier, KIND};
use super::render::{self, Fold, ResponseMeta};
use crate::domain::cli_wait::with_cli_wait;
use crate::domain::turn::{Message, Role};
use crate::http::auth::Caller;
use crate::http::error::OpenAiError;
use crate::http::metrics::TurnTimer;
use crate::http::AppState;
use crate::store::StoredReply;

#[utoipa::path(
    post, path = "/v1/responses", tag = "responses", operation_id = "responses_create",
    request_body = super::types::CreateResponse,
    responses((status = 200, description = "The response object (open: OpenAI's Responses shape); with `stream: true`, its named SSE events", content((Object = "application/json"), (Object = "text/event-stream"))))
)]
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let timer = TurnTimer::start();
    let req = convert::parse(&body)?;
    let mut earlier = Earlier::default();
    if let Some(prev) = &req.previous_response_id {
        let Some(chain) = app
            .conversations
            .reply_chain(prev, KIND, &caller.owner)
            .await?
        else {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                format!("Previous response with id '{prev}' not found."),
                Some("previous_response_id"),
                Some("previous_response_not_found"),
            ));
        };
        earlier.history = chain
            .iter()
            .flat_map(|r| stored_messages(&r.body))
            .collect();
    }
    for id in convert::item_references(&req) {
        let Some(response_id) = convert::response_of_item(&id) else {
            continue;
        };
        if let Some(r) = app
            .conversations
            .reply(&response_id, KIND, &caller.owner)
            .await?
        {
            let item = r.body["response"]["output"]
                .as_array()
                .and_then(|out| out.iter().find(|i| i["id"] == id.as_str()).cloned());
            if let Some(item) = item {
                earlier.items.insert(id, item);
            }
        }
    }
    let Converted { mut turn, added } = convert::to_turn(&req, &app.models.current(), &earlier)?;
    turn.key = caller.label();
    turn.owner = caller.owner.clone();
    // Within the key's policy (model, built-in tools, permission mode, agent), else a 403.
    crate::domain::policy::check_turn(caller.policy(), &app.models.current(), &mut turn)
        .map_err(|d| app.audit.refused(&caller, None, d))?;
    let ignored = convert::ignored_params(&req);
    if !ignored.is_empty() {
        tracing::debug!(?ignored, "parameters accepted but not honoured by the CLI");
    }
    let meta = ResponseMeta::new(&req.model, convert::echo(&req));
    let handle = with_cli_wait(timer.cli_wait(), app.conversations.start_turn(turn)).await?;
    let conversation = handle.conversation_id.clone();
    // Kept before the client hears the response is done, so a `previous_response_id` or an
    // `item_reference` right after finds it.
    let store = req.store.unwrap_or(true);
    let previous = req.previous_response_id.clone();
    let conversations = app.conversations.clone();
    let keep = move |response: &Value, fold: &Fold| -> render::Kept {
        if !store {
            return Box::pin(async {});
        }
        let mut messages: Vec<Value> = added.iter().map(message_json).collect();
        messages.push(message_json(&fold.reply_message()));
        Box::pin(conversations.put_reply(StoredReply {
            id: fold.id().to_string(),
            kind: KIND.to_string(),
            owner: caller.owner.clone(),
            previous_id: previous,
            body: json!({"response": response, "messages": messages}),
            created_at: crate::store::now_millis(),
        }))
    };
    let resp = if req.stream.unwrap_or(false) {
        let mut resp = render::stream(handle, meta, timer, keep)
            .await?
            .into_response();
        crate::http::metrics::stamp_conversation(&mut resp, &conversation);
        resp
    } else {
        let (response, fold) = render::collect(handle, meta).await?;
        keep(&response, &fold).await;
        let mut resp = Json(response).into_response();
        timer.stamp(&mut resp, &conversation);
        resp
    };
    Ok(resp)
}

#[utoipa::path(
    get, path = "/v1/responses/{id}", tag = "responses", operation_id = "responses_get",
    params(("id" = String, Path, description = "The response's id")),
    responses((status = 200, description = "OK", body = Object))
)]
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, OpenAiError> {
    Ok(
        match app.conversations.reply(&id, KIND, &caller.owner).await? {
            Some(r) => Json(r.body["response"].clone()).into_response(),
            None => not_found(&id),
        },
    )
}

#[utoipa::path(
    delete, path = "/v1/responses/{id}", tag = "responses", operation_id = "responses_delete",
    params(("id" = String, Path, description = "The response's id")),
    responses((status = 200, description = "OK", body = Object))
)]
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, OpenAiError> {
    Ok(
        if app
            .conversations
            .delete_reply(&id, KIND, &caller.owner)
            .await?
        {
            Json(json!({"id": id, "object": "response.deleted", "deleted": true})).into_response()
        } else {
            not_found(&id)
        },
    )
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("Response with id '{id}' not found."),
        None,
        None,
    )
}

/// An error in OpenAI's shape with its own `param` and `code`, as the API words the ones about
/// stored responses.
fn error(status: StatusCode, message: String, param: Option<&str>, code: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}});
    (status, Json(body)).into_response()
}

/// A conversation message as stored with a response.
fn message_json(m: &Message) -> Value {
    let role = match m.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    json!({"role": role, "content": m.content})
}

/// The messages a stored response added (its input, then its reply).
fn stored_messages(body: &Value) -> Vec<Message> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| Message {
            role: if m["role"] == "assistant" {
                Role::Assistant
            } else {
                Role::User
            },
            content: m["content"].as_array().cloned().unwrap_or_default(),
        })
        .collect()
}
