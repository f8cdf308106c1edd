//! What every handler can reach: the settings, the domain service, the model table and the
//! direct upstream client. Built once at start-up by `server`.

use std::sync::Arc;

use crate::config::Config;
use crate::domain::conversations::Conversations;
use crate::domain::models::Models;
use crate::upstream::Upstream;

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub conversations: Arc<Conversations>,
    /// The model table in force (`models.current()`); a reload replaces it.
    pub models: Arc<Models>,
    /// The origins CORS allows (live).
    pub cors: Arc<crate::http::cors::CorsOrigins>,
    /// The API keys, in memory (see `domain::tenants`).
    pub keys: Arc<crate::domain::tenants::KeyRing>,
    /// The audit log's writer (see `domain::audit`).
    pub audit: crate::domain::audit::AuditLog,
    /// The upstream Messages API, called directly for token counts.
    pub upstream: Arc<Upstream>,
    /// Single-use tickets for browsers' WebSockets.
    pub ws_tickets: Arc<crate::http::ws_auth::Tickets>,
    /// The dashboard's time series.
    pub stats: Arc<crate::http::stats::Stats>,
    pub started_unix: u64,
    pub started: std::time::Instant,
}
