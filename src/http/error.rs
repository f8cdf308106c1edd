//! The HTTP layer's one error type, and its mapping to each wire format's error shape.
//!
//! Every status code and error type a client can see is decided here, in one place; adapters
//! only wrap an [`ApiError`] in the shape their protocol uses.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::claude::ClaudeError;
use crate::domain::conversations::TurnError;
use crate::domain::turn::InvalidField;
use crate::upstream::UpstreamError;

/// What a draining instance tells clients to wait before they retry: long enough for a load
/// balancer to see it not ready, or for a restart.
const SHUTDOWN_RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `param` names the offending field.
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
    },
    #[error("The model `{0}` does not exist or is not served by this gateway")]
    ModelNotFound(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Conflict(String),
    /// Another instance runs the session (its lease stayed held past the wait): a 409 with
    /// `retry-after`.
    #[error("{message}")]
    SessionHeld { message: String, retry_after: u64 },
    /// The HTTP layer refused the request before any handler saw it (a body over the limit,
    /// a method a route does not take).
    #[error("{message}")]
    Rejected { status: u16, message: String },
    #[error("{0}")]
    Forbidden(String),
    /// This instance is draining (shutting down): a 503 with `retry-after`.
    #[error("{0}")]
    ShuttingDown(String),
    #[error(transparent)]
    Claude(#[from] ClaudeError),
    /// Beyond the caller's key policy: a 403 naming the field (`param`).
    #[error("{message}")]
    Denied { param: String, message: String },
    // --- limits ---
    /// A key past one of its limits: a 429 (`insufficient_quota` past its budget).
    #[error(transparent)]
    Limit(#[from] crate::domain::limits::LimitError),
}

// --- limits ---
impl From<crate::domain::usage::UsageError> for ApiError {
    fn from(e: crate::domain::usage::UsageError) -> Self {
        use crate::domain::usage::UsageError;
        match e {
            UsageError::Invalid { param, message } => ApiError::bad_request(param, message),
            UsageError::Store(s) => ApiError::Claude(ClaudeError::protocol(format!("store: {s}"))),
        }
    }
}

impl From<TurnError> for ApiError {
    fn from(e: TurnError) -> Self {
        match e {
            TurnError::Claude(c) => ApiError::Claude(c),
            TurnError::Invalid { param, message } => ApiError::bad_request(param, message),
            TurnError::NotFound(m) => ApiError::NotFound(m),
            TurnError::Busy(m) => ApiError::Conflict(m),
            TurnError::Held {
                message,
                retry_after_secs,
            } => ApiError::SessionHeld {
                message,
                retry_after: retry_after_secs,
            },
            TurnError::Forbidden(m) => ApiError::Forbidden(m),
            e @ TurnError::ShuttingDown => ApiError::ShuttingDown(e.to_string()),
        }
    }
}

/// A workspace operation: a path outside is a 403 naming it, an upload over the limit a 413.
impl From<crate::domain::workspace::WorkspaceError> for ApiError {
    fn from(e: crate::domain::workspace::WorkspaceError) -> Self {
        use crate::domain::files::FileError;
        match e {
            crate::domain::workspace::WorkspaceError::Session(t) => t.into(),
            crate::domain::workspace::WorkspaceError::File(f) => match f {
                FileError::Confined(c) => crate::domain::tool_calls::confined(c).into(),
                FileError::NotFound(m) => ApiError::NotFound(m),
                FileError::Exists(m) => ApiError::Conflict(m),
                FileError::Invalid { param, message } => ApiError::bad_request(param, message),
                FileError::TooLarge(message) => ApiError::Rejected {
                    status: 413,
                    message,
                },
                FileError::Io(e) => {
                    ApiError::Claude(ClaudeError::protocol(format!("workspace files: {e}")))
                }
            },
        }
    }
}

/// A direct upstream call fails like a CLI turn whose upstream failed, with the same statuses.
impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> Self {
        ApiError::Claude(match e {
            UpstreamError::Status {
                status,
                message,
                retry_after,
            } => ClaudeError::Upstream {
                status: Some(status),
                message,
                retry_after,
            },
            UpstreamError::Timeout => ClaudeError::Timeout {
                what: e.to_string(),
            },
            UpstreamError::Unreachable(message) => ClaudeError::Upstream {
                status: None,
                message,
                retry_after: None,
            },
        })
    }
}

impl From<crate::domain::tenants::KeyError> for ApiError {
    fn from(e: crate::domain::tenants::KeyError) -> Self {
        use crate::domain::tenants::KeyError;
        match e {
            KeyError::NotFound(_) => ApiError::NotFound(e.to_string()),
            KeyError::Invalid(param, message) => ApiError::bad_request(param, message),
            KeyError::Store(s) => ApiError::Claude(ClaudeError::protocol(format!("store: {s}"))),
        }
    }
}

impl From<crate::domain::policy::Denied> for ApiError {
    fn from(d: crate::domain::policy::Denied) -> Self {
        ApiError::Denied {
            param: d.param,
            message: d.message,
        }
    }
}

impl From<InvalidField> for ApiError {
    fn from(e: InvalidField) -> Self {
        ApiError::bad_request(e.param, e.message)
    }
}

impl ApiError {
    pub fn bad_request(param: impl Into<String>, message: impl Into<String>) -> Self {
        let param = param.into();
        ApiError::BadRequest {
            message: message.into(),
            param: (!param.is_empty()).then_some(param),
        }
    }

    /// The message a client gets. The CLI's own words stay in the log (see
    /// [`ClaudeError::public_message`]).
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Claude(e) => e.public_message(),
            other => other.to_string(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::ModelNotFound(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Conflict(_) | ApiError::SessionHeld { .. } => StatusCode::CONFLICT,
            ApiError::Rejected { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Denied { .. } => StatusCode::FORBIDDEN,
            ApiError::ShuttingDown(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Limit(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Claude(e) => match e {
                ClaudeError::Upstream { status, .. } => match status {
                    Some(400) => StatusCode::BAD_REQUEST,
                    Some(401) => StatusCode::UNAUTHORIZED,
                    Some(403) => StatusCode::FORBIDDEN,
                    Some(404) => StatusCode::NOT_FOUND,
                    Some(413) => StatusCode::PAYLOAD_TOO_LARGE,
                    Some(429) => StatusCode::TOO_MANY_REQUESTS,
                    Some(503) | Some(529) => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::BAD_GATEWAY,
                },
                ClaudeError::AtCapacity { .. } => StatusCode::TOO_MANY_REQUESTS,
                ClaudeError::PromptTooLong { .. } => StatusCode::BAD_REQUEST,
                ClaudeError::Timeout { .. } | ClaudeError::ClientLagged { .. } => {
                    StatusCode::GATEWAY_TIMEOUT
                }
                ClaudeError::Spawn { .. }
                | ClaudeError::Cli { .. }
                | ClaudeError::NoStructuredOutput
                | ClaudeError::Exited { .. }
                | ClaudeError::Protocol { .. } => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// Seconds for a `retry-after` header, on the errors where waiting helps.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Claude(ClaudeError::AtCapacity { retry_after, .. }) => Some(*retry_after),
            ApiError::ShuttingDown(_) => Some(SHUTDOWN_RETRY_AFTER_SECS),
            ApiError::SessionHeld { retry_after, .. } => Some(*retry_after),
            ApiError::Limit(l) => Some(crate::domain::limits::secs(&l.retry_after()).max(1)),
            ApiError::Claude(ClaudeError::Upstream {
                status: Some(429 | 503 | 529),
                retry_after,
                ..
            }) => Some(retry_after.unwrap_or(1)),
            _ => None,
        }
    }

    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "invalid_request",
            ApiError::ModelNotFound(_) => "model_not_found",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unauthorized(_) => "invalid_api_key",
            ApiError::Conflict(_) => "conflict",
            ApiError::SessionHeld { .. } => "session_held",
            ApiError::Rejected { status: 413, .. } => "request_too_large",
            ApiError::Rejected { .. } => "invalid_request",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Denied { .. } => "policy_denied",
            ApiError::ShuttingDown(_) => "shutting_down",
            ApiError::Limit(l) => {
                use crate::domain::limits::LimitError;
                match l {
                    LimitError::Requests { .. } => "rate_limit_exceeded",
                    LimitError::Tokens { .. } => "tokens_rate_limit_exceeded",
                    LimitError::Concurrency { .. } => "concurrency_limit_exceeded",
                    LimitError::Budget { .. } => "insufficient_quota",
                }
            }
            ApiError::Claude(e) => match e {
                ClaudeError::Upstream { status, .. } => match status {
                    Some(401) => "upstream_authentication_failed",
                    Some(403) => "upstream_permission_denied",
                    Some(429) => "rate_limit_exceeded",
                    Some(503) | Some(529) => "upstream_overloaded",
                    Some(400) => "upstream_invalid_request",
                    Some(404) => "model_not_found",
                    _ => "upstream_error",
                },
                ClaudeError::AtCapacity { .. } => "gateway_at_capacity",
                ClaudeError::PromptTooLong { .. } => "context_length_exceeded",
                ClaudeError::Timeout { .. } => "timeout",
                ClaudeError::ClientLagged { .. } => "stream_lagged",
                ClaudeError::Spawn { .. } => "cli_unavailable",
                ClaudeError::Cli { .. }
                | ClaudeError::NoStructuredOutput
                | ClaudeError::Exited { .. }
                | ClaudeError::Protocol { .. } => "cli_error",
            },
        }
    }

    /// OpenAI's `{"error": {message, type, param, code}}`.
    pub fn openai_body(&self) -> Value {
        let kind = match self.status().as_u16() {
            400 | 404 | 405 | 409 | 413 | 415 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            504 => "timeout_error",
            _ => "api_error",
        };
        // OpenAI's own type for a spent budget, which clients tell from a rate limit.
        let kind = match self {
            ApiError::Limit(crate::domain::limits::LimitError::Budget { .. }) => {
                "insufficient_quota"
            }
            _ => kind,
        };
        let param = match self {
            ApiError::BadRequest { param, .. } => param.clone(),
            ApiError::ModelNotFound(_) => Some("model".into()),
            ApiError::Denied { param, .. } => Some(param.clone()),
            _ => None,
        };
        body(OpenAiErrorBody {
            error: OpenAiErrorDetail {
                message: self.public_message(),
                kind,
                param,
                code: self.code(),
            },
        })
    }
}

impl ApiError {
    /// The native API's shape: `{"error": {code, message, param}}`.
    pub fn native_body(&self) -> Value {
        let param = match self {
            ApiError::BadRequest { param, .. } => param.clone(),
            ApiError::Denied { param, .. } => Some(param.clone()),
            _ => None,
        };
        body(NativeErrorBody {
            error: NativeErrorDetail {
                code: self.code(),
                message: self.public_message(),
                param,
            },
        })
    }
}

/// An [`ApiError`] rendered in the native API's shape.
pub struct NativeError(pub ApiError);

impl<E: Into<ApiError>> From<E> for NativeError {
    fn from(e: E) -> Self {
        NativeError(e.into())
    }
}

impl IntoResponse for NativeError {
    fn into_response(self) -> Response {
        with_status(&self.0, axum::Json(self.0.native_body()).into_response())
    }
}

impl ApiError {
    /// Anthropic's `{"type":"error","error":{type, message}}`. A message about one field starts
    /// with its path, as Anthropic's own do (`messages.1.content.0.type: ...`).
    pub fn anthropic_body(&self) -> Value {
        let kind = match self.status().as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            // An upstream 529 (overloaded) is a 503 here.
            503 => "overloaded_error",
            504 => "timeout_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        };
        let text = self.public_message();
        let param = match self {
            ApiError::BadRequest { param, .. } => param.as_deref(),
            ApiError::ModelNotFound(_) => Some("model"),
            ApiError::Denied { param, .. } => Some(param.as_str()),
            _ => None,
        };
        let message = match param {
            Some(p) if !text.starts_with(&format!("{p}:")) => format!("{p}: {text}"),
            _ => text,
        };
        body(AnthropicErrorBody {
            kind: "error",
            error: AnthropicErrorDetail { kind, message },
        })
    }

    /// The error in the shape of the API that `path` belongs to.
    pub fn response_for_path(self, path: &str) -> Response {
        match ErrorShape::for_path(path) {
            ErrorShape::Anthropic => AnthropicError(self).into_response(),
            ErrorShape::Native => NativeError(self).into_response(),
            ErrorShape::OpenAi => OpenAiError(self).into_response(),
        }
    }
}

/// Every error in the protocol's own shape: a response the HTTP layer made itself before a
/// handler ran (axum's rejections are plain text) gets the shape of the API its path belongs
/// to, with its status. `max_body_bytes` words the body limit's refusal.
pub async fn shape_errors(
    max_body_bytes: usize,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Already shaped: JSON, or a page made for a browser (the console's "not built" page).
    let shaped =
        content_type.starts_with("application/json") || content_type.starts_with("text/html");
    // Only errors: a 101 to a WebSocket, a text/event-stream, every success pass untouched.
    if !(status.is_client_error() || status.is_server_error()) || shaped {
        return resp;
    }
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!(
                "The request body is larger than this gateway's limit of {max_body_bytes} bytes"
            )
        }
        StatusCode::METHOD_NOT_ALLOWED => format!("{path} does not take this method"),
        other => {
            let body = axum::body::to_bytes(resp.into_body(), 4096)
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body).trim().to_string();
            if text.is_empty() {
                other.canonical_reason().unwrap_or("error").to_string()
            } else {
                text
            }
        }
    };
    ApiError::Rejected {
        status: status.as_u16(),
        message,
    }
    .response_for_path(&path)
}

/// Which protocol's error shape a path's errors come in: one rule for the wire and for the
/// OpenAPI description (see `crate::http::openapi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    OpenAi,
    Anthropic,
    Native,
}

impl ErrorShape {
    pub fn for_path(path: &str) -> Self {
        if is_anthropic_path(path) {
            ErrorShape::Anthropic
        } else if path.starts_with("/api/") || path.starts_with("/admin/") {
            ErrorShape::Native
        } else {
            ErrorShape::OpenAi
        }
    }
}

// The error bodies, one type per protocol: what is sent and what the OpenAPI description
// says are the same structs.

/// OpenAI's error body.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = OpenAiError)]
pub struct OpenAiErrorBody {
    error: OpenAiErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = OpenAiErrorDetail)]
pub struct OpenAiErrorDetail {
    message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `rate_limit_error`, `insufficient_quota`, `overloaded_error`, `timeout_error`, `api_error`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The request field at fault, when one is.
    param: Option<String>,
    /// A short machine-readable code, e.g. `invalid_request`, `model_not_found`.
    code: &'static str,
}

/// Anthropic's error body.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = AnthropicError)]
pub struct AnthropicErrorBody {
    /// Always `error`.
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = AnthropicErrorDetail)]
pub struct AnthropicErrorDetail {
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `request_too_large`, `rate_limit_error`, `overloaded_error`, ...
    #[serde(rename = "type")]
    kind: &'static str,
    /// Starts with the field at fault (`messages.1.content: ...`), when one is.
    message: String,
}

/// The native API's error body.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = NativeError)]
pub struct NativeErrorBody {
    error: NativeErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = NativeErrorDetail)]
pub struct NativeErrorDetail {
    /// A short machine-readable code, e.g. `invalid_request`, `not_found`, `conflict`.
    code: &'static str,
    message: String,
    /// The request field at fault, when one is.
    param: Option<String>,
}

fn body(b: impl serde::Serialize) -> Value {
    serde_json::to_value(b).unwrap_or_default()
}

/// Paths of the Anthropic-compatible API, whose clients expect Anthropic's error shape.
pub fn is_anthropic_path(path: &str) -> bool {
    path == "/v1/messages" || path.starts_with("/v1/messages/")
}

/// An [`ApiError`] rendered in Anthropic's shape.
pub struct AnthropicError(pub ApiError);

impl<E: Into<ApiError>> From<E> for AnthropicError {
    fn from(e: E) -> Self {
        AnthropicError(e.into())
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        with_status(&self.0, axum::Json(self.0.anthropic_body()).into_response())
    }
}

/// An [`ApiError`] rendered in OpenAI's shape.
pub struct OpenAiError(pub ApiError);

impl<E: Into<ApiError>> From<E> for OpenAiError {
    fn from(e: E) -> Self {
        OpenAiError(e.into())
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        with_status(&self.0, axum::Json(self.0.openai_body()).into_response())
    }
}

fn with_status(err: &ApiError, mut resp: Response) -> Response {
    *resp.status_mut() = err.status();
    if let Some(secs) = err.retry_after() {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
    }
    // The whole error, CLI internals included, goes to the log only.
    if resp.status().is_server_error() || matches!(err, ApiError::Claude(_)) {
        tracing::warn!(status = resp.status().as_u16(), error = %err, "request failed");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: u16) -> ApiError {
        ApiError::Claude(ClaudeError::Upstream {
            status: Some(status),
            message: "x".into(),
            retry_after: None,
        })
    }

    #[test]
    fn upstream_statuses_map_to_client_statuses() {
        assert_eq!(upstream(401).status(), StatusCode::UNAUTHORIZED);
        assert_eq!(upstream(429).status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(upstream(429).retry_after(), Some(1));
        assert_eq!(upstream(529).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(upstream(500).status(), StatusCode::BAD_GATEWAY);
        let t = ApiError::Claude(ClaudeError::Timeout { what: "x".into() });
        assert_eq!(t.status(), StatusCode::GATEWAY_TIMEOUT);
        let cap = ApiError::Claude(ClaudeError::AtCapacity {
            max: 2,
            retry_after: 3,
        });
        assert_eq!(cap.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(cap.retry_after(), Some(3));
    }

    async fn shaped(make: fn() -> Response) -> (StatusCode, String, String) {
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route(
                "/admin/x",
                axum::routing::get(move || async move { make() }),
            )
            .layer(axum::middleware::from_fn(|req, next| {
                shape_errors(10, req, next)
            }));
        let req = axum::http::Request::get("/admin/x")
            .body(axum::body::Body::empty())
            .expect("request");
        let out = app.oneshot(req).await.expect("response");
        let status = out.status();
        let ct = out.headers()[axum::http::header::CONTENT_TYPE]
            .to_str()
            .expect("content type")
            .to_string();
        let body = axum::body::to_bytes(out.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, ct, String::from_utf8_lossy(&body).to_string())
    }

    #[tokio::test]
    async fn plain_text_errors_are_shaped_and_pages_pass_untouched() {
        let text = || (StatusCode::BAD_REQUEST, "bad thing").into_response();
        let (status, ct, body) = shaped(text).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(ct.starts_with("application/json"), "{ct}");
        assert!(body.contains("\"message\":\"bad thing\""), "{body}");
        let page = || {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<h1>The console is not built</h1>",
            )
                .into_response()
        };
        let (status, ct, body) = shaped(page).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(ct.starts_with("text/html"), "{ct}");
        assert_eq!(body, "<h1>The console is not built</h1>");
    }

    #[test]
    fn anthropic_shape_types_and_names_the_field() {
        let b = ApiError::bad_request("messages.1.content.0.type", "bad type").anthropic_body();
        assert_eq!(b["type"], "error");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert_eq!(b["error"]["message"], "messages.1.content.0.type: bad type");
        let m = ApiError::ModelNotFound("gpt-9".into()).anthropic_body();
        assert_eq!(m["error"]["type"], "not_found_error");
        assert!(m["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("model: "));
        for (status, kind) in [
            (529, "overloaded_error"),
            (429, "rate_limit_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (500, "api_error"),
        ] {
            assert_eq!(upstream(status).anthropic_body()["error"]["type"], kind);
        }
        let t = ApiError::Claude(ClaudeError::Timeout { what: "x".into() });
        assert_eq!(t.anthropic_body()["error"]["type"], "timeout_error");
        assert!(is_anthropic_path("/v1/messages/count_tokens"));
        assert!(!is_anthropic_path("/v1/messagesx"));
        assert!(!is_anthropic_path("/v1/chat/completions"));
    }

    #[test]
    fn limits_are_429s_and_a_spent_budget_is_insufficient_quota() {
        use crate::domain::limits::{LimitError, RateHeaders};
        use std::time::Duration;
        let budget = ApiError::Limit(LimitError::Budget {
            budget: 1.0,
            spent: 1.5,
            period: "day",
            retry_after: Duration::from_millis(1500),
            headers: RateHeaders::default(),
        });
        assert_eq!(budget.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(budget.retry_after(), Some(2));
        let o = budget.openai_body();
        assert_eq!(o["error"]["type"], "insufficient_quota");
        assert_eq!(o["error"]["code"], "insufficient_quota");
        assert_eq!(budget.anthropic_body()["error"]["type"], "rate_limit_error");
        assert_eq!(budget.native_body()["error"]["code"], "insufficient_quota");
        let rpm = ApiError::Limit(LimitError::Requests {
            limit: 2,
            retry_after: Duration::ZERO,
            headers: RateHeaders::default(),
        });
        assert_eq!(rpm.retry_after(), Some(1));
        assert_eq!(rpm.openai_body()["error"]["type"], "rate_limit_error");
    }

    #[test]
    fn openai_shape_names_the_param() {
        let b = ApiError::bad_request("messages[0].role", "bad role").openai_body();
        assert_eq!(b["error"]["param"], "messages[0].role");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        let m = ApiError::ModelNotFound("gpt-9".into()).openai_body();
        assert_eq!(m["error"]["code"], "model_not_found");
        assert_eq!(m["error"]["param"], "model");
    }
}
