//! Health, the root and the catch-all for unknown paths. With keys configured, strangers
//! learn only that the gateway is alive: the details, the metrics and even which routes exist
//! need a key.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::http::auth;
use crate::http::error::ApiError;
use crate::http::AppState;

#[derive(Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub cli_version: String,
    pub live_processes: usize,
    pub max_live_processes: usize,
    pub queue_depth: usize,
    pub conversations: usize,
    pub spawned_processes: u64,
    pub warm_processes: usize,
    pub warm_hits: u64,
    pub cold_spawns: u64,
    /// Cold spawns that resumed a conversation whose process was gone.
    pub resumes: u64,
    /// Idle conversation processes stopped to make room for another process.
    pub evictions: u64,
    pub uptime_secs: u64,
    pub demo: bool,
    /// How Bash is confined here (`bubblewrap: …`, or why it cannot be and what follows).
    pub bash_sandbox: String,
    /// The credential relay: the upstream's rate limits, usage and errors it has seen.
    pub relay: Option<RelayHealth>,
    /// Each upstream provider: its credential variables set, its base URL reachable. One that
    /// is not leaves the gateway ready (other models still work); it shows here.
    pub providers: Vec<crate::domain::providers::ProviderCheck>,
}

#[derive(Serialize)]
pub struct RelayHealth {
    pub upstream: String,
    pub live_tokens: usize,
    #[serde(flatten)]
    pub seen: crate::relay::LedgerSummary,
}

/// `GET /health`: liveness for anyone; the details for a caller with a key (or for anyone
/// when no key is configured).
#[utoipa::path(
    get, path = "/health", tag = "health", operation_id = "health",
    responses((status = 200, description = "Alive; the details (CLI, processes, queue, relay) with a key, or when the gateway has none", body = Object)),
    security((), ("bearer" = []), ("api_key" = []))
)]
pub async fn health(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if !auth::key_ok(&app, &headers) {
        return Json(serde_json::json!({"status": "ok"})).into_response();
    }
    details(&app).await.into_response()
}

/// `GET /health/ready`: readiness for a load balancer or Kubernetes, open to anyone: 200 while
/// this instance starts new turns; 503 once it drains, or while the CLI cannot run (the reason
/// in detail only for a caller with a key, or when the gateway has none).
#[utoipa::path(
    get, path = "/health/ready", tag = "health", operation_id = "ready",
    responses(
        (status = 200, description = "Ready: this instance starts new turns", body = Object),
        (status = 503, description = "Draining, or the CLI cannot run (`reason`; the `detail` with a key)", body = Object)
    ),
    security((), ("bearer" = []), ("api_key" = []))
)]
pub async fn ready(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let c = &app.conversations;
    let not_ready = if !c.drain.accepting() {
        serde_json::json!({"ready": false, "reason": "draining"})
    } else if let Err(why) = c.cli_health.usable() {
        let mut body = serde_json::json!({"ready": false, "reason": "cli_unavailable"});
        if auth::key_ok(&app, &headers) {
            body["detail"] = why.into();
        }
        body
    } else {
        return Json(serde_json::json!({"ready": true})).into_response();
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(not_ready)).into_response()
}

async fn details(app: &AppState) -> Json<Health> {
    let providers = crate::domain::providers::check_all(
        app.models.current().providers(),
        crate::domain::providers::process_env,
    )
    .await;
    let c = &app.conversations;
    Json(Health {
        // Alive either way (liveness must not fail while turns finish); "draining" once the
        // instance starts no new turns.
        status: if c.drain.accepting() {
            "ok"
        } else {
            "draining"
        },
        version: env!("CARGO_PKG_VERSION"),
        cli_version: c.cli_version().to_string(),
        live_processes: c.pool.live_count(),
        max_live_processes: c.pool.max_live(),
        queue_depth: c.pool.queue_depth(),
        conversations: c.conversation_count(),
        spawned_processes: c.pool.spawn_count(),
        warm_processes: c.pool.warm_count(),
        warm_hits: c.pool.warm_hit_count(),
        cold_spawns: c.pool.cold_spawn_count(),
        resumes: c.pool.resume_count(),
        evictions: c.pool.eviction_count(),
        uptime_secs: app.started.elapsed().as_secs(),
        demo: app.cfg.demo,
        bash_sandbox: app.cfg.bash_sandbox_status.clone(),
        relay: app.cfg.relay.as_ref().map(|r| RelayHealth {
            upstream: r.upstream().to_string(),
            live_tokens: r.live_tokens(),
            seen: r.ledger().summary(),
        }),
        providers,
    })
}

/// `GET /metrics` on the main address: a key is needed when keys are configured (Prometheus
/// without one scrapes `metrics_listen`).
#[utoipa::path(
    get, path = "/metrics", tag = "health", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String))
)]
pub async fn metrics(State(app): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    if !auth::key_ok(&app, &headers) {
        return auth::key_required(uri.path());
    }
    crate::http::metrics::render(State(app)).await
}

/// `GET /` and `HEAD /`: the Claude Code CLI probes its base URL with `HEAD` before it calls
/// the API (a preconnect), so the root answers like the real API's does: 200.
#[utoipa::path(
    get, path = "/", tag = "health", operation_id = "root",
    responses((status = 200, description = "OK (the CLI probes its base URL)", content_type = "text/plain", body = String)),
    security(())
)]
pub async fn root() -> &'static str {
    concat!("ccgw ", env!("CARGO_PKG_VERSION"), "\n")
}

/// An unknown path: 401 before 404 when keys are configured, so that which paths exist is
/// learnt only with a key.
pub async fn not_found(State(app): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    if !auth::key_ok(&app, &headers) {
        return auth::key_required(uri.path());
    }
    ApiError::NotFound(format!("No route for {}", uri.path())).response_for_path(uri.path())
}
