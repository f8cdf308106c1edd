//! The audit log: who did what, append-only, queryable by admins (issue 11 §6).
//!
//! Owns what an entry is (its kinds, its subject, its detail), the rules that keep it safe to
//! keep (a tool's input capped at [`INPUT_CAP`] bytes and marked truncated; anything named like
//! a secret, token or environment value dropped), and the background writer: [`AuditLog::record`]
//! only queues the entry, so a turn, a tool call or a request never waits on the database for
//! it. Entries are written in the order they were recorded, in batches.
//!
//! Must not: know HTTP, decide who may read the log (the admin API does), or ever change or
//! remove an entry.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::tenants::Caller;
use crate::store::{now_millis, AuditFilter, AuditRecord, Store, StoreError};

/// The kinds of entry.
pub mod kind {
    /// A tool call: the model's (built-in, client or MCP) or a direct one.
    pub const TOOL_CALL: &str = "tool_call";
    /// A permission decision on a tool call, with who decided.
    pub const PERMISSION_DECISION: &str = "permission_decision";
    pub const KEY_CREATED: &str = "key_created";
    pub const KEY_ROTATED: &str = "key_rotated";
    pub const KEY_REVOKED: &str = "key_revoked";
    pub const SESSION_DELETED: &str = "session_deleted";
    /// A session's settings, agent or tool permissions changed.
    pub const SETTINGS_CHANGED: &str = "settings_changed";
    /// A policy refusal of a request (a key asked beyond its policy).
    pub const POLICY_REFUSED: &str = "policy_refused";
    /// A hook subscription's decision on an event other than a tool call.
    pub const HOOK_DECISION: &str = "hook_decision";

    pub const ALL: &[&str] = &[
        TOOL_CALL,
        PERMISSION_DECISION,
        KEY_CREATED,
        KEY_ROTATED,
        KEY_REVOKED,
        SESSION_DELETED,
        SETTINGS_CHANGED,
        POLICY_REFUSED,
        HOOK_DECISION,
    ];
}

/// Bytes of a tool's input an entry keeps.
pub const INPUT_CAP: usize = 2048;
/// Entries written in one transaction at most.
const BATCH: usize = 256;

/// Field names whose values an entry never keeps, whatever the object they are in.
const SECRET_NAMES: &[&str] = &[
    "secret",
    "token",
    "password",
    "api_key",
    "apikey",
    "authorization",
    "env",
    "cli_env",
    "secret_hash",
];

/// A new entry, before the store numbers it.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub kind: &'static str,
    pub key_id: Option<String>,
    pub key_label: Option<String>,
    pub session_id: Option<String>,
    pub subject: Option<String>,
    pub detail: Value,
}

impl Entry {
    pub fn new(kind: &'static str) -> Entry {
        Entry {
            kind,
            detail: json!({}),
            ..Entry::default()
        }
    }

    /// Acted by `caller` (its owner id and label).
    pub fn by(mut self, caller: &Caller) -> Entry {
        self.key_id = Some(caller.owner.clone());
        self.key_label = caller.label();
        self
    }

    /// Acted by a key known only by its label (a permission answered over the API); the entry's
    /// key id is then its session's owner.
    pub fn by_label(mut self, label: Option<String>) -> Entry {
        self.key_label = label;
        self
    }

    pub fn session(mut self, id: &str) -> Entry {
        self.session_id = Some(id.to_string());
        self
    }

    pub fn subject(mut self, s: &str) -> Entry {
        self.subject = Some(s.to_string());
        self
    }

    pub fn detail(mut self, d: Value) -> Entry {
        self.detail = scrub(d);
        self
    }

    fn into_record(self) -> AuditRecord {
        AuditRecord {
            id: 0,
            at: now_millis(),
            kind: self.kind.to_string(),
            key_id: self.key_id,
            key_label: self.key_label,
            session_id: self.session_id,
            subject: self.subject,
            detail: self.detail,
        }
    }
}

/// A tool's input as an entry keeps it: `(input, truncated)`. Over [`INPUT_CAP`] bytes of JSON
/// it becomes the first bytes of that JSON, as a string, cut at a character boundary.
pub fn cap_input(input: &Value) -> (Value, bool) {
    let input = scrub(input.clone());
    let text = input.to_string();
    if text.len() <= INPUT_CAP {
        return (input, false);
    }
    let mut end = INPUT_CAP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (Value::String(text[..end].to_string()), true)
}

/// `v` without any field named like a secret (at any depth).
pub fn scrub(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !SECRET_NAMES.contains(&k.to_ascii_lowercase().as_str()))
                .map(|(k, v)| (k, scrub(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(scrub).collect()),
        other => other,
    }
}

/// The kind of a model's tool call, by its name.
pub fn tool_kind(name: &str) -> &'static str {
    if name.starts_with(crate::claude::tools::PREFIX) {
        "client"
    } else if name.starts_with("mcp__") {
        "mcp"
    } else {
        "builtin"
    }
}

/// A tool call's entry: `kind` is `builtin`, `client`, `mcp` or `direct`.
pub fn tool_call(session: &str, tool: &str, kind: &str, input: &Value, detail: Value) -> Entry {
    let (input, truncated) = cap_input(input);
    let mut d = json!({"tool_kind": kind, "input": input, "input_truncated": truncated});
    if let (Some(d), Value::Object(extra)) = (d.as_object_mut(), scrub(detail)) {
        d.extend(extra);
    }
    let mut e = Entry::new(kind::TOOL_CALL).session(session).subject(tool);
    e.detail = d;
    e
}

/// A session deleted by `caller`.
pub fn session_deleted(log: &AuditLog, caller: &Caller, session: &str) {
    log.record(
        Entry::new(kind::SESSION_DELETED)
            .by(caller)
            .session(session)
            .subject(session),
    );
}

/// A session's `what` (`settings`, `agent`, `tool_permissions`) changed to `change` (the
/// request's body: no secret can be set through these).
pub fn settings_changed(log: &AuditLog, caller: &Caller, session: &str, what: &str, change: Value) {
    log.record(
        Entry::new(kind::SETTINGS_CHANGED)
            .by(caller)
            .session(session)
            .subject(what)
            .detail(json!({"change": change})),
    );
}

/// A key created, rotated or revoked (`kind`) by `by` (a caller's label, or `cli` for `ccgw
/// keys`); the key's id is the subject, and its name, role and policy the detail, never its
/// secret or hash.
pub fn key_event(
    log: &AuditLog,
    kind: &'static str,
    by: Option<&Caller>,
    key: &super::tenants::KeyInfo,
) {
    let mut e = Entry::new(kind).subject(&key.id).detail(json!({
        "name": key.name,
        "role": key.role,
        "policy": key.policy,
        "limits": key.limits,
        "expires_at": key.expires_at,
    }));
    e = match by {
        Some(c) => e.by(c),
        None => {
            e.key_id = Some(String::new());
            e.key_label = Some("cli".into());
            e
        }
    };
    log.record(e);
}

enum Msg {
    Entry(AuditRecord),
    Flush(oneshot::Sender<()>),
}

/// The audit log's writer: a queue in front of the store. Cloning shares it.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::UnboundedSender<Msg>,
    store: Arc<dyn Store>,
}

impl AuditLog {
    /// Start the writer task (it ends when every handle is dropped).
    pub fn start(store: Arc<dyn Store>) -> AuditLog {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let writer = store.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = Vec::new();
                let mut flushed = Vec::new();
                let mut next = Some(first);
                while let Some(m) = next.take() {
                    match m {
                        Msg::Entry(r) => batch.push(r),
                        Msg::Flush(done) => flushed.push(done),
                    }
                    if batch.len() < BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                if let Err(e) = writer.append_audit(&batch).await {
                    // The entries themselves may name what failed; their count is enough.
                    tracing::warn!(entries = batch.len(), error = %e, "could not write audit entries");
                }
                for done in flushed {
                    let _ = done.send(());
                }
            }
        });
        AuditLog { tx, store }
    }

    /// Queue an entry. Never waits.
    pub fn record(&self, e: Entry) {
        tracing::debug!(target: "ccgw::audit", kind = e.kind, subject = e.subject.as_deref(), session = e.session_id.as_deref(), "audit");
        let _ = self.tx.send(Msg::Entry(e.into_record()));
    }

    /// Record a request refused by its key's policy, and hand the refusal back.
    pub fn refused(
        &self,
        caller: &Caller,
        session: Option<&str>,
        d: super::policy::Denied,
    ) -> super::policy::Denied {
        let mut e = Entry::new(kind::POLICY_REFUSED)
            .by(caller)
            .subject(&d.param)
            .detail(json!({"param": d.param, "message": d.message}));
        if let Some(s) = session {
            e = e.session(s);
        }
        self.record(e);
        d
    }

    /// Wait (up to 10 s) until every entry queued so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
        }
    }

    /// A page of entries, newest first, with what was queued before the call included.
    pub async fn list(&self, filter: &AuditFilter) -> Result<AuditPage, StoreError> {
        self.flush().await;
        let limit = filter.limit.clamp(1, crate::store::MAX_AUDIT_PAGE);
        let mut f = filter.clone();
        f.limit = limit + 1;
        let mut rows = self.store.list_audit(&f).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = more
            .then(|| rows.last().map(|r| r.id.to_string()))
            .flatten();
        Ok(AuditPage {
            data: rows.into_iter().map(AuditView::of).collect(),
            next_cursor,
        })
    }
}

/// One entry as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub id: String,
    /// RFC 3339.
    pub time: String,
    pub kind: String,
    pub key: Value,
    pub session_id: Option<String>,
    pub subject: Option<String>,
    pub detail: Value,
}

impl AuditView {
    fn of(r: AuditRecord) -> AuditView {
        AuditView {
            id: r.id.to_string(),
            time: super::session_table::millis_to_rfc3339(r.at),
            kind: r.kind,
            key: json!({"id": r.key_id, "label": r.key_label}),
            session_id: r.session_id,
            subject: r.subject,
            detail: r.detail,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub data: Vec<AuditView>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_input_is_capped_and_marked() {
        let small = json!({"command": "ls"});
        assert_eq!(cap_input(&small), (small.clone(), false));
        let big = json!({"content": "é".repeat(3000)});
        let (v, cut) = cap_input(&big);
        assert!(cut);
        let s = v.as_str().expect("a string");
        assert!(
            s.len() <= INPUT_CAP && s.len() > INPUT_CAP - 4,
            "{}",
            s.len()
        );
    }

    #[test]
    fn secrets_are_dropped_at_any_depth() {
        let v = json!({"name": "k", "secret": "ccgw_x", "inner": [{"Token": "t", "ok": 1}],
                       "env": {"A": "b"}});
        assert_eq!(scrub(v), json!({"name": "k", "inner": [{"ok": 1}]}));
    }

    #[test]
    fn tool_kinds_by_name() {
        assert_eq!(tool_kind("Bash"), "builtin");
        assert_eq!(tool_kind("mcp__files__read"), "mcp");
        let client = format!("{}get_weather", crate::claude::tools::PREFIX);
        assert_eq!(tool_kind(&client), "client");
        let e = tool_call(
            "s",
            "Bash",
            "builtin",
            &json!({"command": "ls"}),
            json!({"outcome": "allowed"}),
        );
        assert_eq!(e.detail["outcome"], "allowed");
        assert_eq!(e.detail["input"]["command"], "ls");
        assert_eq!(e.detail["input_truncated"], false);
    }

    #[tokio::test]
    async fn entries_are_written_in_order_and_paged_newest_first() {
        let store: Arc<dyn Store> =
            Arc::new(crate::store::SqliteStore::open_in_memory().await.unwrap());
        let log = AuditLog::start(store);
        for i in 0..5 {
            log.record(Entry::new(kind::SETTINGS_CHANGED).subject(&format!("s{i}")));
        }
        log.record(Entry::new(kind::KEY_CREATED).subject("key_1"));
        let f = AuditFilter {
            kind: Some(kind::SETTINGS_CHANGED.into()),
            limit: 3,
            ..Default::default()
        };
        let p = log.list(&f).await.unwrap();
        let subjects: Vec<_> = p.data.iter().map(|e| e.subject.clone().unwrap()).collect();
        assert_eq!(subjects, ["s4", "s3", "s2"]);
        let before = p.next_cursor.unwrap().parse().unwrap();
        let p2 = log
            .list(&AuditFilter {
                before: Some(before),
                ..f
            })
            .await
            .unwrap();
        assert_eq!(p2.data.len(), 2);
        assert!(p2.next_cursor.is_none());
    }
}
