//! The OpenAPI description of the OpenAI Responses API (`/v1/responses`): which operations it lists. The
//! operations themselves are described by `#[utoipa::path]` on each handler; this file holds
//! only what is not a handler. Must not: change how a request is served.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(paths(super::handlers::create, super::handlers::get, super::handlers::delete))]
pub struct Doc;
