//! The OpenAI-compatible API: Chat Completions and Models.
//!
//! A thin adapter: it parses OpenAI requests into a domain [`crate::domain::turn::TurnRequest`] and
//! renders [`crate::claude::Event`]s back as OpenAI responses. It never touches processes.

pub mod convert;
pub mod handlers;
pub mod openapi;
pub mod render;
pub mod types;
