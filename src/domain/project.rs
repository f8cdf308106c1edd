//! Moving a native session to another workspace (`PUT /api/sessions/{id}/project/workspace`):
//! the new directory is checked like a named workspace at creation (inside `workspace_roots`,
//! and by the one confinement check), the idle process is stopped, and the CLI's transcript is
//! copied to the new directory's project dir (the CLI finds a transcript by its cwd), so the
//! next turn resumes the whole conversation in a process launched there. Knows no HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::conversations::{Conversations, TurnError};
use super::session_table::{now, view};
use super::sessions::SessionInfo;
use crate::claude::transcript;

impl Conversations {
    /// Move an idle session to `dir` (409 while a turn runs). The old workspace is left as it
    /// is: a named one was never ours, and a temporary one, held by no session any more, is
    /// removed by the sweep when the gateway next starts (`sweep_workspaces`).
    pub async fn move_workspace(
        self: &Arc<Self>,
        id: &str,
        dir: &Path,
    ) -> Result<SessionInfo, TurnError> {
        let dir = self.check_workspace(dir).map_err(|e| match e {
            TurnError::Invalid { message, .. } => TurnError::invalid("path", message),
            other => other,
        })?;
        // The same check as the model's tool calls: never the data dir, the CLI's config dir
        // or another session's workspace.
        self.confinement(&dir.display().to_string())?;
        self.session(id).await.ok_or_else(|| not_found(id))?;
        let mut conv = {
            let mut sessions = self.sessions.lock();
            let slot = sessions.get_mut(id).ok_or_else(|| not_found(id))?;
            slot.conv.take().ok_or_else(|| {
                TurnError::Busy(format!(
                    "Session {id} is busy with a turn; move it when the turn has ended"
                ))
            })?
        };
        let moved = self.carry_transcript(
            &conv.workspace,
            &dir,
            &conv.cli_session_id,
            conv.leaf.as_deref(),
        );
        if let Err(e) = &moved {
            // The next turn writes the transcript again from the session's history.
            tracing::warn!(session = %id, error = %e, "could not copy a transcript to the new workspace");
        }
        if let Some(p) = conv.process.take() {
            self.pool.retire(&p);
        }
        if let Some(old) = conv.tool_server.take() {
            old.cancel_all();
        }
        conv.process_launch.clear();
        conv.workspace = dir.clone();
        conv.workspace_is_temp = false;
        let info = {
            let mut sessions = self.sessions.lock();
            let Some(slot) = sessions.get_mut(id) else {
                drop(sessions);
                self.forget(conv);
                return Err(not_found(id));
            };
            slot.info.workspace = dir.display().to_string();
            slot.info.workspace_is_temp = false;
            slot.info.updated_at = now();
            slot.conv = Some(conv);
            view(slot)
        };
        self.save_session(&info).await?;
        // Changes and rewind from here on are the new workspace's.
        self.checkpoint(id, &info.workspace).await;
        Ok(info)
    }

    /// Copy a CLI session's transcript from `from`'s project dir to `to`'s, as of its last
    /// clean turn. Nothing to copy (no turn yet) is not an error.
    fn carry_transcript(
        &self,
        from: &Path,
        to: &Path,
        session_id: &str,
        leaf: Option<&str>,
    ) -> std::io::Result<Option<PathBuf>> {
        let config = self.cfg.claude_config_dir();
        let source = transcript::session_file(&config, from, session_id);
        if !source.is_file() || from == to {
            return Ok(None);
        }
        transcript::copy_as(&source, &config, to, session_id, leaf, None)
    }
}

fn not_found(id: &str) -> TurnError {
    TurnError::NotFound(format!("No session with the id '{id}'"))
}
