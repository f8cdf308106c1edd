//! The native Claude Code API (`/api/...`): sessions that live on, their messages (JSON, SSE
//! or WebSocket), watchers, permissions, history, fork and export; tools (`tools`): the
//! catalog, tool-call history, direct tool calls and the tool-status stream; the workspace
//! (`files`): files and memory; the project (`project`): `/init` and moving the workspace;
//! the event envelope, SSE framing and watcher resumption (`events`); hook subscriptions and
//! their answers (`hooks`); projects and their sessions' defaults (`projects`).
//!
//! A thin adapter like the others: it maps HTTP onto the session functions of the domain
//! (`crate::domain::sessions`) and renders `claude::Event`s; it never touches processes.

pub mod agents;
pub mod bodies;
pub mod claude_sessions;
pub mod commands;
pub mod events;
pub mod files;
pub mod handlers;
pub mod hooks;
pub mod mcp;
pub mod openapi;
pub mod project;
// --- isolation ---
pub mod projects;
pub mod settings;
pub mod tools;
pub mod types;
// --- limits ---
pub mod usage;
