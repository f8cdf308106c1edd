//! The one internal event model that sits between the CLI driver and every API adapter.
//!
//! The driver translates the CLI's stream-json lines into these events; the OpenAI, Anthropic
//! and native adapters render them into their own wire formats. Nothing here knows about HTTP
//! or about processes.

use serde::Serialize;
use serde_json::Value;

use super::ClaudeError;

/// One thing that happened during a turn, in the order it happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The CLI started the turn (its `system/init` line).
    Init {
        session_id: String,
        model: String,
        tools: Vec<String>,
    },
    /// A piece of the model's visible answer.
    TextDelta { text: String },
    /// A piece of the model's thinking.
    ThinkingDelta { text: String },
    /// The upstream's signature of the thinking block just streamed: a client needs it to send
    /// the block back to the Messages API.
    ThinkingSignature { signature: String },
    /// The model started a tool call (streamed; its input follows as `ToolCallDelta`s).
    /// `client` marks a call of the client's own tools (the name is then the client's name).
    ToolCallStart {
        id: String,
        name: String,
        client: bool,
    },
    /// A fragment of a tool call's JSON input.
    ToolCallDelta {
        id: String,
        partial_json: String,
        client: bool,
    },
    /// The model called a tool (a main-thread `tool_use` block, input complete).
    ToolCall {
        id: String,
        name: String,
        input: Value,
        client: bool,
    },
    /// A tool finished and its result went back to the model.
    ToolResult {
        tool_use_id: String,
        content: Value,
        is_error: bool,
    },
    /// The CLI asks whether a tool may run; answer with the request id (native sessions).
    PermissionRequest {
        request_id: String,
        tool_name: String,
        input: Value,
        tool_use_id: Option<String>,
    },
    /// A hook the session watches fired (`mode: "watch"`): the CLI's hook input, for the
    /// watchers; the turn goes on.
    Hook {
        hook_event: String,
        hook_ids: Vec<String>,
        input: Value,
    },
    /// A `decide` hook waits for an answer over the API (`POST
    /// /api/sessions/{id}/hooks/requests/{request_id}`), at most `timeout_secs`.
    HookRequest {
        request_id: String,
        hook_event: String,
        hook_ids: Vec<String>,
        input: Value,
        timeout_secs: u64,
    },
    /// A user message entered the conversation (for watchers and history).
    UserMessage { content: Value },
    /// A model call of the turn started: the upstream accepted the request. `usage` is what its
    /// `message_start` reported (the real input token count).
    StepStart { usage: Usage },
    /// One model call of the turn finished (a turn with tools makes several).
    StepEnd {
        stop_reason: Option<String>,
        usage: Usage,
    },
    /// The CLI is retrying a failed upstream call.
    Retry {
        attempt: u32,
        max_retries: u32,
        delay_ms: u64,
        error_status: Option<u16>,
        error: String,
    },
    /// A subagent task of the model's Task/Agent tool started, progressed, changed or ended
    /// (the CLI's `task_started`, `task_progress`, `task_updated`, `task_notification`).
    /// `parent_tool_use_id` is the Task/Agent call that runs it; `detail` the rest of the line
    /// (description, status, summary, usage).
    Task {
        subtype: String,
        task_id: String,
        parent_tool_use_id: Option<String>,
        detail: Value,
    },
    /// A message of a subagent: its text and tool calls (`assistant`) or its tool results and
    /// prompt (`user`), as content blocks, under the Task/Agent call that runs it.
    Subagent {
        parent_tool_use_id: String,
        role: String,
        content: Vec<Value>,
    },
    /// The CLI's status changed (its `system/status` line): `compacting` while it compacts the
    /// conversation, then `None` with `compact_result` when that is over. (`requesting`, sent
    /// before every model call, is left out: `StepStart` says the same.)
    Status {
        status: Option<String>,
        compact_result: Option<String>,
    },
    /// The upstream's rate-limit state changed (the CLI's `rate_limit_event`: `status`
    /// `allowed`/`allowed_warning`/`rejected`, `resetsAt`, `rateLimitType`, `utilization`).
    /// The CLI sends it only when signed in to a Claude subscription, never with an API key.
    RateLimit { info: Value },
    /// A whole text block of the model's answer, once its last delta arrived: what a native
    /// session's history stores as one `assistant` entry (native streams only).
    #[serde(rename = "text")]
    TextBlock { text: String },
    /// A whole thinking block, once its last delta arrived (native streams only).
    #[serde(rename = "thinking")]
    ThinkingBlock { text: String },
    /// The conversation was compacted (`/compact`, or automatically): tokens before and after.
    Compacted {
        trigger: String,
        pre_tokens: Option<u64>,
        post_tokens: Option<u64>,
    },
    /// The turn's structured output (asked for with `initialize.jsonSchema`), valid against its
    /// schema; just before `Done`.
    StructuredOutput { value: Value },
    /// The turn ended normally. Always the last event of a successful turn.
    Done(TurnSummary),
    /// The turn failed. Always the last event of a failed turn.
    Error(ClaudeError),
}

impl Event {
    /// Whether this event ends the turn.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Event::Done(_) | Event::Error(_))
    }
}

/// Token counts as the CLI reports them (summed over every model call of the turn).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl Usage {
    /// Every input token, cached or not: what OpenAI calls `prompt_tokens`.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
    }

    pub fn from_json(v: &Value) -> Usage {
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        Usage {
            input_tokens: n("input_tokens"),
            output_tokens: n("output_tokens"),
            cache_creation_input_tokens: n("cache_creation_input_tokens"),
            cache_read_input_tokens: n("cache_read_input_tokens"),
        }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    /// A stop sequence matched; the gateway enforces these itself (the CLI has no option).
    StopSequence(String),
    ToolUse,
    MaxTurns,
    /// The turn was interrupted (by a client, a timeout or an explicit interrupt).
    Interrupted,
    /// The gateway was shutting down and interrupted the turn (what it had said is kept).
    Shutdown,
    Other(String),
}

impl StopReason {
    pub fn from_cli(s: Option<&str>) -> StopReason {
        match s {
            None | Some("end_turn") => StopReason::EndTurn,
            Some("max_tokens") => StopReason::MaxTokens,
            Some("tool_use") => StopReason::ToolUse,
            Some("stop_sequence") => StopReason::StopSequence(String::new()),
            Some(other) => StopReason::Other(other.to_string()),
        }
    }
}

/// What the CLI's `result` line says about a finished turn.
#[derive(Debug, Clone, Serialize)]
pub struct TurnSummary {
    pub stop_reason: StopReason,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub duration_ms: Option<u64>,
    pub num_turns: Option<u64>,
    pub session_id: String,
    /// The CLI's final `result` text (the last assistant text).
    pub result_text: String,
    /// The uuid of the turn's last main-thread message line (the CLI's transcript ends there
    /// once it has written the turn), when the turn had one.
    #[serde(skip)]
    pub leaf: Option<String>,
}
