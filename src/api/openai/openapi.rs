//! The OpenAPI description of the OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`): which operations it lists. The
//! operations themselves are described by `#[utoipa::path]` on each handler; this file holds
//! only what is not a handler. Must not: change how a request is served.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(paths(
    super::handlers::chat_completions,
    crate::api::models::list,
    crate::api::models::get
))]
pub struct Doc;
