//! A native session's workspace as the API sees it: its files (`files`), its memory
//! (`memory`), and the check that a named workspace lies inside the allowed roots. Resolves the
//! session, confines every path, and maps failures to [`WorkspaceError`]. Knows no HTTP.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

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
#[derive(Debug, Clone, Serialize)]
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
        let history = self
            .store
            .list_events(id, 0, store::MAX_EVENTS_PER_CALL)
            .await
            .unwrap_or_default();
        memory::deliver(prompt, text.as_deref(), &history)
    }
}
