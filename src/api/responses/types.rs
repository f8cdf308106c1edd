//! Responses API wire types: our own lenient structs. Unknown request fields are kept in
//! `extra` (the Claude Code extensions are read from there, the rest is reported as ignored),
//! never rejected. Input items stay JSON values so each one can be checked, and named in an
//! error, on its own.

use serde::Deserialize;
use serde_json::{Map, Value};

pub use crate::api::openai::types::MessageContent;

/// A `POST /v1/responses` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CreateResponse {
    pub model: String,
    /// A string, or input items.
    #[serde(default)]
    pub input: Option<MessageContent>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// Keep the response for `GET` and `previous_response_id` (the API's default is true).
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub tools: Option<Value>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub text: Option<Value>,
    #[serde(default)]
    pub reasoning: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub safety_identifier: Option<String>,
    /// `temperature`, `top_p`, our Claude Code extensions, and whatever else was sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
