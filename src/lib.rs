//! ccgw: the Claude Code CLI as an OpenAI- and Anthropic-compatible API.
//!
//! Layout: `claude/` drives the CLI and knows nothing about HTTP; `conversation` is the domain
//! that maps requests onto CLI sessions; `openai/` and `anthropic/` are thin protocol adapters;
//! `upstream` calls the Messages API directly for what the CLI cannot do (token counts); `app`
//! wires routes to handlers; `server` starts it all.

pub mod anthropic;
pub mod app;
pub mod auth;
pub mod body;
pub mod claude;
pub mod config;
pub mod conversation;
pub mod doctor;
pub mod error;
pub mod health;
pub mod metrics;
pub mod mock_upstream;
pub mod models;
pub mod native;
pub mod openai;
pub mod server;
pub mod sessions;
pub mod store;
pub mod turn;
pub mod upstream;
