//! Persistence: the records that outlive processes and restarts, and the [`Store`] trait that
//! keeps them.
//!
//! Owns: sessions (what a conversation is and which CLI session serves it), the events needed
//! to show a session's history, tool-call records and usage per request. Sessions are records;
//! processes are a cache in front of them.
//!
//! Must not: know about HTTP, protocol adapters or the CLI. Records here are plain data with
//! strings for ids (UUIDs) and `i64` unix milliseconds for timestamps, and nothing
//! backend-specific appears in the trait: [`SqliteStore`] (the default) and [`PgStore`] both
//! implement it, with the queries they share in `sql`, and [`open`] picks one from the
//! `database_url` setting. Validating values (statuses, sources, event kinds) is the caller's job; the
//! store only enforces identity, uniqueness and ordering.

mod open;
mod postgres;
mod sql;
mod sqlite;

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use open::{open, redact_url, DatabaseUrl};
pub use postgres::{scratch, PgStore};
pub use sql::usage::{UsageGroup, UsageGroupBy, UsageQuery};
pub use sqlite::{Durability, SqliteStore};

/// Values of [`Session::status`].
pub mod status {
    pub const IDLE: &str = "idle";
    pub const RUNNING: &str = "running";
    pub const AWAITING_TOOLS: &str = "awaiting_tools";
    pub const CLOSED: &str = "closed";
    pub const ERROR: &str = "error";
}

/// Values of [`Session::source`]: which API created the session.
pub mod source {
    pub const NATIVE: &str = "native";
    pub const OPENAI: &str = "openai";
    pub const ANTHROPIC: &str = "anthropic";
}

/// Default and largest page size of [`Store::list_sessions`].
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;
/// Largest number of events one [`Store::list_events`] call returns.
pub const MAX_EVENTS_PER_CALL: u32 = 10_000;

/// The store's one error type.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record asked for (or one it refers to, such as the session of an event) is missing.
    #[error("not found: {0}")]
    NotFound(String),
    /// The write would break a uniqueness rule (an id or a history key already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller passed something the store cannot use (a malformed page cursor).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Opening the database or running its migrations failed.
    #[error("store start-up failed: {0}")]
    Open(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(d.message().to_string())
            }
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                StoreError::NotFound(format!("referenced record ({})", d.message()))
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// A conversation as the gateway knows it, whether or not a process serves it right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    /// The Claude Code session id (`--session-id` / `--resume`).
    pub cli_session_id: String,
    pub workspace: String,
    /// The workspace was made for this session and is removed with it.
    pub workspace_is_temp: bool,
    pub model: String,
    pub agent: Option<String>,
    pub permission_mode: Option<String>,
    pub system_prompt: Option<String>,
    /// Built-in tools that run without a permission request.
    pub allowed_tools: Vec<String>,
    /// Built-in tools the model may use (native sessions).
    pub tools: Vec<String>,
    pub forked_from: Option<String>,
    pub title: Option<String>,
    /// One of [`status`].
    pub status: String,
    /// Hash of the message history this session currently ends at. At most one session holds
    /// a given key; change it only with [`Store::set_history_key`].
    pub history_key: Option<String>,
    /// One of [`source`].
    pub source: String,
    /// The uuid of the last transcript line of the last turn that ended cleanly.
    pub transcript_leaf: Option<String>,
    /// The uuid the next user line carries: a transcript holding it holds a turn that never
    /// ended, and is cut back to the line before it.
    pub turn_mark: Option<String>,
    /// Who made it (`domain::tenants::Caller::owner`): `""` when the gateway had no keys. Set at
    /// creation; [`Store::update_session`] never changes it.
    pub owner: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds; set by the store on every update.
    pub updated_at: i64,
}

impl Session {
    /// A new idle session with fresh UUIDs for `id` and `cli_session_id`, stamped now.
    /// Every field is public: adjust the rest before [`Store::create_session`].
    pub fn new(
        workspace: impl Into<String>,
        model: impl Into<String>,
        source: impl Into<String>,
    ) -> Session {
        let now = now_millis();
        Session {
            id: uuid::Uuid::new_v4().to_string(),
            cli_session_id: uuid::Uuid::new_v4().to_string(),
            workspace: workspace.into(),
            workspace_is_temp: false,
            model: model.into(),
            agent: None,
            permission_mode: None,
            system_prompt: None,
            allowed_tools: Vec::new(),
            tools: Vec::new(),
            forked_from: None,
            title: None,
            status: status::IDLE.to_string(),
            history_key: None,
            source: source.into(),
            transcript_leaf: None,
            turn_mark: None,
            owner: String::new(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// One event of a session's history (a user message, assistant text, thinking, a tool call
/// or result, an error, a result). The payload's shape belongs to whoever writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub session_id: String,
    /// Per session, 1-based, gapless, assigned by the store.
    pub seq: i64,
    pub turn_id: String,
    pub kind: String,
    pub payload: Value,
    /// Unix milliseconds, assigned by the store.
    pub created_at: i64,
}

/// One tool call the model made, and (once known) how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// The model's `tool_use` id (unique within a session).
    pub id: String,
    pub session_id: String,
    pub turn_id: String,
    pub tool: String,
    /// `"client"` or `"builtin"`.
    pub kind: String,
    /// Size of the call's JSON input.
    pub argument_bytes: i64,
    /// `"ok"`, `"error"`, `"denied"` or `"expired"`; `None` while pending.
    pub outcome: Option<String>,
    pub duration_ms: Option<i64>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Usage of one request, as the CLI reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub id: String,
    pub session_id: String,
    pub turn_id: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
    /// Cost the CLI reported, when it did.
    pub cost_usd: Option<f64>,
    pub duration_ms: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The key whose turn it was (see `Session::owner`).
    #[serde(default)]
    pub owner: String,
    /// The end user the client named (OpenAI `user`, Anthropic `metadata.user_id`).
    #[serde(default)]
    pub end_user: Option<String>,
    /// How the turn ended: `completed`, `tool_calls`, `stop_sequence`, or an error label.
    #[serde(default)]
    pub outcome: String,
}

/// Sums over a session's [`UsageRecord`]s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Number of usage records.
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
    /// Sum of the reported costs; `None` when no record reported one.
    pub cost_usd: Option<f64>,
    pub duration_ms: i64,
}

/// A reply a compatible API keeps for later requests to refer to (a Responses API response, an
/// Anthropic thread message). The body's shape belongs to the adapter that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReply {
    pub id: String,
    /// Which API's reply it is (`"response"`, `"thread"`).
    pub kind: String,
    /// Who made it: only the same owner may read it.
    pub owner: String,
    /// The reply this one continues; `None` starts a conversation.
    pub previous_id: Option<String>,
    pub body: Value,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A custom agent of the gateway's (see `domain::agents`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub name: String,
    pub description: String,
    pub prompt: String,
    /// The tools it may use; `None`: every tool its session has.
    pub tools: Option<Vec<String>>,
    pub model: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which sessions [`Store::list_sessions`] returns, and which page of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionFilter {
    pub status: Option<String>,
    pub source: Option<String>,
    pub model: Option<String>,
    /// Only the sessions this owner made.
    pub owner: Option<String>,
    /// Only the sessions of this project (`sessions.project_id`).
    pub project_id: Option<String>,
    /// Page size: 0 means [`DEFAULT_PAGE_SIZE`]; more than [`MAX_PAGE_SIZE`] is capped.
    pub limit: u32,
    /// `next_cursor` of the previous page; `None` for the first.
    pub cursor: Option<String>,
}

impl Default for SessionFilter {
    fn default() -> Self {
        SessionFilter {
            status: None,
            source: None,
            model: None,
            owner: None,
            project_id: None,
            limit: DEFAULT_PAGE_SIZE,
            cursor: None,
        }
    }
}

impl SessionFilter {
    /// The page size actually used.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        }
    }
}

/// One page of a listing. `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// What a finished turn writes (see [`Store::record_turn`]): each part is optional, and they
/// are written in the order they refer to each other.
#[derive(Debug, Clone, Default)]
pub struct TurnRecord {
    pub session_id: String,
    pub row: TurnRow,
    /// `Some(key)`: the session's history key is now `key` (`None` clears it), taken from any
    /// other session that had it.
    pub history_key: Option<Option<String>>,
    pub usage: Option<UsageRecord>,
    pub tool_calls: Vec<ToolCallRecord>,
    /// History entries, numbered after the session's last, under `turn_id`.
    pub turn_id: String,
    pub events: Vec<(&'static str, Value)>,
}

/// What a turn does to its session's row.
#[derive(Debug, Clone, Default)]
pub enum TurnRow {
    #[default]
    Unchanged,
    /// The conversation's first turn: its record, as given.
    Create(Session),
    /// As given, unless a session is already kept under its id (which then stays as it is).
    CreateIfMissing(Session),
    /// Where the session's transcript now ends and its next turn starts.
    End(TurnEnd),
}

/// The fields of a session row a finished turn changes.
#[derive(Debug, Clone, Default)]
pub struct TurnEnd {
    pub status: String,
    pub cli_session_id: String,
    pub workspace: String,
    pub transcript_leaf: Option<String>,
    pub turn_mark: Option<String>,
}

/// Where records live. Every method is safe to call from many tasks at once.
///
/// Reads of a missing record return `Ok(None)` (or an empty list); writes that need a missing
/// record return [`StoreError::NotFound`].
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores a new session as given (timestamps included). [`StoreError::Conflict`] when the
    /// id, or its history key, is already taken.
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;

    async fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError>;

    /// Writes every field except `id`, `created_at` and `history_key` (see
    /// [`Store::set_history_key`]), sets `updated_at` to now, and returns the stored record.
    async fn update_session(&self, session: &Session) -> Result<Session, StoreError>;

    /// Deletes the session with its events, tool calls and usage.
    async fn delete_session(&self, id: &str) -> Result<(), StoreError>;

    /// Newest first (`created_at` desc, then `id` desc), filtered, one page at a time.
    /// Pagination is by keyset, so pages stay stable while sessions are added.
    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Page<Session>, StoreError>;

    async fn find_session_by_history_key(&self, key: &str) -> Result<Option<Session>, StoreError>;

    /// Sets (or clears, with `None`) the session's history key, taking it away from any other
    /// session that held it, atomically. Also sets `updated_at`.
    async fn set_history_key(&self, session_id: &str, key: Option<&str>) -> Result<(), StoreError>;

    /// Appends `(kind, payload)` events in one transaction, numbered after the session's last
    /// event with no gaps, and returns the last sequence number (the current one when `events`
    /// is empty).
    async fn append_events(
        &self,
        session_id: &str,
        turn_id: &str,
        events: &[(&str, Value)],
    ) -> Result<i64, StoreError> {
        self.append_events_at(session_id, turn_id, now_millis(), events)
            .await
    }

    /// [`Store::append_events`] with the time the events happened (Unix milliseconds), so a
    /// live event and its history entry carry the same timestamp.
    async fn append_events_at(
        &self,
        session_id: &str,
        turn_id: &str,
        at_millis: i64,
        events: &[(&str, Value)],
    ) -> Result<i64, StoreError>;

    /// The newest event of `kind` whose payload's JSON text contains `needle`, however long
    /// the history is.
    async fn last_event_containing(
        &self,
        session_id: &str,
        kind: &str,
        needle: &str,
    ) -> Result<Option<StoredEvent>, StoreError>;

    /// Events with `seq > after_seq`, in order, at most `limit` (capped at
    /// [`MAX_EVENTS_PER_CALL`]).
    async fn list_events(
        &self,
        session_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Inserts a tool call, or, when one with the same session and id exists, fills in its
    /// `outcome` and `duration_ms` (values already set stay when the new ones are `None`).
    async fn record_tool_call(&self, call: &ToolCallRecord) -> Result<(), StoreError>;

    /// A session's tool calls, oldest first.
    async fn list_tool_calls(&self, session_id: &str) -> Result<Vec<ToolCallRecord>, StoreError>;

    /// [`StoreError::Conflict`] when the id is already recorded.
    async fn record_usage(&self, usage: &UsageRecord) -> Result<(), StoreError>;

    /// Writes a finished turn's records together, in one transaction: all of them or none.
    /// [`StoreError::NotFound`] when [`TurnRow::End`] names no session.
    async fn record_turn(&self, turn: &TurnRecord) -> Result<(), StoreError>;

    async fn usage_for_session(&self, session_id: &str) -> Result<UsageTotals, StoreError>;

    /// Stores a reply, replacing one with the same id.
    async fn put_reply(&self, reply: &StoredReply) -> Result<(), StoreError>;

    async fn get_reply(&self, id: &str) -> Result<Option<StoredReply>, StoreError>;

    /// Whether there was one to delete.
    async fn delete_reply(&self, id: &str) -> Result<bool, StoreError>;

    /// Deletes the replies made before `created_before` (unix ms); returns how many.
    async fn delete_replies_before(&self, created_before: i64) -> Result<u64, StoreError>;

    /// Stores a custom agent, replacing one with the same name (keeping its `created_at`).
    async fn put_agent(&self, agent: &AgentRecord) -> Result<(), StoreError>;

    /// Every custom agent, by name.
    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    /// Whether there was one to delete.
    async fn delete_agent(&self, name: &str) -> Result<bool, StoreError>;

    /// A session's run-time settings (a JSON object), replacing what was there.
    async fn put_session_settings(
        &self,
        session_id: &str,
        settings: &Value,
    ) -> Result<(), StoreError>;

    async fn get_session_settings(&self, session_id: &str) -> Result<Option<Value>, StoreError>;

    /// A session's usage per model (`requests` counts its turns), by model name.
    async fn usage_by_model(
        &self,
        session_id: &str,
    ) -> Result<Vec<(String, UsageTotals)>, StoreError>;

    /// Stores an API key, replacing the one with the same id ([`StoreError::Conflict`] when
    /// its secret hash is another key's).
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;

    /// Every stored API key, revoked ones included, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// `(newest updated_at, count)` of the stored keys: it changes whenever any key does.
    async fn api_keys_version(&self) -> Result<(i64, i64), StoreError>;

    // --- projects (isolation) ---

    /// Stores a project, replacing the one with its id (its owner and creation time stay).
    async fn put_project(&self, project: &ProjectRecord) -> Result<(), StoreError>;

    async fn get_project(&self, id: &str) -> Result<Option<ProjectRecord>, StoreError>;

    /// Newest first; only `owner`'s when given.
    async fn list_projects(&self, owner: Option<&str>) -> Result<Vec<ProjectRecord>, StoreError>;

    /// False when there was none.
    async fn delete_project(&self, id: &str) -> Result<bool, StoreError>;

    /// How many sessions name this project.
    async fn count_project_sessions(&self, project_id: &str) -> Result<i64, StoreError>;

    /// Put a session in a project (`None`: in none). [`StoreError::NotFound`] without it.
    async fn set_session_project(
        &self,
        session_id: &str,
        project_id: Option<&str>,
    ) -> Result<(), StoreError>;

    /// The project of each of these sessions that has one, by session id.
    async fn session_projects(
        &self,
        session_ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, StoreError>;

    // --- audit ---
    /// Append entries to the audit log, in order, in one transaction. An entry without a
    /// `key_id` gets its session's owner.
    async fn append_audit(&self, entries: &[AuditRecord]) -> Result<(), StoreError>;

    /// Audit entries under `filter`, newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;

    // --- limits ---
    /// Usage rows summed per group (see [`UsageQuery`]), by group.
    async fn usage_report(&self, query: &UsageQuery) -> Result<Vec<UsageGroup>, StoreError>;

    /// `(owner, UTC day start in unix ms, USD)` per key and day since `since` (unix ms): what
    /// the budgets start from.
    async fn usage_spend_since(&self, since: i64) -> Result<Vec<(String, i64, f64)>, StoreError>;

    // --- session leases (several instances; see `domain::leases`) ---
    /// Take `session_id`'s lease for `holder` for `ttl_ms` (by the database's clock) when it
    /// is free, released or expired, in one atomic step. `Some(epoch)`: taken, with the count
    /// of every acquire of this lease so far (1 for the first). `None`: another hold is in
    /// force (even one of the same holder: a lease is held once at a time).
    async fn acquire_lease(
        &self,
        session_id: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<i64>, StoreError>;

    /// Extend the hold `(holder, epoch)` by `ttl_ms` from now. False: it is no longer that
    /// hold (another one took the lease over after it expired).
    async fn renew_lease(
        &self,
        session_id: &str,
        holder: &str,
        epoch: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError>;

    /// End the hold `(holder, epoch)`; anyone may take the lease at once. A no-op when that
    /// hold already ended.
    async fn release_lease(
        &self,
        session_id: &str,
        holder: &str,
        epoch: i64,
    ) -> Result<(), StoreError>;
}

/// A project (see `domain::projects`): defaults for the sessions made in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub id: String,
    /// Who made it (`Caller::owner`), as for sessions.
    pub owner: String,
    pub name: String,
    pub description: String,
    /// JSON object: the sessions' defaults (`domain::projects::ProjectDefaults`).
    pub defaults: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored API key. Only the SHA-256 of its secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public id (`key_…`): what the key's records name as their owner.
    pub id: String,
    pub name: String,
    /// `admin` or `user`.
    pub role: String,
    /// The secret's first characters, to recognize it.
    pub prefix: String,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// JSON object: what the key may use (see `domain::tenants::KeyPolicy`).
    pub policy: Value,
    /// JSON object: its rate, concurrency and budget limits (`domain::tenants::KeyLimits`).
    pub limits: Value,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// One entry of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Increasing; set by the store (ignored on append).
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub kind: String,
    /// The acting key's owner id; `None`: the session's owner.
    pub key_id: Option<String>,
    pub key_label: Option<String>,
    pub session_id: Option<String>,
    /// What the entry is about: a tool's name, a key's id.
    pub subject: Option<String>,
    /// A JSON object; never a secret.
    pub detail: Value,
}

/// Which audit entries to list. `before` is the previous page's last id.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub key: Option<String>,
    pub session: Option<String>,
    pub kind: Option<String>,
    /// Unix milliseconds, inclusive.
    pub from: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub to: Option<i64>,
    pub before: Option<i64>,
    pub limit: usize,
}

pub use sql::audit::MAX_AUDIT_PAGE;

/// Now, in unix milliseconds.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_limit_defaults_and_caps() {
        let mut f = SessionFilter::default();
        assert_eq!(f.effective_limit(), 50);
        f.limit = 0;
        assert_eq!(f.effective_limit(), 50);
        f.limit = 7;
        assert_eq!(f.effective_limit(), 7);
        f.limit = 100_000;
        assert_eq!(f.effective_limit(), 500);
    }

    #[test]
    fn new_session_is_idle_with_fresh_ids() {
        let a = Session::new("/w", "sonnet", source::NATIVE);
        let b = Session::new("/w", "sonnet", source::NATIVE);
        assert_ne!(a.id, b.id);
        assert_ne!(a.id, a.cli_session_id);
        assert_eq!(a.status, status::IDLE);
        assert_eq!(a.created_at, a.updated_at);
        assert!(a.created_at > 1_600_000_000_000);
    }

    #[test]
    fn store_is_dyn_compatible() {
        fn takes(_: Option<std::sync::Arc<dyn Store>>) {}
        takes(None);
    }
}
