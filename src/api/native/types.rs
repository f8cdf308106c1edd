//! Native API wire types: lenient structs that keep unknown fields.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    pub content: Value,
    #[serde(default)]
    pub stream: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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

#[derive(Debug, Clone, Serialize)]
pub struct SessionList<T> {
    pub data: Vec<T>,
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
