//! Agents: the CLI's built-in ones (from its `initialize` response) and the gateway's custom
//! ones (stored, and passed to every process in `initialize.agents`, so the model's Task/Agent
//! tool can use them and a session can run its main thread as one). Also what a turn run as an
//! agent sends in `initialize`. Must not: launch processes for turns, or know about HTTP.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::conversations::{Conversations, TurnError};
use crate::claude::wire::Initialize;
use crate::domain::turn::TurnRequest;
use crate::store::{self, AgentRecord};

/// The longest name a custom agent can have.
pub const MAX_AGENT_NAME: usize = 64;

/// An agent as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub name: String,
    pub description: String,
    /// The tools it may use; `null`: every tool of its session (or, for a built-in agent, the
    /// CLI's own choice).
    pub tools: Option<Vec<String>>,
    pub model: Option<String>,
    /// Custom agents only: its system prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// `builtin` or `custom`.
    pub source: &'static str,
}

/// The fields of a custom agent a client sets; on an update, `None` keeps what was there.
#[derive(Debug, Clone, Default)]
pub struct AgentFields {
    pub description: Option<String>,
    pub prompt: Option<String>,
    pub tools: Option<Vec<String>>,
    pub model: Option<String>,
}

/// A name a custom agent can have: `[a-z0-9-]{1,64}`.
pub fn check_agent_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_AGENT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid agent name '{name}': use 1 to {MAX_AGENT_NAME} lowercase letters, digits or '-'"
        ))
    }
}

fn custom_view(a: &AgentRecord) -> AgentView {
    AgentView {
        name: a.name.clone(),
        description: a.description.clone(),
        tools: a.tools.clone(),
        model: a.model.clone(),
        prompt: Some(a.prompt.clone()),
        source: "custom",
    }
}

fn builtin_view(a: &Value) -> AgentView {
    let s = |k: &str| a.get(k).and_then(Value::as_str).map(String::from);
    AgentView {
        name: s("name").unwrap_or_default(),
        description: s("description").unwrap_or_default(),
        tools: a
            .get("tools")
            .and_then(|t| serde_json::from_value(t.clone()).ok()),
        model: s("model"),
        prompt: None,
        source: "builtin",
    }
}

/// Where each part of a turn's system prompt goes in `initialize`. The CLI's `systemPrompt`
/// replaces an agent's own prompt, so a turn run as a custom agent sends the session's system
/// prompt as an addition instead. Run as a built-in agent, the CLI changes only the model (CLI
/// 2.1.197): the agent's description is added so that the agent really shapes the turn.
pub(crate) fn system_parts(
    system: Option<String>,
    extra: Option<String>,
    agent: Option<&AgentView>,
) -> (Option<String>, Option<String>) {
    let join = |parts: Vec<Option<String>>| {
        let parts: Vec<String> = parts
            .into_iter()
            .flatten()
            .filter(|p| !p.trim().is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    };
    match agent {
        None => (system, extra),
        Some(a) if a.source == "custom" => (None, join(vec![system, extra])),
        Some(a) => {
            let note = format!(
                "You are running as the {} agent. {}",
                a.name,
                a.description.trim()
            );
            (system, join(vec![Some(note), extra]))
        }
    }
}

impl Conversations {
    /// The CLI's agents, then the custom ones.
    pub async fn list_agents(&self) -> Result<Vec<AgentView>, TurnError> {
        let offer = self.cli_offer().await?;
        let mut out: Vec<AgentView> = offer.agents.iter().map(builtin_view).collect();
        out.extend(self.custom_agents().await?.iter().map(custom_view));
        Ok(out)
    }

    pub async fn agent(&self, name: &str) -> Result<AgentView, TurnError> {
        self.find_agent(name)
            .await?
            .ok_or_else(|| TurnError::NotFound(format!("No agent named '{name}'")))
    }

    pub(crate) async fn find_agent(&self, name: &str) -> Result<Option<AgentView>, TurnError> {
        if let Some(a) = self.custom_agents().await?.iter().find(|a| a.name == name) {
            return Ok(Some(custom_view(a)));
        }
        let offer = self.cli_offer().await?;
        Ok(offer
            .agents
            .iter()
            .find(|a| a["name"] == name)
            .map(builtin_view))
    }

    /// A session's (or a request's) agent must exist: the CLI ignores an unknown one.
    pub(crate) async fn check_agent(&self, name: &str, param: &str) -> Result<(), TurnError> {
        match self.find_agent(name).await? {
            Some(_) => Ok(()),
            None => {
                let known: Vec<String> = self
                    .list_agents()
                    .await?
                    .into_iter()
                    .map(|a| a.name)
                    .collect();
                Err(TurnError::invalid(
                    param,
                    format!("Unknown agent '{name}'; known agents: {}", known.join(", ")),
                ))
            }
        }
    }

    pub async fn create_agent(
        &self,
        name: &str,
        fields: AgentFields,
    ) -> Result<AgentView, TurnError> {
        check_agent_name(name).map_err(|m| TurnError::invalid("name", m))?;
        if self.find_agent(name).await?.is_some() {
            return Err(TurnError::Busy(format!(
                "An agent named '{name}' exists already"
            )));
        }
        let now = store::now_millis();
        let rec = AgentRecord {
            name: name.to_string(),
            description: String::new(),
            prompt: String::new(),
            tools: None,
            model: None,
            created_at: now,
            updated_at: now,
        };
        self.save_agent(rec, fields).await
    }

    /// Change a custom agent; built-in agents belong to the CLI.
    pub async fn update_agent(
        &self,
        name: &str,
        fields: AgentFields,
    ) -> Result<AgentView, TurnError> {
        let rec = self.custom_record(name).await?;
        self.save_agent(rec, fields).await
    }

    pub async fn delete_agent(&self, name: &str) -> Result<(), TurnError> {
        self.custom_record(name).await?;
        self.store
            .delete_agent(name)
            .await
            .map_err(|e| TurnError::Claude(crate::claude::ClaudeError::protocol(e.to_string())))?;
        Ok(())
    }

    async fn custom_record(&self, name: &str) -> Result<AgentRecord, TurnError> {
        if let Some(a) = self
            .custom_agents()
            .await?
            .into_iter()
            .find(|a| a.name == name)
        {
            return Ok(a);
        }
        Err(match self.find_agent(name).await? {
            Some(_) => TurnError::Forbidden(format!(
                "'{name}' is one of the CLI's built-in agents; only custom agents can be changed"
            )),
            None => TurnError::NotFound(format!("No agent named '{name}'")),
        })
    }

    async fn save_agent(
        &self,
        mut rec: AgentRecord,
        f: AgentFields,
    ) -> Result<AgentView, TurnError> {
        if let Some(d) = f.description {
            rec.description = d;
        }
        if let Some(p) = f.prompt {
            rec.prompt = p;
        }
        if f.tools.is_some() {
            rec.tools = f.tools;
        }
        if f.model.is_some() {
            rec.model = f.model;
        }
        if rec.description.trim().is_empty() {
            return Err(TurnError::invalid(
                "description",
                "description must not be empty",
            ));
        }
        if rec.prompt.trim().is_empty() {
            return Err(TurnError::invalid("prompt", "prompt must not be empty"));
        }
        if let Some(tools) = &rec.tools {
            if let Some((i, _)) = tools.iter().enumerate().find(|(_, t)| {
                t.is_empty()
                    || !t
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-*():".contains(c))
            }) {
                return Err(TurnError::invalid(
                    format!("tools[{i}]"),
                    format!("'{}' is not a tool name", tools[i]),
                ));
            }
        }
        if let Some(m) = rec.model.as_deref() {
            if m != "inherit" && self.models.resolve(m).is_none() {
                return Err(TurnError::invalid(
                    "model",
                    format!("The model '{m}' is not served by this gateway (or use 'inherit')"),
                ));
            }
        }
        rec.updated_at = store::now_millis();
        self.store
            .put_agent(&rec)
            .await
            .map_err(|e| TurnError::Claude(crate::claude::ClaudeError::protocol(e.to_string())))?;
        Ok(custom_view(&rec))
    }

    async fn custom_agents(&self) -> Result<Vec<AgentRecord>, TurnError> {
        self.store
            .list_agents()
            .await
            .map_err(|e| TurnError::Claude(crate::claude::ClaudeError::protocol(e.to_string())))
    }

    /// The `initialize` of a process for this turn: its system prompt parts and every custom
    /// agent. A store that cannot be read leaves the custom agents out (logged), not the turn.
    pub(crate) async fn agent_initialize(
        &self,
        system: Option<String>,
        req: &TurnRequest,
    ) -> Initialize {
        let custom = self.custom_agents().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read the custom agents");
            vec![]
        });
        let agent = match req.options.agent.as_deref() {
            Some(name) => match custom.iter().find(|a| a.name == name) {
                Some(a) => Some(custom_view(a)),
                None => self.catalog.get().and_then(|o| {
                    o.agents
                        .iter()
                        .find(|a| a["name"] == name)
                        .map(builtin_view)
                }),
            },
            None => None,
        };
        let extra = match (req.options.append_system.clone(), req.tool_instructions()) {
            (Some(a), Some(t)) => Some(format!("{a}\n\n{t}")),
            (a, t) => a.or(t),
        };
        let (system_prompt, append_system_prompt) = system_parts(system, extra, agent.as_ref());
        let agents: Map<String, Value> = custom
            .iter()
            .map(|a| {
                let mut def = json!({"description": a.description, "prompt": a.prompt});
                if let Some(t) = &a.tools {
                    def["tools"] = json!(t);
                }
                if let Some(m) = a.model.as_deref() {
                    let cli = match m {
                        "inherit" => Some("inherit".to_string()),
                        m => self.models.resolve(m).map(|e| {
                            e.cli_model
                                .model
                                .clone()
                                .unwrap_or_else(|| "inherit".into())
                        }),
                    };
                    if let Some(cli) = cli {
                        def["model"] = json!(cli);
                    }
                }
                (a.name.clone(), def)
            })
            .collect();
        Initialize {
            system_prompt,
            append_system_prompt,
            agents: (!agents.is_empty()).then_some(Value::Object(agents)),
            ..Default::default()
        }
    }
}

/// The names of the custom agents an `initialize` carried.
pub(crate) fn passed_agents(init: &Initialize) -> HashSet<String> {
    init.agents
        .as_ref()
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names() {
        assert!(check_agent_name("code-reviewer-2").is_ok());
        assert!(check_agent_name(&"a".repeat(64)).is_ok());
        for bad in ["", "Explore", "a_b", "a b", &"a".repeat(65), "é"] {
            assert!(check_agent_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn system_parts_per_kind_of_agent() {
        let sys = Some("SP".to_string());
        let extra = Some("TOOLS".to_string());
        assert_eq!(
            system_parts(sys.clone(), extra.clone(), None),
            (sys.clone(), extra.clone())
        );
        let custom = AgentView {
            name: "rev".into(),
            description: "Reviews".into(),
            tools: None,
            model: None,
            prompt: Some("You are REV".into()),
            source: "custom",
        };
        assert_eq!(
            system_parts(sys.clone(), extra.clone(), Some(&custom)),
            (None, Some("SP\n\nTOOLS".into()))
        );
        assert_eq!(system_parts(None, None, Some(&custom)), (None, None));
        let builtin = AgentView {
            source: "builtin",
            name: "Explore".into(),
            description: "Fast read-only search.".into(),
            prompt: None,
            ..custom
        };
        let (s, a) = system_parts(None, None, Some(&builtin));
        assert_eq!(s, None);
        assert_eq!(
            a.as_deref(),
            Some("You are running as the Explore agent. Fast read-only search.")
        );
    }
}
