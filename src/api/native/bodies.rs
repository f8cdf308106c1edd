//! The schemas of the native request bodies that their handlers check field by field (they
//! read the JSON themselves, to name the bad field in a 400 and to tell a `null` from an absent
//! field). These types exist for the OpenAPI description only: each says what its handler
//! accepts, no more and no less. Must not: be used to parse a request (the handlers do), or
//! describe a field its handler ignores.

#![allow(dead_code)]

use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::projects::ProjectDefaults;
use crate::domain::settings::Thinking;

/// `PATCH /api/sessions/{id}`: the settings to change; any other field is refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionPatchBody {
    /// A model id of `GET /v1/models`.
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub title: Option<String>,
    #[serde(default)]
    #[schema(value_type = Thinking)]
    pub thinking: Option<Thinking>,
    pub effort: Option<String>,
    #[serde(default)]
    #[schema(value_type = u32)]
    pub max_turns: Option<u32>,
}

/// `PUT /api/sessions/{id}/context`: one or both; `null` removes one.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContextBody {
    pub system_prompt: Option<String>,
    pub append_system_prompt: Option<String>,
}

/// `PUT /api/sessions/{id}/agent`: the agent's name, or `null` for none.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentChoice {
    #[schema(required = true)]
    pub agent: Option<String>,
}

/// A command's arguments: one string (split at whitespace) or a list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum CommandArgs {
    Line(String),
    List(Vec<String>),
}

/// `POST /api/sessions/{id}/commands/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CommandBody {
    pub args: Option<CommandArgs>,
    /// Answer as SSE (the turn's events) instead of JSON.
    pub stream: Option<bool>,
}

/// `POST /api/sessions/{id}/project/init`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InitBody {
    /// Added to `/init`: instructions for the model.
    pub args: Option<String>,
}

/// `PUT /api/sessions/{id}/project/workspace`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WorkspaceBody {
    /// An existing absolute directory inside `workspace_roots`.
    pub path: String,
}

/// `PUT /api/sessions/{id}/tool-permissions`: each list given replaces the session's; any
/// other field is refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolPermissionsBody {
    /// Built-in tools the model may use.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Of those, the ones that run without a permission request.
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    /// Tools refused outright.
    #[serde(default)]
    pub denied_tools: Vec<String>,
}

/// `POST /api/projects`, `PATCH /api/projects/{id}`: `null` leaves a text as it is; `defaults`
/// replaces the named defaults (a `null` inside clears one).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProjectBody {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = ProjectDefaults)]
    pub defaults: Option<ProjectDefaults>,
}
