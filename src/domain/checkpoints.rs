//! Checkpoints of a native session's workspace: what its files were at a point of its history,
//! kept by the gateway (content-addressed: a manifest per checkpoint, each file's bytes stored
//! once), so that `changes` can show every file the session created, modified or deleted with
//! its unified diff, and `rewind` can put the files back. Checkpoints are taken when the
//! session is created, before each of its turns and after each direct call that can change
//! files; each is named by the last history seq it follows. A checkpoint reads only the files
//! whose size or mtime changed since the last one; a session keeps its first checkpoint and its
//! newest [`KEEP_CHECKPOINTS`], and all of them go with the session. Filesystem work only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::direct_tools::unified_diff;

/// Files larger than this are not kept (listed as skipped; a rewind leaves them alone).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// A checkpoint keeps at most this many bytes of files; the rest are skipped.
pub const MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;
/// At most this many files per checkpoint.
pub const MAX_FILES: usize = 20_000;
/// A session keeps its first checkpoint (the state it began with) and this many of its newest
/// ones; older ones are deleted, with the file copies no kept checkpoint needs.
pub const KEEP_CHECKPOINTS: usize = 50;
/// A file copy this young is never collected: a checkpoint being taken may be about to name it.
const BLOB_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// What the workspace held at one point.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The last history seq before the checkpoint.
    pub seq: u64,
    /// Relative path → sha256 of the bytes.
    pub files: BTreeMap<String, String>,
    /// Files too large (or beyond the caps) to keep.
    pub skipped: Vec<String>,
    /// Relative path → (size, mtime in ns) when hashed: a file whose size and mtime have not
    /// changed since the last checkpoint keeps its hash without being read again.
    #[serde(default)]
    pub stats: BTreeMap<String, (u64, u128)>,
}

/// The checkpoints between the first and the oldest of the newest were deleted (see
/// [`KEEP_CHECKPOINTS`]): the state at a seq in that range is no longer known.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Pruned {
    pub from_seq: u64,
    pub to_seq: u64,
}

fn mtime_ns(path: &Path) -> Option<u128> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(m.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos())
}

/// One file's change between a checkpoint and now.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Change {
    pub path: String,
    /// `created`, `modified` or `deleted`.
    pub status: &'static str,
    /// The unified diff; `None` for binary files.
    pub diff: Option<String>,
    pub binary: bool,
}

/// A session's checkpoints, under `root` (the data dir's `checkpoints/<session>`).
pub struct Checkpoints {
    root: PathBuf,
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The workspace's files: relative path → absolute path, `.git` and symlinks left out.
fn walk(ws: &Path) -> Vec<(String, PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![ws.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let p = e.path();
            if ft.is_dir() {
                if e.file_name() != ".git" {
                    stack.push(p);
                }
            } else if ft.is_file() {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                if let Ok(rel) = p.strip_prefix(ws) {
                    out.push((rel.to_string_lossy().into_owned(), p, size));
                }
            }
        }
    }
    out.sort();
    out
}

impl Checkpoints {
    pub fn new(root: PathBuf) -> Self {
        Checkpoints { root }
    }

    fn blob(&self, hash: &str) -> PathBuf {
        self.root.join("blobs").join(hash)
    }

    /// Record the workspace as of history seq `seq`. Unchanged since the last checkpoint: the
    /// last one stands for this seq too (nothing is written).
    pub fn take(&self, ws: &Path, seq: u64) -> std::io::Result<Manifest> {
        std::fs::create_dir_all(self.root.join("blobs"))?;
        let mut m = Manifest {
            seq,
            ..Default::default()
        };
        let all = self.list();
        let last = all.last();
        let mut total = 0u64;
        for (rel, path, size) in walk(ws) {
            if size > MAX_FILE_BYTES || total + size > MAX_TOTAL_BYTES || m.files.len() >= MAX_FILES
            {
                m.skipped.push(rel);
                continue;
            }
            total += size;
            let stat = mtime_ns(&path).map(|t| (size, t));
            // Unchanged since the last checkpoint (same size and mtime, its copy still kept):
            // not read again. Only what changed costs a read and a hash.
            let known = last.and_then(|l| {
                let hash = l.files.get(&rel)?;
                (stat.is_some() && l.stats.get(&rel) == stat.as_ref() && self.blob(hash).is_file())
                    .then(|| hash.clone())
            });
            let hash = match known {
                Some(h) => h,
                None => {
                    let Ok(bytes) = std::fs::read(&path) else {
                        continue;
                    };
                    let hash = sha(&bytes);
                    let blob = self.blob(&hash);
                    if !blob.exists() {
                        let tmp = blob.with_extension("tmp");
                        std::fs::write(&tmp, &bytes)?;
                        std::fs::rename(&tmp, &blob)?;
                    }
                    hash
                }
            };
            if let Some(st) = stat {
                m.stats.insert(rel.clone(), st);
            }
            m.files.insert(rel, hash);
        }
        if let Some(last) = last {
            if last.files == m.files && last.skipped == m.skipped {
                return Ok(last.clone());
            }
        }
        let file = self.root.join(format!("{seq:012}.json"));
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&m).unwrap_or_default())?;
        std::fs::rename(&tmp, &file)?;
        let mut kept = all;
        kept.push(m.clone());
        self.prune(kept)?;
        Ok(m)
    }

    /// Keep the first checkpoint and the newest [`KEEP_CHECKPOINTS`]; delete the rest and the
    /// file copies no kept checkpoint names.
    fn prune(&self, all: Vec<Manifest>) -> std::io::Result<()> {
        if all.len() <= KEEP_CHECKPOINTS + 1 {
            return Ok(());
        }
        let cut = all.len() - KEEP_CHECKPOINTS;
        let gone = &all[1..cut];
        let mut pruned = self.pruned().unwrap_or(Pruned {
            from_seq: gone[0].seq,
            to_seq: 0,
        });
        pruned.to_seq = all[cut].seq.saturating_sub(1);
        let file = self.root.join("pruned.state");
        std::fs::write(&file, serde_json::to_vec(&pruned).unwrap_or_default())?;
        for m in gone {
            std::fs::remove_file(self.root.join(format!("{:012}.json", m.seq)))?;
        }
        let mut first_and_newest = vec![&all[0]];
        first_and_newest.extend(&all[cut..]);
        let needed: std::collections::HashSet<&String> = first_and_newest
            .iter()
            .flat_map(|m| m.files.values())
            .collect();
        for e in std::fs::read_dir(self.root.join("blobs"))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let young = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() < BLOB_GRACE);
            if !young && !needed.contains(&name) {
                std::fs::remove_file(e.path())?;
            }
        }
        Ok(())
    }

    /// Which seqs lost their checkpoints to pruning, if any did.
    pub fn pruned(&self) -> Option<Pruned> {
        serde_json::from_slice(&std::fs::read(self.root.join("pruned.state")).ok()?).ok()
    }

    /// Delete every checkpoint (the session is gone).
    pub fn remove_all(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every checkpoint, oldest first.
    pub fn list(&self) -> Vec<Manifest> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return vec![];
        };
        let mut out: Vec<Manifest> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect();
        out.sort_by_key(|m| m.seq);
        out
    }

    /// The state at history seq `seq`: the newest checkpoint taken at or before it (the
    /// first one when `seq` lies before every checkpoint).
    pub fn at(&self, seq: u64) -> Option<Manifest> {
        let all = self.list();
        all.iter()
            .rev()
            .find(|m| m.seq <= seq)
            .or_else(|| all.first())
            .cloned()
    }

    fn text_of(&self, hash: &str) -> Option<Vec<u8>> {
        std::fs::read(self.blob(hash)).ok()
    }

    /// Every file created, modified or deleted in `ws` since `base`, by path.
    pub fn changes(&self, ws: &Path, base: &Manifest) -> Vec<Change> {
        let mut now: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (rel, path, size) in walk(ws) {
            if size > MAX_FILE_BYTES || base.skipped.contains(&rel) {
                continue;
            }
            if let Ok(bytes) = std::fs::read(&path) {
                now.insert(rel, bytes);
            }
        }
        let mut out = Vec::new();
        for (rel, bytes) in &now {
            let old = match base.files.get(rel) {
                Some(h) if *h == sha(bytes) => continue,
                Some(h) => Some(self.text_of(h).unwrap_or_default()),
                None => None,
            };
            let status = if old.is_some() { "modified" } else { "created" };
            out.push(change(rel, status, old.as_deref().unwrap_or(b""), bytes));
        }
        for (rel, h) in &base.files {
            if !now.contains_key(rel) {
                let old = self.text_of(h).unwrap_or_default();
                out.push(change(rel, "deleted", &old, b""));
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Put `ws` back as `m` has it: files it lacks are removed, files that differ are written
    /// back (skipped files and `.git` are left alone). Returns the paths it changed.
    pub fn restore(&self, ws: &Path, m: &Manifest) -> std::io::Result<Vec<String>> {
        let mut changed = Vec::new();
        for (rel, path, _) in walk(ws) {
            if !m.files.contains_key(&rel) && !m.skipped.contains(&rel) {
                std::fs::remove_file(&path)?;
                changed.push(rel);
            }
        }
        for (rel, hash) in &m.files {
            let path = ws.join(rel);
            let same = std::fs::read(&path).is_ok_and(|b| sha(&b) == *hash);
            if same {
                continue;
            }
            let bytes = self.text_of(hash).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("the checkpoint's copy of {rel} is missing"),
                )
            })?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // A symlink in the way is replaced, not written through.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                std::fs::remove_file(&path)?;
            }
            std::fs::write(&path, bytes)?;
            changed.push(rel.clone());
        }
        changed.sort();
        changed.dedup();
        Ok(changed)
    }
}

fn change(rel: &str, status: &'static str, old: &[u8], new: &[u8]) -> Change {
    match (std::str::from_utf8(old), std::str::from_utf8(new)) {
        (Ok(o), Ok(n)) if !o.contains('\0') && !n.contains('\0') => Change {
            path: rel.to_string(),
            status,
            diff: Some(unified_diff(rel, o, n)),
            binary: false,
        },
        _ => Change {
            path: rel.to_string(),
            status,
            diff: None,
            binary: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_since_a_checkpoint_and_restore() {
        let ws = tempfile::tempdir().unwrap();
        let store = tempfile::tempdir().unwrap();
        let cp = Checkpoints::new(store.path().join("s"));
        std::fs::write(ws.path().join("keep.txt"), "a\nb\n").unwrap();
        std::fs::write(ws.path().join("gone.txt"), "bye\n").unwrap();
        let first = cp.take(ws.path(), 0).unwrap();
        // Unchanged: no new checkpoint.
        cp.take(ws.path(), 3).unwrap();
        assert_eq!(cp.list().len(), 1);
        std::fs::write(ws.path().join("keep.txt"), "a\nB\n").unwrap();
        std::fs::remove_file(ws.path().join("gone.txt")).unwrap();
        std::fs::create_dir(ws.path().join("new")).unwrap();
        std::fs::write(ws.path().join("new/n.bin"), [0u8, 1, 2]).unwrap();
        cp.take(ws.path(), 7).unwrap();
        let changes = cp.changes(ws.path(), &first);
        let summary: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.status))
            .collect();
        assert_eq!(
            summary,
            [
                ("gone.txt", "deleted"),
                ("keep.txt", "modified"),
                ("new/n.bin", "created")
            ]
        );
        assert!(changes[1].diff.as_ref().unwrap().contains("-b\n+B"));
        assert!(changes[2].binary);
        assert_eq!(cp.at(5).unwrap().seq, 0);
        assert_eq!(cp.at(9).unwrap().seq, 7);
        let changed = cp.restore(ws.path(), &cp.at(2).unwrap()).unwrap();
        assert_eq!(changed, ["gone.txt", "keep.txt", "new/n.bin"]);
        assert_eq!(
            std::fs::read_to_string(ws.path().join("keep.txt")).unwrap(),
            "a\nb\n"
        );
        assert!(!ws.path().join("new/n.bin").exists());
        assert!(cp.changes(ws.path(), &first).is_empty());
    }

    #[test]
    fn old_checkpoints_are_pruned_keeping_the_first_and_unchanged_files_are_not_read() {
        let ws = tempfile::tempdir().unwrap();
        let store = tempfile::tempdir().unwrap();
        let cp = Checkpoints::new(store.path().join("s"));
        std::fs::write(ws.path().join("big.txt"), "unchanged").unwrap();
        for i in 0..(KEEP_CHECKPOINTS as u64 + 10) {
            std::fs::write(ws.path().join("n.txt"), format!("{i}")).unwrap();
            cp.take(ws.path(), i * 2).unwrap();
        }
        let all = cp.list();
        assert_eq!(all.len(), KEEP_CHECKPOINTS + 1);
        assert_eq!(all[0].seq, 0, "the first checkpoint stays");
        assert_eq!(all[1].seq, 10 * 2);
        assert_eq!(
            cp.pruned(),
            Some(Pruned {
                from_seq: 2,
                to_seq: 19
            })
        );
        // A file whose size and mtime hold keeps its hash from the last checkpoint: it is not
        // read again (shown by changing its bytes behind the same size and mtime).
        let big = ws.path().join("big.txt");
        let before = cp.list().last().unwrap().files["big.txt"].clone();
        let mtime = std::fs::metadata(&big).unwrap().modified().unwrap();
        std::fs::write(&big, "UNCHANGED").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&big)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::write(ws.path().join("n.txt"), "last").unwrap();
        let m = cp.take(ws.path(), 1000).unwrap();
        assert_eq!(m.files.get("big.txt"), Some(&before));
        cp.remove_all().unwrap();
        assert!(cp.list().is_empty());
        assert!(!store.path().join("s").exists());
    }
}
