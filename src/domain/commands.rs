//! Slash commands of a native session: the CLI's own (from its `initialize` response), the
//! ones the gateway answers itself (`/help`, `/model`, `/agents`: the CLI refuses them
//! headless) and custom commands from the workspace's `.claude/commands/` (the CLI does not
//! read them under `--setting-sources ""`, so the gateway expands them into a prompt). Must
//! not: know about HTTP, or render events.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use super::confine::Confinement;
use super::conversations::{Conversations, TurnError, TurnHandle};
use super::settings::SessionPatch;

/// Commands the gateway answers itself, with their description and argument hint.
pub const GATEWAY_COMMANDS: &[(&str, &str, &str)] = &[
    ("help", "List the commands this session can run", ""),
    (
        "model",
        "Show the session's model, or switch it from the next turn",
        "[model]",
    ),
    (
        "agents",
        "List the agents a session can run as or hand work to",
        "",
    ),
];

/// Commands that would change what every session shares (the CLI's settings file).
const REFUSED: &[&str] = &["config", "settings"];

/// A command as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CommandView {
    pub name: String,
    pub description: String,
    pub argument_hint: String,
    /// Other names it answers to (e.g. `/cost` for the CLI's `/usage`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// `cli`, `gateway` or `workspace`.
    pub source: &'static str,
}

/// What running a command gives.
pub enum CommandRun {
    /// A turn in the session (its events, as for a message). `structured` says which
    /// structured result to add when it ends.
    Turn {
        handle: TurnHandle,
        structured: Option<&'static str>,
    },
    /// Answered by the gateway at once.
    Answer { output: String, structured: Value },
}

/// A custom command's file: its front matter and its prompt.
pub(crate) fn parse_command_file(text: &str) -> (Option<String>, Option<String>, String) {
    let (mut description, mut hint) = (None, None);
    let body = match text.strip_prefix("---\n") {
        Some(rest) => match rest.find("\n---") {
            Some(end) => {
                for line in rest[..end].lines() {
                    if let Some((k, v)) = line.split_once(':') {
                        let v = v.trim().trim_matches('"').to_string();
                        match k.trim() {
                            "description" => description = Some(v),
                            "argument-hint" => hint = Some(v),
                            _ => {}
                        }
                    }
                }
                rest[end + 4..]
                    .trim_start_matches('-')
                    .trim_start()
                    .to_string()
            }
            None => text.to_string(),
        },
        None => text.to_string(),
    };
    (description, hint, body)
}

/// `$ARGUMENTS` is every argument; `$1`..`$9` one each.
pub(crate) fn expand(body: &str, args: &[String]) -> String {
    let mut out = body.replace("$ARGUMENTS", &args.join(" "));
    for i in (1..=9).rev() {
        out = out.replace(
            &format!("${i}"),
            args.get(i - 1).map(String::as_str).unwrap_or(""),
        );
    }
    out
}

fn workspace_commands(workspace: &Path) -> Vec<CommandView> {
    let dir = workspace.join(".claude").join("commands");
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".md"))
        else {
            continue;
        };
        if !valid_name(name) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let (description, hint, _) = parse_command_file(&text);
        out.push(CommandView {
            name: name.to_string(),
            description: description.unwrap_or_else(|| "Custom command of the workspace".into()),
            argument_hint: hint.unwrap_or_default(),
            aliases: vec![],
            source: "workspace",
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Conversations {
    /// The CLI's commands and the gateway's.
    pub async fn list_commands(&self) -> Result<Vec<CommandView>, TurnError> {
        let offer = self.cli_offer().await?;
        let s = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut out: Vec<CommandView> = offer
            .commands
            .iter()
            .filter(|c| !REFUSED.contains(&c["name"].as_str().unwrap_or("")))
            .map(|c| CommandView {
                name: s(c, "name"),
                description: s(c, "description"),
                argument_hint: s(c, "argumentHint"),
                aliases: c["aliases"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(String::from))
                    .collect(),
                source: "cli",
            })
            .collect();
        for (name, description, hint) in GATEWAY_COMMANDS {
            out.retain(|c| c.name != *name);
            out.push(CommandView {
                name: name.to_string(),
                description: description.to_string(),
                argument_hint: hint.to_string(),
                aliases: vec![],
                source: "gateway",
            });
        }
        Ok(out)
    }

    /// Every command of the session: the gateway's list, then its workspace's own commands.
    pub async fn session_commands(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<Vec<CommandView>, TurnError> {
        let info = self
            .session(id)
            .await
            .ok_or_else(|| TurnError::NotFound(format!("No session with the id '{id}'")))?;
        let mut out = self.list_commands().await?;
        let own = workspace_commands(Path::new(&info.workspace));
        out.retain(|c| !own.iter().any(|o| o.name == c.name));
        out.extend(own);
        Ok(out)
    }

    /// Run `/name args` in the session.
    pub async fn run_command(
        self: &Arc<Self>,
        id: &str,
        name: &str,
        args: Vec<String>,
        key: Option<String>,
    ) -> Result<CommandRun, TurnError> {
        let name = name.trim_start_matches('/');
        if REFUSED.contains(&name) {
            return Err(TurnError::invalid(
                "name",
                format!("/{name} would change the CLI settings every session shares; use PATCH /api/sessions/{{id}}"),
            ));
        }
        let info = self
            .session(id)
            .await
            .ok_or_else(|| TurnError::NotFound(format!("No session with the id '{id}'")))?;
        match name {
            "help" => {
                let list = self.session_commands(id).await?;
                let output = list
                    .iter()
                    .map(|c| format!("/{} {} — {}", c.name, c.argument_hint, c.description))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Ok(CommandRun::Answer {
                    output,
                    structured: json!({"commands": list}),
                });
            }
            "agents" => {
                let list = self.list_agents().await?;
                let output = list
                    .iter()
                    .map(|a| format!("{} ({}) — {}", a.name, a.source, a.description))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Ok(CommandRun::Answer {
                    output,
                    structured: json!({"agents": list}),
                });
            }
            "model" => {
                let info = match args.first() {
                    Some(m) => {
                        self.patch_session(
                            id,
                            SessionPatch {
                                model: Some(m.clone()),
                                ..Default::default()
                            },
                        )
                        .await?
                    }
                    None => info,
                };
                return Ok(CommandRun::Answer {
                    output: format!("Model: {}", info.model),
                    structured: json!({"model": info.model}),
                });
            }
            _ => {}
        }
        let own = workspace_commands(Path::new(&info.workspace));
        let prompt = if own.iter().any(|c| c.name == name) && valid_name(name) {
            // Through the shared path check: a symlinked file must stay in the workspace.
            let conf = Confinement::new(Path::new(&info.workspace), &[])
                .map_err(|e| TurnError::Forbidden(e.to_string()))?;
            let path = conf
                .resolve(&format!(".claude/commands/{name}.md"))
                .map_err(|e| TurnError::Forbidden(e.to_string()))?;
            let text = std::fs::read_to_string(&path).map_err(|e| {
                TurnError::NotFound(format!("The command /{name} cannot be read: {e}"))
            })?;
            let (_, _, body) = parse_command_file(&text);
            // A leading space: the CLI must not read the expanded prompt as a command.
            format!(" {}", expand(&body, &args).trim())
        } else {
            let offer = self.cli_offer().await?;
            let known = offer.commands.iter().any(|c| {
                c["name"] == name
                    || c["aliases"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == name))
            });
            if !known {
                return Err(TurnError::NotFound(format!("No command named /{name}")));
            }
            let mut text = format!("/{name}");
            if !args.is_empty() {
                text.push(' ');
                text.push_str(&args.join(" "));
            }
            text
        };
        let structured = match name {
            "context" => Some("context"),
            "cost" | "usage" => Some("cost"),
            "compact" => Some("compact"),
            _ => None,
        };
        let handle = self
            .session_turn(id, vec![json!({"type": "text", "text": prompt})], key)
            .await?;
        Ok(CommandRun::Turn { handle, structured })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_files_and_arguments() {
        let (d, h, body) = parse_command_file(
            "---\ndescription: Say it\nargument-hint: \"<who>\"\n---\nHello $1, all: $ARGUMENTS\n",
        );
        assert_eq!(d.as_deref(), Some("Say it"));
        assert_eq!(h.as_deref(), Some("<who>"));
        assert_eq!(body, "Hello $1, all: $ARGUMENTS\n");
        assert_eq!(
            expand(&body, &["Ann".into(), "Bob".into()]),
            "Hello Ann, all: Ann Bob\n"
        );
        let (d, _, body) = parse_command_file("no front matter $2");
        assert_eq!(d, None);
        assert_eq!(expand(&body, &["a".into()]), "no front matter ");
    }

    #[test]
    fn names() {
        assert!(valid_name("my-cmd_2"));
        assert!(!valid_name("../x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
    }
}
