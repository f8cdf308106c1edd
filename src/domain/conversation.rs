//! One conversation's state between turns, and what a turn hands back to its adapter. Pure
//! data: the service that moves conversations through their turns is `conversations`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::claude::args::LaunchSpec;
use crate::claude::process::CliProcess;
use crate::claude::tools::ClientToolServer;
use crate::claude::{ClaudeError, Event, Usage};
pub use crate::domain::outlet::TurnEvents;
use crate::domain::turn::{Message, TurnRequest};
use crate::store;

/// The domain's error: a CLI failure, or a request the domain cannot accept.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error(transparent)]
    Claude(#[from] ClaudeError),
    #[error("{message}")]
    Invalid { param: String, message: String },
    #[error("{0}")]
    NotFound(String),
    /// The session is busy with another turn.
    #[error("{0}")]
    Busy(String),
    /// Outside what this gateway allows (a path outside the workspace roots).
    #[error("{0}")]
    Forbidden(String),
    /// Another instance holds the session's lease (a turn runs there) and kept it past the
    /// wait: a 409 with `retry-after`.
    #[error("{message}")]
    Held {
        message: String,
        retry_after_secs: u64,
    },
    /// The gateway is stopping: no new turn starts here.
    #[error("the gateway is shutting down and starts no new turns; retry on another instance or after it restarts")]
    ShuttingDown,
}

impl TurnError {
    pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        TurnError::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// A CLI turn paused on client tool calls.
pub(crate) struct Awaiting {
    pub(crate) cli: mpsc::Receiver<Event>,
    /// Tool-use ids the client must answer.
    pub(crate) pending: Vec<String>,
    /// Their tool names and argument sizes, for the records.
    pub(crate) calls: HashMap<String, (String, usize)>,
    pub(crate) since: Instant,
    /// Usage already reported to the client for this CLI turn.
    pub(crate) reported: Usage,
}

/// A conversation between turns. Owned by the registry, or by the one turn running in it.
pub(crate) struct Conversation {
    pub(crate) id: String,
    pub(crate) cli_session_id: String,
    pub(crate) workspace: PathBuf,
    /// Made by the gateway (removed with the conversation), not a directory the user named.
    pub(crate) workspace_is_temp: bool,
    pub(crate) system: Option<String>,
    /// A turn of it ended cleanly, so the CLI has a transcript of it (a new process must
    /// `--resume`). Set at a clean end, never at a turn's start: a first turn that fails
    /// leaves nothing to resume.
    pub(crate) started: bool,
    /// The uuid of the last transcript line of its last clean turn, when known.
    pub(crate) leaf: Option<String>,
    /// The uuid its next user line carries (a new one after every clean turn): a transcript
    /// holding it holds a turn that never ended, which a resume cuts off.
    pub(crate) turn_mark: String,
    /// A native session's id: the conversation lives in the session table, not the registry.
    pub(crate) native: Option<String>,
    /// Watchers of a native session.
    pub(crate) bus: Option<tokio::sync::broadcast::Sender<crate::domain::stamp::Stamped>>,
    /// It has a record in the store (so usage and tool calls can refer to it).
    pub(crate) persisted: bool,
    /// Which API it came from (`store::source`).
    pub(crate) source: String,
    pub(crate) model_id: String,
    /// The key that made it (`Caller::owner`).
    pub(crate) owner: String,
    pub(crate) process: Option<Arc<CliProcess>>,
    /// What the live process was launched and initialized with, and its current settings.
    pub(crate) process_launch: String,
    pub(crate) process_runtime: Runtime,
    pub(crate) tool_server: Option<Arc<ClientToolServer>>,
    pub(crate) awaiting: Option<Awaiting>,
    /// History to replay over stdin into the next new process (see `split_for_transcript`).
    pub(crate) replay_tail: Vec<Message>,
    /// Whether `--resume` gives the model the whole conversation. Not after a stdin replay:
    /// the CLI does not write replayed lines to its transcript.
    pub(crate) resumable: bool,
    pub(crate) last_used: Instant,
    /// The session's lease while a turn (or its start) holds it (see `leases`).
    pub(crate) lease: Option<super::leases::Lease>,
    /// The epoch of this instance's last hold of the lease: another instance ran a turn since
    /// when the next hold's epoch does not follow it.
    pub(crate) lease_epoch: Option<i64>,
}

impl Conversation {
    /// Take a lease for this conversation's turn; true when nobody else held it since this
    /// instance's last hold (what it kept in memory is still current).
    pub(crate) fn hold_lease(&mut self, lease: super::leases::Lease) -> bool {
        let current = lease.follows(self.lease_epoch);
        self.lease_epoch = Some(lease.epoch);
        self.lease = Some(lease);
        current
    }

    /// A conversation with no process and no history yet.
    pub(crate) fn blank(
        id: String,
        cli_session_id: String,
        workspace: PathBuf,
        system: Option<String>,
    ) -> Conversation {
        Conversation {
            id,
            cli_session_id,
            workspace,
            workspace_is_temp: true,
            system,
            started: false,
            leaf: None,
            turn_mark: uuid::Uuid::new_v4().to_string(),
            native: None,
            bus: None,
            persisted: false,
            source: store::source::OPENAI.to_string(),
            model_id: String::new(),
            owner: String::new(),
            process: None,
            process_launch: String::new(),
            process_runtime: Runtime::default(),
            tool_server: None,
            awaiting: None,
            resumable: true,
            replay_tail: vec![],
            last_used: Instant::now(),
            lease: None,
            lease_epoch: None,
        }
    }
}

/// What a started turn gives its adapter.
pub struct TurnHandle {
    pub conversation_id: String,
    /// Events until (and including) one `Done` or `Error`. Dropping it interrupts the turn.
    pub events: TurnEvents,
    /// Time this request has waited on the CLI; complete once `Done` arrives (see `metrics`).
    pub cli_wait: crate::domain::cli_wait::CliWait,
}

impl TurnHandle {
    /// Wait until the turn is under way: its first event after the CLI's start-up (`Init`) and
    /// retries, which is the upstream's `message_start` or the turn's end. A turn that fails
    /// before that is an `Err`, so an adapter can answer it with a plain HTTP status (a 429
    /// with `retry-after`, a 401, ...) instead of an error inside a 200 stream.
    pub async fn under_way(&mut self) -> Result<Event, ClaudeError> {
        loop {
            match self.events.recv().await {
                None => return Err(ClaudeError::protocol("the turn ended without a result")),
                Some(Event::Error(e)) => return Err(e),
                Some(Event::Init { .. } | Event::Retry { .. }) => {}
                Some(ev) => return Ok(ev),
            }
        }
    }
}

/// The CLI runs a user message whose last text block starts with `/` as a slash command. On
/// the compatible endpoints that is just text: a leading space keeps it text.
pub(crate) fn escape_slash(mut content: Vec<Value>) -> Vec<Value> {
    if let Some(last) = content.iter_mut().rev().find(|b| b["type"] == "text") {
        if let Some(t) = last["text"].as_str().filter(|t| t.starts_with('/')) {
            last["text"] = json!(format!(" {t}"));
        }
    }
    content
}

/// Settings a running CLI can change between turns (control requests) without leaving a trace
/// in the conversation, so they are not part of the launch fingerprint.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Runtime {
    pub(crate) max_output_tokens: Option<u32>,
    pub(crate) extra_body: Option<Value>,
    pub(crate) thinking: Option<u32>,
}

impl Runtime {
    /// `exact_system`: the model gets the request's system prompt exactly (see
    /// [`exact_system_body`]).
    pub(crate) fn of(req: &TurnRequest, exact_system: bool) -> Self {
        let mut body = req.options.sampling.clone();
        if exact_system {
            if let Some(system) = exact_system_body(req) {
                body.insert("system".into(), system);
            }
        }
        Runtime {
            max_output_tokens: req.max_output_tokens,
            extra_body: (!body.is_empty()).then_some(Value::Object(body)),
            thinking: thinking_budget(&req.options),
        }
    }

    /// Set at launch instead (flags and env), for a process started for this request.
    pub(crate) fn apply_to(&self, spec: &mut LaunchSpec) {
        spec.max_output_tokens = self.max_output_tokens;
        spec.extra_body = self.extra_body.clone();
        spec.max_thinking_tokens = self.thinking;
    }
}

/// The `system` of every model request, when the client gave a system prompt: exactly that
/// prompt (and the instructions that carry `tool_choice`), as one cached block.
///
/// Given a custom system prompt, the CLI still puts its own identity line in front of it ("You
/// are a Claude agent, built on Anthropic's Claude Agent SDK.", docs/cli-notes.md §6), and no
/// flag removes it; `CLAUDE_CODE_EXTRA_BODY` is merged over the CLI's request body, so a
/// `system` there is what the model receives. Subscription (OAuth) credentials need the identity
/// line, so the gateway turns this off for them.
fn exact_system_body(req: &TurnRequest) -> Option<Value> {
    // An agent's own prompt is the system prompt of a turn run as that agent.
    if req.options.agent.is_some() {
        return None;
    }
    let system = req.system.as_deref().filter(|s| !s.trim().is_empty())?;
    let text = [req.options.append_system.clone(), req.tool_instructions()]
        .into_iter()
        .flatten()
        .fold(system.to_string(), |text, extra| {
            format!("{text}\n\n{extra}")
        });
    Some(json!([{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]))
}

/// The Messages API refuses a temperature other than 1 while thinking is on, so setting one
/// turns thinking off unless a budget was asked for explicitly.
fn thinking_budget(o: &crate::domain::turn::ClaudeOptions) -> Option<u32> {
    let sampling_needs_it_off = o
        .sampling
        .get("temperature")
        .and_then(Value::as_f64)
        .is_some_and(|t| (t - 1.0).abs() > f64::EPSILON);
    o.thinking_budget.or(sampling_needs_it_off.then_some(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::turn::ToolChoice;

    #[test]
    fn the_exact_system_prompt_goes_into_the_request_body() {
        let mut req = TurnRequest {
            system: Some("Be brief.".into()),
            ..Default::default()
        };
        req.options
            .sampling
            .insert("temperature".into(), json!(0.2));
        let body = Runtime::of(&req, true).extra_body.unwrap();
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["system"][0]["text"], "Be brief.");
        assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
        // Off: only sampling; no system prompt: nothing to override.
        assert!(Runtime::of(&req, false)
            .extra_body
            .unwrap()
            .get("system")
            .is_none());
        req.system = None;
        req.options.sampling.clear();
        assert_eq!(Runtime::of(&req, true).extra_body, None);
        // tool_choice's instruction follows the client's prompt.
        req.system = Some("S".into());
        req.tool_choice = ToolChoice::Required;
        req.tools = vec![crate::domain::turn::ClientTool {
            name: "f".into(),
            description: String::new(),
            parameters: json!({"type": "object"}),
        }];
        let body = Runtime::of(&req, true).extra_body.unwrap();
        assert!(body["system"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("S\n\nYou must call"));
    }
}
