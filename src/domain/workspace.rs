//! A native session's workspace as the API sees it: its files (`files`), its memory
//! (`memory`), its checkpoints, changes and rewind (`checkpoints`), and the check that a named
//! workspace lies inside the allowed roots. Resolves the
//! session, confines every path, and maps failures to [`WorkspaceError`]. Knows no HTTP.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::checkpoints::{Change, Checkpoints};
use super::confine::Confinement;
use super::conversations::{Conversations, TurnError};
use super::files::{self, FileEntry, FileError, Upload};
use super::memory;
use super::session_table::millis_to_rfc3339;
use crate::store;

/// Why a workspace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(transparent)]
    Session(#[from] TurnError),
    #[error(transparent)]
    File(#[from] FileError),
}

/// The memory file as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemoryView {
    pub path: &'static str,
    pub exists: bool,
    pub content: String,
    pub size: u64,
    pub updated_at: Option<String>,
}

impl Conversations {
    /// A named workspace must be an existing absolute directory inside the allowed roots
    /// (`workspace_roots`); its canonical form is what the session keeps.
    pub(crate) fn check_workspace(&self, dir: &Path) -> Result<std::path::PathBuf, TurnError> {
        if !dir.is_absolute() || !dir.is_dir() {
            return Err(TurnError::invalid(
                "workspace",
                "workspace must be an existing absolute directory",
            ));
        }
        if !self.inside_workspace_roots(dir) {
            return Err(TurnError::Forbidden(format!(
                "The workspace '{}' is outside this gateway's workspace roots (workspace_roots)",
                dir.display()
            )));
        }
        dir.canonicalize()
            .map_err(|e| TurnError::invalid("workspace", format!("workspace: {e}")))
    }

    async fn session_confinement(self: &Arc<Self>, id: &str) -> Result<Confinement, TurnError> {
        let info = self
            .session(id)
            .await
            .ok_or_else(|| TurnError::NotFound(format!("No session with the id '{id}'")))?;
        self.confinement(&info.workspace)
    }

    pub async fn list_files(
        self: &Arc<Self>,
        id: &str,
        path: Option<&str>,
        recursive: bool,
    ) -> Result<(Vec<FileEntry>, bool), WorkspaceError> {
        let conf = self.session_confinement(id).await?;
        Ok(files::list(&conf, path, recursive)?)
    }

    pub async fn read_file(
        self: &Arc<Self>,
        id: &str,
        path: &str,
    ) -> Result<(Vec<u8>, String), WorkspaceError> {
        let conf = self.session_confinement(id).await?;
        Ok(files::read(&conf, path)?)
    }

    pub async fn delete_file(
        self: &Arc<Self>,
        id: &str,
        path: &str,
        recursive: bool,
    ) -> Result<(), WorkspaceError> {
        let conf = self.session_confinement(id).await?;
        Ok(files::delete(&conf, path, recursive)?)
    }

    pub async fn upload_files(
        self: &Arc<Self>,
        id: &str,
        uploads: Vec<Upload>,
        overwrite: bool,
    ) -> Result<Vec<FileEntry>, WorkspaceError> {
        let conf = self.session_confinement(id).await?;
        Ok(files::upload(
            &conf,
            uploads,
            overwrite,
            self.cfg.max_upload_bytes,
        )?)
    }

    pub async fn memory(self: &Arc<Self>, id: &str) -> Result<MemoryView, WorkspaceError> {
        let conf = self.session_confinement(id).await?;
        let path = conf.resolve(memory::FILE).map_err(FileError::from)?;
        let meta = std::fs::metadata(&path).ok();
        let content = std::fs::read_to_string(&path).unwrap_or_default();
        Ok(MemoryView {
            path: memory::FILE,
            exists: meta.is_some(),
            size: meta.as_ref().map(|m| m.len()).unwrap_or(0),
            updated_at: meta.and_then(|m| m.modified().ok()).map(|t| {
                millis_to_rfc3339(
                    t.duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0),
                )
            }),
            content,
        })
    }

    /// Replace the memory, or (`append`) add to it on a line of its own.
    pub async fn set_memory(
        self: &Arc<Self>,
        id: &str,
        content: &str,
        append: bool,
    ) -> Result<MemoryView, WorkspaceError> {
        let conf = self.session_confinement(id).await?;
        let path = conf.resolve(memory::FILE).map_err(FileError::from)?;
        let mut text = if append {
            std::fs::read_to_string(&path).unwrap_or_default()
        } else {
            String::new()
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(content);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        std::fs::write(&path, text).map_err(FileError::from)?;
        self.memory(id).await
    }

    /// The prompt of a session's next turn, with the workspace's memory in front when the
    /// conversation has not received its current version (see `memory`).
    pub(crate) async fn with_memory(self: &Arc<Self>, id: &str, prompt: Vec<Value>) -> Vec<Value> {
        let Some(info) = self.session(id).await else {
            return prompt;
        };
        let file = Path::new(&info.workspace).join(memory::FILE);
        if !file.is_file() {
            return prompt;
        }
        // Read only through the check: a CLAUDE.md linking outside is not delivered.
        let text = self
            .confinement(&info.workspace)
            .ok()
            .and_then(|c| c.resolve(memory::FILE).ok())
            .and_then(|p| std::fs::read_to_string(p).ok());
        // The last delivery, however far back in the history it is.
        let last = self
            .store
            .last_event_containing(id, "user", memory::MARK)
            .await
            .ok()
            .flatten();
        memory::deliver(prompt, text.as_deref(), last.as_slice())
    }
}

/// What a rewind did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rewound {
    /// The history seq whose files were restored (the checkpoint at or before `to_seq`).
    pub restored_seq: u64,
    /// Files written back or removed.
    pub files: Vec<String>,
    /// With `conversation`: the new session that continues from `to_seq`.
    pub session: Option<super::sessions::SessionInfo>,
}

fn io_error(e: std::io::Error) -> WorkspaceError {
    WorkspaceError::File(FileError::Io(e))
}

impl Conversations {
    fn checkpoints(&self, id: &str) -> Checkpoints {
        Checkpoints::new(self.cfg.data_dir.join("checkpoints").join(id))
    }

    /// Checkpoint a session's workspace as of its history now. Best effort: a failure is
    /// logged, never fails the turn or call that asked.
    pub(crate) async fn checkpoint(self: &Arc<Self>, id: &str, workspace: &str) {
        let seq = match self.store.append_events(id, "", &[]).await {
            Ok(seq) => seq.max(0) as u64,
            Err(_) => return,
        };
        let (cp, ws) = (self.checkpoints(id), std::path::PathBuf::from(workspace));
        let taken = tokio::task::spawn_blocking(move || cp.take(&ws, seq)).await;
        if let Ok(Err(e)) = taken {
            tracing::warn!(session = %id, error = %e, "could not checkpoint a workspace");
        }
    }

    /// Delete a deleted session's checkpoints. Best effort, logged.
    pub(crate) async fn drop_checkpoints(&self, id: &str) {
        let cp = self.checkpoints(id);
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || cp.remove_all()).await {
            tracing::warn!(session = %id, error = %e, "could not delete a session's checkpoints");
        }
    }

    /// Every file the session created, modified or deleted since it began (or since history
    /// seq `since`), with its unified diff.
    pub async fn changes(
        self: &Arc<Self>,
        id: &str,
        since: Option<u64>,
    ) -> Result<(Vec<Change>, u64), WorkspaceError> {
        let conf = self.session_confinement(id).await?;
        let cp = self.checkpoints(id);
        let ws = conf.workspace().to_path_buf();
        let since = since.unwrap_or(0);
        forgotten(&cp, since, "since")?;
        let out = tokio::task::spawn_blocking(move || {
            let base = cp.at(since).unwrap_or_default();
            (cp.changes(&ws, &base), base.seq)
        })
        .await
        .map_err(|e| io_error(std::io::Error::other(e)))?;
        Ok(out)
    }

    /// Put the workspace's files back as they were at history seq `to_seq`; with
    /// `conversation`, also continue the conversation from there in a new session (a fork
    /// holding the history up to `to_seq`). The state before the rewind is checkpointed first,
    /// so a rewind can itself be rewound. 409 while a turn runs.
    pub async fn rewind(
        self: &Arc<Self>,
        id: &str,
        to_seq: u64,
        conversation: bool,
    ) -> Result<Rewound, WorkspaceError> {
        let info = self
            .session(id)
            .await
            .ok_or_else(|| TurnError::NotFound(format!("No session with the id '{id}'")))?;
        if info.status == "running" {
            return Err(TurnError::Busy(format!(
                "Session {id} is busy with a turn; interrupt it or wait before rewinding"
            ))
            .into());
        }
        let last = self
            .store
            .append_events(id, "", &[])
            .await
            .map_err(|e| io_error(std::io::Error::other(e.to_string())))?
            .max(0) as u64;
        if to_seq > last {
            return Err(TurnError::invalid(
                "to_seq",
                format!("to_seq {to_seq} is past the session's last history seq {last}"),
            )
            .into());
        }
        forgotten(&self.checkpoints(id), to_seq, "to_seq")?;
        let conf = self.confinement(&info.workspace)?;
        self.checkpoint(id, &info.workspace).await;
        let cp = self.checkpoints(id);
        let ws = conf.workspace().to_path_buf();
        let (m, files) = tokio::task::spawn_blocking(move || {
            let m = cp.at(to_seq).unwrap_or_default();
            cp.restore(&ws, &m).map(|f| (m, f))
        })
        .await
        .map_err(|e| io_error(std::io::Error::other(e)))?
        .map_err(io_error)?;
        let session = if conversation {
            Some(self.fork_at(&info, to_seq).await?)
        } else {
            None
        };
        Ok(Rewound {
            restored_seq: m.seq,
            files,
            session,
        })
    }

    /// A new session whose history is this one's up to `to_seq`; its CLI transcript is
    /// written from that history when its first turn starts. A temporary workspace is copied
    /// (as restored); a named one is shared, as a fork shares it.
    async fn fork_at(
        self: &Arc<Self>,
        orig: &super::sessions::SessionInfo,
        to_seq: u64,
    ) -> Result<super::sessions::SessionInfo, WorkspaceError> {
        let store_err = |e: store::StoreError| io_error(std::io::Error::other(e.to_string()));
        let history: Vec<store::StoredEvent> = self
            .store
            .list_events(&orig.id, 0, store::MAX_EVENTS_PER_CALL)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|e| e.seq as u64 <= to_seq)
            .collect();
        let new_id = uuid::Uuid::new_v4().to_string();
        let orig_ws = std::path::PathBuf::from(&orig.workspace);
        let (workspace, temp) = if orig.workspace_is_temp {
            let ws = self.cfg.workspaces_dir().join(&new_id);
            let (from, to) = (self.checkpoints(&orig.id), ws.clone());
            let copy = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&to)?;
                let m = from.at(to_seq).unwrap_or_default();
                from.restore(&to, &m)
            });
            copy.await
                .map_err(|e| io_error(std::io::Error::other(e)))?
                .map_err(io_error)?;
            (ws, true)
        } else {
            (orig_ws, false)
        };
        let at = super::session_table::now();
        let info = super::sessions::SessionInfo {
            id: new_id,
            cli_session_id: uuid::Uuid::new_v4().to_string(),
            workspace: workspace.display().to_string(),
            workspace_is_temp: temp,
            status: "idle".into(),
            forked_from: Some(orig.id.clone()),
            title: orig
                .title
                .as_ref()
                .map(|t| format!("{t} (from seq {to_seq})")),
            created_at: at.clone(),
            updated_at: at,
            live: false,
            transcript_leaf: None,
            turn_mark: None,
            ..orig.clone()
        };
        self.store
            .create_session(&super::session_table::session_record(&info))
            .await
            .map_err(store_err)?;
        for e in &history {
            self.store
                .append_events(
                    &info.id,
                    &e.turn_id,
                    &[(e.kind.as_str(), e.payload.clone())],
                )
                .await
                .map_err(store_err)?;
        }
        self.checkpoint(&info.id, &info.workspace).await;
        let mut conv = self.session_conversation(&info, workspace, temp);
        // Its transcript does not exist yet: the first turn writes it from the history.
        conv.started = history.iter().any(|e| e.kind == "result");
        let cli_model = self
            .models
            .resolve(&info.model)
            .map(|m| m.cli_model.clone())
            .unwrap_or_default();
        self.insert_slot(info.clone(), cli_model, conv);
        Ok(info)
    }
}

/// A 400 naming `param` when the checkpoints of `seq` were pruned (see `KEEP_CHECKPOINTS`):
/// the state then is no longer known, and guessing it would restore the wrong files.
fn forgotten(cp: &Checkpoints, seq: u64, param: &str) -> Result<(), TurnError> {
    match cp.pruned() {
        Some(p) if (p.from_seq..=p.to_seq).contains(&seq) => Err(TurnError::invalid(
            param,
            format!(
                "the workspace's state at seq {seq} is no longer kept (checkpoints of seqs {} to {} \
                 were deleted; a session keeps its first and its newest {})",
                p.from_seq,
                p.to_seq,
                super::checkpoints::KEEP_CHECKPOINTS
            ),
        )),
        _ => Ok(()),
    }
}
