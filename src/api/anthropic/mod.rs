//! The Anthropic-compatible API: Messages (`/v1/messages`, with message threads), token
//! counting (`/v1/messages/count_tokens`) and the model list in Anthropic's shape.
//!
//! A thin adapter: it parses Anthropic requests into a domain [`crate::domain::turn::TurnRequest`] and
//! renders [`crate::claude::Event`]s back as Anthropic messages and named SSE events. It never
//! touches processes; token counts go through [`crate::upstream`].

pub mod convert;
pub mod handlers;
pub mod models;
pub mod openapi;
pub mod render;
pub mod threads;
pub mod types;
