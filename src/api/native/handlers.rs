//! Native API handlers: extract, call the domain, render or map the error.

use std::convert::Infallible;
use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::ws::{
    close_code, CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade,
};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::{SinkExt, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::events::{event_json, resume_after, sse_event, watch_events, watched_json, AfterQuery};
use super::types::*;
use crate::claude::Event;
use crate::domain::conversations::TurnHandle;
use crate::domain::sessions::{NewSession, SessionFilter};
use crate::domain::watch::Watched;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, NativeError};
use crate::http::ws_auth;
use crate::http::AppState;

pub(super) type Result<T> = std::result::Result<T, NativeError>;

/// Parse a JSON body, naming the field when its shape is wrong.
pub(super) fn body<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, ApiError> {
    crate::http::body::parse(bytes, &crate::http::body::NATIVE)
}

#[utoipa::path(
    post, path = "/api/sessions", tag = "native", operation_id = "create_session",
    request_body = super::types::CreateSession,
    responses((status = 201, description = "The session", body = crate::domain::session_table::SessionInfo))
)]
pub async fn create_session(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    let mut req: CreateSession = body(&bytes)?;
    let mut project_id = None;
    if let Some(pid) = req.project_id.clone() {
        let project = app.conversations.project(&caller, &pid).await?;
        req = super::projects::with_defaults(req, &project);
        project_id = Some(project.id);
    }
    let model_id = req.model.unwrap_or_else(|| "default".into());
    let model = app
        .models
        .resolve(&model_id)
        .ok_or_else(|| ApiError::ModelNotFound(model_id.clone()))?;
    let mut spec = NewSession {
        cli_model: model.cli_model.clone(),
        model_id,
        agent: req.agent,
        system_prompt: req.system_prompt,
        workspace: req.workspace.map(PathBuf::from),
        permission_mode: req.permission_mode,
        tools: req.tools.unwrap_or_default(),
        allowed_tools: req.allowed_tools,
        title: req.title,
        mcp_servers: crate::domain::mcp::parse_refs(req.extra.get("mcp_servers"), "mcp_servers")
            .map_err(ApiError::from)?,
        owner: caller.owner.clone(),
        project_id,
    };
    crate::domain::policy::check_new_session(caller.policy(), &app.models.current(), &mut spec)
        .map_err(|d| app.audit.refused(&caller, None, d))?;
    let info = app.conversations.create_session(spec).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// A user key lists its own sessions; an admin key every session, or one key's (`?owner=`).
#[utoipa::path(
    get, path = "/api/sessions", tag = "native", operation_id = "list_sessions",
    params(ListQuery),
    responses((status = 200, description = "A page of sessions, newest first", body = SessionList))
)]
pub async fn list_sessions(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let filter = SessionFilter {
        status: q.status,
        model: q.model,
        limit: q.limit.unwrap_or(50),
        cursor: q.cursor,
        owner: if caller.is_admin() {
            q.owner
        } else {
            Some(caller.owner.clone())
        },
        project_id: q.project_id,
    };
    let (data, next_cursor) = app.conversations.list_sessions(&filter).await?;
    Ok(Json(SessionList { data, next_cursor }).into_response())
}

#[utoipa::path(
    get, path = "/api/sessions/{id}", tag = "native", operation_id = "get_session",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200, description = "The session", body = crate::domain::session_table::SessionInfo))
)]
pub async fn get_session(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let info = app
        .conversations
        .session(&id)
        .await
        .ok_or_else(|| ApiError::NotFound(format!("No session with the id '{id}'")))?;
    Ok(Json(info).into_response())
}

#[utoipa::path(
    delete, path = "/api/sessions/{id}", tag = "native", operation_id = "delete_session",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 204, description = "Done"))
)]
pub async fn delete_session(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Result<StatusCode> {
    app.conversations.delete_session(&id).await?;
    crate::domain::audit::session_deleted(&app.audit, &caller, &id);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post, path = "/api/sessions/{id}/messages", tag = "native", operation_id = "send_message",
    params(("id" = String, Path, description = "The session's id")),
    request_body = super::types::SendMessage,
    responses((status = 200, description = "The turn's reply; with `stream: true`, the session's events as SSE", content((super::types::MessageReply = "application/json"), (String = "text/event-stream"))))
)]
pub async fn send_message(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    let req: SendMessage = body(&bytes)?;
    let prompt = content_blocks(&req.content)?;
    let handle = app
        .conversations
        .session_turn(&id, prompt, caller.label())
        .await?;
    if req.stream {
        return Ok(sse(turn_events(id, handle)).into_response());
    }
    Ok(Json(collect(id, handle).await?).into_response())
}

#[utoipa::path(
    post, path = "/api/sessions/{id}/interrupt", tag = "native", operation_id = "interrupt",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200, description = "Whether a running turn was interrupted", body = Interrupted))
)]
pub async fn interrupt(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let interrupted = app.conversations.interrupt_session(&id).await?;
    Ok(Json(Interrupted { interrupted }).into_response())
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/history", tag = "native", operation_id = "history",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 200, description = "The session's recorded events, oldest first", body = History))
)]
pub async fn history(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let data = app.conversations.history(&id).await?;
    Ok(Json(History { data }).into_response())
}

/// The fork belongs to the caller, whoever owns the original (only an admin forks another's).
#[utoipa::path(
    post, path = "/api/sessions/{id}/fork", tag = "native", operation_id = "fork",
    params(("id" = String, Path, description = "The session's id")),
    responses((status = 201, description = "The new session, the caller's", body = crate::domain::session_table::SessionInfo))
)]
pub async fn fork(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let info = app.conversations.fork_session(&id, &caller.owner).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/export", tag = "native", operation_id = "export",
    params(("id" = String, Path, description = "The session's id"), ExportQuery),
    responses(
        (status = 200, description = "The session's transcript: JSON, or Markdown with `format=markdown`",
            content((SessionExport = "application/json"), (String = "text/markdown")))
    )
)]
pub async fn export(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response> {
    let markdown = match q.format.as_deref() {
        None | Some("json") => false,
        Some("markdown") | Some("md") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "format",
                format!("Unknown export format '{other}'; expected json or markdown"),
            )
            .into())
        }
    };
    let text = app.conversations.export_session(&id, markdown).await?;
    let kind = if markdown {
        "text/markdown; charset=utf-8"
    } else {
        "application/json"
    };
    Ok(([(header::CONTENT_TYPE, kind)], text).into_response())
}

#[utoipa::path(
    post, path = "/api/sessions/{id}/permissions/{request_id}", tag = "native", operation_id = "answer_permission",
    params(("id" = String, Path, description = "The session's id"), ("request_id" = String, Path, description = "The pending request's id")),
    request_body = super::types::PermissionAnswer,
    responses((status = 200, description = "The answer reached the waiting turn", body = Answered))
)]
pub async fn answer_permission(
    State(app): State<AppState>,
    Path((id, request_id)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    let a: PermissionAnswer = body(&bytes)?;
    let response = permission_response(&a.behavior, a.updated_input, a.message)?;
    app.conversations
        .answer_permission_by(&id, &request_id, response, caller.label())
        .await?;
    Ok(Json(Answered { answered: true }).into_response())
}

/// Watch a session: every event of every turn, for as long as the client stays; after
/// `Last-Event-ID` or `?after=SEQ`, what it missed first (from the history).
#[utoipa::path(
    get, path = "/api/sessions/{id}/events", tag = "native", operation_id = "events",
    params(("id" = String, Path, description = "The session's id"), AfterQuery),
    responses((status = 200, description = "The session's events as SSE, live; `after` (or `Last-Event-ID`) resumes after an event id", content_type = "text/event-stream", body = String))
)]
pub async fn events(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<AfterQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let after = resume_after(&q, &headers)?;
    let watched = app.conversations.watch_from(&id, after).await?;
    Ok(sse(watch_events(id, watched)).into_response())
}

#[utoipa::path(
    get, path = "/api/sessions/{id}/ws", tag = "native", operation_id = "websocket",
    params(("id" = String, Path, description = "The session's id"), AfterQuery),
    responses((status = 101, description = "Switching Protocols: a WebSocket"))
)]
pub async fn websocket(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<AfterQuery>,
    Extension(caller): Extension<Caller>,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    let after = resume_after(&q, &HeaderMap::new())?;
    let rx = app.conversations.watch_from(&id, after).await?;
    let key = caller.label();
    Ok(ws
        .protocols([ws_auth::PROTOCOL])
        .on_upgrade(move |socket| serve_socket(app, id, key, socket, rx)))
}

async fn serve_socket(
    app: AppState,
    id: String,
    key: Option<String>,
    socket: WebSocket,
    watched: impl Stream<Item = Watched> + Send + 'static,
) {
    let (mut tx, mut incoming) = socket.split();
    let session = id.clone();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Value>(16);
    let writer = tokio::spawn(async move {
        let mut watched = std::pin::pin!(watched);
        loop {
            let frame = tokio::select! {
                w = watched.next() => match w {
                    Some(w) => watched_json(&w, &session),
                    None => {
                        // The stream is over (the gateway shuts down, after its `shutdown`
                        // event, or the session went): close instead of leaving it open.
                        let bye = CloseFrame {
                            code: close_code::AWAY,
                            reason: "stream ended".into(),
                        };
                        let _ = tx.send(WsMessage::Close(Some(bye))).await;
                        break;
                    }
                },
                own = out_rx.recv() => match own { Some(v) => v, None => break },
            };
            if tx
                .send(WsMessage::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    while let Some(Ok(msg)) = incoming.next().await {
        let WsMessage::Text(text) = msg else { continue };
        let reply = match serde_json::from_str::<WsCommand>(&text) {
            Err(e) => Some(json!({"type": "error", "message": format!("invalid command: {e}")})),
            Ok(WsCommand::Message { content }) => match content_blocks(&content) {
                Err(e) => Some(native_error_event(&e)),
                Ok(prompt) => match app
                    .conversations
                    .session_turn(&id, prompt, key.clone())
                    .await
                {
                    // The events reach this socket through the session's watchers; the handle
                    // must live until the turn ends, or the turn counts as abandoned.
                    Ok(handle) => {
                        tokio::spawn(drain(handle));
                        None
                    }
                    Err(e) => Some(native_error_event(&ApiError::from(e))),
                },
            },
            Ok(WsCommand::Interrupt) => match app.conversations.interrupt_session(&id).await {
                Ok(done) => Some(json!({"type": "interrupted", "interrupted": done})),
                Err(e) => Some(native_error_event(&ApiError::from(e))),
            },
            Ok(WsCommand::Permission {
                request_id,
                behavior,
                updated_input,
                message,
            }) => match permission_response(&behavior, updated_input, message) {
                Err(e) => Some(native_error_event(&e)),
                Ok(r) => match app
                    .conversations
                    .answer_permission_by(&id, &request_id, r, key.clone())
                    .await
                {
                    Ok(()) => None,
                    Err(e) => Some(native_error_event(&ApiError::from(e))),
                },
            },
        };
        if let Some(r) = reply {
            if out_tx.send(r).await.is_err() {
                break;
            }
        }
    }
    writer.abort();
}

async fn drain(mut handle: TurnHandle) {
    while let Some(ev) = handle.events.recv().await {
        if ev.is_terminal() {
            break;
        }
    }
}

fn native_error_event(e: &ApiError) -> Value {
    let mut v = e.native_body();
    v["type"] = json!("error");
    v
}

fn permission_response(
    behavior: &str,
    updated_input: Option<Value>,
    message: Option<String>,
) -> std::result::Result<Value, ApiError> {
    match behavior {
        "allow" => {
            let mut r = json!({"behavior": "allow"});
            if let Some(input) = updated_input {
                r["updatedInput"] = input;
            }
            Ok(r)
        }
        "deny" => Ok(
            json!({"behavior": "deny", "message": message.unwrap_or_else(|| "Denied by the user.".into())}),
        ),
        other => Err(ApiError::bad_request(
            "behavior",
            format!("behavior must be allow or deny, not '{other}'"),
        )),
    }
}

/// A message's content: text becomes one text block; blocks are checked as the Messages API
/// checks a user message's (the same rules as `/v1/messages`), with fields named
/// `content[0].text` and so on, so a malformed block never reaches the CLI. Tool results have
/// no place here: a session has no client tools.
fn content_blocks(content: &Value) -> std::result::Result<Vec<Value>, ApiError> {
    match content {
        Value::String(s) if !s.is_empty() => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(blocks) if !blocks.is_empty() => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let at = format!("content[{i}]");
                if b.get("type").and_then(Value::as_str) == Some("tool_result") {
                    return Err(ApiError::bad_request(
                        format!("{at}.type"),
                        "a session's message cannot carry tool results",
                    ));
                }
                crate::api::anthropic::convert::user_block(b, &at)
            })
            .collect(),
        _ => Err(ApiError::bad_request(
            "content",
            "content must be non-empty text or an array of content blocks",
        )),
    }
}

/// A turn's JSON reply. A permission request ends the reply early (`stop_reason:
/// "permission_required"`, with the request): the turn waits for the answer, its events still
/// reach the session's watchers and history, and the session is never left broken by a client
/// that waited and gave up.
pub(super) async fn collect(
    session_id: String,
    mut handle: TurnHandle,
) -> std::result::Result<MessageReply, ApiError> {
    let mut r = MessageReply {
        session_id,
        ..Default::default()
    };
    while let Some(ev) = handle.events.recv().await {
        match ev {
            Event::TextDelta { text } => r.text.push_str(&text),
            Event::ThinkingDelta { text } => r.thinking.push_str(&text),
            Event::ToolCall {
                id,
                name,
                input,
                client,
            } => r
                .tool_calls
                .push(json!({"id": id, "name": name, "input": input, "client": client})),
            Event::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => r.tool_results.push(
                json!({"tool_use_id": tool_use_id, "content": content, "is_error": is_error}),
            ),
            Event::PermissionRequest {
                request_id,
                tool_name,
                input,
                tool_use_id,
            } => {
                r.permission_requests
                    .push(json!({"request_id": request_id, "tool_name": tool_name,
                    "input": input, "tool_use_id": tool_use_id}));
                r.stop_reason = json!("permission_required");
                tokio::spawn(drain(handle));
                return Ok(r);
            }
            // Like a permission request: the turn waits for the answer over the API.
            Event::HookRequest {
                request_id,
                hook_event,
                hook_ids,
                input,
                timeout_secs,
            } => {
                r.hook_requests
                    .push(json!({"request_id": request_id, "hook_event": hook_event,
                    "hook_ids": hook_ids, "input": input, "timeout_secs": timeout_secs}));
                r.stop_reason = json!("hook_required");
                tokio::spawn(drain(handle));
                return Ok(r);
            }
            Event::Compacted {
                trigger,
                pre_tokens,
                post_tokens,
            } => {
                r.compact = Some(
                    json!({"trigger": trigger, "pre_tokens": pre_tokens, "post_tokens": post_tokens}),
                );
            }
            Event::Error(e) => return Err(e.into()),
            Event::Done(s) => {
                r.result_text = s.result_text.clone();
                r.cli_session_id = s.session_id.clone();
                r.stop_reason = serde_json::to_value(&s.stop_reason).unwrap_or(Value::Null);
                r.usage = serde_json::to_value(s.usage).unwrap_or(Value::Null);
                r.cost_usd = s.cost_usd;
                r.duration_ms = s.duration_ms;
                r.num_turns = s.num_turns;
                return Ok(r);
            }
            _ => {}
        }
    }
    Err(ApiError::Claude(crate::claude::ClaudeError::protocol(
        "the turn ended without a result",
    )))
}

pub(super) fn sse<S: Stream<Item = std::result::Result<SseEvent, Infallible>> + Send + 'static>(
    s: S,
) -> impl IntoResponse {
    Sse::new(s).keep_alive(KeepAlive::default())
}

/// The requester's own stream: ends with the turn.
pub(super) fn turn_events(
    session: String,
    mut handle: TurnHandle,
) -> impl Stream<Item = std::result::Result<SseEvent, Infallible>> {
    async_stream::stream! {
        while let Some(ev) = handle.events.recv_stamped().await {
            let last = ev.event.is_terminal();
            yield Ok(sse_event(&event_json(&ev, &session)));
            if last { break; }
        }
    }
}
