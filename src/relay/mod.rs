//! The credential relay: an Anthropic-compatible HTTP endpoint on loopback, in the gateway's own
//! process, that every CLI process uses as its `ANTHROPIC_BASE_URL`. Each process holds only a
//! random token of its own; the relay checks it, puts the real credentials (API key, auth
//! token, OAuth token, custom headers) in its place and forwards the request to the real
//! upstream, streaming the answer back as its bytes arrive. A token dies with its process.
//!
//! A process of a provider's model (`[providers.NAME]`) gets a token bound to that provider's
//! upstream and credentials when it starts: its requests go there and carry those, never the
//! gateway's own nor another provider's.
//!
//! On the way it records each request's usage, the upstream's rate-limit headers and errors
//! (see `usage`). It must not change a request in any other way, buffer a response, or log a
//! credential.

pub mod usage;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::json;
use tokio::sync::watch;

use usage::{is_rate_limit_header, UsageTap};
pub use usage::{Ledger, LedgerSummary, RateLimits, RequestRecord, RequestUsage};

const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// Model requests carry whole conversations (with images): allow large bodies.
const MAX_REQUEST_BYTES: usize = 256 * 1024 * 1024;
/// An upstream error body is read whole (it is small) to record its message.
const MAX_ERROR_BYTES: usize = 64 * 1024;
const TOKEN_PREFIX: &str = "ccgw-relay-";

/// Variables that carry the upstream's address or credentials: the relay's business, never a
/// CLI process's.
pub const CREDENTIAL_ENV: &[&str] = &[
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_CUSTOM_HEADERS",
];

/// The real upstream and how to authenticate to it.
#[derive(Clone, Default)]
pub struct Credentials {
    pub base_url: String,
    /// `x-api-key`.
    pub api_key: Option<String>,
    /// `Authorization: Bearer` (an `ANTHROPIC_AUTH_TOKEN`).
    pub auth_token: Option<String>,
    /// `Authorization: Bearer` for a Claude subscription (`CLAUDE_CODE_OAUTH_TOKEN`).
    pub oauth_token: Option<String>,
    /// `ANTHROPIC_CUSTOM_HEADERS`, one `Name: value` a line.
    pub custom_headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "oauth_token",
                &self.oauth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("custom_headers", &self.custom_headers.len())
            .finish()
    }
}

impl Credentials {
    /// From variables looked up by name (empty counts as unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let custom_headers = get("ANTHROPIC_CUSTOM_HEADERS")
            .map(|h| parse_custom_headers(&h))
            .unwrap_or_default();
        Credentials {
            base_url: get("ANTHROPIC_BASE_URL")
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
                .trim_end_matches('/')
                .to_string(),
            api_key: get("ANTHROPIC_API_KEY"),
            auth_token: get("ANTHROPIC_AUTH_TOKEN"),
            oauth_token: get("CLAUDE_CODE_OAUTH_TOKEN"),
            custom_headers,
        }
    }

    /// The bearer token the upstream gets, when the CLI would send one.
    fn bearer(&self) -> Option<&str> {
        self.auth_token.as_deref().or(self.oauth_token.as_deref())
    }

    /// Which variables a CLI process gets the relay token in: the ones it would have had the
    /// real credentials in, so it sends the request it would have sent directly. With none
    /// configured it still needs a key to send.
    fn token_vars(&self) -> Vec<&'static str> {
        let mut vars = Vec::new();
        if self.api_key.is_some() {
            vars.push("ANTHROPIC_API_KEY");
        }
        if self.auth_token.is_some() {
            vars.push("ANTHROPIC_AUTH_TOKEN");
        }
        if self.oauth_token.is_some() && self.auth_token.is_none() && self.api_key.is_none() {
            vars.push("CLAUDE_CODE_OAUTH_TOKEN");
        }
        if vars.is_empty() {
            vars.push("ANTHROPIC_API_KEY");
        }
        vars
    }
}

/// `Name: value` lines; malformed lines are skipped (as the CLI does).
fn parse_custom_headers(text: &str) -> Vec<(HeaderName, HeaderValue)> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            let name = HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
            let value = HeaderValue::from_str(value.trim()).ok()?;
            Some((name, value))
        })
        .collect()
}

struct Inner {
    /// The gateway's own upstream.
    creds: Arc<Credentials>,
    /// Each provider's, by name; a reload replaces the table (live tokens keep theirs).
    providers: RwLock<HashMap<String, Arc<Credentials>>>,
    client: reqwest::Client,
    /// Live tokens → who holds them and where their requests go.
    tokens: Mutex<HashMap<String, Holder>>,
    ledger: Ledger,
}

#[derive(Clone)]
struct Holder {
    label: String,
    creds: Arc<Credentials>,
}

/// Why a token could not be issued.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayError {
    #[error("no upstream provider named '{0}' is configured")]
    UnknownProvider(String),
}

/// The running relay. Serving stops when it is dropped.
pub struct Relay {
    addr: SocketAddr,
    inner: Arc<Inner>,
    _shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("addr", &self.addr).finish()
    }
}

impl Relay {
    /// Bind a loopback port and serve until dropped.
    pub async fn start(creds: Credentials) -> anyhow::Result<Arc<Relay>> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("binding the relay's loopback port")?;
        let addr = listener.local_addr().context("the relay's address")?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .context("building the relay's HTTP client")?;
        let inner = Arc::new(Inner {
            creds: Arc::new(creds),
            providers: RwLock::default(),
            client,
            tokens: Mutex::default(),
            ledger: Ledger::default(),
        });
        // Streamed answers go out in small writes: without TCP_NODELAY each would wait on
        // the client's delayed ACK (~40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let (shutdown, mut rx) = watch::channel(false);
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(inner.clone());
        tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!(error = %e, "the relay stopped with an error");
            }
        });
        tracing::info!(relay = %addr, upstream = %inner.creds.base_url, "credential relay listening");
        Ok(Arc::new(Relay {
            addr,
            inner,
            _shutdown: shutdown,
        }))
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn upstream(&self) -> &str {
        &self.inner.creds.base_url
    }

    /// The providers' upstreams and credentials, by name, in place of the ones before.
    pub fn set_providers(&self, providers: impl IntoIterator<Item = (String, Credentials)>) {
        let table = providers
            .into_iter()
            .map(|(name, c)| (name, Arc::new(c)))
            .collect();
        *self
            .inner
            .providers
            .write()
            .unwrap_or_else(|e| e.into_inner()) = table;
    }

    /// A new token for one process, bound to the gateway's own upstream; it is refused once
    /// the returned handle is dropped.
    pub fn issue(&self, label: &str) -> RelayToken {
        let creds = self.inner.creds.clone();
        self.token_for(label, creds)
    }

    /// A new token for one process, bound to `provider`'s upstream (`None`: the gateway's
    /// own); it is refused once the returned handle is dropped.
    pub fn issue_for(&self, label: &str, provider: Option<&str>) -> Result<RelayToken, RelayError> {
        let creds = match provider {
            None => self.inner.creds.clone(),
            Some(name) => self
                .inner
                .providers
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned()
                .ok_or_else(|| RelayError::UnknownProvider(name.to_string()))?,
        };
        Ok(self.token_for(label, creds))
    }

    fn token_for(&self, label: &str, creds: Arc<Credentials>) -> RelayToken {
        let token = format!(
            "{TOKEN_PREFIX}{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let vars = creds.token_vars();
        if let Ok(mut t) = self.inner.tokens.lock() {
            t.insert(
                token.clone(),
                Holder {
                    label: label.to_string(),
                    creds,
                },
            );
        }
        RelayToken {
            inner: Arc::downgrade(&self.inner),
            url: self.url(),
            vars,
            token,
        }
    }

    /// Tokens alive now.
    pub fn live_tokens(&self) -> usize {
        self.inner.tokens.lock().map(|t| t.len()).unwrap_or(0)
    }

    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }
}

/// One process's relay token. Dropping it revokes the token.
pub struct RelayToken {
    inner: Weak<Inner>,
    url: String,
    vars: Vec<&'static str>,
    token: String,
}

impl std::fmt::Debug for RelayToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayToken")
            .field("url", &self.url)
            .finish()
    }
}

impl RelayToken {
    /// The environment that points a CLI process at the relay with this token.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("ANTHROPIC_BASE_URL".to_string(), self.url.clone())];
        env.extend(
            self.vars
                .iter()
                .map(|v| (v.to_string(), self.token.clone())),
        );
        env
    }

    /// The token itself (tests; never logged).
    pub fn secret(&self) -> &str {
        &self.token
    }

    pub fn revoke(&self) {
        if let Some(inner) = self.inner.upgrade() {
            if let Ok(mut t) = inner.tokens.lock() {
                t.remove(&self.token);
            }
        }
    }
}

impl Drop for RelayToken {
    fn drop(&mut self) {
        self.revoke();
    }
}

/// Headers that belong to one connection, never forwarded.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
    )
}

fn relay_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"type": "error", "error": {"type": kind, "message": message}}).to_string(),
    )
        .into_response()
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The token a request carries: `x-api-key` or `Authorization: Bearer`.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    key.filter(|k| k.starts_with(TOKEN_PREFIX))
        .or(bearer.filter(|b| b.starts_with(TOKEN_PREFIX)))
}

/// The request's headers for the upstream: the token swapped for the real credentials, the
/// custom headers added, connection headers dropped; everything else as the CLI sent it.
fn upstream_headers(from_cli: &HeaderMap, creds: &Credentials) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(from_cli.len() + creds.custom_headers.len());
    for (name, value) in from_cli {
        let n = name.as_str();
        if is_hop_by_hop(n) || n == "content-length" {
            continue;
        }
        match n {
            "x-api-key" => {
                if let Some(v) = creds
                    .api_key
                    .as_deref()
                    .and_then(|k| HeaderValue::from_str(k).ok())
                {
                    out.append(name.clone(), v);
                }
            }
            "authorization" => {
                if let Some(v) = creds
                    .bearer()
                    .and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok())
                {
                    out.append(name.clone(), v);
                }
            }
            _ => {
                out.append(name.clone(), value.clone());
            }
        }
    }
    for (name, value) in &creds.custom_headers {
        out.insert(name.clone(), value.clone());
    }
    out
}

/// Records a forwarded request when its response has ended (or its reader went away).
struct Pending {
    inner: Arc<Inner>,
    record: Option<RequestRecord>,
    tap: UsageTap,
    started: Instant,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.usage = self.tap.finish();
            record.duration_ms = self.started.elapsed().as_millis() as u64;
            finish_record(&self.inner, record);
        }
    }
}

fn finish_record(inner: &Inner, record: RequestRecord) {
    metrics::counter!("ccgw_relay_requests_total", "status" => record.status.to_string())
        .increment(1);
    if let Some(u) = &record.usage {
        metrics::counter!("ccgw_relay_tokens_total", "kind" => "input").increment(u.input_tokens);
        metrics::counter!("ccgw_relay_tokens_total", "kind" => "output").increment(u.output_tokens);
    }
    tracing::debug!(
        target: "ccgw::relay",
        label = %record.label,
        path = %record.path,
        status = record.status,
        duration_ms = record.duration_ms,
        input_tokens = record.usage.map(|u| u.input_tokens),
        output_tokens = record.usage.map(|u| u.output_tokens),
        "model request relayed"
    );
    inner.ledger.record(record);
}

async fn forward(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let presented = presented_token(&parts.headers);
    let holder = presented.and_then(|t| {
        inner
            .tokens
            .lock()
            .ok()
            .and_then(|tokens| tokens.get(t).cloned())
    });
    let Some(Holder { label, creds }) = holder else {
        // The CLI's runtime warms its connection with a bare `HEAD /` as each process starts:
        // no credential at all is routine. A token that is not (or no longer) ours is not.
        if presented.is_some() {
            tracing::warn!(target: "ccgw::relay", path = %parts.uri.path(), "relay request with an unknown or revoked token refused");
        } else {
            tracing::debug!(target: "ccgw::relay", method = %parts.method, path = %parts.uri.path(), "relay request without a token refused");
        }
        return relay_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "the relay token is unknown or no longer valid",
        );
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return relay_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("the relay could not read the request body: {e}"),
            )
        }
    };
    #[derive(serde::Deserialize)]
    struct Peek {
        model: Option<String>,
    }
    let model = serde_json::from_slice::<Peek>(&body)
        .ok()
        .and_then(|p| p.model);
    let mut record = RequestRecord {
        label,
        method: parts.method.to_string(),
        path: path.clone(),
        model,
        status: 0,
        usage: None,
        duration_ms: 0,
        error: None,
        at: now(),
    };
    let url = format!("{}{}", creds.base_url, path);
    let sent = inner
        .client
        .request(parts.method.clone(), &url)
        .headers(upstream_headers(&parts.headers, &creds))
        .body(body)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let message = format!("the relay could not reach the upstream: {e}");
            tracing::warn!(target: "ccgw::relay", error = %e, "upstream unreachable");
            record.status = 502;
            record.error = Some(message);
            record.duration_ms = started.elapsed().as_millis() as u64;
            finish_record(&inner, record);
            return connection_failure();
        }
    };
    let status = resp.status();
    record.status = status.as_u16();
    let mut headers = HeaderMap::with_capacity(resp.headers().len());
    let mut limits = BTreeMap::new();
    for (name, value) in resp.headers() {
        let n = name.as_str();
        if is_hop_by_hop(n) {
            continue;
        }
        if is_rate_limit_header(n) {
            limits.insert(
                n.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            );
        }
        headers.append(name.clone(), value.clone());
    }
    inner.ledger.rate_limits_seen(limits, now());

    if !status.is_success() {
        // Error bodies are small JSON: read whole, recorded, then passed on unchanged.
        let bytes = read_limited(resp, MAX_ERROR_BYTES).await;
        let text = String::from_utf8_lossy(&bytes);
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(|m| m.as_str())
                    .map(String::from)
            })
            .unwrap_or_else(|| text.chars().take(300).collect());
        tracing::warn!(target: "ccgw::relay", status = status.as_u16(), error = %message, "upstream error");
        record.error = Some(message);
        record.duration_ms = started.elapsed().as_millis() as u64;
        finish_record(&inner, record);
        headers.remove("content-length");
        let mut out = Response::new(Body::from(bytes));
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        return out;
    }

    let sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut pending = Pending {
        inner: inner.clone(),
        record: Some(record),
        tap: UsageTap::new(sse),
        started,
    };
    let mut upstream = resp.bytes_stream();
    let stream = async_stream::stream! {
        while let Some(chunk) = upstream.next().await {
            match chunk {
                Ok(bytes) => {
                    pending.tap.feed(&bytes);
                    yield Ok::<Bytes, std::io::Error>(bytes);
                }
                Err(e) => {
                    if let Some(r) = pending.record.as_mut() {
                        r.error = Some(format!("the upstream's answer broke off: {e}"));
                    }
                    yield Err(std::io::Error::other(e));
                    break;
                }
            }
        }
        drop(pending);
    };
    let mut out = Response::new(Body::from_stream(stream));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// What the CLI would have met calling an upstream it cannot reach: a connection that closes
/// with no answer. A body that fails before its first byte makes the server drop the connection
/// with the response head still unsent, so the CLI handles it as it handles any connection
/// failure (its own retries, then its connection error).
fn connection_failure() -> Response {
    let fail = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("the upstream could not be reached"))
    });
    Response::new(Body::from_stream(fail))
}

async fn read_limited(resp: reqwest::Response, limit: usize) -> Bytes {
    let mut buf = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = limit.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= limit {
            break;
        }
    }
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(vars: &[(&str, &str)]) -> Credentials {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Credentials::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn the_cli_gets_the_token_where_it_had_the_credential() {
        assert_eq!(
            creds(&[("ANTHROPIC_API_KEY", "k")]).token_vars(),
            ["ANTHROPIC_API_KEY"]
        );
        assert_eq!(
            creds(&[("ANTHROPIC_AUTH_TOKEN", "t")]).token_vars(),
            ["ANTHROPIC_AUTH_TOKEN"]
        );
        assert_eq!(
            creds(&[("ANTHROPIC_API_KEY", "k"), ("ANTHROPIC_AUTH_TOKEN", "t")]).token_vars(),
            ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"]
        );
        assert_eq!(
            creds(&[("CLAUDE_CODE_OAUTH_TOKEN", "o")]).token_vars(),
            ["CLAUDE_CODE_OAUTH_TOKEN"]
        );
        assert_eq!(creds(&[]).token_vars(), ["ANTHROPIC_API_KEY"]);
        assert_eq!(creds(&[]).base_url, DEFAULT_BASE_URL);
        let c = creds(&[
            ("ANTHROPIC_API_KEY", "sk-real"),
            ("ANTHROPIC_BASE_URL", "http://u/"),
        ]);
        assert_eq!(c.base_url, "http://u");
        assert!(!format!("{c:?}").contains("sk-real"));
    }

    #[test]
    fn headers_swap_the_token_and_keep_the_rest() {
        let c = creds(&[
            ("ANTHROPIC_API_KEY", "sk-real"),
            ("ANTHROPIC_AUTH_TOKEN", "tok-real"),
            (
                "ANTHROPIC_CUSTOM_HEADERS",
                "X-Team: blue\nbad line\nX-Other:  2 ",
            ),
        ]);
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("ccgw-relay-abc"));
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer ccgw-relay-abc"),
        );
        h.insert("anthropic-beta", HeaderValue::from_static("a,b"));
        h.insert("host", HeaderValue::from_static("127.0.0.1:1"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        h.insert("content-length", HeaderValue::from_static("5"));
        let out = upstream_headers(&h, &c);
        assert_eq!(out["x-api-key"], "sk-real");
        assert_eq!(out["authorization"], "Bearer tok-real");
        assert_eq!(out["anthropic-beta"], "a,b");
        assert_eq!(out["x-team"], "blue");
        assert_eq!(out["x-other"], "2");
        assert!(out.get("host").is_none() && out.get("connection").is_none());
        assert!(out.get("content-length").is_none());
        // No credential of a kind: the header goes rather than carry the token on.
        let out = upstream_headers(&h, &creds(&[("CLAUDE_CODE_OAUTH_TOKEN", "oauth-real")]));
        assert!(out.get("x-api-key").is_none());
        assert_eq!(out["authorization"], "Bearer oauth-real");
        assert_eq!(presented_token(&h), Some("ccgw-relay-abc"));
        let mut other = HeaderMap::new();
        other.insert("x-api-key", HeaderValue::from_static("sk-someone"));
        assert_eq!(presented_token(&other), None);
    }

    #[tokio::test]
    async fn a_providers_token_is_bound_to_its_upstream_and_an_unknown_one_is_refused() {
        let relay = Relay::start(creds(&[("ANTHROPIC_API_KEY", "sk-own")]))
            .await
            .unwrap();
        relay.set_providers([(
            "p".to_string(),
            creds(&[
                ("ANTHROPIC_AUTH_TOKEN", "tok-p"),
                ("ANTHROPIC_BASE_URL", "http://p"),
            ]),
        )]);
        let token = relay.issue_for("x", Some("p")).unwrap();
        let vars: Vec<String> = token.cli_env().into_iter().map(|(k, _)| k).collect();
        assert_eq!(vars, ["ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"]);
        let bound = relay.inner.tokens.lock().unwrap()[token.secret()]
            .creds
            .clone();
        assert_eq!(bound.base_url, "http://p");
        assert_eq!(bound.api_key, None, "never the gateway's own key");
        let own = relay.issue_for("y", None).unwrap();
        let bound = relay.inner.tokens.lock().unwrap()[own.secret()]
            .creds
            .clone();
        assert_eq!(bound.api_key.as_deref(), Some("sk-own"));
        assert!(matches!(
            relay.issue_for("z", Some("q")),
            Err(RelayError::UnknownProvider(n)) if n == "q"
        ));
        // A reload's table: new tokens only; a live one keeps what it was issued with.
        relay.set_providers([]);
        assert!(relay.issue_for("x", Some("p")).is_err());
        let still = relay.inner.tokens.lock().unwrap()[token.secret()]
            .creds
            .clone();
        assert_eq!(still.base_url, "http://p");
    }

    #[tokio::test]
    async fn a_token_is_refused_once_dropped() {
        let relay = Relay::start(creds(&[])).await.unwrap();
        let token = relay.issue("p1");
        assert_eq!(relay.live_tokens(), 1);
        let env = token.cli_env();
        assert_eq!(env[0], ("ANTHROPIC_BASE_URL".to_string(), relay.url()));
        assert!(env[1].1.starts_with(TOKEN_PREFIX));
        drop(token);
        assert_eq!(relay.live_tokens(), 0);
    }
}
