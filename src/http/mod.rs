//! The HTTP layer: the router, authentication, body parsing, the error type and its wire
//! shapes, health and metrics, the console's assets and stats, browser WebSocket auth, the
//! `Idempotency-Key` layer, the ownership layers (`ownership`), and the listener that accepts
//! connections within their limits. It knows the domain's service but never a CLI process.

pub mod auth;
pub mod body;
pub mod caller;
pub mod console;
pub mod cors;
pub mod error;
pub mod health;
pub mod idempotency;
// --- limits ---
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod openapi;
// --- isolation ---
pub mod ownership;
pub mod router;
pub mod state;
pub mod stats;
pub mod ws_auth;

pub use router::router;
pub use state::AppState;
