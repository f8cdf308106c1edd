//! The console's own API (`/admin/api/...`, `/admin/ws`): the gateway-wide live feed over SSE
//! and WebSocket, every conversation of every source with its status and usage, and any
//! conversation's recorded history. (`/admin/api/stats` lives beside `/metrics`, in
//! `http::stats`.)
//!
//! A thin adapter like the others: it reads the domain's feed and overview and never touches a
//! process. Everything here needs a key when keys are configured.

pub mod audit;
pub mod handlers;
pub mod keys;
pub mod openapi;
// --- limits ---
pub mod usage;
