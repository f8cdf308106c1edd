//! The OpenAPI description of the Anthropic-compatible API (`/v1/messages`): which operations it lists. The
//! operations themselves are described by `#[utoipa::path]` on each handler; this file holds
//! only what is not a handler. Must not: change how a request is served.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(paths(super::handlers::messages, super::handlers::count_tokens))]
pub struct Doc;
