//! The machine's own Claude Code sessions (off unless `claude_sessions_dir` names a Claude Code
//! config dir, e.g. `~/.claude`): list its transcripts (`projects/*/*.jsonl`, subagent
//! transcripts skipped), read one as history entries, and continue one as a native session.
//!
//! Must not: write anything under that dir (it is read-only here: continuing copies the
//! transcript into the gateway's own config dir), follow a path out of it, or continue a
//! session whose working directory lies outside the allowed workspace roots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use super::conversation::TurnError;
use super::conversations::Conversations;
use super::session_table::SessionInfo;
use super::sessions::{HistoryEntry, NewSession};
use crate::claude::transcript;

/// How much of a transcript the listing reads for its cwd and title.
const HEAD_BYTES: usize = 256 * 1024;

/// One transcript as the listing shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClaudeSession {
    /// The Claude Code session id (the file's name).
    pub id: String,
    /// Its project folder under `projects/`.
    pub project: String,
    /// The directory the session ran in.
    pub cwd: Option<String>,
    /// The first user text.
    pub title: Option<String>,
    pub started_at: Option<String>,
    /// The file's last change, RFC 3339.
    pub updated_at: String,
    pub size_bytes: u64,
    /// Whether its directory lies inside the allowed workspace roots (it can be continued).
    pub continuable: bool,
}

fn disabled() -> TurnError {
    TurnError::NotFound(
        "The machine's Claude Code sessions are not shown: set claude_sessions_dir".into(),
    )
}

fn bad_id(id: &str) -> bool {
    id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Every top-level transcript of `projects/*/`. Subagent transcripts live deeper
/// (`<session>/subagents/agent-*.jsonl`) or, from older CLIs, as `agent-*.jsonl`.
fn transcripts(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(projects) = std::fs::read_dir(dir.join("projects")) else {
        return out;
    };
    for project in projects.flatten() {
        if !project.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(project.path()) else {
            continue;
        };
        let name = project.file_name().to_string_lossy().to_string();
        for f in files.flatten() {
            let path = f.path();
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            if path.extension().is_some_and(|e| e == "jsonl")
                && f.file_type().is_ok_and(|t| t.is_file())
                && !stem.starts_with("agent-")
                && !bad_id(&stem)
            {
                out.push((name.clone(), path));
            }
        }
    }
    out
}

/// The first `cwd`, first user text and first timestamp of a transcript's lines.
fn head_facts(text: &str) -> (Option<String>, Option<String>, Option<String>) {
    let (mut cwd, mut title, mut started) = (None, None, None);
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if cwd.is_none() {
            cwd = v["cwd"].as_str().map(String::from);
        }
        if started.is_none() {
            started = v["timestamp"].as_str().map(String::from);
        }
        if title.is_none() && v["type"] == "user" && v["isMeta"] != true {
            title = super::activity::first_text(&v["message"]["content"])
                .filter(|t| !t.starts_with('<'))
                .map(|t| t.chars().take(100).collect());
        }
        if cwd.is_some() && title.is_some() && started.is_some() {
            break;
        }
    }
    (cwd, title, started)
}

/// A transcript's lines as history entries (user, assistant, thinking, tool_call, tool_result).
pub fn history_entries(text: &str) -> Vec<HistoryEntry> {
    let mut out = Vec::new();
    let mut push = |kind: &str, payload: Value, at: &str| {
        out.push(HistoryEntry {
            seq: out.len() as u64 + 1,
            turn_id: String::new(),
            kind: kind.to_string(),
            payload,
            ts: at.to_string(),
            at: at.to_string(),
        })
    };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["isSidechain"] == true || v["isMeta"] == true {
            continue;
        }
        let at = v["timestamp"].as_str().unwrap_or_default();
        let content = &v["message"]["content"];
        match v["type"].as_str() {
            Some("user") => match content {
                Value::Array(blocks) if blocks.iter().any(|b| b["type"] == "tool_result") => {
                    for b in blocks.iter().filter(|b| b["type"] == "tool_result") {
                        push(
                            "tool_result",
                            json!({"tool_use_id": b["tool_use_id"], "content": b["content"],
                                   "is_error": b["is_error"].as_bool().unwrap_or(false)}),
                            at,
                        );
                    }
                }
                c => push("user", json!({ "content": c }), at),
            },
            Some("assistant") => {
                for b in content.as_array().into_iter().flatten() {
                    match b["type"].as_str() {
                        Some("text") => push("assistant", json!({"text": b["text"]}), at),
                        Some("thinking") => push("thinking", json!({"text": b["thinking"]}), at),
                        Some("tool_use") => push(
                            "tool_call",
                            json!({"id": b["id"], "name": b["name"], "input": b["input"], "client": false}),
                            at,
                        ),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

impl Conversations {
    fn claude_sessions_dir(&self) -> Result<PathBuf, TurnError> {
        let dir = self.cfg.claude_sessions_dir.clone().ok_or_else(disabled)?;
        dir.canonicalize()
            .map_err(|e| TurnError::NotFound(format!("claude_sessions_dir: {e}")))
    }

    /// Whether `dir` lies inside one of the allowed workspace roots (after resolving links).
    pub fn inside_workspace_roots(&self, dir: &Path) -> bool {
        let Ok(dir) = dir.canonicalize() else {
            return false;
        };
        self.cfg
            .workspace_roots()
            .iter()
            .filter_map(|r| r.canonicalize().ok())
            .any(|root| dir.starts_with(root))
    }

    /// The machine's sessions, the most recently changed first.
    pub fn list_claude_sessions(&self) -> Result<Vec<ClaudeSession>, TurnError> {
        let dir = self.claude_sessions_dir()?;
        let mut out: Vec<ClaudeSession> = transcripts(&dir)
            .into_iter()
            .filter_map(|(project, path)| self.listing_entry(project, &path))
            .collect();
        out.sort_by(|a, b| b.updated_at.cmp(&a.updated_at));
        Ok(out)
    }

    /// One transcript's listing entry, from its metadata and the head of the file.
    fn listing_entry(&self, project: String, path: &Path) -> Option<ClaudeSession> {
        let meta = path.metadata().ok()?;
        let head = read_head(path);
        let (cwd, title, started_at) = head_facts(&head);
        let mtime = meta
            .modified()
            .ok()
            .map(time::OffsetDateTime::from)
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        Some(ClaudeSession {
            id: path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
            project,
            continuable: cwd
                .as_deref()
                .is_some_and(|c| self.inside_workspace_roots(Path::new(c))),
            cwd,
            title,
            started_at,
            updated_at: mtime,
            size_bytes: meta.len(),
        })
    }

    /// The transcript of one of the machine's sessions, found inside the configured dir.
    fn claude_session_file(&self, id: &str) -> Result<(ClaudeSession, String, PathBuf), TurnError> {
        if bad_id(id) {
            return Err(TurnError::invalid(
                "id",
                "a session id is letters, digits, '-' and '_'",
            ));
        }
        let dir = self.claude_sessions_dir()?;
        let not_found = || TurnError::NotFound(format!("No Claude Code session '{id}'"));
        let (project, path) = transcripts(&dir)
            .into_iter()
            .find(|(_, p)| p.file_stem().is_some_and(|s| s == id))
            .ok_or_else(not_found)?;
        // A link that leads out of the dir is not followed.
        let real = path.canonicalize().map_err(|_| not_found())?;
        if !real.starts_with(&dir) {
            return Err(TurnError::Forbidden(format!(
                "The transcript of '{id}' lies outside claude_sessions_dir"
            )));
        }
        let text = std::fs::read_to_string(&real).map_err(|_| not_found())?;
        // Only this transcript's entry: reading every transcript's head would make one
        // session's view cost as much as the whole listing.
        let info = self.listing_entry(project, &path).ok_or_else(not_found)?;
        Ok((info, text, real))
    }

    /// One of the machine's sessions, read-only: its listing entry and its history.
    pub fn claude_session(
        &self,
        id: &str,
    ) -> Result<(ClaudeSession, Vec<HistoryEntry>), TurnError> {
        let (info, text, _) = self.claude_session_file(id)?;
        Ok((info, history_entries(&text)))
    }

    /// Continue one of the machine's sessions as a native session in its own directory (which
    /// must lie inside the workspace roots). The transcript is copied into the gateway's config
    /// dir under a new CLI session id; the machine's file is never written.
    pub async fn continue_claude_session(
        self: &Arc<Self>,
        id: &str,
        model_id: String,
        cli_model: crate::domain::models::CliModel,
        title: Option<String>,
    ) -> Result<SessionInfo, TurnError> {
        let (found, _, source) = self.claude_session_file(id)?;
        let cwd = found.cwd.clone().ok_or_else(|| {
            TurnError::invalid("id", format!("The session '{id}' names no directory"))
        })?;
        let workspace = PathBuf::from(&cwd);
        if !self.inside_workspace_roots(&workspace) {
            return Err(TurnError::Forbidden(format!(
                "The session's directory {cwd} is not inside the allowed workspace roots"
            )));
        }
        let workspace = workspace
            .canonicalize()
            .map_err(|e| TurnError::invalid("workspace", e.to_string()))?;
        // A session like any other in that directory; then the transcript, under its id.
        let info = self
            .create_session(NewSession {
                model_id,
                cli_model,
                workspace: Some(workspace.clone()),
                title: title.or(found.title.clone()),
                ..Default::default()
            })
            .await?;
        let config = self.cfg.claude_config_dir();
        if let Err(e) = transcript::copy_as(
            &source,
            &config,
            &workspace,
            &info.cli_session_id,
            None,
            None,
        ) {
            let _ = self.delete_session(&info.id).await;
            return Err(TurnError::invalid(
                "id",
                format!("copying the transcript: {e}"),
            ));
        }
        if let Some(conv) = self
            .sessions
            .lock()
            .get_mut(&info.id)
            .and_then(|slot| slot.conv.as_mut())
        {
            conv.started = true;
        }
        Ok(info)
    }
}

fn read_head(path: &Path) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; HEAD_BYTES];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut buf))
        .unwrap_or(0);
    buf.truncate(n);
    String::from_utf8_lossy(&buf).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_top_level_transcripts_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("projects/-srv-app");
        std::fs::create_dir_all(p.join("abc/subagents")).unwrap();
        std::fs::write(p.join("abc.jsonl"), "{}\n").unwrap();
        std::fs::write(p.join("abc/subagents/agent-1.jsonl"), "{}\n").unwrap();
        std::fs::write(p.join("agent-2.jsonl"), "{}\n").unwrap();
        std::fs::write(p.join("notes.txt"), "x").unwrap();
        let found: Vec<String> = transcripts(dir.path())
            .into_iter()
            .map(|(_, p)| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(found, ["abc.jsonl"]);
        assert!(bad_id("../x"));
        assert!(!bad_id("4f0c-aa_1"));
    }

    #[test]
    fn transcript_lines_become_history() {
        let text = [
            json!({"type":"queue-operation","operation":"enqueue"}),
            json!({"type":"user","cwd":"/w","timestamp":"2026-01-01T00:00:00Z","message":{"role":"user","content":"fix the bug"}}),
            json!({"type":"assistant","message":{"content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"on it"},{"type":"tool_use","id":"t1","name":"Read","input":{"file_path":"/w/a"}}]}}),
            json!({"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":"x"}]}}),
            json!({"type":"assistant","isSidechain":true,"message":{"content":[{"type":"text","text":"sub"}]}}),
        ]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
        let kinds: Vec<String> = history_entries(&text).into_iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            ["user", "thinking", "assistant", "tool_call", "tool_result"]
        );
        let (cwd, title, started) = head_facts(&text);
        assert_eq!(cwd.as_deref(), Some("/w"));
        assert_eq!(title.as_deref(), Some("fix the bug"));
        assert!(started.is_some());
    }
}
