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

/// Write `history` as the session `session_id` for a CLI that will run in `cwd`.
pub fn write(
    config_dir: &Path,
    cwd: &Path,
    session_id: &str,
    history: &[Message],
    cli_version: &str,
) -> std::io::Result<PathBuf> {
    let path = session_file(config_dir, cwd, session_id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::File::create(&path)?;
    for line in lines(cwd, session_id, history, cli_version) {
        f.write_all(line.as_bytes())?;
        f.write_all(b"\n")?;
    }
    f.sync_all()?;
    Ok(path)
}

/// Copy a session's transcript as a new session `session_id` for a CLI running in `cwd`: the
/// copy continues on its own, and the original file is never written again by it.
pub fn copy_as(
    source: &Path,
    config_dir: &Path,
    cwd: &Path,
    session_id: &str,
) -> std::io::Result<PathBuf> {
    let text = std::fs::read_to_string(source)?;
    let dest = session_file(config_dir, cwd, session_id);
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
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
    std::fs::write(&dest, out)?;
    Ok(dest)
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
        let dest = copy_as(&src, dir.path(), Path::new("/w"), "new").unwrap();
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
