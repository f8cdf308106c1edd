//! Native API wire types: lenient structs that keep unknown fields.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::domain::agents::AgentView;
use crate::domain::checkpoints::Change;
use crate::domain::claude_sessions::ClaudeSession;
use crate::domain::commands::CommandView;
use crate::domain::files::FileEntry;
use crate::domain::projects::Project;
use crate::domain::session_table::SessionInfo;
use crate::domain::sessions::HistoryEntry;
use crate::domain::tool_calls::ToolCallEntry;
use crate::domain::tool_catalog::ToolInfo;
use crate::domain::workspace::MemoryView;

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct CreateSession {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// An existing absolute directory; omitted: a temporary workspace.
    #[serde(default)]
    pub workspace: Option<String>,
    #[serde(default)]
    pub permission_mode: Option<String>,
    /// Built-in tools the model may use (omitted: the project's default, or none).
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// Of those, the ones that run without a permission request.
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// A project of the caller's: its defaults fill what this request leaves out.
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct SendMessage {
    /// Text, or Messages-API content blocks. Text starting with `/` runs a slash command.
    #[schema(value_type = MessageContent)]
    pub content: Value,
    #[serde(default)]
    pub stream: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A message's content: non-empty text, or a non-empty list of Messages-API content blocks
/// (`text`, `image`, `document`, ...; each checked as `/v1/messages` checks a user's).
// For the schema only: the handler reads `SendMessage::content` itself, to name the bad block.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum MessageContent {
    Text(String),
    Blocks(Vec<Map<String, Value>>),
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct PermissionAnswer {
    /// `allow` or `deny`.
    pub behavior: String,
    /// With `allow`: run the tool with this input instead.
    #[serde(default)]
    pub updated_input: Option<Value>,
    /// With `deny`: what the model is told.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub status: Option<String>,
    pub model: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// An admin's filter: only this key's sessions (a user key sees only its own anyway).
    pub owner: Option<String>,
    pub project_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (default) or `markdown`.
    pub format: Option<String>,
}

/// The JSON reply to a message.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct MessageReply {
    pub session_id: String,
    /// The CLI's own session id as of this turn (it changes; `session_id` does not).
    pub cli_session_id: String,
    pub text: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    pub tool_calls: Vec<Value>,
    pub tool_results: Vec<Value>,
    pub stop_reason: Value,
    pub usage: Value,
    pub cost_usd: Option<f64>,
    pub duration_ms: Option<u64>,
    pub num_turns: Option<u64>,
    /// The CLI's own final text of the turn (a command's output).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub result_text: String,
    /// The conversation was compacted in the turn: `{trigger, pre_tokens, post_tokens}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compact: Option<Value>,
    /// With `stop_reason: "permission_required"`: the permission requests that wait for an
    /// answer (`POST /api/sessions/{id}/permissions/{request_id}`); the turn goes on then.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permission_requests: Vec<Value>,
    /// Decide hooks waiting for an answer (`stop_reason: "hook_required"`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hook_requests: Vec<Value>,
}

/// A page of sessions; `next_cursor` (when more follow) is the next page's `cursor`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionList {
    pub data: Vec<SessionInfo>,
    pub next_cursor: Option<String>,
}

/// What a WebSocket client sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WsCommand {
    Message {
        content: Value,
    },
    Interrupt,
    Permission {
        request_id: String,
        behavior: String,
        #[serde(default)]
        updated_input: Option<Value>,
        #[serde(default)]
        message: Option<String>,
    },
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct AgentBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /api/sessions/{id}/interrupt`: whether a running turn was interrupted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Interrupted {
    pub interrupted: bool,
}

/// `GET /api/sessions/{id}/history`: every recorded event of the session, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct History {
    pub data: Vec<HistoryEntry>,
}

/// The JSON export of a session (`GET /api/sessions/{id}/export`): the domain writes it as
/// text, from these two parts.
#[derive(Debug, Clone, ToSchema)]
#[allow(dead_code)]
pub struct SessionExport {
    pub session: SessionInfo,
    pub history: Vec<HistoryEntry>,
}

/// An answered permission or hook request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Answered {
    pub answered: bool,
}

/// A command's JSON reply (`POST /api/sessions/{id}/commands/{name}`): one the gateway answers
/// itself, or a turn's.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CommandReply {
    Answer(CommandAnswer),
    Turn(Box<CommandTurn>),
}

/// A command the gateway answers at once, without a turn: only these fields.
// `deny_unknown_fields` serves the schema only (`additionalProperties: false`), so that a
// turn's reply, which has these fields too, never matches both sides of `CommandReply`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandAnswer {
    pub command: String,
    pub output: String,
    /// The command's structured result (`/cost`, `/context`, ...), or `null`.
    pub structured: Value,
    pub session_id: String,
}

/// A command run as a turn: the turn's reply, as a message's, with the command's fields.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandTurn {
    #[serde(flatten)]
    pub reply: MessageReply,
    pub command: String,
    /// The CLI's final text, or the turn's text.
    pub output: String,
    /// `context`, `cost` or `compact`'s structured result, or `null`.
    pub structured: Value,
}

/// `POST /api/sessions/{id}/project/init`: the command's reply with `claude_md`, the
/// workspace's memory file afterwards.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum InitReply {
    Answer(InitAnswer),
    Turn(Box<InitTurn>),
}

/// `/init` answered by the gateway at once: only these fields.
// `deny_unknown_fields`: as for `CommandAnswer`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitAnswer {
    pub session_id: String,
    pub output: String,
    pub command: String,
    pub claude_md: MemoryView,
}

/// `/init` run as a turn; `claude_md` is `null` while the turn waits on a permission.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InitTurn {
    #[serde(flatten)]
    pub reply: MessageReply,
    pub command: String,
    pub claude_md: Option<MemoryView>,
}

/// `POST /api/sessions/{id}/tasks/{task_id}/stop`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskStopped {
    pub stopped: bool,
    pub task_id: String,
}

/// A deleted item and its id.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: bool,
    pub id: String,
}

/// `GET /api/agents`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentList {
    pub data: Vec<AgentView>,
}

/// `GET /api/commands`, `GET /api/sessions/{id}/commands`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandList {
    pub data: Vec<CommandView>,
}

/// `GET /api/claude-sessions`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClaudeSessionList {
    pub data: Vec<ClaudeSession>,
}

/// `GET /api/claude-sessions/{id}`: the session and its history; it is only read.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClaudeSessionView {
    pub session: ClaudeSession,
    pub history: Vec<HistoryEntry>,
    pub read_only: bool,
}

/// `GET /api/projects`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectList {
    pub data: Vec<Project>,
}

/// `GET /api/tools`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ToolList {
    pub data: Vec<ToolInfo>,
}

/// `GET /api/sessions/{id}/tool-calls`; `next_cursor` (when more follow) is the next page's
/// `cursor`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ToolCallPage {
    pub data: Vec<ToolCallEntry>,
    pub next_cursor: Option<String>,
}

/// `GET /api/sessions/{id}/files`; `truncated` when the listing stopped at its limit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FileList {
    pub data: Vec<FileEntry>,
    pub truncated: bool,
}

/// `POST /api/sessions/{id}/files/upload`: the files written.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Uploaded {
    pub data: Vec<FileEntry>,
}

/// `GET /api/sessions/{id}/changes`: each changed file since history seq `since_seq`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangeList {
    pub data: Vec<Change>,
    pub since_seq: u64,
}
