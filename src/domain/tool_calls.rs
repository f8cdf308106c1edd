//! A native session's tool calls: the history of every call (the model's built-in, client and
//! MCP calls, and the client's direct calls) read back from the session's stored history, the
//! direct calls themselves (checked against the deployment's and the session's tools, confined
//! to the workspace, recorded and shown to watchers), permission answers with who gave them,
//! and the tool-status stream. Knows no HTTP; the tools themselves run in `direct_tools`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::confine::{ConfineError, Confinement};
use super::conversations::{Conversations, TurnError};
use super::direct_tools::{self, DirectTool, DirectToolError, ToolOutput};
use super::session_table::millis_to_rfc3339;
use super::stamp::Stamped;
use crate::claude::tools::PREFIX as CLIENT_PREFIX;
use crate::claude::Event;
use crate::store::{self, StoredEvent};

/// History kinds this module writes.
pub const DIRECT_KIND: &str = "direct_tool_call";
/// The turn id a direct call is stored under (it belongs to no turn).
const DIRECT_TURN: &str = "direct";
pub const DECISION_KIND: &str = "permission_decision";
/// Direct calls' ids start with this (the model's start with `toolu_`).
pub const DIRECT_ID_PREFIX: &str = "direct_";
/// Characters of a result the history returns (the rest is cut, and said so).
pub const RESULT_CAP: usize = 4096;
/// Largest page of the tool-call history.
pub const MAX_PAGE: usize = 500;

/// One tool call as the history shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ToolCallEntry {
    pub id: String,
    pub tool: String,
    /// `builtin`, `client`, `mcp` or `direct`.
    pub kind: String,
    pub input: Value,
    /// The result's text, at most [`RESULT_CAP`] characters; `None` while it runs.
    pub result: Option<String>,
    pub result_truncated: bool,
    pub is_error: Option<bool>,
    /// `{decision, by, request_id?}`: `allowed`/`denied`/`pending`, by `policy`, `timeout`, a
    /// caller (`client` without keys, else the key's label) or `unknown`.
    pub permission: Value,
    pub duration_ms: Option<i64>,
    /// The model turn it belongs to; `None` for a direct call.
    pub turn_id: Option<String>,
    /// The history seq of the call's entry (the page cursor).
    pub seq: u64,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// Edit and Write (direct calls): the unified diff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// Which calls to list.
#[derive(Debug, Clone, Default)]
pub struct ToolCallFilter {
    pub tool: Option<String>,
    /// Calls whose seq is above this (the previous page's `next_cursor`).
    pub after: u64,
    pub limit: usize,
}

/// The kind of a model call, by its name.
fn kind_of(name: &str, client: bool) -> &'static str {
    if client || name.starts_with(CLIENT_PREFIX) {
        "client"
    } else if name.starts_with("mcp__") {
        "mcp"
    } else {
        "builtin"
    }
}

fn cap(content: &Value) -> (String, bool) {
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("text").and_then(Value::as_str) {
                Some(t) => t.to_string(),
                None => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match text.char_indices().nth(RESULT_CAP) {
        Some((at, _)) => (text[..at].to_string(), true),
        None => (text, false),
    }
}

/// Fold a session's history into its tool calls, oldest first. Pure.
pub fn fold(events: &[StoredEvent]) -> Vec<ToolCallEntry> {
    let mut out: Vec<ToolCallEntry> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut by_request: HashMap<String, usize> = HashMap::new();
    for e in events {
        let p = &e.payload;
        let at = millis_to_rfc3339(e.created_at);
        match e.kind.as_str() {
            "tool_call" => {
                let id = p["id"].as_str().unwrap_or_default().to_string();
                let tool = p["name"].as_str().unwrap_or_default().to_string();
                let kind = kind_of(&tool, p["client"].as_bool().unwrap_or(false));
                // A call the CLI did not ask about was allowed by the session's policy (its
                // allowed tools or permission mode); a client tool needs no permission.
                let permission = if kind == "client" {
                    json!({"decision": "allowed", "by": "client_tool"})
                } else {
                    json!({"decision": "allowed", "by": "policy"})
                };
                by_id.insert(id.clone(), out.len());
                out.push(ToolCallEntry {
                    id,
                    tool,
                    kind: kind.into(),
                    input: p["input"].clone(),
                    result: None,
                    result_truncated: false,
                    is_error: None,
                    permission,
                    duration_ms: None,
                    turn_id: Some(e.turn_id.clone()),
                    seq: e.seq as u64,
                    started_at: at,
                    ended_at: None,
                    diff: None,
                });
            }
            "tool_result" => {
                let Some(&i) = p["tool_use_id"].as_str().and_then(|id| by_id.get(id)) else {
                    continue;
                };
                let (text, cut) = cap(&p["content"]);
                let c = &mut out[i];
                c.result = Some(text);
                c.result_truncated = cut;
                c.is_error = p["is_error"].as_bool();
                c.duration_ms = Some(e.created_at - started_millis(events, c.seq));
                c.ended_at = Some(at);
                if c.permission["decision"] == "pending" {
                    c.permission["decision"] = json!(if c.is_error == Some(true) {
                        "denied"
                    } else {
                        "allowed"
                    });
                    c.permission["by"] = json!("unknown");
                }
            }
            "permission_request" => {
                // The request names the tool and its input: it is the newest such call.
                let tool = p["tool_name"].as_str().unwrap_or_default();
                let Some(i) = out
                    .iter()
                    .rposition(|c| c.tool == tool && c.input == p["input"] && c.result.is_none())
                else {
                    continue;
                };
                let request = p["request_id"].as_str().unwrap_or_default().to_string();
                out[i].permission =
                    json!({"decision": "pending", "by": null, "request_id": request});
                by_request.insert(request, i);
            }
            DECISION_KIND => {
                let Some(&i) = p["request_id"].as_str().and_then(|r| by_request.get(r)) else {
                    continue;
                };
                out[i].permission["decision"] = p["decision"].clone();
                out[i].permission["by"] = p["by"].clone();
            }
            DIRECT_KIND => {
                let (text, cut) = cap(&p["content"]);
                let ended = e.created_at;
                let duration = p["duration_ms"].as_i64();
                out.push(ToolCallEntry {
                    id: p["id"].as_str().unwrap_or_default().to_string(),
                    tool: p["tool"].as_str().unwrap_or_default().to_string(),
                    kind: "direct".into(),
                    input: p["input"].clone(),
                    result: Some(text),
                    result_truncated: cut,
                    is_error: p["is_error"].as_bool(),
                    permission: json!({"decision": "allowed", "by": p["by"]}),
                    duration_ms: duration,
                    turn_id: None,
                    seq: e.seq as u64,
                    started_at: millis_to_rfc3339(ended - duration.unwrap_or(0)),
                    ended_at: Some(millis_to_rfc3339(ended)),
                    diff: p["diff"].as_str().map(str::to_string),
                });
            }
            _ => {}
        }
    }
    out
}

fn started_millis(events: &[StoredEvent], seq: u64) -> i64 {
    events
        .iter()
        .find(|e| e.seq as u64 == seq)
        .map(|e| e.created_at)
        .unwrap_or(0)
}

/// One page of `calls` under `f`, and the cursor of the next page.
pub fn page(calls: Vec<ToolCallEntry>, f: &ToolCallFilter) -> (Vec<ToolCallEntry>, Option<String>) {
    let limit = f.limit.clamp(1, MAX_PAGE);
    let mut matching = calls.into_iter().filter(|c| {
        c.seq > f.after
            && f.tool
                .as_deref()
                .is_none_or(|t| c.tool.eq_ignore_ascii_case(t))
    });
    let items: Vec<ToolCallEntry> = matching.by_ref().take(limit).collect();
    let next = match matching.next() {
        Some(_) => items.last().map(|c| c.seq.to_string()),
        None => None,
    };
    (items, next)
}

/// Per session, the live tool-status frames the bus has no event for (permission decisions).
#[derive(Default)]
pub struct ToolStatus {
    channels: Mutex<HashMap<String, broadcast::Sender<Value>>>,
}

impl ToolStatus {
    pub fn subscribe(&self, session: &str) -> broadcast::Receiver<Value> {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, tx| tx.receiver_count() > 0);
        map.entry(session.to_string())
            .or_insert_with(|| broadcast::channel(256).0)
            .subscribe()
    }

    fn publish(&self, session: &str, frame: Value) {
        let map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(session) {
            let _ = tx.send(frame);
        }
    }
}

/// The tool-status view of a session's events: start, permission request, result (with the
/// call's duration). `started` keeps what a result needs; everything else is `None`.
pub fn status_frame(ev: &Event, started: &mut HashMap<String, (String, Instant)>) -> Option<Value> {
    let now = || millis_to_rfc3339(store::now_millis());
    match ev {
        Event::ToolCall {
            id,
            name,
            input,
            client,
        } => {
            started.insert(id.clone(), (name.clone(), Instant::now()));
            let kind = if id.starts_with(DIRECT_ID_PREFIX) {
                "direct"
            } else {
                kind_of(name, *client)
            };
            Some(
                json!({"type": "tool_started", "id": id, "tool": name, "kind": kind,
                        "input": input, "at": now()}),
            )
        }
        Event::PermissionRequest {
            request_id,
            tool_name,
            input,
            tool_use_id,
        } => Some(
            json!({"type": "permission_requested", "request_id": request_id,
                         "tool": tool_name, "input": input, "tool_use_id": tool_use_id,
                         "at": now()}),
        ),
        Event::ToolResult {
            tool_use_id,
            is_error,
            ..
        } => {
            let (tool, since) = started.remove(tool_use_id)?;
            Some(
                json!({"type": "tool_result", "id": tool_use_id, "tool": tool,
                        "is_error": is_error, "duration_ms": since.elapsed().as_millis() as u64,
                        "at": now()}),
            )
        }
        _ => None,
    }
}

/// A direct call's reply.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DirectCall {
    pub id: String,
    pub tool: String,
    pub is_error: bool,
    pub content: String,
    pub data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    pub duration_ms: u64,
    /// The call's entry in the session's history.
    pub seq: u64,
}

impl From<DirectToolError> for TurnError {
    fn from(e: DirectToolError) -> Self {
        match e {
            DirectToolError::Invalid { param, message } => TurnError::invalid(param, message),
            DirectToolError::Confined(c) => confined(c),
            DirectToolError::Io(e) => TurnError::Claude(crate::claude::ClaudeError::protocol(
                format!("direct tool: {e}"),
            )),
        }
    }
}

/// A path outside is a 403 naming it; an unusable one a 400 naming it.
pub fn confined(e: ConfineError) -> TurnError {
    match e {
        ConfineError::Invalid { .. } => TurnError::invalid("path", e.to_string()),
        other => TurnError::Forbidden(other.to_string()),
    }
}

impl Conversations {
    /// The confinement of a session's workspace (made if it is not there yet: a temporary
    /// workspace appears with the session's first process).
    pub(crate) fn confinement(&self, workspace: &str) -> Result<Confinement, TurnError> {
        let ws = std::path::PathBuf::from(workspace);
        std::fs::create_dir_all(&ws).map_err(|e| {
            TurnError::Claude(crate::claude::ClaudeError::protocol(format!(
                "the workspace is not usable: {e}"
            )))
        })?;
        // The same confinement as the model's own tool calls (see `launch`).
        self.workspace_confinement(&ws).map_err(confined)
    }

    /// Run a tool on a session's workspace, without the model: recorded in its history and
    /// shown to its watchers like the model's calls. `by` names the caller.
    pub async fn direct_tool(
        self: &Arc<Self>,
        id: &str,
        tool: DirectTool,
        input: Value,
        by: Option<String>,
    ) -> Result<DirectCall, TurnError> {
        let info = self
            .session(id)
            .await
            .ok_or_else(|| TurnError::NotFound(format!("No session with the id '{id}'")))?;
        let name = tool.cli_name();
        if !self.cfg.builtin_tools.iter().any(|t| t == name) {
            return Err(TurnError::Forbidden(format!(
                "The tool '{name}' is not allowed by this gateway's policy (builtin_tools)"
            )));
        }
        if !info.tools.iter().any(|t| t == name) {
            return Err(TurnError::Forbidden(format!(
                "The tool '{name}' is not among session {id}'s tools"
            )));
        }
        if info.settings.denied_tools.iter().any(|t| t == name) {
            return Err(TurnError::Forbidden(format!(
                "The tool '{name}' is denied by session {id}'s tool permissions"
            )));
        }
        let conf = self.confinement(&info.workspace)?;
        let call_id = format!("{DIRECT_ID_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let bus = self.sessions.lock().get(id).map(|s| s.bus.clone());
        // The call is stored once it ended; until then watchers see it after the last entry.
        let before = self
            .store
            .append_events(id, DIRECT_TURN, &[])
            .await
            .unwrap_or(0);
        let stamp = |event: Event, seq: i64, stored: bool, at_millis: i64| Stamped {
            event,
            seq: u64::try_from(seq).unwrap_or(0),
            stored,
            turn_id: Some(DIRECT_TURN.into()),
            at_millis,
        };
        if let Some(bus) = &bus {
            let _ = bus.send(stamp(
                Event::ToolCall {
                    id: call_id.clone(),
                    name: name.into(),
                    input: input.clone(),
                    client: false,
                },
                before,
                false,
                store::now_millis(),
            ));
        }
        let mutates = matches!(
            tool,
            DirectTool::Edit | DirectTool::Write | DirectTool::Bash
        );
        if mutates {
            // The files as the history has them so far (a model turn may have just changed
            // them), then again after the call.
            self.checkpoint(id, &info.workspace).await;
        }
        let t0 = Instant::now();
        let result = direct_tools::run(tool, &input, &conf).await;
        let duration_ms = t0.elapsed().as_millis() as u64;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                // Watchers saw it start: they see it end too.
                if let Some(bus) = &bus {
                    let _ = bus.send(stamp(
                        Event::ToolResult {
                            tool_use_id: call_id.clone(),
                            content: json!(e.to_string()),
                            is_error: true,
                        },
                        before,
                        false,
                        store::now_millis(),
                    ));
                }
                return Err(e.into());
            }
        };
        let ToolOutput {
            content,
            data,
            is_error,
            diff,
        } = out;
        let by = by.unwrap_or_else(|| "client".into());
        let payload = json!({"id": call_id, "tool": name, "input": input, "content": content,
                             "is_error": is_error, "duration_ms": duration_ms, "by": by,
                             "diff": diff});
        let at = store::now_millis();
        let seq = self
            .store
            .append_events_at(id, DIRECT_TURN, at, &[(DIRECT_KIND, payload)])
            .await
            .map_err(|e| {
                TurnError::Claude(crate::claude::ClaudeError::protocol(format!("store: {e}")))
            })?;
        if let Some(bus) = &bus {
            let _ = bus.send(stamp(
                Event::ToolResult {
                    tool_use_id: call_id.clone(),
                    content: json!(content),
                    is_error,
                },
                seq,
                true,
                at,
            ));
        }
        if matches!(
            tool,
            DirectTool::Edit | DirectTool::Write | DirectTool::Bash
        ) {
            self.checkpoint(id, &info.workspace).await;
        }
        Ok(DirectCall {
            id: call_id,
            tool: name.into(),
            is_error,
            content,
            data,
            diff,
            duration_ms,
            seq: seq as u64,
        })
    }

    /// The session's tool calls, oldest first, one page.
    pub async fn tool_calls(
        self: &Arc<Self>,
        id: &str,
        f: &ToolCallFilter,
    ) -> Result<(Vec<ToolCallEntry>, Option<String>), TurnError> {
        if self.session(id).await.is_none() {
            return Err(TurnError::NotFound(format!(
                "No session with the id '{id}'"
            )));
        }
        let events = self
            .store
            .list_events(id, 0, store::MAX_EVENTS_PER_CALL)
            .await
            .map_err(|e| {
                TurnError::Claude(crate::claude::ClaudeError::protocol(format!("store: {e}")))
            })?;
        Ok(page(fold(&events), f))
    }

    /// Answer a permission request, recording the decision and who made it.
    pub async fn answer_permission_by(
        self: &Arc<Self>,
        id: &str,
        request_id: &str,
        response: Value,
        by: Option<String>,
    ) -> Result<(), TurnError> {
        let decision = match response["behavior"].as_str() {
            Some("allow") => "allowed",
            _ => "denied",
        };
        self.answer_permission(id, request_id, response)?;
        // Who answered: the key (its label) that gave the answer over the API or the console.
        self.hooks.audit(
            crate::domain::audit::Entry::new(crate::domain::audit::kind::PERMISSION_DECISION)
                .by_label(by.clone())
                .session(id)
                .subject(request_id)
                .detail(
                    json!({"decision": decision, "by": by.as_deref().map_or_else(
                    || "client".to_string(), |l| format!("key:{l}")),
                    "request_id": request_id, "stage": "asked"}),
                ),
        );
        let by = by.unwrap_or_else(|| "client".into());
        let payload = json!({"request_id": request_id, "decision": decision, "by": by});
        self.tool_status.publish(
            id,
            json!({"type": "permission_decided", "request_id": request_id, "decision": decision,
                   "by": by, "at": millis_to_rfc3339(store::now_millis())}),
        );
        let (store, session) = (self.store.clone(), id.to_string());
        self.write(async move {
            let _ = store
                .append_events(&session, "permission", &[(DECISION_KIND, payload)])
                .await;
        });
        Ok(())
    }

    /// A session's events and its permission decisions, for the tool-status stream.
    pub async fn watch_tools(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<(broadcast::Receiver<Stamped>, broadcast::Receiver<Value>), TurnError> {
        let status = self.tool_status.subscribe(id);
        Ok((self.watch(id).await?, status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: i64, kind: &str, payload: Value, at: i64) -> StoredEvent {
        StoredEvent {
            session_id: "s".into(),
            seq,
            turn_id: "t1".into(),
            kind: kind.into(),
            payload,
            created_at: at,
        }
    }

    #[test]
    fn calls_join_results_permissions_and_direct_calls() {
        let long = "x".repeat(RESULT_CAP + 10);
        let events = vec![
            ev(1, "user", json!({"content": "hi"}), 1000),
            ev(
                2,
                "tool_call",
                json!({"id": "toolu_1", "name": "Bash", "input": {"command": "ls"}, "client": false}),
                1000,
            ),
            ev(
                3,
                "permission_request",
                json!({"request_id": "r1", "tool_name": "Bash", "input": {"command": "ls"}}),
                1010,
            ),
            ev(
                4,
                DECISION_KIND,
                json!({"request_id": "r1", "decision": "allowed", "by": "key-abcd1234"}),
                1020,
            ),
            ev(
                5,
                "tool_result",
                json!({"tool_use_id": "toolu_1", "content": long, "is_error": false}),
                1500,
            ),
            ev(
                6,
                "tool_call",
                json!({"id": "toolu_2", "name": "mcp__client__w", "input": {}, "client": true}),
                1600,
            ),
            ev(
                7,
                DIRECT_KIND,
                json!({"id": "direct_1", "tool": "Read", "input": {"file_path": "a"}, "content": "1\ta", "is_error": false, "duration_ms": 3, "by": "client"}),
                2000,
            ),
        ];
        let calls = fold(&events);
        assert_eq!(calls.len(), 3);
        assert_eq!(
            calls[0].permission,
            json!({"decision": "allowed", "by": "key-abcd1234", "request_id": "r1"})
        );
        assert_eq!(calls[0].duration_ms, Some(500));
        assert!(calls[0].result_truncated);
        assert_eq!(calls[0].result.as_ref().unwrap().len(), RESULT_CAP);
        assert_eq!(calls[1].kind, "client");
        assert_eq!(calls[1].result, None);
        assert_eq!(calls[2].kind, "direct");
        assert_eq!(calls[2].turn_id, None);
        let (p1, next) = page(
            calls.clone(),
            &ToolCallFilter {
                limit: 2,
                ..Default::default()
            },
        );
        assert_eq!(p1.len(), 2);
        assert_eq!(next.as_deref(), Some("6"));
        let (p2, next) = page(
            calls.clone(),
            &ToolCallFilter {
                limit: 2,
                after: 6,
                ..Default::default()
            },
        );
        assert_eq!((p2.len(), next), (1, None));
        let (only, _) = page(
            calls,
            &ToolCallFilter {
                limit: 10,
                tool: Some("read".into()),
                ..Default::default()
            },
        );
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn status_frames_time_results() {
        let mut started = HashMap::new();
        let call = Event::ToolCall {
            id: "direct_x".into(),
            name: "Read".into(),
            input: json!({}),
            client: false,
        };
        assert_eq!(status_frame(&call, &mut started).unwrap()["kind"], "direct");
        let res = Event::ToolResult {
            tool_use_id: "direct_x".into(),
            content: json!("ok"),
            is_error: false,
        };
        let f = status_frame(&res, &mut started).unwrap();
        assert_eq!(f["type"], "tool_result");
        assert!(f["duration_ms"].is_u64());
        assert!(status_frame(&Event::TextDelta { text: "x".into() }, &mut started).is_none());
    }
}
