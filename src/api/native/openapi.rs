//! The OpenAPI description of the native API (`/api/...`): which operations it lists. The
//! operations themselves are described by `#[utoipa::path]` on each handler; this file holds
//! only what is not a handler. Must not: change how a request is served.

use utoipa::OpenApi;

use super::events::AfterQuery;
use super::types::ExportQuery;

#[derive(OpenApi)]
#[openapi(paths(
    super::handlers::get_session,
    super::handlers::delete_session,
    super::settings::patch_session,
    super::handlers::send_message,
    super::handlers::interrupt,
    super::handlers::history,
    super::handlers::fork,
    super::handlers::events,
    super::handlers::websocket,
    super::tools::calls,
    super::tools::stream,
    super::tools::call,
    super::tools::permissions,
    super::tools::put_permissions,
    super::project::init,
    super::project::move_workspace,
    super::files::list,
    super::files::upload,
    super::files::download,
    super::files::delete,
    super::files::changes,
    super::files::rewind,
    super::files::memory,
    super::files::put_memory,
    super::files::append_memory,
    super::handlers::export,
    super::handlers::answer_permission,
    super::hooks::list,
    super::hooks::subscribe,
    super::hooks::remove,
    super::hooks::answer,
    super::commands::session_list,
    super::commands::run,
    super::settings::put_context,
    super::settings::post_thinking,
    super::settings::context_usage,
    super::settings::cost,
    super::settings::mcp,
    super::mcp::reconnect,
    super::mcp::toggle,
    super::settings::resume,
    super::settings::stop_task,
    super::agents::set_session_agent,
    super::claude_sessions::list,
    super::claude_sessions::get,
    super::claude_sessions::resume,
    super::handlers::create_session,
    super::handlers::list_sessions,
    super::tools::list,
    super::agents::list,
    super::agents::create,
    super::agents::config,
    super::agents::update,
    super::agents::delete,
    super::commands::list,
    super::mcp::list,
    super::projects::create,
    super::projects::list,
    super::projects::get,
    super::projects::update,
    super::projects::delete,
    super::usage::own,
    stream_alias,
    export_post
))]
pub struct Doc;

/// `GET /api/sessions/{id}/stream`: the same WebSocket as `/ws`, under the name some clients use.
#[utoipa::path(
    get, path = "/api/sessions/{id}/stream", tag = "native", operation_id = "stream_alias",
    params(("id" = String, Path, description = "The session's id"), AfterQuery),
    responses((status = 101, description = "Switching Protocols: the session's WebSocket"))
)]
#[allow(dead_code)]
fn stream_alias() {}

/// `POST /api/sessions/{id}/export`: the same export as `GET`, for clients that post.
#[utoipa::path(
    post, path = "/api/sessions/{id}/export", tag = "native", operation_id = "export_post",
    params(("id" = String, Path, description = "The session's id"), ExportQuery),
    responses(
        (status = 200, description = "The session's transcript: JSON, or Markdown with `format=markdown`",
            content((super::types::SessionExport = "application/json"), (String = "text/markdown")))
    )
)]
#[allow(dead_code)]
fn export_post() {}
