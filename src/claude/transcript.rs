//! Synthetic CLI transcripts: how a history the gateway has never seen becomes a real CLI
//! session. We write the messages as a session file in the CLI's own JSONL format and start
//! the CLI with `--resume=<id>`, so the model receives every earlier turn as a real message,
//! in order (tool calls and images included), instead of a flattened text replay.
//!
//! The file layout and line shape are documented in `docs/cli-notes.md`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::message::{merge_roles, Message, Role};

/// The CLI stores a session under `projects/<cwd with every non-alphanumeric char as '-'>/`.
pub fn project_dir(config_dir: &Path, cwd: &Path) -> PathBuf {
    let mangled: String = cwd
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    config_dir.join("projects").join(mangled)
}

pub fn session_file(config_dir: &Path, cwd: &Path, session_id: &str) -> PathBuf {
    project_dir(config_dir, cwd).join(format!("{session_id}.jsonl"))
}

/// The JSONL lines for `history`. Consecutive messages of one role are merged, since the
/// Messages API wants the roles to alternate.
pub fn lines(cwd: &Path, session_id: &str, history: &[Message], cli_version: &str) -> Vec<String> {
    let start = time::OffsetDateTime::now_utc() - time::Duration::seconds(history.len() as i64 + 1);
    let mut parent: Option<String> = None;
    let merged = merge_roles(history);
    let mut out = Vec::with_capacity(merged.len());
    for (i, Message { role, content }) in merged.into_iter().enumerate() {
        // The CLI orders lines by timestamp: keep them strictly increasing.
        let now = (start + time::Duration::milliseconds(i as i64 * 10))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let uuid = uuid::Uuid::new_v4().to_string();
        let mut line = json!({
            "parentUuid": parent,
            "isSidechain": false,
            "userType": "external",
            "cwd": cwd.display().to_string(),
            "sessionId": session_id,
            "version": cli_version,
            "uuid": uuid,
            "timestamp": now,
        });
        match role {
            Role::User => {
                line["type"] = json!("user");
                line["message"] = json!({"role": "user", "content": content});
            }
            Role::Assistant => {
                line["type"] = json!("assistant");
                line["requestId"] = json!(format!("req_ccgw_{i}"));
                line["message"] = json!({
                    "id": format!("msg_ccgw_{}", uuid.replace('-', "")),
                    "type": "message",
                    "role": "assistant",
                    "model": "ccgw-replay",
                    "content": content,
                    "stop_reason": if content.iter().any(|b| b["type"] == "tool_use") { "tool_use" } else { "end_turn" },
                    "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                });
            }
        }
        parent = Some(uuid);
        out.push(line.to_string());
    }
    out
}

/// Write `history` as the session `session_id` for a CLI that will run in `cwd`; returns the
/// uuid of its last line (where the conversation ends).
pub fn write(
    config_dir: &Path,
    cwd: &Path,
    session_id: &str,
    history: &[Message],
    cli_version: &str,
) -> std::io::Result<Option<String>> {
    let path = session_file(config_dir, cwd, session_id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::File::create(&path)?;
    let lines = lines(cwd, session_id, history, cli_version);
    for line in &lines {
        f.write_all(line.as_bytes())?;
        f.write_all(b"\n")?;
    }
    f.sync_all()?;
    Ok(lines.last().and_then(|l| line_uuid(l)))
}

/// Where a transcript stands against what its conversation says it should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// It ends where the conversation does: resume it.
    AsIs,
    /// It held a turn that never ended; the rest was copied under this new session id.
    Cut(String),
    /// It does not hold the conversation's last clean turn (not written yet, or lost).
    Missing,
}

/// Make the session `session_id`'s transcript end where its conversation does: it must hold
/// `leaf` (the last line of the last clean turn, when known), and a turn that began with the
/// user line `mark` and never ended is cut off. The cut goes into a copy under a new session
/// id rather than into the file itself, which a stopping process may still be writing.
pub fn make_resumable(
    config_dir: &Path,
    cwd: &Path,
    session_id: &str,
    leaf: Option<&str>,
    mark: Option<&str>,
) -> std::io::Result<Resume> {
    let path = session_file(config_dir, cwd, session_id);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Resume::Missing),
        Err(e) => return Err(e),
    };
    let Some((prefix, cut)) = clean_prefix(&text, leaf, mark) else {
        return Ok(Resume::Missing);
    };
    if !cut {
        return Ok(Resume::AsIs);
    }
    let id = uuid::Uuid::new_v4().to_string();
    write_lines(&prefix, &session_file(config_dir, cwd, &id), &id)?;
    Ok(Resume::Cut(id))
}

/// The lines of a transcript as of its conversation's last clean turn, and whether a turn
/// that never ended was left out; `None` when it does not hold `leaf`.
fn clean_prefix<'a>(
    text: &'a str,
    leaf: Option<&str>,
    mark: Option<&str>,
) -> Option<(Vec<&'a str>, bool)> {
    let mut kept = Vec::new();
    let mut has_leaf = leaf.is_none();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let uuid = line_uuid(line);
        if mark.is_some() && uuid.as_deref() == mark {
            return has_leaf.then_some((kept, true));
        }
        has_leaf |= leaf.is_some() && uuid.as_deref() == leaf;
        kept.push(line);
    }
    has_leaf.then_some((kept, false))
}

fn line_uuid(line: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Line {
        uuid: Option<String>,
    }
    serde_json::from_str::<Line>(line).ok()?.uuid
}

/// Write transcript lines as the session `session_id` (a copy continues on its own).
fn write_lines(lines: &[&str], dest: &Path, session_id: &str) -> std::io::Result<()> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = String::new();
    for line in lines {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(mut v) => {
                if v.get("sessionId").is_some() {
                    v["sessionId"] = json!(session_id);
                }
                out.push_str(&v.to_string());
            }
            // A line we cannot read is kept as it is rather than lost.
            Err(_) => out.push_str(line),
        }
        out.push('\n');
    }
    std::fs::write(dest, out)
}

/// Copy a session's transcript, as of its last clean turn (see [`make_resumable`]), as a new
/// session `session_id` for a CLI running in `cwd`: the copy continues on its own, and the
/// original file is never written again by it. `None` when the source does not hold `leaf`.
pub fn copy_as(
    source: &Path,
    config_dir: &Path,
    cwd: &Path,
    session_id: &str,
    leaf: Option<&str>,
    mark: Option<&str>,
) -> std::io::Result<Option<PathBuf>> {
    let text = std::fs::read_to_string(source)?;
    let Some((lines, _)) = clean_prefix(&text, leaf, mark) else {
        return Ok(None);
    };
    let dest = session_file(config_dir, cwd, session_id);
    write_lines(&lines, &dest, session_id)?;
    Ok(Some(dest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn project_dir_mangles_every_non_alphanumeric() {
        let d = project_dir(Path::new("/c"), Path::new("/srv/my_app.v2/ws"));
        assert_eq!(d, Path::new("/c/projects/-srv-my-app-v2-ws"));
    }

    #[test]
    fn copy_as_renames_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.jsonl");
        std::fs::write(
            &src,
            "{\"sessionId\":\"old\",\"x\":1}\n{\"type\":\"queue-operation\"}\n",
        )
        .unwrap();
        let dest = copy_as(&src, dir.path(), Path::new("/w"), "new", None, None)
            .unwrap()
            .unwrap();
        assert!(dest.ends_with("projects/-w/new.jsonl"));
        let text = std::fs::read_to_string(dest).unwrap();
        assert!(text.contains("\"sessionId\":\"new\""));
        assert!(!text.contains("old"));
        assert_eq!(text.lines().count(), 2);
        assert!(
            std::fs::read_to_string(&src).unwrap().contains("old"),
            "the original is untouched"
        );
    }

    #[test]
    fn a_turn_that_never_ended_is_cut_into_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = Path::new("/w");
        let h = vec![
            Message::user(vec![json!({"type":"text","text":"a"})]),
            Message::assistant_text("b"),
        ];
        let leaf = write(dir.path(), cwd, "s1", &h, "2.1.197")
            .unwrap()
            .unwrap();
        let path = session_file(dir.path(), cwd, "s1");
        let mark = "mark-1";
        // A clean transcript resumes as it is; one without the leaf is not resumable.
        assert_eq!(
            make_resumable(dir.path(), cwd, "s1", Some(&leaf), Some(mark)).unwrap(),
            Resume::AsIs
        );
        assert_eq!(
            make_resumable(dir.path(), cwd, "s1", Some("other"), Some(mark)).unwrap(),
            Resume::Missing
        );
        assert_eq!(
            make_resumable(dir.path(), cwd, "nope", None, None).unwrap(),
            Resume::Missing
        );
        // The CLI began a turn (its user line carries the mark) and died.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!(
            "{{\"type\":\"user\",\"uuid\":\"{mark}\",\"sessionId\":\"s1\"}}\n{{\"type\":\"assistant\",\"uuid\":\"x\",\"sessionId\":\"s1\"}}\n"
        ));
        std::fs::write(&path, &text).unwrap();
        let Resume::Cut(id) =
            make_resumable(dir.path(), cwd, "s1", Some(&leaf), Some(mark)).unwrap()
        else {
            panic!("cut")
        };
        let copy = std::fs::read_to_string(session_file(dir.path(), cwd, &id)).unwrap();
        assert_eq!(copy.lines().count(), 2);
        assert!(!copy.contains(mark) && copy.contains(&leaf));
        assert!(copy.contains(&format!("\"sessionId\":\"{id}\"")));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "the original is untouched"
        );
        // A fork copies the same clean part.
        let forked = copy_as(&path, dir.path(), cwd, "f", Some(&leaf), Some(mark))
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read_to_string(forked).unwrap().lines().count(), 2);
    }

    #[test]
    fn lines_chain_and_merge_roles() {
        let h = vec![
            Message::user(vec![json!({"type":"text","text":"a"})]),
            Message::user(vec![json!({"type":"text","text":"b"})]),
            Message::assistant_text("c"),
        ];
        let ls: Vec<Value> = lines(Path::new("/w"), "sid", &h, "2.1.197")
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(ls.len(), 2);
        assert_eq!(ls[0]["type"], "user");
        assert_eq!(ls[0]["message"]["content"].as_array().unwrap().len(), 2);
        assert!(ls[0]["parentUuid"].is_null());
        assert_eq!(ls[1]["parentUuid"], ls[0]["uuid"]);
        assert_eq!(ls[1]["message"]["role"], "assistant");
        assert_eq!(ls[1]["sessionId"], "sid");
    }
}
