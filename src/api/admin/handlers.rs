//! Admin API handlers: extract, call the domain, render or map the error.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast;

use crate::domain::feed::{Feed, FeedItem};
use crate::domain::overview::ConversationFilter;
use crate::http::error::{ApiError, NativeError};
use crate::http::ws_auth;
use crate::http::AppState;

type Result<T> = std::result::Result<T, NativeError>;

/// Which feed items a watcher wants.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    pub conversation_id: Option<String>,
    pub source: Option<String>,
}

impl FeedQuery {
    fn wants(&self, item: &FeedItem) -> bool {
        self.conversation_id
            .as_ref()
            .is_none_or(|c| &item.meta.conversation_id == c)
            && self.source.as_ref().is_none_or(|s| &item.meta.source == s)
    }
}

/// What a watcher receives next: an item, a note that it fell behind, or the end.
enum Next {
    Item(Arc<FeedItem>),
    Lagged(u64),
    End,
}

async fn next(feed: &Feed, rx: &mut broadcast::Receiver<Arc<FeedItem>>, q: &FeedQuery) -> Next {
    loop {
        let got = tokio::select! {
            got = rx.recv() => got,
            _ = feed.closed() => return Next::End,
        };
        match got {
            Ok(item) if q.wants(&item) => return Next::Item(item),
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(n)) => return Next::Lagged(n),
            Err(broadcast::error::RecvError::Closed) => return Next::End,
        }
    }
}

fn lagged(n: u64) -> serde_json::Value {
    json!({"type": "lagged", "skipped": n})
}

/// `GET /admin/api/events`: the live feed as SSE (`id:` is the feed position).
#[utoipa::path(
    get, path = "/admin/api/events", tag = "admin", operation_id = "admin_events",
    params(FeedQuery),
    responses((status = 200, description = "Every session's events as SSE, live (the console's feed)", content_type = "text/event-stream", body = String))
)]
pub async fn events(State(app): State<AppState>, Query(q): Query<FeedQuery>) -> Response {
    let feed = app.conversations.feed.clone();
    let mut rx = feed.subscribe();
    let stream = async_stream::stream! {
        loop {
            match next(&feed, &mut rx, &q).await {
                Next::Item(item) => {
                    let kind = serde_json::to_value(&item.event)
                        .ok()
                        .and_then(|v| v["type"].as_str().map(String::from))
                        .unwrap_or_else(|| "event".into());
                    let data = serde_json::to_string(&*item).unwrap_or_default();
                    yield Ok::<_, Infallible>(SseEvent::default().id(item.id.to_string()).event(kind).data(data));
                }
                Next::Lagged(n) => yield Ok(SseEvent::default().event("lagged").data(lagged(n).to_string())),
                Next::End => break,
            }
        }
    };
    sse(stream).into_response()
}

fn sse<S: Stream<Item = std::result::Result<SseEvent, Infallible>> + Send + 'static>(
    s: S,
) -> impl IntoResponse {
    Sse::new(s).keep_alive(KeepAlive::default())
}

/// `GET /admin/ws`: the live feed as WebSocket text frames (the same JSON as the SSE data).
#[utoipa::path(
    get, path = "/admin/ws", tag = "admin", operation_id = "admin_websocket",
    params(FeedQuery),
    responses((status = 101, description = "Switching Protocols: a WebSocket"))
)]
pub async fn websocket(
    State(app): State<AppState>,
    Query(q): Query<FeedQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let feed = app.conversations.feed.clone();
    let rx = feed.subscribe();
    ws.protocols([ws_auth::PROTOCOL])
        .on_upgrade(move |socket| serve_feed(feed, socket, rx, q))
}

async fn serve_feed(
    feed: Arc<Feed>,
    socket: WebSocket,
    mut rx: broadcast::Receiver<Arc<FeedItem>>,
    q: FeedQuery,
) {
    let (mut tx, mut incoming) = socket.split();
    loop {
        let frame = tokio::select! {
            n = next(&feed, &mut rx, &q) => match n {
                Next::Item(item) => serde_json::to_string(&*item).unwrap_or_default(),
                Next::Lagged(n) => lagged(n).to_string(),
                Next::End => break,
            },
            msg = incoming.next() => match msg {
                // The feed is one-way; a close (or a gone client) ends it.
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
        };
        if tx.send(WsMessage::Text(frame.into())).await.is_err() {
            break;
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub source: Option<String>,
    pub status: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /admin/api/conversations`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationList {
    pub data: Vec<crate::domain::overview::ConversationView>,
}

/// `GET /admin/api/conversations/{id}/events`: the history, and (`live`) the feed items of a
/// turn still running.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationEvents {
    pub data: Vec<crate::domain::sessions::HistoryEntry>,
    pub live: Vec<FeedItem>,
}

/// `GET /admin/api/conversations`: live and recent conversations of every source.
#[utoipa::path(
    get, path = "/admin/api/conversations", tag = "admin", operation_id = "admin_conversations",
    params(ListQuery),
    responses((status = 200, description = "Live and recent conversations, newest first", body = ConversationList))
)]
pub async fn conversations(
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    if let Some(s) = q
        .source
        .as_deref()
        .filter(|s| !["openai", "anthropic", "native"].contains(s))
    {
        return Err(ApiError::bad_request(
            "source",
            format!("Unknown source '{s}'; expected openai, anthropic or native"),
        )
        .into());
    }
    let f = ConversationFilter {
        source: q.source,
        status: q.status,
        limit: q.limit.unwrap_or(100),
    };
    let data = app.conversations.list_conversations(&f).await?;
    Ok(Json(ConversationList { data }).into_response())
}

/// `GET /admin/api/conversations/{id}`.
#[utoipa::path(
    get, path = "/admin/api/conversations/{id}", tag = "admin", operation_id = "admin_conversation",
    params(("id" = String, Path, description = "The conversation's id")),
    responses((status = 200, description = "The conversation", body = crate::domain::overview::ConversationView))
)]
pub async fn conversation(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let v = app
        .conversations
        .conversation_overview(&id)
        .await
        .ok_or_else(|| ApiError::NotFound(format!("No conversation with the id '{id}'")))?;
    Ok(Json(v).into_response())
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    pub after: Option<u64>,
}

/// `GET /admin/api/conversations/{id}/events`: its recorded history, whatever its source, and
/// (`live`) the feed items of a turn still running, whose history is not complete yet.
#[utoipa::path(
    get, path = "/admin/api/conversations/{id}/events", tag = "admin", operation_id = "admin_conversation_events",
    params(("id" = String, Path, description = "The conversation's id"), HistoryQuery),
    responses((status = 200, description = "Its recorded history and a running turn's feed items", body = ConversationEvents))
)]
pub async fn conversation_events(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response> {
    let data = app
        .conversations
        .conversation_history(&id, q.after.unwrap_or(0))
        .await?;
    let live = app.conversations.activity.inflight(&id);
    Ok(Json(ConversationEvents { data, live }).into_response())
}
