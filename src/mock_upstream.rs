//! A scripted stand-in for the Anthropic Messages API.
//!
//! The mock owns one thing: answering Messages-API HTTP requests the way the
//! real API would (same SSE event sequence, same JSON shapes, same error
//! bodies), with a "model" that does exactly what directives written in the
//! newest user text tell it to (`[[text:…]]`, `[[tool:…]]`, `[[fail:…]]`, …;
//! see [`Directives`]). It keeps a log of every request so tests can assert
//! on what the Claude Code CLI actually sent, and exposes that log over HTTP
//! (`GET`/`DELETE /_mock/requests`) for tests running in another process.
//!
//! It must not: talk to the network beyond its own listener, depend on any
//! other gateway module (tests, benchmarks and `ccgw serve --demo` all use it,
//! so it has to stay self-contained), panic on malformed input (every bad
//! request becomes an Anthropic-shaped error), or keep connections alive after
//! the [`MockUpstream`] handle is dropped (hanging and slow streams end on
//! shutdown).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt as _;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

/// What a thinking block's signature is made of, before its text's digest: like the real
/// API's, the signature is opaque base64 that differs per block, and a test can recompute it
/// (`base64(PREFIX ++ sha256(thinking))`) to check that a signature reached it unchanged.
const THINKING_SIGNATURE_PREFIX: &[u8] = b"ccgw-mock-thinking-signature:";
/// Request bodies can carry base64 images, so allow generous sizes.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
/// Path of the request-log endpoint (not itself logged).
const LOG_PATH: &str = "/_mock/requests";
/// The log keeps at most this many entries (oldest dropped first) so a
/// long-running `serve --demo` or benchmark does not grow without bound.
const LOG_MAX_ENTRIES: usize = 10_000;
/// Only the newest entries keep their body (CLI bodies are 10-100 KB each);
/// older ones have `body: Null`.
const LOG_MAX_BODIES: usize = 1_000;
/// The model's context window, in the mock's own token estimate (characters
/// of message text / 4): a request over it gets the real API's 400 "prompt is
/// too long", whatever its directives say.
pub const CONTEXT_WINDOW_TOKENS: u64 = 200_000;
/// `[[report:…]]` subjects, in the order they are documented.
const REPORT_KINDS: &[&str] = &[
    "tools",
    "system",
    "history",
    "images",
    "model",
    "max_tokens",
    "request",
];

// ---------------------------------------------------------------------------
// Public interface
// ---------------------------------------------------------------------------

/// A running mock server. Serving stops when this handle is dropped.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

/// One request as the mock saw it, plus what it answered.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoggedRequest {
    pub method: String,
    /// Path including the query string, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Lower-cased header names; `x-api-key` and `authorization` values are
    /// replaced by `<redacted>` so logs never carry credentials.
    pub headers: BTreeMap<String, String>,
    /// Parsed JSON body; `Null` when there was no body, it was not JSON, or
    /// the entry is older than the newest `LOG_MAX_BODIES` entries.
    pub body: Value,
    /// HTTP status the mock answered with.
    pub status: u16,
    /// `x-api-key` and `authorization` as the hex SHA-256 of their values, so a test can tell
    /// which credential arrived without the log holding it.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    /// Final usage reported for a `/v1/messages` answer (as in `message_delta`
    /// or the non-streaming message): `input_tokens`, `output_tokens`,
    /// `cache_creation_input_tokens`, `cache_read_input_tokens`. `None` for
    /// errors, hangs and every other endpoint.
    pub usage: Option<Value>,
}

impl MockUpstream {
    /// Bind (port 0 allowed) and serve in a background tokio task until dropped.
    pub async fn start(addr: SocketAddr) -> anyhow::Result<MockUpstream> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("mock upstream: cannot bind {addr}"))?;
        let addr = listener
            .local_addr()
            .context("mock upstream: no local address")?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            log: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(1),
            fail_counts: Mutex::new(HashMap::new()),
            shutdown: shutdown_rx.clone(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        // Small stream frames go out at once, as a real upstream's do; without it Nagle's
        // algorithm holds them (~40 ms) and every latency measured against the mock is off.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(wait_for_shutdown(shutdown_rx))
                .await;
            if let Err(err) = result {
                tracing::warn!(error = %err, "mock upstream server stopped with an error");
            }
        });
        Ok(MockUpstream {
            addr,
            shared,
            shutdown,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (an unspecified bind address is replaced by
    /// loopback, since clients cannot connect to `0.0.0.0`).
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// Every request received, in order (the `/_mock/requests` endpoint
    /// excepted; bounded by `LOG_MAX_ENTRIES`, bodies by `LOG_MAX_BODIES`).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log().iter().cloned().collect()
    }

    /// Only `POST …/v1/messages` requests (not `count_tokens`).
    pub fn messages_requests(&self) -> Vec<LoggedRequest> {
        self.shared
            .log()
            .iter()
            .filter(|r| is_messages_request(r))
            .cloned()
            .collect()
    }

    /// Forget logged requests and `[[fail:S:K]]` counters (a fresh mock for
    /// the next test). Message/tool id counters keep running so ids stay unique.
    pub fn clear(&self) {
        self.shared.clear();
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        // `send_replace` works even when no receiver is left. Graceful
        // shutdown then stops accepting, and hanging/slow streams end because
        // they watch the same channel.
        self.shutdown.send_replace(true);
    }
}

/// Run until ctrl-c; used by `ccgw mock-upstream --port N`.
pub async fn serve_forever(addr: SocketAddr) -> anyhow::Result<()> {
    let mock = MockUpstream::start(addr).await?;
    tracing::info!(url = %mock.base_url(), "mock upstream listening");
    tokio::signal::ctrl_c()
        .await
        .context("mock upstream: cannot listen for ctrl-c")?;
    tracing::info!("mock upstream shutting down");
    drop(mock);
    Ok(())
}

fn is_messages_request(r: &LoggedRequest) -> bool {
    let path = r.path.split('?').next().unwrap_or_default();
    r.method == "POST" && path.trim_end_matches('/').ends_with("/v1/messages")
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

struct Shared {
    log: Mutex<VecDeque<LoggedRequest>>,
    /// Source of `<n>` in `msg_mock_<n>`, `req_mock_<n>`, `toolu_mock_<n>_<k>`.
    next_id: AtomicU64,
    /// `[[fail:STATUS:K]]` counters, keyed by the newest user text.
    fail_counts: Mutex<HashMap<String, u64>>,
    shutdown: watch::Receiver<bool>,
}

/// A poisoned lock only means another handler panicked mid-push; the log is
/// still usable, so recover instead of propagating the panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn log(&self) -> MutexGuard<'_, VecDeque<LoggedRequest>> {
        lock(&self.log)
    }

    fn clear(&self) {
        self.log().clear();
        lock(&self.fail_counts).clear();
    }

    fn record(&self, seen: Seen, status: u16, usage: Option<Value>) {
        let mut log = self.log();
        log.push_back(LoggedRequest {
            method: seen.method,
            path: seen.path,
            headers: seen.headers,
            body: seen.body,
            status,
            credentials: seen.credentials,
            usage,
        });
        if log.len() > LOG_MAX_ENTRIES {
            log.pop_front();
        }
        if let Some(old) = log
            .len()
            .checked_sub(LOG_MAX_BODIES + 1)
            .and_then(|i| log.get_mut(i))
        {
            old.body = Value::Null;
        }
    }

    /// Counts one more request for `key`; true while the count is within `times`.
    fn should_fail(&self, key: &str, times: Option<u64>) -> bool {
        let Some(times) = times else { return true };
        let mut counts = lock(&self.fail_counts);
        let count = counts.entry(key.to_string()).or_insert(0);
        *count += 1;
        *count <= times
    }
}

async fn wait_for_shutdown(mut rx: watch::Receiver<bool>) {
    // An error means the sender is gone, which is a shutdown as well.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// The parts of a request that go into the log once the answer is known.
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    credentials: BTreeMap<String, String>,
    body: Value,
}

/// The credential headers' values, each as its hex SHA-256 (see [`LoggedRequest::credentials`]).
fn credential_digests(headers: &HeaderMap) -> BTreeMap<String, String> {
    use sha2::Digest as _;
    ["x-api-key", "authorization"]
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?;
            Some((
                name.to_string(),
                hex::encode(sha2::Sha256::digest(value.as_bytes())),
            ))
        })
        .collect()
}

fn logged_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str().to_ascii_lowercase();
        let value = if name == "x-api-key" || name == "authorization" {
            "<redacted>".to_string()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        out.entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

// ---------------------------------------------------------------------------
// HTTP layer
// ---------------------------------------------------------------------------

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| path.clone());

    if path == LOG_PATH {
        return log_endpoint(&shared, &parts.method);
    }

    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(err) => {
            let seen = Seen {
                method: parts.method.to_string(),
                path: path_and_query,
                headers: logged_headers(&parts.headers),
                credentials: credential_digests(&parts.headers),
                body: Value::Null,
            };
            shared.record(seen, 400, None);
            return error_response(400, &format!("cannot read request body: {err}"), None);
        }
    };
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let seen = Seen {
        method: parts.method.to_string(),
        path: path_and_query,
        headers: logged_headers(&parts.headers),
        credentials: credential_digests(&parts.headers),
        body: parsed.clone().unwrap_or(Value::Null),
    };

    let trimmed = path.trim_end_matches('/');
    if parts.method == Method::HEAD {
        // The CLI preconnects with `HEAD <base>`; any path is fine.
        shared.record(seen, 200, None);
        return StatusCode::OK.into_response();
    }
    if parts.method == Method::GET && trimmed.is_empty() {
        shared.record(seen, 200, None);
        return "ccgw mock upstream\n".into_response();
    }
    if parts.method == Method::POST && trimmed.ends_with("/v1/messages/count_tokens") {
        return count_tokens(&shared, seen, parsed.as_ref());
    }
    if parts.method == Method::POST && trimmed.ends_with("/v1/messages") {
        return messages(&shared, seen, parsed).await;
    }
    let message = format!("mock upstream: no route for {} {}", parts.method, path);
    shared.record(seen, 404, None);
    error_response(404, &message, None)
}

fn log_endpoint(shared: &Shared, method: &Method) -> Response {
    if method == Method::GET {
        let body = serde_json::to_vec(&*shared.log()).unwrap_or_else(|_| b"[]".to_vec());
        json_response(StatusCode::OK, body)
    } else if method == Method::DELETE {
        shared.clear();
        StatusCode::NO_CONTENT.into_response()
    } else {
        error_response(405, "use GET or DELETE on /_mock/requests", None)
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn request_id_header(n: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("req_mock_{n}")).ok()
}

/// Anthropic error type for an HTTP status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        s if (400..500).contains(&s) => "invalid_request_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type":…,"message":…}}` with the status given.
/// Statuses outside 400..=599 become 500: a "failure" must look like one.
fn error_response(status: u16, message: &str, request_n: Option<u64>) -> Response {
    let status = if (400..=599).contains(&status) {
        status
    } else {
        500
    };
    let body = json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
    });
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(code, body.to_string().into_bytes());
    let headers = response.headers_mut();
    if status == 429 {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let Some(value) = request_n.and_then(request_id_header) {
        headers.insert("request-id", value);
    }
    response
}

fn count_tokens(shared: &Shared, seen: Seen, body: Option<&Value>) -> Response {
    let Some(req) = body.filter(|b| b.is_object()) else {
        shared.record(seen, 400, None);
        return error_response(400, "request body must be a JSON object", None);
    };
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let tokens = estimate_input_tokens(message_list(req));
    shared.record(seen, 200, None);
    let mut response = json_response(
        StatusCode::OK,
        json!({ "input_tokens": tokens }).to_string().into_bytes(),
    );
    if let Some(value) = request_id_header(n) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

async fn messages(shared: &Shared, seen: Seen, body: Option<Value>) -> Response {
    let Some(req) = body.filter(|b| b.is_object()) else {
        shared.record(seen, 400, None);
        return error_response(
            400,
            "request body must be a JSON object (Messages API request)",
            None,
        );
    };
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let streaming = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();

    let conversation = conversation(&req);
    let newest = newest_user_message(&conversation);
    let newest_text = newest.map(user_text).unwrap_or_default();
    let directives = Directives::parse(&newest_text);

    let tokens = estimate_input_tokens(message_list(&req));
    if tokens > CONTEXT_WINDOW_TOKENS {
        shared.record(seen, 400, None);
        let message =
            format!("prompt is too long: {tokens} tokens > {CONTEXT_WINDOW_TOKENS} maximum");
        return error_response(400, &message, Some(n));
    }

    if let Some(fail) = &directives.fail {
        if shared.should_fail(&newest_text, fail.times) {
            let message = format!(
                "mock upstream: injected {} failure ([[fail]] directive)",
                fail.status
            );
            shared.record(seen, fail.status, None);
            return error_response(fail.status, &message, Some(n));
        }
    }

    let reply = plan_reply(&req, &conversation, &directives, n);
    let slow = directives.slow_ms.map(Duration::from_millis);
    let shutdown = shared.shutdown.clone();
    let msg_id = format!("msg_mock_{n}");

    if directives.hang {
        // No final usage is ever reported for a hang.
        shared.record(seen, 200, None);
        if streaming {
            let start = message_start_event(&msg_id, &model, &reply.usage);
            let stream = async_stream::stream! {
                yield Ok::<Bytes, Infallible>(start.frame());
                // Keep the connection open until the client goes away (hyper
                // drops this stream) or the mock shuts down.
                futures::future::pending::<()>().await;
            };
            return sse_response(stream.take_until(wait_for_shutdown(shutdown)), n);
        }
        wait_for_shutdown(shutdown).await;
        return error_response(503, "mock upstream shutting down", Some(n));
    }

    shared.record(seen, 200, Some(reply.usage.to_json()));
    if streaming {
        let events = sse_events(&reply, &msg_id, &model);
        let stream = async_stream::stream! {
            for event in events {
                if event.is_delta {
                    if let Some(delay) = slow {
                        tokio::time::sleep(delay).await;
                    }
                }
                yield Ok::<Bytes, Infallible>(event.frame());
            }
        };
        return sse_response(stream.take_until(wait_for_shutdown(shutdown)), n);
    }

    if let Some(delay) = slow {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = wait_for_shutdown(shutdown) => {
                return error_response(503, "mock upstream shutting down", Some(n));
            }
        }
    }
    let body = message_json(&reply, &msg_id, &model);
    let mut response = json_response(StatusCode::OK, body.to_string().into_bytes());
    if let Some(value) = request_id_header(n) {
        response.headers_mut().insert("request-id", value);
    }
    rate_limit_headers(response.headers_mut(), n);
    response
}

fn sse_response<S>(stream: S, n: u64) -> Response
where
    S: futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(value) = request_id_header(n) {
        headers.insert("request-id", value);
    }
    rate_limit_headers(headers, n);
    response
}

/// The real API's rate-limit headers, counting down one request per request served.
fn rate_limit_headers(headers: &mut HeaderMap, n: u64) {
    const LIMIT: u64 = 1_000_000;
    let remaining = LIMIT.saturating_sub(n).to_string();
    let pairs = [
        ("anthropic-ratelimit-requests-limit", LIMIT.to_string()),
        ("anthropic-ratelimit-requests-remaining", remaining),
        (
            "anthropic-ratelimit-requests-reset",
            "2030-01-01T00:00:00Z".to_string(),
        ),
        ("anthropic-ratelimit-tokens-limit", "4000000".to_string()),
        (
            "anthropic-ratelimit-tokens-remaining",
            "3999000".to_string(),
        ),
        (
            "anthropic-ratelimit-tokens-reset",
            "2030-01-01T00:00:00Z".to_string(),
        ),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

// ---------------------------------------------------------------------------
// Reading the request
// ---------------------------------------------------------------------------

/// Every entry of `messages` (a missing or malformed list is empty: lenient).
fn message_list(req: &Value) -> &[Value] {
    req.get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `messages` without `role:"system"` entries, which the CLI inserts
/// mid-conversation (agent listings) and which are not turns.
fn conversation(req: &Value) -> Vec<&Value> {
    message_list(req)
        .iter()
        .filter(|m| role(m) != "system")
        .collect()
}

fn role(message: &Value) -> &str {
    message
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Content blocks of a message; string content counts as one text block.
/// Borrowed for array content so big histories (base64 images) aren't copied.
fn blocks(message: &Value) -> Cow<'_, [Value]> {
    match message.get("content") {
        Some(Value::String(s)) => Cow::Owned(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(items)) => Cow::Borrowed(items.as_slice()),
        _ => Cow::Owned(Vec::new()),
    }
}

fn block_type(block: &Value) -> &str {
    block
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Raw texts of a message's text blocks.
fn text_blocks(message: &Value) -> Vec<String> {
    blocks(message)
        .iter()
        .filter(|b| block_type(b) == "text")
        .filter_map(|b| b.get("text").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// A user message's text: its text blocks joined by newlines, with every
/// `<system-reminder>` span removed (the CLI wraps prompts in those).
fn user_text(message: &Value) -> String {
    strip_system_reminders(&text_blocks(message).join("\n"))
}

/// The message directives are read from: the last user message whose text
/// (reminders stripped) is not blank, else the last user message with any
/// text block. The first rule matters because the CLI can add reminder-only
/// text blocks next to `tool_result`s, which must not hide the real prompt.
fn newest_user_message<'a>(conversation: &[&'a Value]) -> Option<&'a Value> {
    let users = || conversation.iter().rev().filter(|m| role(m) == "user");
    users()
        .find(|m| !user_text(m).trim().is_empty())
        .or_else(|| users().find(|m| !text_blocks(m).is_empty()))
        .copied()
}

/// Removes every `<system-reminder>…</system-reminder>` span (may be
/// multi-line). An unclosed opening tag is left as is.
fn strip_system_reminders(text: &str) -> String {
    const OPEN: &str = "<system-reminder>";
    const CLOSE: &str = "</system-reminder>";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let Some(close) = rest[start..].find(CLOSE) else {
            break;
        };
        out.push_str(&rest[..start]);
        rest = &rest[start + close + CLOSE.len()..];
    }
    out.push_str(rest);
    out
}

/// Text of a `tool_result` block's content: a string, or its text blocks
/// concatenated.
fn tool_result_text(block: &Value) -> String {
    match block.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter(|b| block_type(b) == "text")
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Input-token estimate: characters of all message text / 4, at least 1.
/// Counts text, thinking, tool_use input JSON and tool_result text of every
/// message (system-role ones included); not the system prompt or tools.
fn estimate_input_tokens(messages: &[Value]) -> u64 {
    let mut chars = 0usize;
    for message in messages {
        for block in blocks(message).iter() {
            chars += match block_type(block) {
                "text" => str_len(block.get("text")),
                "thinking" => str_len(block.get("thinking")),
                "tool_use" => block
                    .get("input")
                    .map(|i| i.to_string().chars().count())
                    .unwrap_or(0),
                "tool_result" => tool_result_text(block).chars().count(),
                _ => 0,
            };
        }
    }
    ((chars / 4) as u64).max(1)
}

fn str_len(value: Option<&Value>) -> usize {
    value
        .and_then(Value::as_str)
        .map(|s| s.chars().count())
        .unwrap_or(0)
}

/// Names in the request's `tools` array.
fn tool_names(req: &Value) -> Vec<String> {
    req.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Resolves a directive's tool name: exact match first, else the unique tool
/// named `…__NAME` (MCP tools are `mcp__<server>__<tool>`).
fn match_tool<'a>(wanted: &str, available: &'a [String]) -> Option<&'a str> {
    if let Some(exact) = available.iter().find(|t| *t == wanted) {
        return Some(exact);
    }
    let suffix = format!("__{wanted}");
    let mut candidates = available.iter().filter(|t| t.ends_with(&suffix));
    match (candidates.next(), candidates.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Directives
// ---------------------------------------------------------------------------

/// A `[[tool:NAME {json}]]` directive.
#[derive(Debug, Clone, PartialEq)]
struct ToolDirective {
    name: String,
    input: Value,
}

#[derive(Debug, Clone, PartialEq)]
struct FailDirective {
    status: u16,
    /// `Some(K)`: only the first K requests with the same newest user text fail.
    times: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct UsageDirective {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_creation: u64,
}

/// Pieces of reply text, in the order their directives appeared.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    /// `count` words, each padded with `x` to at least `size` characters.
    Words {
        count: usize,
        size: usize,
    },
    Report(String),
}

/// Everything the newest user text asks of the mock.
///
/// Directives: `[[text:T]]`, `[[think:T]]`, `[[tool:NAME {json}]]`,
/// `[[slow:MS]]`, `[[words:N]]`, `[[words:N:SIZE]]`, `[[fail:STATUS]]`, `[[fail:STATUS:K]]`,
/// `[[hang]]`, `[[stop:REASON]]`, `[[usage:IN,OUT]]`,
/// `[[usage:IN,OUT,CACHE_READ,CACHE_CREATE]]`, `[[report:WHAT]]`.
/// Unknown names (`[[wiki link]]`) are plain text. Malformed arguments of
/// known directives are collected in `errors` and make the reply an error
/// text, so a typo in a test is loud instead of silently echoed.
#[derive(Debug, Clone, Default, PartialEq)]
struct Directives {
    /// The text left after removing directives, trimmed.
    prompt: String,
    pieces: Vec<Piece>,
    think: Option<String>,
    tools: Vec<ToolDirective>,
    slow_ms: Option<u64>,
    fail: Option<FailDirective>,
    hang: bool,
    stop: Option<String>,
    usage: Option<UsageDirective>,
    errors: Vec<String>,
}

const DIRECTIVE_NAMES: &[&str] = &[
    "text", "think", "tool", "slow", "words", "fail", "hang", "stop", "usage", "report",
];

impl Directives {
    fn parse(text: &str) -> Directives {
        let mut d = Directives::default();
        let mut prompt = String::new();
        let mut rest = text;
        while let Some(open) = rest.find("[[") {
            prompt.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            match split_directive(after) {
                Some((name, arg, consumed)) => {
                    d.apply(name, arg);
                    rest = &after[consumed..];
                }
                None => {
                    // Not a directive: keep the brackets as text.
                    prompt.push_str("[[");
                    rest = after;
                }
            }
        }
        prompt.push_str(rest);
        d.prompt = prompt.trim().to_string();
        d
    }

    fn apply(&mut self, name: &str, arg: Option<&str>) {
        let shown = match arg {
            Some(a) => format!("[[{name}:{a}]]"),
            None => format!("[[{name}]]"),
        };
        let result: Result<(), String> = match name {
            "text" => {
                self.pieces
                    .push(Piece::Text(arg.unwrap_or_default().to_string()));
                Ok(())
            }
            "think" => {
                let text = arg.unwrap_or_default();
                match &mut self.think {
                    Some(existing) => existing.push_str(text),
                    None => self.think = Some(text.to_string()),
                }
                Ok(())
            }
            "tool" => parse_tool(arg.unwrap_or_default()).map(|t| self.tools.push(t)),
            "slow" => parse_u64(arg).map(|ms| self.slow_ms = Some(ms)),
            "words" => parse_words(arg.unwrap_or_default())
                .map(|(count, size)| self.pieces.push(Piece::Words { count, size })),
            "fail" => parse_fail(arg.unwrap_or_default()).map(|f| self.fail = Some(f)),
            "hang" => {
                self.hang = true;
                Ok(())
            }
            "stop" => match arg.map(str::trim).filter(|s| !s.is_empty()) {
                Some(reason) => {
                    self.stop = Some(reason.to_string());
                    Ok(())
                }
                None => Err("needs a stop reason".to_string()),
            },
            "usage" => parse_usage(arg.unwrap_or_default()).map(|u| self.usage = Some(u)),
            "report" => {
                let what = arg.unwrap_or_default().trim();
                if REPORT_KINDS.contains(&what) {
                    self.pieces.push(Piece::Report(what.to_string()));
                    Ok(())
                } else {
                    Err(format!("report needs one of {}", REPORT_KINDS.join(", ")))
                }
            }
            _ => Ok(()),
        };
        if let Err(why) = result {
            self.errors
                .push(format!("mock: bad directive {shown}: {why}"));
        }
    }
}

/// Given the text after `[[`, returns `(name, argument, bytes consumed
/// including the closing "]]")` for a known directive, else `None`.
///
/// The argument normally runs to the first `]]`; for `tool` the first `]]`
/// after which the JSON parses wins, so inputs like `{"a":[[1]]}` work.
fn split_directive(after: &str) -> Option<(&str, Option<&str>, usize)> {
    let name_len = after
        .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
        .unwrap_or(after.len());
    let name = &after[..name_len];
    if !DIRECTIVE_NAMES.contains(&name) {
        return None;
    }
    let tail = &after[name_len..];
    if tail.starts_with("]]") {
        return Some((name, None, name_len + 2));
    }
    let arg_area = tail.strip_prefix(':')?;
    let arg_start = name_len + 1;
    let candidates: Vec<usize> = arg_area.match_indices("]]").map(|(i, _)| i).collect();
    let first = *candidates.first()?;
    let end = if name == "tool" {
        candidates
            .iter()
            .copied()
            .find(|&i| parse_tool(&arg_area[..i]).is_ok())
            .unwrap_or(first)
    } else {
        first
    };
    Some((name, Some(&arg_area[..end]), arg_start + end + 2))
}

/// `NAME` or `NAME {json object}`.
fn parse_tool(arg: &str) -> Result<ToolDirective, String> {
    let arg = arg.trim();
    let name_end = arg
        .find(|c: char| c.is_whitespace() || c == '{')
        .unwrap_or(arg.len());
    let name = &arg[..name_end];
    if name.is_empty() {
        return Err("needs a tool name".to_string());
    }
    let json_text = arg[name_end..].trim();
    let input = if json_text.is_empty() {
        Value::Object(Map::new())
    } else {
        match serde_json::from_str::<Value>(json_text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Err("tool input must be a JSON object".to_string()),
            Err(err) => return Err(format!("tool input is not JSON: {err}")),
        }
    };
    Ok(ToolDirective {
        name: name.to_string(),
        input,
    })
}

fn parse_u64(arg: Option<&str>) -> Result<u64, String> {
    let arg = arg.unwrap_or_default().trim();
    arg.parse::<u64>()
        .map_err(|_| format!("expected a non-negative integer, got {arg:?}"))
}

/// `N` or `N:SIZE`.
fn parse_words(arg: &str) -> Result<(usize, usize), String> {
    let mut parts = arg.splitn(2, ':');
    let count = parse_u64(parts.next())? as usize;
    let size = match parts.next() {
        Some(size) => parse_u64(Some(size))? as usize,
        None => 0,
    };
    Ok((count, size))
}

fn parse_fail(arg: &str) -> Result<FailDirective, String> {
    let mut parts = arg.split(':').map(str::trim);
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (400..=599).contains(s))
        .ok_or_else(|| "needs an HTTP status 400..=599".to_string())?;
    let times = match parts.next() {
        None => None,
        Some(k) => Some(
            k.parse::<u64>()
                .map_err(|_| format!("count must be an integer, got {k:?}"))?,
        ),
    };
    if parts.next().is_some() {
        return Err("expected STATUS or STATUS:K".to_string());
    }
    Ok(FailDirective { status, times })
}

fn parse_usage(arg: &str) -> Result<UsageDirective, String> {
    let numbers: Result<Vec<u64>, _> = arg.split(',').map(|p| p.trim().parse::<u64>()).collect();
    match numbers.as_deref() {
        Ok([input, output]) => Ok(UsageDirective {
            input: *input,
            output: *output,
            cache_read: 0,
            cache_creation: 0,
        }),
        Ok([input, output, cache_read, cache_creation]) => Ok(UsageDirective {
            input: *input,
            output: *output,
            cache_read: *cache_read,
            cache_creation: *cache_creation,
        }),
        _ => Err("expected IN,OUT or IN,OUT,CACHE_READ,CACHE_CREATE".to_string()),
    }
}

// ---------------------------------------------------------------------------
// The reply
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Block {
    Thinking(String),
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Usage {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_creation: u64,
}

impl Usage {
    fn to_json(self) -> Value {
        json!({
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Reply {
    blocks: Vec<Block>,
    stop_reason: String,
    usage: Usage,
}

/// Decides the whole answer up front, so streaming and non-streaming replies
/// (and the logged usage) agree exactly.
fn plan_reply(req: &Value, conversation: &[&Value], d: &Directives, n: u64) -> Reply {
    let tool_results: Option<Vec<String>> = conversation
        .last()
        .filter(|m| role(m) == "user")
        .map(|m| {
            blocks(m)
                .iter()
                .filter(|b| block_type(b) == "tool_result")
                .map(|b| {
                    strip_system_reminders(&tool_result_text(b))
                        .trim()
                        .to_string()
                })
                .collect::<Vec<_>>()
        })
        .filter(|results| !results.is_empty());

    let mut text = String::new();
    let mut tool_blocks = Vec::new();
    let mut stop_reason = d.stop.clone();
    if !d.errors.is_empty() {
        text = d.errors.join("\n");
        stop_reason = None;
    } else if let Some(results) = tool_results {
        // The tool loop continues: never re-run tool directives (that would
        // loop forever); summarise what came back instead.
        text = format!("done | tool results: {}", results.join(" | "));
        stop_reason = None;
    } else {
        let available = tool_names(req);
        let mut missing = None;
        for (k, tool) in d.tools.iter().enumerate() {
            match match_tool(&tool.name, &available) {
                Some(full) => tool_blocks.push(Block::ToolUse {
                    id: format!("toolu_mock_{n}_{k}"),
                    name: full.to_string(),
                    input: tool.input.clone(),
                }),
                None => {
                    missing = Some(tool.name.clone());
                    break;
                }
            }
        }
        if let Some(name) = missing {
            tool_blocks.clear();
            text = format!("no tool named {name}");
            stop_reason = Some("end_turn".to_string());
        } else if !d.pieces.is_empty() {
            let rendered: Vec<String> = d
                .pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.clone(),
                    Piece::Words { count, size } => numbered_words(*count, *size),
                    Piece::Report(what) => report(what, req, conversation),
                })
                .collect();
            text = rendered.join("\n");
        } else if tool_blocks.is_empty() {
            text = d.prompt.clone();
        }
    }
    if text.is_empty() && tool_blocks.is_empty() {
        text = "ok".to_string();
    }

    let mut blocks = Vec::new();
    if let Some(thinking) = &d.think {
        blocks.push(Block::Thinking(thinking.clone()));
    }
    if !text.is_empty() {
        blocks.push(Block::Text(text));
    }
    let has_tools = !tool_blocks.is_empty();
    blocks.extend(tool_blocks);

    let stop_reason =
        stop_reason.unwrap_or_else(|| if has_tools { "tool_use" } else { "end_turn" }.to_string());
    let usage = match d.usage {
        Some(u) => Usage {
            input: u.input,
            output: u.output,
            cache_read: u.cache_read,
            cache_creation: u.cache_creation,
        },
        None => Usage {
            input: estimate_input_tokens(message_list(req)),
            output: (blocks.iter().map(chunk_count).sum::<usize>() as u64).max(1),
            cache_read: 0,
            cache_creation: 0,
        },
    };
    Reply {
        blocks,
        stop_reason,
        usage,
    }
}

/// `w1 w2 … wN`; with a `size`, each word padded with `x` to that many characters (a long
/// reply in few, large deltas).
fn numbered_words(count: usize, size: usize) -> String {
    (1..=count)
        .map(|i| {
            let w = format!("w{i}");
            let pad = size.saturating_sub(w.len());
            w + &"x".repeat(pad)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many deltas a block streams as (signature deltas not counted).
fn chunk_count(block: &Block) -> usize {
    match block {
        Block::Thinking(t) | Block::Text(t) => word_chunks(t).len(),
        Block::ToolUse { input, .. } => json_fragments(&input.to_string()).len(),
    }
}

/// Splits text into word-sized chunks, each word keeping the whitespace that
/// follows it (leading whitespace goes with the first word), so the chunks
/// concatenate back to the exact text.
fn word_chunks(text: &str) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut seen_word = false;
    let mut in_trailing_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_trailing_space = seen_word;
        } else {
            if in_trailing_space {
                chunks.push(&text[start..i]);
                start = i;
                in_trailing_space = false;
            }
            seen_word = true;
        }
    }
    if start < text.len() {
        chunks.push(&text[start..]);
    }
    chunks
}

/// Splits a JSON string into at least two fragments of at most 16 chars, as
/// the real API streams `input_json_delta`s (clients must concatenate).
fn json_fragments(json_text: &str) -> Vec<&str> {
    let char_count = json_text.chars().count();
    if char_count < 2 {
        return vec![json_text];
    }
    let size = char_count.div_ceil(2).min(16);
    let mut fragments = Vec::new();
    let mut start = 0;
    for (taken, (i, _)) in json_text.char_indices().enumerate() {
        if taken > 0 && taken % size == 0 {
            fragments.push(&json_text[start..i]);
            start = i;
        }
    }
    fragments.push(&json_text[start..]);
    fragments
}

// ---------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------

/// One `[[report:WHAT]]` line: `WHAT=<compact JSON>`.
fn report(what: &str, req: &Value, conversation: &[&Value]) -> String {
    let value = match what {
        "tools" => json!(tool_names(req)),
        "system" => Value::String(system_text(req)),
        "history" => render_history(message_list(req)),
        "images" => newest_user_message(conversation)
            .map(|m| {
                blocks(m)
                    .iter()
                    .filter(|b| block_type(b) == "image")
                    .map(|b| b.get("source").cloned().unwrap_or(Value::Null))
                    .collect::<Vec<_>>()
            })
            .map(Value::Array)
            .unwrap_or_else(|| json!([])),
        "model" => req.get("model").cloned().unwrap_or(Value::Null),
        "max_tokens" => req.get("max_tokens").cloned().unwrap_or(Value::Null),
        "request" => request_summary(req),
        other => Value::String(format!("unknown report {other}")),
    };
    format!("{what}={value}")
}

/// The system prompt as one string: a string, or text blocks joined by a
/// blank line.
fn system_text(req: &Value) -> String {
    match req.get("system") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => String::new(),
    }
}

/// `[{"role","text"}]` for every message (system-role ones included). Each
/// block renders on its own line: text (reminders stripped, trimmed),
/// `tool_use:NAME:JSON`, `tool_result:TEXT`, `image:<media_type or url>`,
/// `thinking:TEXT`, `document:<media_type or url>`, or the bare block type;
/// empty lines are dropped.
fn render_history(messages: &[Value]) -> Value {
    let rendered: Vec<Value> = messages
        .iter()
        .map(|m| {
            let lines: Vec<String> = blocks(m)
                .iter()
                .map(render_block)
                .filter(|line| !line.is_empty())
                .collect();
            json!({"role": role(m), "text": lines.join("\n")})
        })
        .collect();
    Value::Array(rendered)
}

fn render_block(block: &Value) -> String {
    let str_field = |key: &str| {
        block
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match block_type(block) {
        "text" => strip_system_reminders(&str_field("text"))
            .trim()
            .to_string(),
        "tool_use" => format!(
            "tool_use:{}:{}",
            str_field("name"),
            block.get("input").cloned().unwrap_or_else(|| json!({}))
        ),
        "tool_result" => format!(
            "tool_result:{}",
            strip_system_reminders(&tool_result_text(block)).trim()
        ),
        "thinking" => format!("thinking:{}", str_field("thinking")),
        kind @ ("image" | "document") => format!("{kind}:{}", source_label(block)),
        other => other.to_string(),
    }
}

/// `media_type` of a base64 source, `url` of a URL source, else the source type.
fn source_label(block: &Value) -> String {
    let source = block.get("source");
    let field = |key: &str| source.and_then(|s| s.get(key)).and_then(Value::as_str);
    field("media_type")
        .or_else(|| field("url"))
        .or_else(|| field("type"))
        .unwrap_or_default()
        .to_string()
}

/// Top-level keys of the request in order: scalars verbatim (strings over
/// 200 chars as `string[N]`), arrays as `array[N]`, objects verbatim unless
/// their JSON exceeds 500 chars (then `object{k1,k2,…}`).
fn request_summary(req: &Value) -> Value {
    let Some(object) = req.as_object() else {
        return Value::Null;
    };
    let summary: Map<String, Value> = object
        .iter()
        .map(|(key, value)| {
            let summarised = match value {
                Value::Array(items) => Value::String(format!("array[{}]", items.len())),
                Value::String(s) if s.chars().count() > 200 => {
                    Value::String(format!("string[{}]", s.chars().count()))
                }
                Value::Object(map) if value.to_string().len() > 500 => Value::String(format!(
                    "object{{{}}}",
                    map.keys().cloned().collect::<Vec<_>>().join(",")
                )),
                other => other.clone(),
            };
            (key.clone(), summarised)
        })
        .collect();
    Value::Object(summary)
}

// ---------------------------------------------------------------------------
// Wire formats
// ---------------------------------------------------------------------------

/// One SSE frame to send.
#[derive(Debug, Clone)]
struct SseEvent {
    name: &'static str,
    data: Value,
    /// `content_block_delta` frames are the ones `[[slow]]` delays.
    is_delta: bool,
}

impl SseEvent {
    fn new(name: &'static str, data: Value) -> SseEvent {
        SseEvent {
            name,
            data,
            is_delta: name == "content_block_delta",
        }
    }

    fn frame(&self) -> Bytes {
        Bytes::from(format!("event: {}\ndata: {}\n\n", self.name, self.data))
    }
}

fn message_start_event(msg_id: &str, model: &str, usage: &Usage) -> SseEvent {
    SseEvent::new(
        "message_start",
        json!({
            "type": "message_start",
            "message": {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {
                    "input_tokens": usage.input,
                    "cache_creation_input_tokens": usage.cache_creation,
                    "cache_read_input_tokens": usage.cache_read,
                    // Like the real API: a token or so at the start; the
                    // final count comes in message_delta.
                    "output_tokens": usage.output.min(1),
                },
            },
        }),
    )
}

/// The exact Anthropic streaming sequence for a planned reply.
fn sse_events(reply: &Reply, msg_id: &str, model: &str) -> Vec<SseEvent> {
    let mut events = vec![
        message_start_event(msg_id, model, &reply.usage),
        SseEvent::new("ping", json!({"type": "ping"})),
    ];
    for (index, block) in reply.blocks.iter().enumerate() {
        let (start, deltas): (Value, Vec<Value>) = match block {
            Block::Thinking(text) => {
                let mut deltas: Vec<Value> = word_chunks(text)
                    .into_iter()
                    .map(|c| json!({"type": "thinking_delta", "thinking": c}))
                    .collect();
                deltas.push(
                    json!({"type": "signature_delta", "signature": thinking_signature(text)}),
                );
                (
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    deltas,
                )
            }
            Block::Text(text) => (
                json!({"type": "text", "text": ""}),
                word_chunks(text)
                    .into_iter()
                    .map(|c| json!({"type": "text_delta", "text": c}))
                    .collect(),
            ),
            Block::ToolUse { id, name, input } => (
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                json_fragments(&input.to_string())
                    .into_iter()
                    .map(|f| json!({"type": "input_json_delta", "partial_json": f}))
                    .collect(),
            ),
        };
        events.push(SseEvent::new(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        for delta in deltas {
            events.push(SseEvent::new(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        events.push(SseEvent::new(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push(SseEvent::new(
        "message_delta",
        json!({
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": null},
            "usage": reply.usage.to_json(),
        }),
    ));
    events.push(SseEvent::new(
        "message_stop",
        json!({"type": "message_stop"}),
    ));
    events
}

/// The signature of a thinking block with this text (see [`THINKING_SIGNATURE_PREFIX`]).
pub fn thinking_signature(thinking: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut bytes = THINKING_SIGNATURE_PREFIX.to_vec();
    bytes.extend_from_slice(&sha2::Sha256::digest(thinking.as_bytes()));
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The non-streaming Message object.
fn message_json(reply: &Reply, msg_id: &str, model: &str) -> Value {
    let content: Vec<Value> = reply
        .blocks
        .iter()
        .map(|block| match block {
            Block::Thinking(text) => {
                json!({"type": "thinking", "thinking": text, "signature": thinking_signature(text)})
            }
            Block::Text(text) => json!({"type": "text", "text": text}),
            Block::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        })
        .collect();
    json!({
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": null,
        "usage": reply.usage.to_json(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(content: Value) -> Value {
        json!({"role": "user", "content": content})
    }

    fn request(messages: Value) -> Value {
        json!({"model": "m", "max_tokens": 10, "messages": messages})
    }

    fn plan(req: &Value) -> Reply {
        let conv = conversation(req);
        let text = newest_user_message(&conv)
            .map(user_text)
            .unwrap_or_default();
        plan_reply(req, &conv, &Directives::parse(&text), 7)
    }

    fn reply_text(reply: &Reply) -> String {
        reply
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Text(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn log_is_bounded_and_drops_old_bodies_first() {
        let (_tx, rx) = watch::channel(false);
        let shared = Shared {
            log: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(1),
            fail_counts: Mutex::new(HashMap::new()),
            shutdown: rx,
        };
        for i in 0..LOG_MAX_ENTRIES + 5 {
            let seen = Seen {
                method: "POST".into(),
                path: format!("/{i}"),
                headers: BTreeMap::new(),
                credentials: BTreeMap::new(),
                body: json!({"i": i}),
            };
            shared.record(seen, 200, None);
        }
        let log = shared.log();
        assert_eq!(log.len(), LOG_MAX_ENTRIES);
        assert_eq!(log[0].path, "/5");
        assert_eq!(
            log.iter().filter(|r| !r.body.is_null()).count(),
            LOG_MAX_BODIES
        );
        assert_eq!(
            log[LOG_MAX_ENTRIES - 1].body,
            json!({"i": LOG_MAX_ENTRIES + 4})
        );
    }

    #[test]
    fn strips_multiline_system_reminders() {
        let text = "<system-reminder>\nToday is x\n</system-reminder>\nhello <system-reminder>a</system-reminder>world";
        assert_eq!(strip_system_reminders(text), "\nhello world");
        assert_eq!(
            strip_system_reminders("a <system-reminder>open"),
            "a <system-reminder>open"
        );
    }

    #[test]
    fn parses_directives_and_prompt() {
        let d = Directives::parse(
            "  hi [[text:Hello, world]] [[think:hmm]][[slow:5]] [[usage:10,20]] [[hang]] there ",
        );
        assert_eq!(d.prompt, "hi     there");
        assert_eq!(d.pieces, vec![Piece::Text("Hello, world".into())]);
        assert_eq!(d.think.as_deref(), Some("hmm"));
        assert_eq!(d.slow_ms, Some(5));
        assert!(d.hang);
        assert_eq!(
            d.usage,
            Some(UsageDirective {
                input: 10,
                output: 20,
                cache_read: 0,
                cache_creation: 0
            })
        );
        assert!(d.errors.is_empty());
    }

    #[test]
    fn unknown_or_unclosed_brackets_stay_text() {
        let d = Directives::parse("see [[wiki page]] and [[text:unclosed");
        assert_eq!(d.prompt, "see [[wiki page]] and [[text:unclosed");
        assert!(d.pieces.is_empty());
    }

    #[test]
    fn parses_tool_directives() {
        let d = Directives::parse(
            r#"[[tool:Bash {"command":"echo hi"}]] [[tool:get_weather]] [[tool:x {"a":[[1]]}]]"#,
        );
        assert_eq!(d.tools.len(), 3);
        assert_eq!(d.tools[0].name, "Bash");
        assert_eq!(d.tools[0].input, json!({"command": "echo hi"}));
        assert_eq!(d.tools[1].input, json!({}));
        assert_eq!(d.tools[2].input, json!({"a": [[1]]}));
        assert_eq!(d.prompt, "");
        let bad = Directives::parse("[[tool:Bash {nope]]");
        assert_eq!(bad.errors.len(), 1);
    }

    #[test]
    fn parses_fail_usage_and_bad_arguments() {
        let d = Directives::parse("[[fail:529:2]] [[usage:1,2,3,4]] [[stop:max_tokens]]");
        assert_eq!(
            d.fail,
            Some(FailDirective {
                status: 529,
                times: Some(2)
            })
        );
        assert_eq!(
            d.usage,
            Some(UsageDirective {
                input: 1,
                output: 2,
                cache_read: 3,
                cache_creation: 4
            })
        );
        assert_eq!(d.stop.as_deref(), Some("max_tokens"));
        assert_eq!(
            Directives::parse("[[fail:500]]").fail,
            Some(FailDirective {
                status: 500,
                times: None
            })
        );
        let bad = Directives::parse("[[slow:abc]] [[usage:1]] [[fail:200]] [[report:nope]]");
        assert_eq!(bad.errors.len(), 4, "{:?}", bad.errors);
    }

    #[test]
    fn word_chunks_reassemble_exactly() {
        assert_eq!(
            word_chunks("hello big  world"),
            vec!["hello ", "big  ", "world"]
        );
        assert_eq!(word_chunks("  a b\n"), vec!["  a ", "b\n"]);
        assert!(word_chunks("").is_empty());
        let text = " ünïcode  text\twith\nlines ";
        assert_eq!(word_chunks(text).concat(), text);
    }

    #[test]
    fn json_fragments_are_two_or_more() {
        assert_eq!(json_fragments("{}"), vec!["{", "}"]);
        let long = json!({"command": "echo hi there, this is long"}).to_string();
        let parts = json_fragments(&long);
        assert!(parts.len() >= 2);
        assert!(parts.iter().all(|p| p.chars().count() <= 16));
        assert_eq!(parts.concat(), long);
    }

    #[test]
    fn tool_matching_prefers_exact_then_unique_mcp_suffix() {
        let tools: Vec<String> = [
            "Bash",
            "mcp__s__echo",
            "mcp__a__dup",
            "mcp__b__dup",
            "mcp__s__Bash",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(match_tool("Bash", &tools), Some("Bash"));
        assert_eq!(match_tool("echo", &tools), Some("mcp__s__echo"));
        assert_eq!(match_tool("dup", &tools), None);
        assert_eq!(match_tool("nope", &tools), None);
    }

    #[test]
    fn token_estimate_counts_message_text() {
        let messages = vec![
            user(json!("abcdefgh")),
            json!({"role": "assistant", "content": [{"type": "text", "text": "abcd"}]}),
        ];
        assert_eq!(estimate_input_tokens(&messages), 3);
        assert_eq!(estimate_input_tokens(&[]), 1);
    }

    #[test]
    fn newest_user_text_skips_system_and_reminder_only_messages() {
        let req = request(json!([
            user(json!([{"type": "text", "text": "<system-reminder>date</system-reminder>"},
                        {"type": "text", "text": "first [[text:A]]"}])),
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
            user(json!([{"type": "tool_result", "tool_use_id": "t1", "content": "out"},
                        {"type": "text", "text": "<system-reminder>x</system-reminder>"}])),
            {"role": "system", "content": "agents"},
        ]));
        let conv = conversation(&req);
        let newest = newest_user_message(&conv)
            .map(user_text)
            .unwrap_or_default();
        assert_eq!(newest.trim(), "first [[text:A]]");
    }

    #[test]
    fn echo_ok_and_text() {
        assert_eq!(
            reply_text(&plan(&request(json!([user(json!("hello there"))])))),
            "hello there"
        );
        assert_eq!(
            reply_text(&plan(&request(json!([user(json!("  "))])))),
            "ok"
        );
        let r = plan(&request(json!([user(json!("x [[text:exact  text]]"))])));
        assert_eq!(reply_text(&r), "exact  text");
        assert_eq!(r.stop_reason, "end_turn");
        assert_eq!(r.usage.output, 2);
        let w = plan(&request(json!([user(json!("[[words:3]]"))])));
        assert_eq!(reply_text(&w), "w1 w2 w3");
        assert_eq!(w.usage.output, 3);
        let big = plan(&request(json!([user(json!("[[words:2:5]]"))])));
        assert_eq!(reply_text(&big), "w1xxx w2xxx");
        assert_eq!(big.usage.output, 2);
    }

    #[test]
    fn tool_calls_and_continuation() {
        let mut req = request(json!([user(json!(
            r#"[[text:running]] [[tool:Bash {"command":"echo hi"}]] [[tool:echo]]"#
        ))]));
        req["tools"] = json!([{"name": "Bash"}, {"name": "mcp__s__echo"}]);
        let r = plan(&req);
        assert_eq!(r.stop_reason, "tool_use");
        assert_eq!(r.blocks.len(), 3);
        assert_eq!(r.blocks[0], Block::Text("running".into()));
        assert_eq!(
            r.blocks[2],
            Block::ToolUse {
                id: "toolu_mock_7_1".into(),
                name: "mcp__s__echo".into(),
                input: json!({})
            }
        );

        req["tools"] = json!([]);
        let missing = plan(&req);
        assert_eq!(reply_text(&missing), "no tool named Bash");
        assert_eq!(missing.stop_reason, "end_turn");

        let mut cont = request(json!([
            user(json!("[[think:ponder]] [[tool:Bash]]")),
            {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "Bash", "input": {}},
                                              {"type": "tool_use", "id": "b", "name": "Bash", "input": {}}]},
            user(json!([{"type": "tool_result", "tool_use_id": "a", "content": "hi\n"},
                        {"type": "tool_result", "tool_use_id": "b",
                         "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]}])),
        ]));
        cont["tools"] = json!([{"name": "Bash"}]);
        let r = plan(&cont);
        assert_eq!(r.blocks[0], Block::Thinking("ponder".into()));
        assert_eq!(reply_text(&r), "done | tool results: hi | xy");
        assert_eq!(r.stop_reason, "end_turn");
    }

    #[test]
    fn stop_and_usage_overrides() {
        let r = plan(&request(json!([user(json!(
            "hi [[stop:max_tokens]] [[usage:5,6,7,8]]"
        ))])));
        assert_eq!(r.stop_reason, "max_tokens");
        assert_eq!(
            r.usage,
            Usage {
                input: 5,
                output: 6,
                cache_read: 7,
                cache_creation: 8
            }
        );
        assert_eq!(
            r.usage.to_json(),
            json!({"input_tokens": 5, "output_tokens": 6,
                   "cache_creation_input_tokens": 8, "cache_read_input_tokens": 7})
        );
    }

    #[test]
    fn reports() {
        let mut req = request(json!([
            user(json!([
                {"type": "text", "text": "<system-reminder>r</system-reminder>look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            ])),
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                              {"type": "tool_use", "id": "a", "name": "Read", "input": {"p": 1}}]},
            user(json!([{"type": "tool_result", "tool_use_id": "a", "content": "data"}])),
            user(json!("[[report:tools]] [[report:system]] [[report:model]] [[report:max_tokens]]")),
        ]));
        req["tools"] = json!([{"name": "Read"}, {"name": "Bash"}]);
        req["system"] = json!([{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]);
        assert_eq!(
            reply_text(&plan(&req)),
            "tools=[\"Read\",\"Bash\"]\nsystem=\"A\\n\\nB\"\nmodel=\"m\"\nmax_tokens=10"
        );
        let history = render_history(message_list(&req));
        assert_eq!(
            history[0],
            json!({"role": "user", "text": "look\nimage:image/png"})
        );
        assert_eq!(
            history[1],
            json!({"role": "assistant", "text": "thinking:t\ntool_use:Read:{\"p\":1}"})
        );
        assert_eq!(
            history[2],
            json!({"role": "user", "text": "tool_result:data"})
        );

        let summary = request_summary(&req);
        assert_eq!(summary["messages"], json!("array[4]"));
        assert_eq!(summary["model"], json!("m"));

        let images = request(json!([user(json!([
            {"type": "text", "text": "[[report:images]]"},
            {"type": "image", "source": {"type": "url", "url": "http://x/y.png"}},
        ]))]));
        assert_eq!(
            reply_text(&plan(&images)),
            "images=[{\"type\":\"url\",\"url\":\"http://x/y.png\"}]"
        );
    }

    #[test]
    fn sse_sequence_for_thinking_text_and_tool() {
        let reply = Reply {
            blocks: vec![
                Block::Thinking("a b".into()),
                Block::Text("hi".into()),
                Block::ToolUse {
                    id: "t".into(),
                    name: "Bash".into(),
                    input: json!({"c": 1}),
                },
            ],
            stop_reason: "tool_use".into(),
            usage: Usage {
                input: 1,
                output: 5,
                cache_read: 0,
                cache_creation: 0,
            },
        };
        let names: Vec<&str> = sse_events(&reply, "msg", "m")
            .iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            vec![
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let frame = SseEvent::new("ping", json!({"type": "ping"})).frame();
        assert_eq!(&frame[..], b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
    }

    // ---- server tests -------------------------------------------------

    async fn start() -> MockUpstream {
        MockUpstream::start("127.0.0.1:0".parse().expect("valid literal address"))
            .await
            .expect("mock starts")
    }

    fn sse_event_names(body: &str) -> Vec<String> {
        body.split("\n\n")
            .filter_map(|frame| frame.strip_prefix("event: "))
            .filter_map(|rest| rest.split('\n').next())
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn server_streams_in_anthropic_order_and_logs() {
        let mock = start().await;
        let client = reqwest::Client::new();
        let head = client.head(mock.base_url()).send().await.expect("head");
        assert_eq!(head.status(), 200);

        let res = client
            .post(format!("{}/v1/messages?beta=true", mock.base_url()))
            .header("x-api-key", "sk-test")
            .json(&json!({"model": "claude-x", "max_tokens": 5, "stream": true,
                          "messages": [{"role": "user", "content": "[[think:deep thought]] hello world"}]}))
            .send()
            .await
            .expect("post");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["request-id"].to_str().ok(),
            Some("req_mock_1")
        );
        let body = res.text().await.expect("body");
        assert_eq!(
            sse_event_names(&body),
            vec![
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        assert!(body.contains("\"id\":\"msg_mock_1\""));
        assert!(body.contains("\"model\":\"claude-x\""));
        assert!(body.contains(&thinking_signature("deep thought")), "{body}");

        let logged = mock.messages_requests();
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0].path, "/v1/messages?beta=true");
        assert_eq!(logged[0].headers["x-api-key"], "<redacted>");
        assert_eq!(logged[0].status, 200);
        let usage = logged[0].usage.clone().expect("usage logged");
        assert_eq!(usage["output_tokens"], json!(4));
        assert_eq!(mock.requests().len(), 2);

        // The same log over HTTP, then cleared over HTTP.
        let over_http: Vec<Value> = client
            .get(format!("{}/_mock/requests", mock.base_url()))
            .send()
            .await
            .expect("get log")
            .json()
            .await
            .expect("log json");
        assert_eq!(over_http.len(), 2);
        client
            .delete(format!("{}/_mock/requests", mock.base_url()))
            .send()
            .await
            .expect("delete log");
        assert!(mock.requests().is_empty());
    }

    #[tokio::test]
    async fn server_non_streaming_errors_and_count_tokens() {
        let mock = start().await;
        let client = reqwest::Client::new();
        let url = format!("{}/v1/messages", mock.base_url());
        let body = json!({"model": "m", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "[[fail:429:1]] hi"}]});

        let first = client.post(&url).json(&body).send().await.expect("post");
        assert_eq!(first.status(), 429);
        assert_eq!(first.headers()["retry-after"], "1");
        let err: Value = first.json().await.expect("error json");
        assert_eq!(err["type"], "error");
        assert_eq!(err["error"]["type"], "rate_limit_error");

        let second: Value = client
            .post(&url)
            .json(&body)
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("message json");
        assert_eq!(second["type"], "message");
        assert_eq!(second["content"][0]["text"], "hi");
        assert_eq!(second["stop_reason"], "end_turn");

        let bad = client
            .post(&url)
            .body("not json")
            .send()
            .await
            .expect("post");
        assert_eq!(bad.status(), 400);
        let bad: Value = bad.json().await.expect("error json");
        assert_eq!(bad["error"]["type"], "invalid_request_error");

        let count: Value = client
            .post(format!(
                "{}/v1/messages/count_tokens?beta=true",
                mock.base_url()
            ))
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "abcdefgh"}]}))
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("count json");
        assert_eq!(count, json!({"input_tokens": 2}));

        // Over the context window: the real API's 400, whatever the directives say.
        let huge = "word ".repeat(CONTEXT_WINDOW_TOKENS as usize);
        let too_long = client
            .post(&url)
            .json(&json!({"model": "m", "max_tokens": 5,
                          "messages": [{"role": "user", "content": huge}]}))
            .send()
            .await
            .expect("post");
        assert_eq!(too_long.status(), 400);
        let too_long: Value = too_long.json().await.expect("error json");
        assert_eq!(too_long["error"]["type"], "invalid_request_error");
        assert!(too_long["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("prompt is too long: "));

        let statuses: Vec<u16> = mock.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![429, 200, 400, 200, 400]);
        assert_eq!(mock.messages_requests().len(), 4);
    }

    #[tokio::test]
    async fn hanging_stream_ends_when_mock_is_dropped() {
        let mock = start().await;
        let res = reqwest::Client::new()
            .post(format!("{}/v1/messages", mock.base_url()))
            .json(&json!({"model": "m", "max_tokens": 5, "stream": true,
                          "messages": [{"role": "user", "content": "[[hang]]"}]}))
            .send()
            .await
            .expect("post");
        let mut stream = res.bytes_stream();
        let first = stream.next().await.expect("a frame").expect("bytes");
        assert!(String::from_utf8_lossy(&first).starts_with("event: message_start"));
        let stalled = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
        assert!(stalled.is_err(), "nothing after message_start");
        drop(mock);
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = stream.next().await {}
        })
        .await;
        assert!(ended.is_ok(), "stream ends on shutdown");
    }
}
