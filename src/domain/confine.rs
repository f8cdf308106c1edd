//! Path confinement: the one check that every path a model's built-in tool or a native API
//! client names is inside its session's workspace and outside the gateway's own directories.
//! Both the PreToolUse hook and the native API's direct tool calls use it. Pure filesystem
//! lookups (canonicalization, symlinks); it neither runs tools nor knows who asked.

use std::io;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use crate::claude::control::ToolGuard;

/// How many symlinks one resolution follows by hand (dangling ones) before giving up,
/// the same bound Linux puts on a path lookup.
const MAX_SYMLINKS: u32 = 40;

/// Why a path was refused. Display names the path as it was given, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("path '{path}' is outside the session's workspace")]
    Outside { path: String },
    #[error("path '{path}' is inside a directory the gateway keeps to itself")]
    Forbidden { path: String },
    #[error("path '{path}' is not valid: {reason}")]
    Invalid { path: String, reason: &'static str },
    #[error("path '{path}' could not be checked: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl ConfineError {
    /// The path as it was given (the client's or the model's words).
    pub fn path(&self) -> &str {
        match self {
            Self::Outside { path }
            | Self::Forbidden { path }
            | Self::Invalid { path, .. }
            | Self::Io { path, .. } => path,
        }
    }
}

/// A session's workspace and the directories it may never reach, all canonical.
#[derive(Debug, Clone)]
pub struct Confinement {
    workspace: PathBuf,
    forbidden: Vec<PathBuf>,
    /// What `~` means to the CLI (its `HOME`); `None`: a `~` path is refused.
    home: Option<PathBuf>,
}

impl Confinement {
    /// `workspace` must exist; `forbidden`: data dir, CLI config dir, other sessions'
    /// workspaces — always outside even when the workspace contains them (a forbidden dir
    /// that is the workspace itself or one of its ancestors does not count).
    pub fn new(workspace: &Path, forbidden: &[PathBuf]) -> Result<Self, ConfineError> {
        let workspace = std::fs::canonicalize(workspace).map_err(|source| ConfineError::Io {
            path: workspace.display().to_string(),
            source,
        })?;
        let mut dirs = Vec::with_capacity(forbidden.len());
        for dir in forbidden {
            let shown = dir.display().to_string();
            if !dir.is_absolute() {
                return Err(ConfineError::Invalid {
                    path: shown,
                    reason: "a forbidden directory must be absolute",
                });
            }
            // A forbidden dir that does not exist yet is still forbidden where it will be.
            let canonical = canonical_of(dir, &shown, 0)?;
            if workspace.starts_with(&canonical) || dirs.contains(&canonical) {
                continue;
            }
            dirs.push(canonical);
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute());
        Ok(Self {
            workspace,
            forbidden: dirs,
            home,
        })
    }

    /// What `~` stands for in a path (the CLI's `HOME`, which differs from the gateway's).
    pub fn with_home(mut self, home: Option<PathBuf>) -> Self {
        self.home = home.filter(|h| h.is_absolute());
        self
    }

    /// The canonical workspace.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// The canonical directories that are always outside.
    pub fn forbidden(&self) -> &[PathBuf] {
        &self.forbidden
    }

    /// Resolve a client/model path (relative → against the workspace; `~`, `..`, absolute,
    /// symlinks — canonicalize the longest existing ancestor, then append the rest, reject
    /// `..` after that) and check it is inside the workspace and outside every forbidden dir.
    pub fn resolve(&self, raw: &str) -> Result<PathBuf, ConfineError> {
        let invalid = |reason| ConfineError::Invalid {
            path: raw.to_string(),
            reason,
        };
        if raw.is_empty() {
            return Err(invalid("the path is empty"));
        }
        if raw.contains('\0') {
            return Err(invalid("the path contains a NUL byte"));
        }
        let given = if raw == "~" || raw.starts_with("~/") {
            let home = self
                .home
                .as_ref()
                .ok_or_else(|| invalid("'~' has no meaning here"))?;
            home.join(raw.trim_start_matches('~').trim_start_matches('/'))
        } else if raw.starts_with('~') {
            return Err(invalid(
                "another user's home directory ('~user') is not allowed",
            ));
        } else {
            self.workspace.join(raw)
        };
        let resolved = canonical_of(&given, raw, 0)?;
        if !resolved.starts_with(&self.workspace) {
            return Err(ConfineError::Outside {
                path: raw.to_string(),
            });
        }
        if self.forbidden.iter().any(|dir| resolved.starts_with(dir)) {
            return Err(ConfineError::Forbidden {
                path: raw.to_string(),
            });
        }
        Ok(resolved)
    }

    /// Whether `raw` resolves inside: [`Confinement::resolve`] without the path.
    pub fn check(&self, raw: &str) -> Result<(), ConfineError> {
        self.resolve(raw).map(|_| ())
    }
}

/// The canonical form of an absolute path whose tail may not exist yet: the longest existing
/// ancestor canonicalized (the kernel follows its symlinks and `..`), then the rest appended.
/// A dangling symlink in the rest is followed by hand (a write through it lands at its target);
/// a `..` in the rest is refused, since nothing there exists to say where it leads.
fn canonical_of(path: &Path, raw: &str, depth: u32) -> Result<PathBuf, ConfineError> {
    if depth > MAX_SYMLINKS {
        return Err(ConfineError::Invalid {
            path: raw.to_string(),
            reason: "too many levels of symbolic links",
        });
    }
    let io_err = |source| ConfineError::Io {
        path: raw.to_string(),
        source,
    };
    let mut base = None;
    for ancestor in path.ancestors() {
        match std::fs::canonicalize(ancestor) {
            Ok(c) => {
                base = Some((c, ancestor));
                break;
            }
            Err(e) if missing(&e) => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
    let Some((mut out, ancestor)) = base else {
        return Err(ConfineError::Invalid {
            path: raw.to_string(),
            reason: "no part of the path exists",
        });
    };
    let rest = path.strip_prefix(ancestor).unwrap_or(Path::new(""));
    let mut parts = rest.components();
    while let Some(part) = parts.next() {
        match part {
            Component::CurDir => continue,
            Component::Normal(name) => {
                let next = out.join(name);
                match std::fs::symlink_metadata(&next) {
                    // A symlink whose target does not exist: go where it points.
                    Ok(meta) if meta.file_type().is_symlink() => {
                        let target = std::fs::read_link(&next).map_err(io_err)?;
                        let mut onward = if target.is_absolute() {
                            target
                        } else {
                            out.join(target)
                        };
                        onward.extend(parts);
                        return canonical_of(&onward, raw, depth + 1);
                    }
                    Ok(_) => {
                        // It exists but did not canonicalize (e.g. a file used as a
                        // directory): nothing inside it can exist either.
                        out = next;
                    }
                    Err(e) if missing(&e) => out = next,
                    Err(e) => return Err(io_err(e)),
                }
            }
            Component::ParentDir => {
                return Err(ConfineError::Invalid {
                    path: raw.to_string(),
                    reason: "'..' after a part of the path that does not exist",
                })
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ConfineError::Invalid {
                    path: raw.to_string(),
                    reason: "the path is malformed",
                })
            }
        }
    }
    Ok(out)
}

fn missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// The path-bearing inputs of a built-in tool: `file_path` of Read/Write/Edit/MultiEdit,
/// `notebook_path` (and `file_path`) of NotebookEdit, `path` of Glob/Grep/LS. For Glob the
/// pattern too, joined to its `path`: an absolute pattern or one with `..` reaches out as
/// surely as a path does. A missing or empty `path` means the CLI's working directory, the
/// workspace, so it is not listed.
pub fn tool_paths(tool: &str, input: &Value) -> Vec<String> {
    let field = |name: &str| input.get(name).and_then(Value::as_str);
    let mut out: Vec<String> = Vec::new();
    let mut add = |p: Option<&str>| out.extend(p.map(str::to_string));
    match tool {
        "Read" | "Write" | "Edit" | "MultiEdit" => add(field("file_path")),
        "NotebookEdit" | "NotebookRead" => {
            add(field("notebook_path"));
            add(field("file_path"));
        }
        "Grep" | "LS" => add(field("path").filter(|p| !p.is_empty())),
        "Glob" => {
            let base = field("path").filter(|p| !p.is_empty());
            add(base);
            if let Some(pattern) = field("pattern").and_then(glob_reach) {
                let reach = match base {
                    Some(b) if !pattern.starts_with('/') && !pattern.starts_with('~') => {
                        format!("{}/{}", b.trim_end_matches('/'), pattern)
                    }
                    _ => pattern,
                };
                add(Some(&reach));
            }
        }
        _ => {}
    }
    out
}

/// The PreToolUse guard of one process: its session's confinement applied to every path a tool
/// call names. When the confinement could not be set up, any call that names a path is refused.
pub struct WorkspaceGuard {
    confinement: Result<Confinement, String>,
}

impl WorkspaceGuard {
    pub fn new(confinement: Result<Confinement, ConfineError>) -> Self {
        Self {
            confinement: confinement.map_err(|e| e.to_string()),
        }
    }
}

impl ToolGuard for WorkspaceGuard {
    fn check(&self, tool: &str, input: &Value) -> Result<(), String> {
        let paths = tool_paths(tool, input);
        if paths.is_empty() {
            return Ok(());
        }
        let confinement = self
            .confinement
            .as_ref()
            .map_err(|e| format!("the session's workspace could not be checked ({e})"))?;
        for path in &paths {
            confinement.resolve(path).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The part of a glob pattern that can lead outside its base: `None` for a plain relative
/// pattern without `..`. Brace alternatives holding `..` become a literal `..` component so the
/// check refuses them.
fn glob_reach(pattern: &str) -> Option<String> {
    let absolute = pattern.starts_with('/') || pattern.starts_with('~');
    let climbs = pattern
        .split('/')
        .any(|part| part == ".." || (part.contains("..") && part.contains('{')));
    if !absolute && !climbs {
        return None;
    }
    let parts: Vec<&str> = pattern
        .split('/')
        .map(|part| {
            if part.contains("..") && part.contains('{') {
                ".."
            } else {
                part
            }
        })
        .collect();
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::symlink;

    struct Fixture {
        _root: tempfile::TempDir,
        root: PathBuf,
        ws: PathBuf,
    }

    /// root/{ws/{a.txt,sub/b.txt,data/db}, outside/secret.txt}
    fn fixture() -> Fixture {
        let root = tempfile::tempdir().expect("tempdir");
        let base = std::fs::canonicalize(root.path()).expect("canonical");
        let ws = base.join("ws");
        std::fs::create_dir_all(ws.join("sub")).expect("mkdir");
        std::fs::create_dir_all(ws.join("data")).expect("mkdir");
        std::fs::create_dir_all(base.join("outside")).expect("mkdir");
        std::fs::write(ws.join("a.txt"), "a").expect("write");
        std::fs::write(ws.join("sub/b.txt"), "b").expect("write");
        std::fs::write(ws.join("data/db"), "db").expect("write");
        std::fs::write(base.join("outside/secret.txt"), "s").expect("write");
        Fixture {
            _root: root,
            root: base,
            ws,
        }
    }

    fn conf(f: &Fixture) -> Confinement {
        Confinement::new(&f.ws, &[f.ws.join("data")]).expect("confinement")
    }

    #[test]
    fn inside_paths_resolve_to_their_canonical_form() {
        let f = fixture();
        let c = conf(&f);
        assert_eq!(c.resolve("a.txt").unwrap(), f.ws.join("a.txt"));
        assert_eq!(c.resolve("./sub/../a.txt").unwrap(), f.ws.join("a.txt"));
        assert_eq!(c.resolve(".").unwrap(), f.ws);
        let abs = f.ws.join("sub/b.txt");
        assert_eq!(c.resolve(abs.to_str().unwrap()).unwrap(), abs);
    }

    #[test]
    fn parent_dirs_leading_out_are_outside() {
        let f = fixture();
        let c = conf(&f);
        let err = c.resolve("../outside/secret.txt").unwrap_err();
        assert!(matches!(err, ConfineError::Outside { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "path '../outside/secret.txt' is outside the session's workspace"
        );
        assert!(matches!(
            c.resolve("../../../../../../../etc/hostname"),
            Err(ConfineError::Outside { .. })
        ));
        assert!(matches!(c.resolve(".."), Err(ConfineError::Outside { .. })));
        assert!(matches!(
            c.resolve("sub/../../ws/../outside"),
            Err(ConfineError::Outside { .. })
        ));
    }

    #[test]
    fn absolute_paths_outside_are_outside() {
        let f = fixture();
        let c = conf(&f);
        assert!(matches!(
            c.resolve("/etc/hostname"),
            Err(ConfineError::Outside { .. })
        ));
        assert!(matches!(c.resolve("/"), Err(ConfineError::Outside { .. })));
        let sibling = f.root.join("outside/secret.txt");
        assert!(matches!(
            c.resolve(sibling.to_str().unwrap()),
            Err(ConfineError::Outside { .. })
        ));
        // A prefix of the name is not containment: ws2 is not inside ws.
        std::fs::create_dir(f.root.join("ws2")).unwrap();
        let ws2 = f.root.join("ws2/x");
        assert!(matches!(
            c.resolve(ws2.to_str().unwrap()),
            Err(ConfineError::Outside { .. })
        ));
    }

    #[test]
    fn symlinks_inside_pointing_out_are_outside() {
        let f = fixture();
        let c = conf(&f);
        symlink(f.root.join("outside/secret.txt"), f.ws.join("link.txt")).unwrap();
        symlink(f.root.join("outside"), f.ws.join("linkdir")).unwrap();
        symlink("../outside", f.ws.join("rel")).unwrap();
        assert!(matches!(
            c.resolve("link.txt"),
            Err(ConfineError::Outside { .. })
        ));
        assert!(matches!(
            c.resolve("linkdir/secret.txt"),
            Err(ConfineError::Outside { .. })
        ));
        assert!(matches!(
            c.resolve("rel"),
            Err(ConfineError::Outside { .. })
        ));
        // Not yet existing file under a symlinked dir pointing out (a Write).
        assert!(matches!(
            c.resolve("linkdir/new.txt"),
            Err(ConfineError::Outside { .. })
        ));
        // A symlink that stays inside is fine.
        symlink(f.ws.join("sub"), f.ws.join("inner")).unwrap();
        assert_eq!(c.resolve("inner/b.txt").unwrap(), f.ws.join("sub/b.txt"));
    }

    #[test]
    fn dotdot_through_a_symlinked_dir_follows_the_link() {
        let f = fixture();
        let c = conf(&f);
        // ws/deep -> root/outside; ws/deep/.. is root, not ws.
        symlink(f.root.join("outside"), f.ws.join("deep")).unwrap();
        assert!(matches!(
            c.resolve("deep/.."),
            Err(ConfineError::Outside { .. })
        ));
        assert!(matches!(
            c.resolve("deep/../ws/a.txt"),
            Ok(p) if p == f.ws.join("a.txt")
        ));
        // ws/up -> ws/sub; ws/up/../a.txt is ws/a.txt.
        symlink(f.ws.join("sub"), f.ws.join("up")).unwrap();
        assert_eq!(c.resolve("up/../a.txt").unwrap(), f.ws.join("a.txt"));
    }

    #[test]
    fn dangling_symlinks_resolve_where_they_point() {
        let f = fixture();
        let c = conf(&f);
        symlink(f.root.join("outside/not-yet.txt"), f.ws.join("dangling")).unwrap();
        assert!(matches!(
            c.resolve("dangling"),
            Err(ConfineError::Outside { .. })
        ));
        symlink(f.ws.join("later.txt"), f.ws.join("fine")).unwrap();
        assert_eq!(c.resolve("fine").unwrap(), f.ws.join("later.txt"));
        symlink(f.ws.join("loop2"), f.ws.join("loop1")).unwrap();
        symlink(f.ws.join("loop1"), f.ws.join("loop2")).unwrap();
        assert!(c.resolve("loop1").is_err());
    }

    #[test]
    fn files_not_yet_written_resolve_inside() {
        let f = fixture();
        let c = conf(&f);
        assert_eq!(c.resolve("new.txt").unwrap(), f.ws.join("new.txt"));
        assert_eq!(c.resolve("x/y/z.txt").unwrap(), f.ws.join("x/y/z.txt"));
        let err = c.resolve("x/../../outside").unwrap_err();
        assert!(matches!(err, ConfineError::Invalid { .. }), "{err}");
        assert!(matches!(
            c.resolve("x/.."),
            Err(ConfineError::Invalid { .. })
        ));
    }

    #[test]
    fn forbidden_dirs_inside_the_workspace_are_refused() {
        let f = fixture();
        let c = conf(&f);
        let err = c.resolve("data/db").unwrap_err();
        assert!(matches!(err, ConfineError::Forbidden { .. }), "{err}");
        assert!(err.to_string().contains("'data/db'"));
        assert!(matches!(
            c.resolve("data"),
            Err(ConfineError::Forbidden { .. })
        ));
        assert!(matches!(
            c.resolve("data/new"),
            Err(ConfineError::Forbidden { .. })
        ));
        assert!(matches!(
            c.resolve("sub/../data/db"),
            Err(ConfineError::Forbidden { .. })
        ));
        // A symlink inside pointing into it.
        symlink(f.ws.join("data/db"), f.ws.join("db-link")).unwrap();
        assert!(matches!(
            c.resolve("db-link"),
            Err(ConfineError::Forbidden { .. })
        ));
        // A name that only starts like it is fine.
        assert!(c.resolve("database.txt").is_ok());
    }

    #[test]
    fn forbidden_dirs_not_yet_made_are_refused_where_they_will_be() {
        let f = fixture();
        let c = Confinement::new(&f.ws, &[f.ws.join("later/cfg")]).unwrap();
        assert!(matches!(
            c.resolve("later/cfg/settings.json"),
            Err(ConfineError::Forbidden { .. })
        ));
        assert!(c.resolve("later/other").is_ok());
    }

    #[test]
    fn the_workspace_or_its_ancestors_as_forbidden_do_not_count() {
        let f = fixture();
        let c = Confinement::new(&f.ws, &[f.ws.clone(), f.root.clone()]).unwrap();
        assert!(c.forbidden().is_empty());
        assert!(c.resolve("a.txt").is_ok());
    }

    #[test]
    fn forbidden_through_a_symlinked_workspace() {
        let f = fixture();
        // The workspace is given through a symlink; both forms of paths are judged alike.
        symlink(&f.ws, f.root.join("ws-link")).unwrap();
        let c = Confinement::new(&f.root.join("ws-link"), &[f.root.join("ws-link/data")]).unwrap();
        assert_eq!(c.workspace(), f.ws);
        let via_link = f.root.join("ws-link/a.txt");
        assert_eq!(
            c.resolve(via_link.to_str().unwrap()).unwrap(),
            f.ws.join("a.txt")
        );
        let db = f.ws.join("data/db");
        assert!(matches!(
            c.resolve(db.to_str().unwrap()),
            Err(ConfineError::Forbidden { .. })
        ));
    }

    #[test]
    fn home_and_bad_input() {
        let f = fixture();
        let c = conf(&f).with_home(Some(f.root.join("home")));
        assert!(matches!(
            c.resolve("~/.ssh/id"),
            Err(ConfineError::Outside { .. })
        ));
        assert!(matches!(c.resolve("~"), Err(ConfineError::Outside { .. })));
        assert!(matches!(
            c.resolve("~root/x"),
            Err(ConfineError::Invalid { .. })
        ));
        let c = conf(&f).with_home(Some(f.ws.clone()));
        assert_eq!(c.resolve("~/a.txt").unwrap(), f.ws.join("a.txt"));
        let c = conf(&f).with_home(None);
        assert!(matches!(
            c.resolve("~/a"),
            Err(ConfineError::Invalid { .. })
        ));
        assert!(matches!(c.resolve(""), Err(ConfineError::Invalid { .. })));
        assert!(matches!(
            c.resolve("a\0b"),
            Err(ConfineError::Invalid { .. })
        ));
        assert!(Confinement::new(&f.root.join("missing"), &[]).is_err());
        assert!(Confinement::new(&f.ws, &[PathBuf::from("rel")]).is_err());
    }

    #[test]
    fn a_file_used_as_a_directory_stays_where_it_is() {
        let f = fixture();
        let c = conf(&f);
        assert_eq!(c.resolve("a.txt/x").unwrap(), f.ws.join("a.txt/x"));
    }

    #[test]
    fn the_guard_checks_every_path_of_a_call() {
        let f = fixture();
        let guard = WorkspaceGuard::new(Ok(conf(&f)));
        assert!(guard.check("Read", &json!({"file_path": "a.txt"})).is_ok());
        assert!(guard
            .check("Bash", &json!({"command": "cat /etc/x"}))
            .is_ok());
        let err = guard
            .check("Read", &json!({"file_path": "../outside/secret.txt"}))
            .unwrap_err();
        assert_eq!(
            err,
            "path '../outside/secret.txt' is outside the session's workspace"
        );
        assert!(guard
            .check(
                "NotebookEdit",
                &json!({"notebook_path": "a.ipynb", "file_path": "/etc/x"})
            )
            .is_err());
        let broken = WorkspaceGuard::new(Confinement::new(&f.root.join("gone"), &[]));
        assert!(broken
            .check("Read", &json!({"file_path": "a.txt"}))
            .is_err());
        assert!(broken.check("Bash", &json!({"command": "ls"})).is_ok());
    }

    #[test]
    fn tool_paths_names_each_tools_path_inputs() {
        assert_eq!(
            tool_paths("Read", &json!({"file_path": "/etc/x"})),
            ["/etc/x"]
        );
        assert_eq!(
            tool_paths("Write", &json!({"file_path": "a", "content": "/etc"})),
            ["a"]
        );
        assert_eq!(
            tool_paths("Edit", &json!({"file_path": "a", "old_string": "/x"})),
            ["a"]
        );
        assert_eq!(
            tool_paths("MultiEdit", &json!({"file_path": "m", "edits": []})),
            ["m"]
        );
        assert_eq!(
            tool_paths(
                "NotebookEdit",
                &json!({"notebook_path": "n.ipynb", "file_path": "f"})
            ),
            ["n.ipynb", "f"]
        );
        assert_eq!(
            tool_paths("Grep", &json!({"pattern": "x", "path": "../"})),
            ["../"]
        );
        assert_eq!(tool_paths("LS", &json!({"path": "/"})), ["/"]);
        assert!(tool_paths("Grep", &json!({"pattern": "x"})).is_empty());
        assert!(tool_paths("Grep", &json!({"pattern": "x", "path": ""})).is_empty());
        assert!(tool_paths("Bash", &json!({"command": "cat /etc/x"})).is_empty());
        assert!(tool_paths("Read", &json!({"file_path": 3})).is_empty());
        assert!(tool_paths("mcp__x__Read", &json!({"file_path": "/etc"})).is_empty());
    }

    #[test]
    fn tool_paths_reads_where_a_glob_pattern_reaches() {
        assert!(tool_paths("Glob", &json!({"pattern": "**/*.rs"})).is_empty());
        assert_eq!(
            tool_paths("Glob", &json!({"pattern": "*", "path": "src"})),
            ["src"]
        );
        assert_eq!(
            tool_paths("Glob", &json!({"pattern": "/etc/*"})),
            ["/etc/*"]
        );
        assert_eq!(tool_paths("Glob", &json!({"pattern": "../*"})), ["../*"]);
        assert_eq!(
            tool_paths("Glob", &json!({"pattern": "../*", "path": "sub/"})),
            ["sub/", "sub/../*"]
        );
        assert_eq!(
            tool_paths("Glob", &json!({"pattern": "{..,x}/*"})),
            ["../*"]
        );
    }

    #[test]
    fn glob_patterns_reaching_out_are_refused_by_the_check() {
        let f = fixture();
        let c = conf(&f);
        for pattern in ["../*", "/etc/*", "*/../../x", "{..,a}/*", "sub/../../*"] {
            let paths = tool_paths("Glob", &json!({ "pattern": pattern }));
            assert!(
                paths.iter().any(|p| c.check(p).is_err()),
                "{pattern} passed: {paths:?}"
            );
        }
        let inside = f.ws.join("sub/*.txt");
        let paths = tool_paths("Glob", &json!({ "pattern": inside.to_str().unwrap() }));
        assert!(paths.iter().all(|p| c.check(p).is_ok()), "{paths:?}");
    }
}
