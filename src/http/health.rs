//! Health, the root and the catch-all for unknown paths.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use axum::Json;
use serde::Serialize;

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
    pub uptime_secs: u64,
    pub demo: bool,
}

pub async fn health(State(app): State<AppState>) -> Json<Health> {
    let c = &app.conversations;
    Json(Health {
        status: "ok",
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
        uptime_secs: app.started.elapsed().as_secs(),
        demo: app.cfg.demo,
    })
}

/// `GET /` and `HEAD /`: the Claude Code CLI probes its base URL with `HEAD` before it calls
/// the API (a preconnect), so the root answers like the real API's does: 200.
pub async fn root() -> &'static str {
    concat!("ccgw ", env!("CARGO_PKG_VERSION"), "\n")
}

pub async fn not_found(uri: Uri) -> Response {
    ApiError::NotFound(format!("No route for {}", uri.path())).response_for_path(uri.path())
}
