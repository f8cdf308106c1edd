//! Direct tool calls: Read, Glob, Grep, Edit, Write and Bash carried out by the gateway itself
//! on a session's workspace, with the CLI's inputs and no model turn. Every path goes through
//! the one confinement check (`confine`); this module runs the tools and knows nothing of
//! sessions, history or HTTP.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use grep_regex::RegexMatcherBuilder;
use grep_searcher::sinks::UTF8;
use grep_searcher::{BinaryDetection, SearcherBuilder};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use super::confine::{self, ConfineError, Confinement};

/// Lines a Read returns when the client names no limit (the CLI's default).
const READ_DEFAULT_LINES: usize = 2000;
/// Longest line a Read returns whole (the CLI cuts longer ones too).
const READ_MAX_LINE: usize = 2000;
/// Files a Glob lists at most.
const GLOB_MAX: usize = 100;
/// Output lines a Grep returns when the client names no `head_limit`.
const GREP_DEFAULT_LIMIT: usize = 250;
/// Bash: the default and the longest timeout (milliseconds, as the CLI counts).
pub const BASH_DEFAULT_TIMEOUT_MS: u64 = 120_000;
pub const BASH_MAX_TIMEOUT_MS: u64 = 600_000;
/// Bash: bytes kept of stdout and of stderr each.
pub const BASH_OUTPUT_CAP: usize = 30_000;
/// The environment a direct Bash command gets: these variables of the gateway's own, nothing
/// else (no keys, tokens or the gateway's settings), plus `HOME` and `PWD` set to the
/// workspace.
const BASH_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM"];

/// A direct tool, named as in its URL (`search` is Grep's other name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectTool {
    Read,
    Glob,
    Grep,
    Edit,
    Write,
    Bash,
}

impl DirectTool {
    pub fn from_url(name: &str) -> Option<DirectTool> {
        Some(match name.to_ascii_lowercase().as_str() {
            "read" => DirectTool::Read,
            "glob" => DirectTool::Glob,
            "grep" | "search" => DirectTool::Grep,
            "edit" => DirectTool::Edit,
            "write" => DirectTool::Write,
            "bash" => DirectTool::Bash,
            _ => return None,
        })
    }

    /// The CLI's name of the tool, which the deployment's and the session's lists use.
    pub fn cli_name(self) -> &'static str {
        match self {
            DirectTool::Read => "Read",
            DirectTool::Glob => "Glob",
            DirectTool::Grep => "Grep",
            DirectTool::Edit => "Edit",
            DirectTool::Write => "Write",
            DirectTool::Bash => "Bash",
        }
    }
}

/// What a direct call produced. A failure of the tool itself (a missing file, an `old_string`
/// not found, a command exiting non-zero) is a result with `is_error`, as the model would get.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// The result's text, as the CLI's tool would give it to the model.
    pub content: String,
    /// The same, structured (per tool).
    pub data: Value,
    pub is_error: bool,
    /// Edit and Write: the unified diff of the file.
    pub diff: Option<String>,
}

impl ToolOutput {
    fn ok(content: String, data: Value) -> Self {
        ToolOutput {
            content,
            data,
            is_error: false,
            diff: None,
        }
    }

    fn failed(content: impl Into<String>) -> Self {
        let content = content.into();
        ToolOutput {
            data: json!({"error": content}),
            content,
            is_error: true,
            diff: None,
        }
    }
}

/// Why a direct call could not be made at all.
#[derive(Debug, thiserror::Error)]
pub enum DirectToolError {
    #[error("{message}")]
    Invalid { param: String, message: String },
    #[error(transparent)]
    Confined(#[from] ConfineError),
    #[error("running the tool failed: {0}")]
    Io(#[from] std::io::Error),
}

fn invalid(param: &str, message: impl Into<String>) -> DirectToolError {
    DirectToolError::Invalid {
        param: param.into(),
        message: message.into(),
    }
}

fn input<T: for<'de> Deserialize<'de>>(v: &Value) -> Result<T, DirectToolError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let param = if path == "." { String::new() } else { path };
        invalid(&param, e.inner().to_string())
    })
}

#[derive(Deserialize)]
struct ReadInput {
    file_path: String,
    offset: Option<usize>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
struct GlobInput {
    pattern: String,
    path: Option<String>,
}

#[derive(Deserialize)]
struct GrepInput {
    pattern: String,
    path: Option<String>,
    glob: Option<String>,
    output_mode: Option<String>,
    #[serde(rename = "-i", default)]
    case_insensitive: bool,
    #[serde(rename = "-n")]
    line_numbers: Option<bool>,
    head_limit: Option<usize>,
}

#[derive(Deserialize)]
struct EditInput {
    file_path: String,
    old_string: String,
    new_string: String,
    #[serde(default)]
    replace_all: bool,
}

#[derive(Deserialize)]
struct WriteInput {
    file_path: String,
    content: String,
}

#[derive(Deserialize)]
struct BashInput {
    command: String,
    timeout: Option<u64>,
}

/// Carry out one call. Every path-bearing input is resolved through `conf` first (the same
/// inputs the model's calls are checked by), so nothing outside the workspace is touched.
pub async fn run(
    tool: DirectTool,
    raw: &Value,
    conf: &Confinement,
) -> Result<ToolOutput, DirectToolError> {
    if !raw.is_object() {
        return Err(invalid("", "the tool's input must be a JSON object"));
    }
    for p in confine::tool_paths(tool.cli_name(), raw) {
        conf.resolve(&p)?;
    }
    match tool {
        DirectTool::Read => read(input(raw)?, conf),
        DirectTool::Glob => glob(input(raw)?, conf),
        DirectTool::Grep => grep(input(raw)?, conf),
        DirectTool::Edit => edit(input(raw)?, conf),
        DirectTool::Write => write(input(raw)?, conf),
        DirectTool::Bash => bash(input(raw)?, conf).await,
    }
}

/// A path as the client sees it: relative to the workspace.
pub fn shown(conf: &Confinement, path: &Path) -> String {
    path.strip_prefix(conf.workspace())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

fn read(i: ReadInput, conf: &Confinement) -> Result<ToolOutput, DirectToolError> {
    let path = conf.resolve(&i.file_path)?;
    if path.is_dir() {
        return Ok(ToolOutput::failed(format!(
            "{} is a directory, not a file",
            i.file_path
        )));
    }
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ToolOutput::failed(format!(
                "File does not exist: {}",
                i.file_path
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = i.offset.unwrap_or(1).max(1);
    let limit = i.limit.unwrap_or(READ_DEFAULT_LINES).max(1);
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate().skip(start - 1).take(limit) {
        let line: String = line.chars().take(READ_MAX_LINE).collect();
        out.push_str(&format!("{:>6}\t{}\n", n + 1, line));
    }
    let shown_lines = lines.len().saturating_sub(start - 1).min(limit);
    Ok(ToolOutput::ok(
        out,
        json!({"file_path": shown(conf, &path), "content": lines.iter().skip(start - 1).take(limit).copied().collect::<Vec<_>>().join("\n"),
               "start_line": start, "num_lines": shown_lines, "total_lines": lines.len()}),
    ))
}

/// The directory a Glob or Grep searches: `path` (checked), else the workspace.
fn base_dir(path: Option<&str>, conf: &Confinement) -> Result<PathBuf, DirectToolError> {
    match path.filter(|p| !p.is_empty()) {
        Some(p) => Ok(conf.resolve(p)?),
        None => Ok(conf.workspace().to_path_buf()),
    }
}

/// Every file under `base` a search may read: ignore rules honoured (`.gitignore` and
/// `.ignore`, even outside a git repository), `.git` skipped, symlinks followed only when they
/// resolve inside the workspace.
fn files_under(base: &Path, conf: &Confinement) -> Vec<PathBuf> {
    if base.is_file() {
        return vec![base.to_path_buf()];
    }
    ignore::WalkBuilder::new(base)
        .hidden(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let ft = e.file_type()?;
            if ft.is_file() {
                return Some(e.into_path());
            }
            if ft.is_symlink() {
                let target = conf.resolve(&e.path().display().to_string()).ok()?;
                return target.is_file().then(|| e.into_path());
            }
            None
        })
        .collect()
}

fn glob_matcher(pattern: &str, param: &str) -> Result<globset::GlobMatcher, DirectToolError> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| invalid(param, format!("not a valid glob: {e}")))
}

fn glob(i: GlobInput, conf: &Confinement) -> Result<ToolOutput, DirectToolError> {
    // An absolute pattern (already checked to lie inside) searches from its fixed part.
    let (base, pattern) = if i.pattern.starts_with('/') {
        let (fixed, rest) = split_glob(&i.pattern);
        (conf.resolve(&fixed)?, rest)
    } else {
        (base_dir(i.path.as_deref(), conf)?, i.pattern.clone())
    };
    let matcher = glob_matcher(&pattern, "pattern")?;
    let mut found: Vec<(SystemTime, PathBuf)> = files_under(&base, conf)
        .into_iter()
        .filter(|p| p.strip_prefix(&base).is_ok_and(|rel| matcher.is_match(rel)))
        .map(|p| {
            let m = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (m, p)
        })
        .collect();
    // Newest first, as the CLI's Glob.
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let truncated = found.len() > GLOB_MAX;
    let names: Vec<String> = found
        .iter()
        .take(GLOB_MAX)
        .map(|(_, p)| shown(conf, p))
        .collect();
    let mut content = if names.is_empty() {
        "No files found".to_string()
    } else {
        names.join("\n")
    };
    if truncated {
        content
            .push_str("\n(Results are truncated. Consider using a more specific path or pattern.)");
    }
    Ok(ToolOutput::ok(
        content,
        json!({"filenames": names, "num_files": names.len(), "truncated": truncated}),
    ))
}

/// The part of a glob before its first wildcard component, and the rest.
fn split_glob(pattern: &str) -> (String, String) {
    let mut fixed = Vec::new();
    let mut parts = pattern.split('/');
    let mut rest = Vec::new();
    for part in parts.by_ref() {
        if part.contains(['*', '?', '[', '{']) {
            rest.push(part);
            break;
        }
        fixed.push(part);
    }
    rest.extend(parts);
    let fixed = fixed.join("/");
    (
        if fixed.is_empty() { "/".into() } else { fixed },
        rest.join("/"),
    )
}

fn grep(i: GrepInput, conf: &Confinement) -> Result<ToolOutput, DirectToolError> {
    let base = base_dir(i.path.as_deref(), conf)?;
    let mode = i.output_mode.as_deref().unwrap_or("files_with_matches");
    if !matches!(mode, "content" | "files_with_matches" | "count") {
        return Err(invalid(
            "output_mode",
            format!("output_mode must be content, files_with_matches or count, not '{mode}'"),
        ));
    }
    let matcher = RegexMatcherBuilder::new()
        .case_insensitive(i.case_insensitive)
        .build(&i.pattern)
        .map_err(|e| invalid("pattern", format!("not a valid regular expression: {e}")))?;
    let filter = match &i.glob {
        Some(g) => Some(glob_matcher(g, "glob")?),
        None => None,
    };
    let numbers = i.line_numbers.unwrap_or(true);
    let limit = i
        .head_limit
        .filter(|n| *n > 0)
        .unwrap_or(GREP_DEFAULT_LIMIT);
    let mut searcher = SearcherBuilder::new()
        .binary_detection(BinaryDetection::quit(0))
        .line_number(true)
        .build();
    let mut files = files_under(&base, conf);
    files.sort();
    let mut lines: Vec<String> = Vec::new();
    let mut matched_files: Vec<String> = Vec::new();
    let mut total = 0usize;
    for file in files {
        if let Some(f) = &filter {
            let rel = file.strip_prefix(&base).unwrap_or(&file);
            let name = file.file_name().map(Path::new).unwrap_or(rel);
            if !f.is_match(rel) && !f.is_match(name) {
                continue;
            }
        }
        let name = shown(conf, &file);
        let mut hits: Vec<(u64, String)> = Vec::new();
        let searched = searcher.search_path(
            &matcher,
            &file,
            UTF8(|n, line| {
                hits.push((n, line.trim_end_matches(['\n', '\r']).to_string()));
                Ok(true)
            }),
        );
        if searched.is_err() || hits.is_empty() {
            continue;
        }
        total += hits.len();
        match mode {
            "content" => lines.extend(hits.into_iter().map(|(n, l)| {
                if numbers {
                    format!("{name}:{n}:{l}")
                } else {
                    format!("{name}:{l}")
                }
            })),
            "count" => lines.push(format!("{name}:{}", hits.len())),
            _ => lines.push(name.clone()),
        }
        matched_files.push(name);
    }
    let truncated = lines.len() > limit;
    lines.truncate(limit);
    let content = if lines.is_empty() {
        "No matches found".to_string()
    } else {
        lines.join("\n")
    };
    Ok(ToolOutput::ok(
        content,
        json!({"mode": mode, "filenames": matched_files, "num_files": matched_files.len(),
               "num_matches": total, "lines": lines, "truncated": truncated}),
    ))
}

/// The unified diff of a file's change, with the file's workspace path in the headers.
pub fn unified_diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

fn edit(i: EditInput, conf: &Confinement) -> Result<ToolOutput, DirectToolError> {
    let path = conf.resolve(&i.file_path)?;
    if i.old_string == i.new_string {
        return Err(invalid(
            "new_string",
            "new_string must differ from old_string",
        ));
    }
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && i.old_string.is_empty() => {
            String::new()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ToolOutput::failed(format!(
                "File does not exist: {}",
                i.file_path
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let new = if i.old_string.is_empty() {
        if !old.is_empty() {
            return Ok(ToolOutput::failed(
                "Cannot create a file that already exists; old_string is empty",
            ));
        }
        i.new_string.clone()
    } else {
        let n = old.matches(&i.old_string).count();
        if n == 0 {
            return Ok(ToolOutput::failed(format!(
                "String to replace not found in file.\nString: {}",
                i.old_string
            )));
        }
        if n > 1 && !i.replace_all {
            return Ok(ToolOutput::failed(format!(
                "Found {n} matches of the string to replace, but replace_all is false. To \
                 replace all occurrences, set replace_all to true; to replace only one, give \
                 more context to identify it uniquely.\nString: {}",
                i.old_string
            )));
        }
        if i.replace_all {
            old.replace(&i.old_string, &i.new_string)
        } else {
            old.replacen(&i.old_string, &i.new_string, 1)
        }
    };
    write_file(&path, &new)?;
    let name = shown(conf, &path);
    let diff = unified_diff(&name, &old, &new);
    let mut out = ToolOutput::ok(
        format!("The file {name} has been updated."),
        json!({"file_path": name, "diff": diff}),
    );
    out.diff = Some(diff);
    Ok(out)
}

fn write(i: WriteInput, conf: &Confinement) -> Result<ToolOutput, DirectToolError> {
    let path = conf.resolve(&i.file_path)?;
    if path.is_dir() {
        return Ok(ToolOutput::failed(format!(
            "{} is a directory",
            i.file_path
        )));
    }
    let old = std::fs::read_to_string(&path).ok();
    write_file(&path, &i.content)?;
    let name = shown(conf, &path);
    let diff = unified_diff(&name, old.as_deref().unwrap_or(""), &i.content);
    let kind = if old.is_some() { "update" } else { "create" };
    let content = match kind {
        "create" => format!("File created successfully at: {name}"),
        _ => format!("The file {name} has been updated."),
    };
    let mut out = ToolOutput::ok(
        content,
        json!({"type": kind, "file_path": name, "diff": diff}),
    );
    out.diff = Some(diff);
    Ok(out)
}

fn write_file(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, content)
}

/// Bash: `bash -c` in the workspace, in a process group of its own (killed whole on timeout),
/// with stdin closed, the allowlisted environment and each output stream capped. This confines
/// the working directory and the environment only: the command runs as the gateway's user and
/// can reach whatever that user can (see docs/native-api.md).
async fn bash(i: BashInput, conf: &Confinement) -> Result<ToolOutput, DirectToolError> {
    if i.command.trim().is_empty() {
        return Err(invalid("command", "command must not be empty"));
    }
    let timeout_ms = i.timeout.unwrap_or(BASH_DEFAULT_TIMEOUT_MS);
    if timeout_ms == 0 || timeout_ms > BASH_MAX_TIMEOUT_MS {
        return Err(invalid(
            "timeout",
            format!("timeout must be between 1 and {BASH_MAX_TIMEOUT_MS} milliseconds"),
        ));
    }
    let ws = conf.workspace();
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-c")
        .arg(&i.command)
        .current_dir(ws)
        .env_clear()
        .env("HOME", ws)
        .env("PWD", ws)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for k in BASH_ENV {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn()?;
    let pgid = child.id().map(|p| p as i32);
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let started = std::time::Instant::now();
    let run = async {
        let (out, err, status) = tokio::join!(
            capped(stdout.as_mut()),
            capped(stderr.as_mut()),
            child.wait()
        );
        (out, err, status)
    };
    let (out, err, code, timed_out) =
        match tokio::time::timeout(Duration::from_millis(timeout_ms), run).await {
            Ok((out, err, status)) => (out, err, status?.code(), false),
            Err(_) => {
                if let Some(pg) = pgid {
                    // SAFETY: killpg only sends a signal to the group this call created.
                    unsafe { libc::killpg(pg, libc::SIGKILL) };
                }
                let _ = child.wait().await;
                (Captured::default(), Captured::default(), None, true)
            }
        };
    // The command's own children may outlive it in its group: end them too.
    if let Some(pg) = pgid {
        // SAFETY: as above; a group with no process left makes this fail harmlessly.
        unsafe { libc::killpg(pg, libc::SIGKILL) };
    }
    let mut content = out.text.clone();
    if !err.text.is_empty() {
        if !content.is_empty() && !content.ends_with('\n') {
            content.push('\n');
        }
        content.push_str(&err.text);
    }
    if timed_out {
        content.push_str(&format!("\nCommand timed out after {timeout_ms} ms"));
    }
    Ok(ToolOutput {
        content: content.trim_end().to_string(),
        data: json!({"stdout": out.text, "stderr": err.text, "exit_code": code,
                     "interrupted": timed_out, "stdout_truncated": out.truncated,
                     "stderr_truncated": err.truncated,
                     "duration_ms": started.elapsed().as_millis() as u64}),
        is_error: timed_out || code != Some(0),
        diff: None,
    })
}

#[derive(Default, Clone)]
struct Captured {
    text: String,
    truncated: bool,
}

/// Read a stream to its end, keeping the first [`BASH_OUTPUT_CAP`] bytes.
async fn capped<R: tokio::io::AsyncRead + Unpin>(r: Option<&mut R>) -> Captured {
    let Some(r) = r else {
        return Captured::default();
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = BASH_OUTPUT_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if truncated {
        text.push_str("\n[output truncated]");
    }
    Captured { text, truncated }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> (tempfile::TempDir, Confinement) {
        let dir = tempfile::tempdir().unwrap();
        let conf = Confinement::new(dir.path(), &[]).unwrap();
        (dir, conf)
    }

    #[tokio::test]
    async fn write_then_edit_carry_diffs() {
        let (_d, conf) = ws();
        let w = run(
            DirectTool::Write,
            &json!({"file_path": "a/b.txt", "content": "one\ntwo\n"}),
            &conf,
        )
        .await
        .unwrap();
        assert_eq!(w.data["type"], "create");
        assert!(w.diff.as_ref().unwrap().contains("+two"), "{w:?}");
        let e = run(
            DirectTool::Edit,
            &json!({"file_path": "a/b.txt", "old_string": "two", "new_string": "deux"}),
            &conf,
        )
        .await
        .unwrap();
        let d = e.diff.unwrap();
        assert!(
            d.contains("-two") && d.contains("+deux") && d.contains("a/a/b.txt"),
            "{d}"
        );
        let missing = run(
            DirectTool::Edit,
            &json!({"file_path": "a/b.txt", "old_string": "zzz", "new_string": "y"}),
            &conf,
        )
        .await
        .unwrap();
        assert!(missing.is_error);
    }

    #[tokio::test]
    async fn read_numbers_lines_and_pages() {
        let (d, conf) = ws();
        std::fs::write(d.path().join("f"), "a\nb\nc\nd\n").unwrap();
        let r = run(
            DirectTool::Read,
            &json!({"file_path": "f", "offset": 2, "limit": 2}),
            &conf,
        )
        .await
        .unwrap();
        assert_eq!(r.content, "     2\tb\n     3\tc\n");
        assert_eq!(r.data["total_lines"], 4);
    }

    #[tokio::test]
    async fn paths_outside_are_refused() {
        let (_d, conf) = ws();
        for (tool, input) in [
            (DirectTool::Read, json!({"file_path": "/etc/passwd"})),
            (
                DirectTool::Write,
                json!({"file_path": "../x", "content": ""}),
            ),
            (DirectTool::Glob, json!({"pattern": "/etc/*"})),
            (DirectTool::Grep, json!({"pattern": "root", "path": "/etc"})),
        ] {
            let e = run(tool, &input, &conf).await.unwrap_err();
            assert!(matches!(e, DirectToolError::Confined(_)), "{tool:?}: {e}");
        }
    }

    #[tokio::test]
    async fn glob_and_grep_find_files() {
        let (d, conf) = ws();
        std::fs::create_dir_all(d.path().join("src")).unwrap();
        std::fs::write(d.path().join("src/x.rs"), "fn main() {}\nlet Needle = 1;\n").unwrap();
        std::fs::write(d.path().join("y.txt"), "needle\n").unwrap();
        let g = run(DirectTool::Glob, &json!({"pattern": "**/*.rs"}), &conf)
            .await
            .unwrap();
        assert_eq!(g.data["filenames"], json!(["src/x.rs"]));
        let s = run(
            DirectTool::Grep,
            &json!({"pattern": "needle", "-i": true, "output_mode": "content"}),
            &conf,
        )
        .await
        .unwrap();
        assert_eq!(
            s.data["lines"],
            json!(["src/x.rs:2:let Needle = 1;", "y.txt:1:needle"])
        );
        let c = run(
            DirectTool::Grep,
            &json!({"pattern": "needle", "glob": "*.txt"}),
            &conf,
        )
        .await
        .unwrap();
        assert_eq!(c.content, "y.txt");
    }

    #[tokio::test]
    async fn bash_runs_in_the_workspace_without_secrets_and_times_out() {
        let (d, conf) = ws();
        let r = run(
            DirectTool::Bash,
            &json!({"command": "pwd; echo ${ANTHROPIC_API_KEY:-none}"}),
            &conf,
        )
        .await
        .unwrap();
        let pwd = std::fs::canonicalize(d.path()).unwrap();
        assert_eq!(r.data["stdout"], format!("{}\nnone\n", pwd.display()));
        let t = std::time::Instant::now();
        let r = run(
            DirectTool::Bash,
            &json!({"command": "sleep 30 & sleep 30", "timeout": 300}),
            &conf,
        )
        .await
        .unwrap();
        assert!(r.is_error && r.data["interrupted"] == true);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn split_glob_finds_the_fixed_part() {
        assert_eq!(
            split_glob("/w/src/**/*.rs"),
            ("/w/src".into(), "**/*.rs".into())
        );
        assert_eq!(split_glob("/*.rs"), ("/".into(), "*.rs".into()));
    }
}
