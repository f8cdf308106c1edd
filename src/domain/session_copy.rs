//! Copies of a native session: a fork (a new session that starts from this one's conversation,
//! its workspace and its history) and an export (its history as JSON or Markdown). Split from
//! `sessions` by responsibility; the same service, the same rules. Must not: change the original.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::conversation::TurnError;
use super::conversations::Conversations;
use super::session_table::{now, session_record, SessionInfo};
use super::sessions::{not_found, store_error};
use crate::claude::transcript;
use crate::store;

impl Conversations {
    /// A new session that starts from this one's conversation, owned by `owner` (who forks);
    /// the original is not changed. The fork stays in the original's project when its owner
    /// forks it (an admin's fork of another key's session is in no project).
    pub async fn fork_session(
        self: &Arc<Self>,
        id: &str,
        owner: &str,
    ) -> Result<SessionInfo, TurnError> {
        self.ensure_slot(id).await;
        let (orig, cli_model) = {
            let sessions = self.sessions.lock();
            let slot = sessions.get(id).ok_or_else(|| not_found(id))?;
            (slot.info.clone(), slot.cli_model.clone())
        };
        let history = self
            .store
            .list_events(id, 0, store::MAX_EVENTS_PER_CALL)
            .await
            .map_err(store_error)?;
        let orig_ws = PathBuf::from(&orig.workspace);
        let config = self.cfg.claude_config_dir();
        let source = transcript::session_file(&config, &orig_ws, &orig.cli_session_id);
        let new_id = uuid::Uuid::new_v4().to_string();
        let (workspace, temp) = if orig.workspace_is_temp {
            (self.cfg.workspaces_dir().join(&new_id), true)
        } else {
            (orig_ws.clone(), false)
        };
        // The fork is a copy of the transcript as of its last clean turn, under a new session
        // id, in the fork's project directory. (`--resume --fork-session` is refused while the
        // original's process lives: the CLI keeps a registry of live sessions.) The CLI
        // writes a turn's lines shortly after it reports the turn's result.
        let fork_sid = uuid::Uuid::new_v4().to_string();
        let mut copied = false;
        for _ in 0..30 {
            if let Ok(Some(_)) = transcript::copy_as(
                &source,
                &config,
                &workspace,
                &fork_sid,
                orig.transcript_leaf.as_deref(),
                orig.turn_mark.as_deref(),
            ) {
                copied = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !copied {
            return Err(TurnError::Busy(format!(
                "Session {id} has no conversation to fork yet"
            )));
        }
        if temp {
            copy_dir(&orig_ws, &workspace)
                .map_err(|e| TurnError::invalid("", format!("copying the workspace: {e}")))?;
        }
        let at = now();
        let info = SessionInfo {
            id: new_id,
            cli_session_id: fork_sid,
            workspace: workspace.display().to_string(),
            workspace_is_temp: temp,
            status: "idle".into(),
            forked_from: Some(orig.id.clone()),
            title: orig.title.as_ref().map(|t| format!("{t} (fork)")),
            created_at: at.clone(),
            updated_at: at,
            live: false,
            turn_mark: None,
            owner: owner.to_string(),
            project_id: orig.project_id.clone().filter(|_| orig.owner == owner),
            ..orig.clone()
        };
        self.store
            .create_session(&session_record(&info))
            .await
            .map_err(store_error)?;
        if let Some(p) = &info.project_id {
            let _ = self.store.set_session_project(&info.id, Some(p)).await;
        }
        if info.settings != Default::default() {
            let settings = serde_json::to_value(&info.settings).unwrap_or_default();
            let _ = self.store.put_session_settings(&info.id, &settings).await;
        }
        for e in history {
            let _ = self
                .store
                .append_events(&info.id, &e.turn_id, &[(e.kind.as_str(), e.payload)])
                .await;
        }
        let mut conv = self.session_conversation(&info, workspace, temp);
        conv.started = true;
        conv.leaf = info.transcript_leaf.clone();
        self.insert_slot(info.clone(), cli_model, conv);
        Ok(info)
    }

    /// JSON (`{session, history}`) or Markdown transcript.
    pub async fn export_session(
        self: &Arc<Self>,
        id: &str,
        markdown: bool,
    ) -> Result<String, TurnError> {
        let info = self.session(id).await.ok_or_else(|| not_found(id))?;
        let history = self.history(id).await?;
        if !markdown {
            return Ok(json!({"session": info, "history": history}).to_string());
        }
        let mut md = format!(
            "# {}\n\n- session: `{}`\n- model: `{}`\n- created: {}\n\n",
            info.title.as_deref().unwrap_or("Claude Code session"),
            info.id,
            info.model,
            info.created_at
        );
        for e in &history {
            match e.kind.as_str() {
                "user" => md.push_str(&format!(
                    "## User\n\n{}\n\n",
                    content_text(&e.payload["content"])
                )),
                "assistant" => md.push_str(&format!(
                    "## Assistant\n\n{}\n\n",
                    e.payload["text"].as_str().unwrap_or("")
                )),
                "thinking" => md.push_str(&format!(
                    "> _thinking:_ {}\n\n",
                    e.payload["text"]
                        .as_str()
                        .unwrap_or("")
                        .replace('\n', "\n> ")
                )),
                "tool_call" => md.push_str(&format!(
                    "**Tool call** `{}`\n\n```json\n{}\n```\n\n",
                    e.payload["name"].as_str().unwrap_or(""),
                    serde_json::to_string_pretty(&e.payload["input"]).unwrap_or_default()
                )),
                "tool_result" => md.push_str(&format!(
                    "**Tool result**\n\n```\n{}\n```\n\n",
                    content_text(&e.payload["content"])
                )),
                "error" => md.push_str(&format!(
                    "**Error:** {}\n\n",
                    e.payload["message"].as_str().unwrap_or("")
                )),
                _ => {}
            }
        }
        Ok(md)
    }
}

fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    if !from.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
