//! The domain: conversations and the life of a turn, native sessions, the request model every
//! adapter builds, and the model table. Knows no HTTP; drives the CLI through `claude`.
//!
//! Bottom to top: `turn` (the request), `conversation` (one conversation's state),
//! `session_table` and `writes` (what the service holds), `conversations` (the service and the
//! compatible APIs' conversations), `launch` and `drive` (a process for a turn, and the turn's
//! life), `sessions` (native sessions; `session_copy` forks and exports them), `replies` (what
//! the compatible APIs keep for later requests) and `idempotency` (responses kept for
//! retries), with `tool_step`, `structured`, `outlet` (where a turn's events go), `history`,
//! `history_key` and `cli_wait` beside them.
//! `feed` is the gateway-wide live feed every turn publishes to, with `activity` (live state
//! kept from it); `recorder` joins a turn's events into history entries (`outlet` writes them);
//! `claude_sessions` reads the machine's own Claude Code transcripts; `confine` is the one
//! check that a path stays inside a session's workspace. `tool_catalog`, `direct_tools` and
//! `tool_calls` are the native API's tools: what exists, direct calls on a workspace, and a
//! session's tool-call history, with `permissions` the tools a session may use; `files`,
//! `memory`, `checkpoints` and `workspace` a session's workspace files, its CLAUDE.md, its
//! checkpoints and the workspace roots; `project` moves a session to another workspace.
//! `ownership` says who owns a session; `projects` holds projects, the defaults of their
//! sessions and who may see them.

pub mod activity;
pub mod agents;
pub mod audit;
mod catalog;
pub mod checkpoints;
pub mod claude_sessions;
pub mod cli_health;
pub mod cli_wait;
pub mod commands;
pub mod confine;
pub mod conversation;
pub mod conversations;
pub mod direct_tools;
pub mod drain;
mod drive;
pub mod feed;
pub mod files;
mod history;
pub mod history_key;
pub mod hooks;
pub mod idempotency;
mod launch;
pub mod mcp;
mod mcp_status;
pub mod memory;
pub mod models;
mod outlet;
pub mod overview;
pub mod permissions;
pub mod policy;
pub mod project;
// --- isolation: who owns a session, and projects ---
mod fencing;
mod leases;
pub mod ownership;
pub mod projects;
pub mod providers;
mod recorder;
pub mod replies;
pub mod session_copy;
pub mod session_table;
pub mod sessions;
pub mod settings;
pub mod stamp;
mod structured;
mod tasks;
pub mod tenants;
pub mod tool_calls;
pub mod tool_catalog;
mod tool_step;
pub mod turn;
pub mod watch;
pub mod workspace;
mod writes;
// --- limits ---
pub mod limits;
pub mod usage;
