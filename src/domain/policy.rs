//! Per-key policy (issue 11 §3): the one place that decides whether a request stays within what
//! its key may use — the models, the built-in tools, the highest permission mode, the agents and
//! the workspace roots of [`KeyPolicy`]. Every path that can set one of these calls here: the
//! native API's session create, settings, agent and tool-permission changes and direct tool
//! calls, and the compatible APIs' model.
//!
//! A static (config) key and a gateway without keys have no policy: nothing is refused here.
//! What the deployment itself allows (`builtin_tools`, `workspace_roots`, the model table) is
//! checked elsewhere, as before; a key only narrows it.
//!
//! Must not: know HTTP (a refusal is a [`Denied`] naming the field; the HTTP layer makes it a
//! 403 in the API's shape), or read the store.

use std::path::{Path, PathBuf};

use super::models::ModelTable;
use super::tenants::KeyPolicy;

/// The permission modes from the least to the most permissive. `plan` runs nothing that
/// changes anything; `dontAsk` never asks and refuses what is not pre-approved; `default` asks;
/// `acceptEdits` lets file edits through unasked; `auto` lets the CLI approve on its own;
/// `bypassPermissions` (not accepted from clients today) would skip every check.
pub const MODE_ORDER: &[&str] = &[
    "plan",
    "dontAsk",
    "default",
    "acceptEdits",
    "auto",
    "bypassPermissions",
];

/// A request beyond its key's policy: the field, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Denied {
    pub param: String,
    pub message: String,
}

fn denied(param: &str, message: String) -> Denied {
    Denied {
        param: param.to_string(),
        message,
    }
}

/// The rank of a permission mode in [`MODE_ORDER`]; an unknown mode ranks as the most
/// permissive, so it is never let through by mistake.
pub fn mode_rank(mode: &str) -> usize {
    MODE_ORDER
        .iter()
        .position(|m| *m == mode)
        .unwrap_or(MODE_ORDER.len())
}

/// `model` (a public id or alias) is one the key may use: named in its list, or resolving to
/// the same CLI model as one that is.
pub fn check_model(
    p: &KeyPolicy,
    models: &ModelTable,
    model: &str,
    param: &str,
) -> Result<(), Denied> {
    let Some(allowed) = &p.models else {
        return Ok(());
    };
    let target = models.resolve(model).map(|m| &m.cli_model);
    let ok = allowed.iter().any(|a| {
        a == model || (target.is_some() && models.resolve(a).map(|m| &m.cli_model) == target)
    });
    if ok {
        Ok(())
    } else {
        Err(denied(
            param,
            format!(
                "This API key may not use the model '{model}' (allowed: {})",
                allowed.join(", ")
            ),
        ))
    }
}

/// Every tool of `tools` is among the key's built-in tools. `param` names the list; a refusal
/// names the item (`tools[1]`).
pub fn check_tools(p: &KeyPolicy, tools: &[String], param: &str) -> Result<(), Denied> {
    let Some(allowed) = &p.tools else {
        return Ok(());
    };
    match tools.iter().enumerate().find(|(_, t)| !allowed.contains(t)) {
        None => Ok(()),
        Some((i, t)) => Err(denied(
            &format!("{param}[{i}]"),
            format!(
                "This API key may not use the tool '{t}' (allowed: {})",
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            ),
        )),
    }
}

/// The one tool `tool` (a direct call) is among the key's tools.
pub fn check_tool(p: &KeyPolicy, tool: &str, param: &str) -> Result<(), Denied> {
    check_tools(p, &[tool.to_string()], param).map_err(|mut d| {
        d.param = param.to_string();
        d
    })
}

/// The mode a session gets: the one asked for, when the key allows it; without one, the CLI's
/// `default`, or the key's highest mode when that is below `default` (a `plan`-only key's
/// sessions plan without saying so).
pub fn permission_mode(
    p: &KeyPolicy,
    asked: Option<&str>,
    param: &str,
) -> Result<Option<String>, Denied> {
    let Some(max) = p.permission_mode.as_deref() else {
        return Ok(asked.map(String::from));
    };
    match asked {
        Some(m) if mode_rank(m) > mode_rank(max) => Err(denied(
            param,
            format!(
                "This API key allows permission modes up to '{max}', not '{m}' (from the least \
                 permissive: {})",
                MODE_ORDER.join(" < ")
            ),
        )),
        Some(m) => Ok(Some(m.to_string())),
        None if mode_rank(max) < mode_rank("default") => Ok(Some(max.to_string())),
        None => Ok(None),
    }
}

/// `agent` is one the key may run.
pub fn check_agent(p: &KeyPolicy, agent: Option<&str>, param: &str) -> Result<(), Denied> {
    let (Some(allowed), Some(agent)) = (&p.agents, agent) else {
        return Ok(());
    };
    if allowed.iter().any(|a| a == agent) {
        Ok(())
    } else {
        Err(denied(
            param,
            format!(
                "This API key may not run the agent '{agent}' (allowed: {})",
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            ),
        ))
    }
}

/// A session's workspace lies inside one of the key's roots (both canonicalized, so `..` and
/// symlinks cannot leave a root). `None`, a temporary workspace, is always allowed. A path that
/// does not exist is refused too: it cannot be shown to lie inside.
pub fn check_workspace(p: &KeyPolicy, workspace: Option<&Path>, param: &str) -> Result<(), Denied> {
    let (Some(roots), Some(ws)) = (&p.workspace_roots, workspace) else {
        return Ok(());
    };
    let real = ws.canonicalize().ok();
    let inside = real.as_ref().is_some_and(|w| {
        roots
            .iter()
            .filter_map(|r| PathBuf::from(r).canonicalize().ok())
            .any(|r| w.starts_with(&r))
    });
    if inside {
        Ok(())
    } else {
        Err(denied(
            param,
            format!(
                "This API key may not use the workspace '{}' (its roots: {})",
                ws.display(),
                roots.join(", ")
            ),
        ))
    }
}

/// A native session as asked for: its model, tools, permission mode (clamped, see
/// [`permission_mode`]), agent and workspace.
pub fn check_new_session(
    p: &KeyPolicy,
    models: &ModelTable,
    spec: &mut super::sessions::NewSession,
) -> Result<(), Denied> {
    check_model(p, models, &spec.model_id, "model")?;
    check_tools(p, &spec.tools, "tools")?;
    spec.permission_mode = permission_mode(p, spec.permission_mode.as_deref(), "permission_mode")?;
    check_agent(p, spec.agent.as_deref(), "agent")?;
    check_workspace(p, spec.workspace.as_deref(), "workspace")
}

/// A compatible-API turn: its model, built-in tools (`builtin_tools`), permission mode and
/// agent (the Claude Code options those endpoints accept).
pub fn check_turn(
    p: &KeyPolicy,
    models: &ModelTable,
    req: &mut super::turn::TurnRequest,
) -> Result<(), Denied> {
    check_model(p, models, &req.model_id, "model")?;
    check_tools(p, &req.builtin_tools, "builtin_tools")?;
    req.options.permission_mode =
        permission_mode(p, req.options.permission_mode.as_deref(), "permission_mode")?;
    check_agent(p, req.options.agent.as_deref(), "agent")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ModelTable {
        ModelTable::new(&super::super::models::default_table())
    }

    fn p() -> KeyPolicy {
        KeyPolicy::default()
    }

    #[test]
    fn no_policy_refuses_nothing() {
        let none = p();
        assert!(check_model(&none, &table(), "opus", "model").is_ok());
        assert!(check_tools(&none, &["Bash".into()], "tools").is_ok());
        assert_eq!(
            permission_mode(&none, Some("auto"), "m")
                .unwrap()
                .as_deref(),
            Some("auto")
        );
        assert!(check_agent(&none, Some("x"), "agent").is_ok());
        assert!(check_workspace(&none, Some(Path::new("/nowhere")), "workspace").is_ok());
    }

    #[test]
    fn models_match_by_id_or_what_they_resolve_to() {
        let k = KeyPolicy {
            models: Some(vec!["claude-haiku-4-5".into()]),
            ..p()
        };
        assert!(check_model(&k, &table(), "claude-haiku-4-5", "model").is_ok());
        // Another public id of the same CLI model.
        assert!(check_model(&k, &table(), "claude-haiku-4-5-20251001", "model").is_ok());
        let e = check_model(&k, &table(), "opus", "model").unwrap_err();
        assert_eq!(e.param, "model");
    }

    #[test]
    fn tools_are_named_by_index() {
        let k = KeyPolicy {
            tools: Some(vec!["Read".into()]),
            ..p()
        };
        assert!(check_tools(&k, &["Read".into()], "tools").is_ok());
        let e = check_tools(&k, &["Read".into(), "Bash".into()], "tools").unwrap_err();
        assert_eq!(e.param, "tools[1]");
        assert_eq!(check_tool(&k, "Bash", "name").unwrap_err().param, "name");
    }

    #[test]
    fn modes_are_ordered_and_a_low_ceiling_is_the_default() {
        let k = KeyPolicy {
            permission_mode: Some("default".into()),
            ..p()
        };
        assert!(permission_mode(&k, Some("plan"), "m").is_ok());
        assert!(permission_mode(&k, Some("dontAsk"), "m").is_ok());
        assert_eq!(
            permission_mode(&k, Some("acceptEdits"), "permission_mode")
                .unwrap_err()
                .param,
            "permission_mode"
        );
        assert!(permission_mode(&k, Some("bogus"), "m").is_err());
        assert_eq!(permission_mode(&k, None, "m").unwrap(), None);
        let plan = KeyPolicy {
            permission_mode: Some("plan".into()),
            ..p()
        };
        assert_eq!(
            permission_mode(&plan, None, "m").unwrap().as_deref(),
            Some("plan")
        );
    }

    #[test]
    fn workspaces_must_lie_inside_a_root() {
        let root = tempfile::tempdir().unwrap();
        let inside = root.path().join("a");
        std::fs::create_dir(&inside).unwrap();
        let k = KeyPolicy {
            workspace_roots: Some(vec![root.path().display().to_string()]),
            ..p()
        };
        assert!(check_workspace(&k, Some(&inside), "workspace").is_ok());
        assert!(check_workspace(&k, None, "workspace").is_ok());
        let escape = inside.join("../..");
        assert!(check_workspace(&k, Some(&escape), "workspace").is_err());
        assert!(check_workspace(&k, Some(Path::new("/tmp")), "workspace").is_err());
    }
}
