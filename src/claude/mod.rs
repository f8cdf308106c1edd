//! Everything that talks to the Claude Code CLI: launching it, the stream-json and control
//! protocol, the live processes and their budget, and the translation of its output into the
//! internal [`Event`] model.
//!
//! Nothing in here knows about HTTP. Callers hand in a launch spec and turn content, and get
//! events and [`ClaudeError`]s back.

pub mod args;
pub mod control;
pub mod event;
pub mod message;
pub mod pool;
pub mod process;
pub mod supervise;
pub mod tools;
pub mod transcript;
pub mod translate;
pub mod wire;

pub use event::{Event, StopReason, TurnSummary, Usage};

use serde::Serialize;

/// The CLI layer's one error type. Cloneable so that it can travel inside events.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClaudeError {
    /// The CLI could not be started at all.
    #[error("could not start the Claude Code CLI ({program}): {message}")]
    Spawn { program: String, message: String },
    /// The upstream model API answered with an error (after the CLI's own retries).
    #[error("upstream error{}: {message}", status.map(|s| format!(" {s}")).unwrap_or_default())]
    Upstream {
        status: Option<u16>,
        message: String,
        /// Seconds the client should wait, when the upstream said so.
        retry_after: Option<u64>,
    },
    /// The CLI ended the turn with an error of its own.
    #[error("the Claude Code CLI failed: {message}")]
    Cli { message: String },
    /// The CLI process exited while a turn or request was in flight.
    #[error("the Claude Code CLI exited unexpectedly ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Exited { status: String, stderr: String },
    /// A deadline passed: the turn's total time, or too long without output.
    #[error("timed out: {what}")]
    Timeout { what: String },
    /// Talking to the process failed (closed pipe, control request refused, ...).
    #[error("CLI protocol error: {message}")]
    Protocol { message: String },
    /// Every process slot is busy and the request waited as long as it may.
    #[error("all {max} Claude Code processes are busy; try again shortly")]
    AtCapacity { max: usize, retry_after: u64 },
    /// Whoever consumes a turn's events stopped taking them for too long (a client that
    /// stopped reading its stream), so the turn was stopped.
    #[error("the client did not read the stream for {secs} s; the turn was stopped")]
    ClientLagged { secs: u64 },
}

impl ClaudeError {
    pub fn protocol(message: impl Into<String>) -> Self {
        ClaudeError::Protocol {
            message: message.into(),
        }
    }
}
