//! The OpenAPI description of the admin API (`/admin/api/...`): which operations it lists. The
//! operations themselves are described by `#[utoipa::path]` on each handler; this file holds
//! only what is not a handler. Must not: change how a request is served.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(paths(
    super::audit::list,
    super::handlers::events,
    super::handlers::websocket,
    super::handlers::conversations,
    super::handlers::conversation,
    super::handlers::conversation_events,
    super::keys::list,
    super::keys::create,
    super::keys::get,
    super::keys::revoke,
    super::keys::rotate,
    super::usage::report
))]
pub struct Doc;
