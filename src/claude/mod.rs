//! Everything that talks to the Claude Code CLI: launching it, the stream-json and control
//! protocol, the live processes and their budget, and the translation of its output into the
//! internal [`Event`] model.
//!
//! Nothing in here knows about HTTP. Callers hand in a launch spec and turn content, and get
//! events and [`ClaudeError`]s back.

pub mod args;
pub mod budget;
pub mod control;
pub mod event;
pub mod message;
pub mod pool;
pub mod process;
pub mod sandbox;
pub mod spawner;
pub mod supervise;
pub mod tools;
pub mod transcript;
pub mod translate;
pub mod warm;
pub mod wire;

pub use event::{Event, StopReason, TurnSummary, Usage};

use serde::ser::SerializeMap;
use serde::Serialize;

/// The CLI layer's one error type. Cloneable so that it can travel inside events.
///
/// `Display` is the whole story, for the log: it can hold the CLI's own words (a JavaScript
/// exception, its stderr, the address it tried). Clients get [`ClaudeError::public_message`],
/// which never does; events serialize with it too.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// The conversation no longer fits the model's context window.
    #[error("prompt too long: {message}")]
    PromptTooLong { message: String },
    /// The CLI ended the turn with an error of its own.
    #[error("the Claude Code CLI failed: {message}")]
    Cli { message: String },
    /// A turn asked for structured output ended without an answer valid against the schema.
    #[error("the model did not produce output that matches the response format's schema")]
    NoStructuredOutput,
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

    /// A short name of the kind of error (events' `kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            ClaudeError::Spawn { .. } => "spawn",
            ClaudeError::Upstream { .. } => "upstream",
            ClaudeError::PromptTooLong { .. } => "prompt_too_long",
            ClaudeError::Cli { .. } | ClaudeError::NoStructuredOutput => "cli",
            ClaudeError::Exited { .. } => "exited",
            ClaudeError::Timeout { .. } => "timeout",
            ClaudeError::Protocol { .. } => "protocol",
            ClaudeError::AtCapacity { .. } => "at_capacity",
            ClaudeError::ClientLagged { .. } => "client_lagged",
        }
    }

    /// What a client may be told: the gateway's own words, or the upstream API's own error
    /// message, never the CLI's internals.
    pub fn public_message(&self) -> String {
        match self {
            ClaudeError::Spawn { .. } => "The Claude Code CLI could not be started".into(),
            ClaudeError::Upstream { status: None, .. } => {
                "The upstream model API could not be reached".into()
            }
            ClaudeError::Upstream {
                status: Some(status),
                message,
                ..
            } => match api_error_message(message) {
                Some(m) => format!("The upstream model API answered {status}: {m}"),
                None => format!("The upstream model API answered {status}"),
            },
            ClaudeError::PromptTooLong { message } => {
                let size = message
                    .split_once("the request is ")
                    .and_then(|(_, rest)| rest.split_once(')'))
                    .map(|(size, _)| format!(" ({})", size.replace(" (limit ", ", limit ")))
                    .unwrap_or_default();
                format!("The prompt is too long for the model's context window{size}")
            }
            ClaudeError::Cli { .. } => "The Claude Code CLI could not complete the turn".into(),
            ClaudeError::Exited { .. } => "The Claude Code CLI stopped unexpectedly".into(),
            ClaudeError::Protocol { .. } => {
                "The gateway lost its connection to the Claude Code CLI".into()
            }
            // Our own words.
            ClaudeError::Timeout { .. }
            | ClaudeError::NoStructuredOutput
            | ClaudeError::AtCapacity { .. }
            | ClaudeError::ClientLagged { .. } => self.to_string(),
        }
    }
}

/// The upstream API's own error message inside the CLI's report of it
/// (`API Error: 529 {"type":"error","error":{"message":…}}`).
fn api_error_message(text: &str) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(&text[text.find('{')?..]).ok()?;
    body.pointer("/error/message")?.as_str().map(String::from)
}

impl Serialize for ClaudeError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", self.kind())?;
        m.serialize_entry("message", &self.public_message())?;
        match self {
            ClaudeError::Upstream {
                status,
                retry_after,
                ..
            } => {
                m.serialize_entry("status", status)?;
                m.serialize_entry("retry_after", retry_after)?;
            }
            ClaudeError::AtCapacity { max, retry_after } => {
                m.serialize_entry("max", max)?;
                m.serialize_entry("retry_after", retry_after)?;
            }
            ClaudeError::ClientLagged { secs } => m.serialize_entry("secs", secs)?,
            _ => {}
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_never_see_the_clis_internals() {
        let cases = [
            ClaudeError::Cli {
                message: "undefined is not an object (evaluating 'M.startsWith')".into(),
            },
            ClaudeError::Exited {
                status: "exit status: 1".into(),
                stderr: "TypeError at /$bunfs/root/claude.js:1:2".into(),
            },
            ClaudeError::Upstream {
                status: None,
                message:
                    "API Error: Unable to connect (check your inference gateway (127.0.0.1:4711))"
                        .into(),
                retry_after: None,
            },
            ClaudeError::Spawn {
                program: "/opt/secret/claude".into(),
                message: "No such file".into(),
            },
        ];
        for e in cases {
            let public = serde_json::to_string(&e).unwrap();
            for leak in [
                "undefined",
                "bunfs",
                "127.0.0.1",
                "inference gateway",
                "/opt/secret",
            ] {
                assert!(!public.contains(leak), "{public}");
            }
            assert!(
                e.to_string().len() > e.public_message().len() / 2,
                "the log keeps it"
            );
        }
        let api = ClaudeError::Upstream {
            status: Some(529),
            message: r#"API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.into(),
            retry_after: Some(1),
        };
        assert_eq!(
            api.public_message(),
            "The upstream model API answered 529: Overloaded"
        );
        let long = ClaudeError::PromptTooLong {
            message: "Prompt is too long · the request is ~250076 tokens (limit 200000) and more"
                .into(),
        };
        assert_eq!(
            long.public_message(),
            "The prompt is too long for the model's context window (~250076 tokens, limit 200000)"
        );
    }
}
