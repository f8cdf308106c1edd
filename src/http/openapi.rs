//! The gateway's OpenAPI 3.1 description and the two routes that publish it: `GET
//! /openapi.json` and the reference page `GET /docs` (Swagger UI, built into `web/dist` and
//! embedded like the console). The operations are described by `#[utoipa::path]` on their
//! handlers; each API's `openapi.rs` lists its own, and this module puts them together with
//! the security schemes and, for every operation, the error responses in the shape of its
//! protocol (the same rule the wire uses: [`ErrorShape::for_path`]).
//!
//! Both routes are open without a key, like `/health`: the description is the product's, the
//! same for every gateway, and holds no configuration, model, key or data.
//!
//! Must not: describe a route the router lacks, or miss one (tests/openapi.rs checks both).

use std::sync::OnceLock;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::api::{admin, anthropic, native, openai, responses};
use crate::http::error::{AnthropicErrorBody, ErrorShape, NativeErrorBody, OpenAiErrorBody};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ccgw",
        description = "Claude Code as a service: OpenAI- and Anthropic-compatible APIs, the \
            OpenAI Responses API, a native API of sessions that live on, and the admin API. \
            A key goes in `Authorization: Bearer <key>` or `x-api-key: <key>`; a gateway \
            without keys asks for none."
    ),
    paths(
        json,
        docs,
        super::health::root,
        super::health::health,
        v1_health,
        super::health::ready,
        super::health::metrics,
        super::console::app,
        console_slash,
        super::console::asset,
        super::stats::stats,
        super::ws_auth::create_ticket,
    ),
    components(schemas(OpenAiErrorBody, AnthropicErrorBody, NativeErrorBody)),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "openai", description = "OpenAI-compatible Chat Completions and models"),
        (name = "anthropic", description = "Anthropic-compatible Messages"),
        (name = "responses", description = "OpenAI Responses API"),
        (name = "native", description = "Sessions that live on, their workspace, tools and settings"),
        (name = "admin", description = "Keys, usage, audit and the console's view (admin keys)"),
        (name = "health", description = "Liveness, readiness, metrics and this description"),
        (name = "console", description = "The web console's pages"),
    ),
    modifiers(&SecuritySchemes)
)]
struct GatewayDoc;

/// The whole description.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = GatewayDoc::openapi();
    for part in [
        openai::openapi::Doc::openapi(),
        anthropic::openapi::Doc::openapi(),
        responses::openapi::Doc::openapi(),
        native::openapi::Doc::openapi(),
        admin::openapi::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            add_error_responses(path, op);
        }
    }
    doc
}

/// `GET /openapi.json`: the description, made once.
#[utoipa::path(
    get, path = "/openapi.json", tag = "health", operation_id = "json",
    responses((status = 200, description = "This OpenAPI 3.1 description", body = Object)),
    security(())
)]
pub async fn json() -> Response {
    static BODY: OnceLock<Vec<u8>> = OnceLock::new();
    let body = BODY.get_or_init(|| serde_json::to_vec(&document()).unwrap_or_default());
    (
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body.clone(),
    )
        .into_response()
}

/// `GET /docs`: the API reference page; its assets are embedded in the binary.
#[utoipa::path(
    get, path = "/docs", tag = "console", operation_id = "docs",
    responses(
        (status = 200, description = "The API reference page", content_type = "text/html"),
        (status = 503, description = "This binary was built without the web assets", content_type = "text/html")
    ),
    security(())
)]
pub async fn docs() -> Response {
    super::console::page("docs.html")
}

/// `GET /v1/health`: the same as `/health`, under the compatible APIs' prefix.
#[utoipa::path(
    get, path = "/v1/health", tag = "health", operation_id = "v1_health",
    responses((status = 200, description = "Alive; the details with a key, or when the gateway has none", body = Object)),
    security((), ("bearer" = []), ("api_key" = []))
)]
#[allow(dead_code)]
fn v1_health() {}

/// `GET /admin/`: the console, as at `/admin`.
#[utoipa::path(
    get, path = "/admin/", tag = "console", operation_id = "console_slash",
    responses((status = 200, description = "The console's page", content_type = "text/html")),
    security(())
)]
#[allow(dead_code)]
fn console_slash() {}

/// Bearer and `x-api-key`: both are accepted (see `crate::http::auth`).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`Authorization: Bearer <key>`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "`x-api-key: <key>`",
            ))),
        );
    }
}

/// Whether the operation needs a key: it does unless it says `security: [{}]`.
fn needs_key(op: &Operation) -> bool {
    !op.security.as_ref().is_some_and(|reqs| {
        reqs.iter()
            .any(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
    })
}

/// The errors every operation of a keyed API can answer, in its protocol's shape; what an
/// operation lists itself is kept.
fn add_error_responses(path: &str, op: &mut Operation) {
    if !needs_key(op) {
        return;
    }
    let schema = match ErrorShape::for_path(path) {
        ErrorShape::OpenAi => "OpenAiError",
        ErrorShape::Anthropic => "AnthropicError",
        ErrorShape::Native => "NativeError",
    };
    let takes_input =
        op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let mut errors = vec![
        (
            "401",
            "No key, or a key that is unknown, revoked or expired",
        ),
        ("403", "Beyond the key's policy, or not the key's resource"),
        (
            "429",
            "Past one of the key's limits (`retry-after` says when to retry)",
        ),
        ("default", "Any other error"),
    ];
    if takes_input {
        errors.push((
            "400",
            "A malformed request; `param` (or the message) names the field",
        ));
    }
    if path.contains('{') {
        errors.push(("404", "No such resource"));
    }
    for (status, description) in errors {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(schema)))
                            .build(),
                    )
                    .build()
                    .into()
            });
    }
}
