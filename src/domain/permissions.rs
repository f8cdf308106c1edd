//! A native session's tool permissions (`tool-permissions`): which built-in tools the model is
//! offered (`tools`), which of them run without asking (`allowed_tools`) and which are refused
//! whatever else allows them (`denied_tools`). Owns the checks and the change; the decision on
//! each call stays in the process's control handler (`claude::control::ToolPolicy`), which is
//! updated here for a running turn. Knows no HTTP.

use std::sync::Arc;

use serde::Serialize;

use super::conversations::{Conversations, TurnError};
use super::launch::tool_policy;
use super::session_table::{now, view};
use super::sessions::{session_request, TurnOverrides};

/// A session's tool permissions as the API shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ToolPermissions {
    pub tools: Vec<String>,
    pub allowed_tools: Vec<String>,
    pub denied_tools: Vec<String>,
}

/// What a `PUT` changes; `None` keeps a list as it is.
#[derive(Debug, Clone, Default)]
pub struct PermissionsChange {
    pub tools: Option<Vec<String>>,
    pub allowed_tools: Option<Vec<String>>,
    pub denied_tools: Option<Vec<String>>,
}

impl Conversations {
    pub async fn tool_permissions(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<ToolPermissions, TurnError> {
        let info = self.session(id).await.ok_or_else(|| not_found(id))?;
        Ok(ToolPermissions {
            tools: info.tools,
            allowed_tools: info.allowed_tools,
            denied_tools: info.settings.denied_tools,
        })
    }

    /// Change a session's tool permissions. `allowed_tools` and `denied_tools` apply from the
    /// next tool call, also in a running turn; a new `tools` set is offered from the next turn
    /// (a new process continuing the conversation, since the CLI fixes its tools at launch), so
    /// it is a 409 while a turn runs.
    pub async fn set_tool_permissions(
        self: &Arc<Self>,
        id: &str,
        change: PermissionsChange,
    ) -> Result<ToolPermissions, TurnError> {
        for list in [&change.tools, &change.allowed_tools, &change.denied_tools]
            .into_iter()
            .flatten()
        {
            if let Some(t) = list.iter().find(|t| !self.cfg.builtin_tools.contains(t)) {
                return Err(TurnError::Forbidden(format!(
                    "The built-in tool '{t}' is not allowed by this gateway's policy (builtin_tools: {})",
                    if self.cfg.builtin_tools.is_empty() {
                        "none".to_string()
                    } else {
                        self.cfg.builtin_tools.join(", ")
                    }
                )));
            }
        }
        self.session(id).await.ok_or_else(|| not_found(id))?;
        let (info, running) = {
            let mut sessions = self.sessions.lock();
            let slot = sessions.get_mut(id).ok_or_else(|| not_found(id))?;
            let tools = change
                .tools
                .clone()
                .unwrap_or_else(|| slot.info.tools.clone());
            if slot.conv.is_none() && tools != slot.info.tools {
                return Err(TurnError::Busy(format!(
                    "Session {id} is busy with a turn; change its tools when the turn has ended \
                     (allowed_tools and denied_tools can change now)"
                )));
            }
            let allowed = change
                .allowed_tools
                .clone()
                .unwrap_or_else(|| slot.info.allowed_tools.clone());
            // Narrowing `tools` alone drops what it no longer offers from the allowed ones.
            let allowed: Vec<String> = match (&change.tools, &change.allowed_tools) {
                (Some(_), None) => allowed.into_iter().filter(|t| tools.contains(t)).collect(),
                _ => allowed,
            };
            if let Some((i, t)) = allowed.iter().enumerate().find(|(_, t)| !tools.contains(t)) {
                return Err(TurnError::invalid(
                    format!("allowed_tools[{i}]"),
                    format!(
                        "'{t}' is not among the session's tools ({})",
                        tools.join(", ")
                    ),
                ));
            }
            slot.info.tools = tools;
            slot.info.allowed_tools = allowed;
            if let Some(d) = change.denied_tools {
                slot.info.settings.denied_tools = d;
            }
            slot.info.updated_at = now();
            let policy = tool_policy(&session_request(
                slot,
                vec![],
                None,
                TurnOverrides::default(),
            ));
            (view(slot), slot.running.clone().map(|p| (p, policy)))
        };
        // The running turn's next tool call already follows them.
        if let Some((p, policy)) = running {
            p.handler().set_policy(policy);
        }
        self.save_session(&info).await?;
        Ok(ToolPermissions {
            tools: info.tools,
            allowed_tools: info.allowed_tools,
            denied_tools: info.settings.denied_tools,
        })
    }
}

fn not_found(id: &str) -> TurnError {
    TurnError::NotFound(format!("No session with the id '{id}'"))
}
