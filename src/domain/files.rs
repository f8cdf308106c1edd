//! A native session's workspace files over the API: list, download, upload (with a size limit,
//! never overwriting unless asked) and delete, every path resolved through the one confinement
//! check. Plain filesystem work on a [`Confinement`]; knows nothing of HTTP or sessions.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::confine::{ConfineError, Confinement};
use super::direct_tools::shown;
use super::session_table::millis_to_rfc3339;

/// Entries a recursive listing returns at most.
pub const MAX_LIST: usize = 10_000;

/// One entry of a listing.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FileEntry {
    /// Relative to the workspace.
    pub path: String,
    pub name: String,
    /// `file`, `dir` or `symlink`.
    pub kind: &'static str,
    pub size: u64,
    pub mtime: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Confined(#[from] ConfineError),
    #[error("{0}")]
    NotFound(String),
    /// A file exists where an upload would go, and `overwrite` was not given.
    #[error("{0}")]
    Exists(String),
    #[error("{message}")]
    Invalid { param: String, message: String },
    #[error("{0}")]
    TooLarge(String),
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
}

fn entry(conf: &Confinement, path: &Path) -> Option<FileEntry> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let kind = if meta.file_type().is_symlink() {
        "symlink"
    } else if meta.is_dir() {
        "dir"
    } else {
        "file"
    };
    let mtime = meta.modified().ok().map(|t| {
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        millis_to_rfc3339(ms)
    });
    Some(FileEntry {
        path: shown(conf, path),
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        kind,
        size: if kind == "file" { meta.len() } else { 0 },
        mtime,
    })
}

/// The entries of a directory of the workspace (the workspace itself by default), sorted by
/// path; `recursive` walks into subdirectories (never through a symlink). `truncated` when the
/// listing hit [`MAX_LIST`].
pub fn list(
    conf: &Confinement,
    path: Option<&str>,
    recursive: bool,
) -> Result<(Vec<FileEntry>, bool), FileError> {
    let dir = match path.filter(|p| !p.is_empty()) {
        Some(p) => conf.resolve(p)?,
        None => conf.workspace().to_path_buf(),
    };
    if !dir.is_dir() {
        return Err(FileError::NotFound(format!(
            "No directory '{}' in the workspace",
            path.unwrap_or("")
        )));
    }
    let mut out = Vec::new();
    let mut stack = vec![dir];
    let mut truncated = false;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            if out.len() >= MAX_LIST {
                truncated = true;
                break;
            }
            let p = e.path();
            if let Some(en) = entry(conf, &p) {
                if recursive && en.kind == "dir" {
                    stack.push(p);
                }
                out.push(en);
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((out, truncated))
}

/// A file's bytes and its content type.
pub fn read(conf: &Confinement, raw: &str) -> Result<(Vec<u8>, String), FileError> {
    let path = conf.resolve(raw)?;
    if path.is_dir() {
        return Err(FileError::Invalid {
            param: "path".into(),
            message: format!("'{raw}' is a directory; list it with GET .../files?path={raw}"),
        });
    }
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            FileError::NotFound(format!("No file '{raw}' in the workspace"))
        }
        _ => FileError::Io(e),
    })?;
    let mime = mime_guess::from_path(&path)
        .first_raw()
        .map(str::to_string)
        .unwrap_or_else(|| {
            if std::str::from_utf8(&bytes).is_ok() {
                "text/plain; charset=utf-8".into()
            } else {
                "application/octet-stream".into()
            }
        });
    Ok((bytes, mime))
}

/// Remove a file, or a directory with `recursive`. The workspace itself stays.
pub fn delete(conf: &Confinement, raw: &str, recursive: bool) -> Result<(), FileError> {
    let path = conf.resolve(raw)?;
    if path == conf.workspace() {
        return Err(FileError::Invalid {
            param: "path".into(),
            message: "the workspace itself cannot be deleted".into(),
        });
    }
    let meta = std::fs::symlink_metadata(&path)
        .map_err(|_| FileError::NotFound(format!("No file '{raw}' in the workspace")))?;
    if meta.is_dir() {
        if !recursive {
            return Err(FileError::Invalid {
                param: "recursive".into(),
                message: format!("'{raw}' is a directory; pass recursive=true to delete it"),
            });
        }
        std::fs::remove_dir_all(&path)?;
    } else {
        std::fs::remove_file(&path)?;
    }
    Ok(())
}

/// One file of an upload.
pub struct Upload {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Write every file, or none: each path is checked, each size is within `max_bytes`, and no
/// file exists unless `overwrite`, before the first is written.
pub fn upload(
    conf: &Confinement,
    files: Vec<Upload>,
    overwrite: bool,
    max_bytes: usize,
) -> Result<Vec<FileEntry>, FileError> {
    if files.is_empty() {
        return Err(FileError::Invalid {
            param: "files".into(),
            message: "the upload holds no file".into(),
        });
    }
    let mut targets: Vec<(PathBuf, Vec<u8>)> = Vec::with_capacity(files.len());
    for f in files {
        if f.bytes.len() > max_bytes {
            return Err(FileError::TooLarge(format!(
                "'{}' is {} bytes, over the upload limit of {max_bytes} bytes (max_upload_bytes)",
                f.path,
                f.bytes.len()
            )));
        }
        let path = conf.resolve(&f.path)?;
        if path == conf.workspace() || path.is_dir() {
            return Err(FileError::Invalid {
                param: "path".into(),
                message: format!("'{}' is a directory", f.path),
            });
        }
        if !overwrite && std::fs::symlink_metadata(&path).is_ok() {
            return Err(FileError::Exists(format!(
                "'{}' exists; pass overwrite: true to replace it",
                f.path
            )));
        }
        targets.push((path, f.bytes));
    }
    let mut out = Vec::with_capacity(targets.len());
    for (path, bytes) in targets {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, bytes)?;
        out.extend(entry(conf, &path));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_list_read_delete() {
        let d = tempfile::tempdir().unwrap();
        let conf = Confinement::new(d.path(), &[]).unwrap();
        let up = |p: &str, b: &[u8]| Upload {
            path: p.into(),
            bytes: b.to_vec(),
        };
        let written = upload(
            &conf,
            vec![up("a/b.txt", b"hi"), up("c.json", b"{}")],
            false,
            10,
        )
        .unwrap();
        assert_eq!(written.len(), 2);
        assert!(matches!(
            upload(&conf, vec![up("c.json", b"{}")], false, 10),
            Err(FileError::Exists(_))
        ));
        assert!(matches!(
            upload(&conf, vec![up("big", b"0123456789x")], true, 10),
            Err(FileError::TooLarge(_))
        ));
        assert!(matches!(
            upload(&conf, vec![up("../x", b"")], true, 10),
            Err(FileError::Confined(_))
        ));
        let (all, truncated) = list(&conf, None, true).unwrap();
        let paths: Vec<&str> = all.iter().map(|e| e.path.as_str()).collect();
        assert_eq!((paths, truncated), (vec!["a", "a/b.txt", "c.json"], false));
        let (top, _) = list(&conf, None, false).unwrap();
        assert_eq!(top.len(), 2);
        let (bytes, mime) = read(&conf, "c.json").unwrap();
        assert_eq!((bytes, mime.as_str()), (b"{}".to_vec(), "application/json"));
        assert!(matches!(
            delete(&conf, "a", false),
            Err(FileError::Invalid { .. })
        ));
        delete(&conf, "a", true).unwrap();
        assert!(matches!(
            read(&conf, "a/b.txt"),
            Err(FileError::NotFound(_))
        ));
    }
}
