//! Projects (issue 11 §7): a name, a description and defaults for the sessions made in one
//! (workspace, model, agent, tools, permission mode). A project belongs to the key that made it,
//! as sessions do: another user key's project is "not found", so its existence does not leak;
//! an admin key sees every project.
//!
//! Owns checking a project's fields and its defaults (the same checks a session's own fields
//! get, so a default that would be refused at session creation is refused here first), and who
//! may see which project. Must not: know HTTP, or fill a session's fields (the native adapter
//! merges the defaults into what a request leaves out).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::conversation::TurnError;
use super::conversations::Conversations;
use super::session_table::millis_to_rfc3339;
use super::tenants::Caller;
use super::turn::PERMISSION_MODES;
use crate::store::{now_millis, ProjectRecord, StoreError};

/// The longest name a project may have, in characters.
const MAX_NAME: usize = 200;
/// The longest description, in characters.
const MAX_DESCRIPTION: usize = 4000;

/// What the sessions of a project get when their request leaves a field out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ProjectDefaults {
    /// An existing absolute directory inside the workspace roots (kept in canonical form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
}

/// A project as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub description: String,
    pub defaults: ProjectDefaults,
    /// The key that made it (`Caller::owner`).
    pub owner: String,
    pub created_at: String,
    pub updated_at: String,
}

/// What a create or a change asks for; `None` leaves a field as it is (or empty, on create).
/// `defaults` is merged into the project's defaults: a key set to `null` clears that default.
#[derive(Debug, Clone, Default)]
pub struct ProjectChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub defaults: Option<Value>,
}

impl Conversations {
    pub async fn create_project(
        &self,
        caller: &Caller,
        change: ProjectChange,
    ) -> Result<Project, TurnError> {
        let name = check_name(change.name.as_deref())?;
        let description = check_description(change.description)?;
        let defaults = match &change.defaults {
            Some(v) => {
                self.check_defaults(merge(&ProjectDefaults::default(), v)?)
                    .await?
            }
            None => ProjectDefaults::default(),
        };
        let at = now_millis();
        let rec = ProjectRecord {
            id: format!("proj_{}", uuid::Uuid::new_v4().simple()),
            owner: caller.owner.clone(),
            name,
            description,
            defaults: serde_json::to_value(&defaults).unwrap_or_default(),
            created_at: at,
            updated_at: at,
        };
        self.store.put_project(&rec).await.map_err(store_error)?;
        Ok(view(&rec))
    }

    /// A project the caller may see; another key's is not found, like a missing one.
    pub async fn project(&self, caller: &Caller, id: &str) -> Result<Project, TurnError> {
        Ok(view(&self.visible_project(caller, id).await?))
    }

    /// The caller's projects (an admin's: everyone's, or `owner`'s when given).
    pub async fn list_projects(
        &self,
        caller: &Caller,
        owner: Option<&str>,
    ) -> Result<Vec<Project>, TurnError> {
        let owner = if caller.is_admin() {
            owner
        } else {
            Some(caller.owner.as_str())
        };
        let all = self.store.list_projects(owner).await.map_err(store_error)?;
        Ok(all.iter().map(view).collect())
    }

    pub async fn update_project(
        &self,
        caller: &Caller,
        id: &str,
        change: ProjectChange,
    ) -> Result<Project, TurnError> {
        let mut rec = self.visible_project(caller, id).await?;
        if change.name.is_some() {
            rec.name = check_name(change.name.as_deref())?;
        }
        if change.description.is_some() {
            rec.description = check_description(change.description)?;
        }
        if let Some(patch) = &change.defaults {
            let current = defaults_of(&rec);
            let merged = self.check_defaults(merge(&current, patch)?).await?;
            rec.defaults = serde_json::to_value(&merged).unwrap_or_default();
        }
        rec.updated_at = now_millis();
        self.store.put_project(&rec).await.map_err(store_error)?;
        Ok(view(&rec))
    }

    /// Refused (409) while sessions are in it: deleting them first is the caller's choice, and
    /// a session never silently loses the project it was made in.
    pub async fn delete_project(&self, caller: &Caller, id: &str) -> Result<(), TurnError> {
        let rec = self.visible_project(caller, id).await?;
        let n = self
            .store
            .count_project_sessions(&rec.id)
            .await
            .map_err(store_error)?;
        if n > 0 {
            return Err(TurnError::Busy(format!(
                "Project {id} has {n} session(s); delete them before the project"
            )));
        }
        self.store
            .delete_project(&rec.id)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn visible_project(&self, caller: &Caller, id: &str) -> Result<ProjectRecord, TurnError> {
        match self.store.get_project(id).await.map_err(store_error)? {
            Some(rec) if caller.may_see(&rec.owner) => Ok(rec),
            _ => Err(not_found(id)),
        }
    }

    /// The checks a session's own fields get, under the names of the project's fields.
    async fn check_defaults(&self, mut d: ProjectDefaults) -> Result<ProjectDefaults, TurnError> {
        if let Some(dir) = &d.workspace {
            let canonical = self
                .check_workspace(Path::new(dir))
                .map_err(|e| rename(e, "defaults.workspace"))?;
            d.workspace = Some(canonical.display().to_string());
        }
        if let Some(m) = d
            .model
            .as_deref()
            .filter(|m| self.models.resolve(m).is_none())
        {
            return Err(TurnError::invalid(
                "defaults.model",
                format!("The model '{m}' does not exist"),
            ));
        }
        if let Some(a) = &d.agent {
            self.check_agent(a, "defaults.agent").await?;
        }
        if let Some(t) = &d.tools {
            self.check_tools_param(t, "defaults.tools")?;
        }
        if let Some(m) = d
            .permission_mode
            .as_deref()
            .filter(|m| !PERMISSION_MODES.contains(m))
        {
            return Err(TurnError::invalid(
                "defaults.permission_mode",
                format!(
                    "Unknown permission mode '{m}'; expected one of {}",
                    PERMISSION_MODES.join(", ")
                ),
            ));
        }
        Ok(d)
    }
}

fn defaults_of(rec: &ProjectRecord) -> ProjectDefaults {
    // Written by `create_project`/`update_project` only, so always readable.
    serde_json::from_value(rec.defaults.clone()).unwrap_or_default()
}

fn view(rec: &ProjectRecord) -> Project {
    Project {
        id: rec.id.clone(),
        name: rec.name.clone(),
        description: rec.description.clone(),
        defaults: defaults_of(rec),
        owner: rec.owner.clone(),
        created_at: millis_to_rfc3339(rec.created_at),
        updated_at: millis_to_rfc3339(rec.updated_at),
    }
}

fn check_name(name: Option<&str>) -> Result<String, TurnError> {
    let name = name.map(str::trim).unwrap_or("");
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(TurnError::invalid(
            "name",
            format!("name must be 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(name.to_string())
}

fn check_description(d: Option<String>) -> Result<String, TurnError> {
    let d = d.unwrap_or_default();
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(TurnError::invalid(
            "description",
            format!("description must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(d)
}

/// `patch` (a JSON object) merged into `current`: each key it names replaces that default,
/// `null` clears it. A key that is no default, or a value of the wrong type, is refused by name.
fn merge(current: &ProjectDefaults, patch: &Value) -> Result<ProjectDefaults, TurnError> {
    let Value::Object(patch) = patch else {
        return Err(TurnError::invalid(
            "defaults",
            "defaults must be an object of workspace, model, agent, tools, permission_mode",
        ));
    };
    let mut d = current.clone();
    for (k, v) in patch {
        let field = format!("defaults.{k}");
        match k.as_str() {
            "workspace" => d.workspace = string(v, &field)?,
            "model" => d.model = string(v, &field)?,
            "agent" => d.agent = string(v, &field)?,
            "permission_mode" => d.permission_mode = string(v, &field)?,
            "tools" => d.tools = strings(v, &field)?,
            _ => {
                return Err(TurnError::invalid(
                    field,
                    format!(
                        "'{k}' is not a project default; expected workspace, model, agent, \
                         tools or permission_mode"
                    ),
                ))
            }
        }
    }
    Ok(d)
}

fn string(v: &Value, field: &str) -> Result<Option<String>, TurnError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        _ => Err(TurnError::invalid(
            field,
            format!("{field} must be a non-empty string or null"),
        )),
    }
}

fn strings(v: &Value, field: &str) -> Result<Option<Vec<String>>, TurnError> {
    let bad = || {
        TurnError::invalid(
            field,
            format!("{field} must be an array of strings or null"),
        )
    };
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(String::from).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(bad()),
    }
}

/// The same error, naming the project's field instead of the session's.
fn rename(e: TurnError, field: &str) -> TurnError {
    match e {
        TurnError::Invalid { message, .. } => TurnError::invalid(field, message),
        other => other,
    }
}

fn not_found(id: &str) -> TurnError {
    TurnError::NotFound(format!("No project with the id '{id}'"))
}

fn store_error(e: StoreError) -> TurnError {
    match e {
        StoreError::NotFound(m) => TurnError::NotFound(m),
        other => TurnError::Claude(crate::claude::ClaudeError::protocol(format!(
            "store: {other}"
        ))),
    }
}

/// The body of a project's create or change, as a plain map (so `defaults` keeps which keys
/// were sent, and `null`s).
pub fn change_of(body: &Map<String, Value>) -> Result<ProjectChange, TurnError> {
    let text = |k: &str| -> Result<Option<String>, TurnError> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(TurnError::invalid(k, format!("{k} must be a string"))),
        }
    };
    Ok(ProjectChange {
        name: text("name")?,
        description: text("description")?,
        defaults: body.get("defaults").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_replaces_named_defaults_and_clears_nulls() {
        let cur = ProjectDefaults {
            model: Some("a".into()),
            agent: Some("x".into()),
            ..Default::default()
        };
        let d = merge(
            &cur,
            &json!({"model": "b", "agent": null, "tools": ["Read"]}),
        )
        .unwrap();
        assert_eq!(d.model.as_deref(), Some("b"));
        assert_eq!(d.agent, None);
        assert_eq!(d.tools, Some(vec!["Read".to_string()]));
    }

    #[test]
    fn merge_names_the_bad_field() {
        let param = |v: Value| match merge(&ProjectDefaults::default(), &v) {
            Err(TurnError::Invalid { param, .. }) => param,
            other => panic!("{other:?}"),
        };
        assert_eq!(param(json!({"modle": "x"})), "defaults.modle");
        assert_eq!(param(json!({"tools": "Read"})), "defaults.tools");
        assert_eq!(param(json!({"model": 3})), "defaults.model");
        assert_eq!(param(json!([1])), "defaults");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name(None).is_err());
        assert!(check_name(Some("  ")).is_err());
        assert_eq!(check_name(Some(" app ")).unwrap(), "app");
        assert!(check_name(Some(&"x".repeat(MAX_NAME + 1))).is_err());
    }
}
