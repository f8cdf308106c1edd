//! What the CLI itself offers: the commands, agents and models its `initialize` response
//! reports. Kept from the last process initialized; when none has been yet, a short-lived
//! process is started only to ask. Must not: run turns, or know about custom agents beyond
//! telling them apart from the CLI's own.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::conversations::{base_spec, Conversations, TurnError};
use crate::claude::args::SessionMode;
use crate::claude::control::{ControlHandler, ToolPolicy};
use crate::claude::wire::Initialize;
use crate::domain::cli_wait::waiting_on_cli;

/// The CLI's own offer, as its `initialize` response says.
#[derive(Debug, Clone, Default)]
pub struct CliOffer {
    /// `{name, description, argumentHint, aliases?}` per command.
    pub commands: Vec<Value>,
    /// The CLI's built-in agents (`{name, description, model?}`), without the custom ones
    /// that were passed in.
    pub agents: Vec<Value>,
    pub models: Vec<Value>,
}

#[derive(Default)]
pub struct Catalog {
    seen: RwLock<Option<Arc<CliOffer>>>,
    probing: tokio::sync::Mutex<()>,
}

impl Catalog {
    /// Keep what an `initialize` response reports; `passed` are the custom agents' names the
    /// request carried (they are not the CLI's).
    pub fn observe(&self, response: &Value, passed: &HashSet<String>) {
        let list = |k: &str| {
            response
                .get(k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let agents = list("agents")
            .into_iter()
            .filter(|a| {
                a.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !passed.contains(n))
            })
            .collect();
        if response.get("commands").is_none() {
            return;
        }
        let offer = CliOffer {
            commands: list("commands"),
            agents,
            models: list("models"),
        };
        if let Ok(mut s) = self.seen.write() {
            *s = Some(Arc::new(offer));
        }
    }

    pub fn get(&self) -> Option<Arc<CliOffer>> {
        self.seen.read().ok().and_then(|s| s.clone())
    }
}

impl Conversations {
    /// The CLI's commands, agents and models; asks a new process when no process has been
    /// initialized yet.
    pub async fn cli_offer(&self) -> Result<Arc<CliOffer>, TurnError> {
        if let Some(o) = self.catalog.get() {
            return Ok(o);
        }
        let _one = self.catalog.probing.lock().await;
        if let Some(o) = self.catalog.get() {
            return Ok(o);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.cfg.workspaces_dir().join(format!("probe-{id}"));
        std::fs::create_dir_all(&dir).map_err(|e| {
            TurnError::Claude(crate::claude::ClaudeError::protocol(format!(
                "creating a directory for the CLI: {e}"
            )))
        })?;
        let _cleanup = scopeguard::guard(dir.clone(), |d| {
            let _ = std::fs::remove_dir_all(d);
        });
        let spec = base_spec(&self.cfg, &self.claude_bin, dir, SessionMode::New(id));
        let handler = Arc::new(ControlHandler::new("catalog", ToolPolicy::default()));
        let p = self.pool.spawn(&spec, handler).await?;
        let response = waiting_on_cli(p.initialize(&Initialize::default())).await;
        p.retire();
        self.catalog.observe(&response?, &HashSet::new());
        self.catalog.get().ok_or_else(|| {
            TurnError::Claude(crate::claude::ClaudeError::protocol(
                "the CLI did not report its commands",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_clis_own_agents_only() {
        let c = Catalog::default();
        assert!(c.get().is_none());
        let passed: HashSet<String> = ["mine".to_string()].into();
        c.observe(
            &json!({"commands": [{"name": "compact"}], "agents": [{"name": "Explore"}, {"name": "mine"}], "models": []}),
            &passed,
        );
        let o = c.get().unwrap();
        assert_eq!(o.agents, vec![json!({"name": "Explore"})]);
        assert_eq!(o.commands.len(), 1);
        // A response without commands (an error, an old CLI) changes nothing.
        c.observe(&json!({"agents": []}), &passed);
        assert_eq!(c.get().unwrap().agents.len(), 1);
    }
}
