//! The SQLite [`Store`]: one database file in the data dir, WAL journal, a small pool,
//! migrations (from `migrations/sqlite/`, embedded in the binary) run at start-up.
//!
//! Owns: the SQL, the row mapping, the pool and its pragmas. Write transactions start with
//! `BEGIN IMMEDIATE`, so concurrent writers queue on SQLite's lock (within `busy_timeout`)
//! instead of failing when a read transaction tries to become a write one.
//!
//! Must not: know about HTTP or the CLI, or leak sqlx/SQLite types through the [`Store`] trait.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{agents, keys, projects, AgentRecord, ApiKeyRecord, ProjectRecord};
use super::{
    now_millis, replies, Page, Session, SessionFilter, Store, StoreError, StoredEvent, StoredReply,
    ToolCallRecord, UsageGroup, UsageQuery, UsageRecord, UsageTotals, MAX_EVENTS_PER_CALL,
};
use super::{AuditFilter, AuditRecord};

/// The files of `migrations/sqlite/`, embedded at compile time (`build.rs` makes a new file trigger a
/// rebuild). Never edit a migration that has shipped: its checksum is recorded, and start-up
/// fails on a mismatch.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connections in the pool of a file-backed store.
const POOL_SIZE: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

const SESSION_COLUMNS: &str = "id, cli_session_id, workspace, workspace_is_temp, model, agent, \
     permission_mode, system_prompt, allowed_tools, title, status, history_key, source, \
     created_at, updated_at, tools, forked_from, transcript_leaf, turn_mark, owner";

/// How durable a commit is (SQLite's `synchronous` under WAL; see `store_durability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Survives a crash of the gateway; the last commits may be lost on power loss.
    Normal,
    /// Survives power loss too: every commit waits for the disk.
    Full,
}

impl Durability {
    /// From the setting's value (`normal` or `full`, checked by the config).
    pub fn from_setting(v: &str) -> Durability {
        if v.eq_ignore_ascii_case("full") {
            Durability::Full
        } else {
            Durability::Normal
        }
    }
}

/// A [`Store`] in a SQLite database. Cheap to clone (it is a handle to one pool).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it and its parent directory if needed) the database at `path`, and
    /// brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, Durability::Normal).await
    }

    /// [`open`](Self::open), with the given commit durability.
    pub async fn open_with(path: &Path, durability: Durability) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open(format!("creating {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Normal => SqliteSynchronous::Normal,
                Durability::Full => SqliteSynchronous::Full,
            })
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(format!("opening {}: {e}", path.display())))?;
        Self::start(pool).await
    }

    /// A private in-memory database (for tests): one connection to a shared-cache memory
    /// database, kept open for the life of the store.
    pub async fn open_in_memory() -> Result<SqliteStore, StoreError> {
        // `sqlite::memory:` gives each call its own named shared-cache database.
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| StoreError::Open(e.to_string()))?
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // The database lives only as long as a connection to it: never recycle it.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        Self::start(pool).await
    }

    async fn start(pool: SqlitePool) -> Result<SqliteStore, StoreError> {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Open(format!("migrations: {e}")))?;
        Ok(SqliteStore { pool })
    }

    /// Closes every connection (checkpointing the WAL); later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn session_from_row(row: &SqliteRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.try_get("id")?,
        cli_session_id: row.try_get("cli_session_id")?,
        workspace: row.try_get("workspace")?,
        workspace_is_temp: row.try_get("workspace_is_temp")?,
        model: row.try_get("model")?,
        agent: row.try_get("agent")?,
        permission_mode: row.try_get("permission_mode")?,
        system_prompt: row.try_get("system_prompt")?,
        allowed_tools: row.try_get::<Json<Vec<String>>, _>("allowed_tools")?.0,
        tools: row.try_get::<Json<Vec<String>>, _>("tools")?.0,
        forked_from: row.try_get("forked_from")?,
        title: row.try_get("title")?,
        status: row.try_get("status")?,
        history_key: row.try_get("history_key")?,
        source: row.try_get("source")?,
        transcript_leaf: row.try_get("transcript_leaf")?,
        turn_mark: row.try_get("turn_mark")?,
        owner: row.try_get("owner")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn event_from_row(row: &SqliteRow) -> Result<StoredEvent, sqlx::Error> {
    Ok(StoredEvent {
        session_id: row.try_get("session_id")?,
        seq: row.try_get("seq")?,
        turn_id: row.try_get("turn_id")?,
        kind: row.try_get("kind")?,
        payload: row.try_get::<Json<Value>, _>("payload")?.0,
        created_at: row.try_get("created_at")?,
    })
}

fn tool_call_from_row(row: &SqliteRow) -> Result<ToolCallRecord, sqlx::Error> {
    Ok(ToolCallRecord {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        turn_id: row.try_get("turn_id")?,
        tool: row.try_get("tool")?,
        kind: row.try_get("kind")?,
        argument_bytes: row.try_get("argument_bytes")?,
        outcome: row.try_get("outcome")?,
        duration_ms: row.try_get("duration_ms")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A page cursor: the sort key of the last row of the page, opaque to callers.
fn encode_cursor(created_at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    let invalid = || StoreError::Invalid(format!("malformed cursor {cursor:?}"));
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (at, id) = text.split_once(':').ok_or_else(invalid)?;
    let at = at.parse::<i64>().map_err(|_| invalid())?;
    Ok((at, id.to_string()))
}

/// A missing referenced session, named.
fn session_ref_err(e: sqlx::Error, session_id: &str) -> StoreError {
    match StoreError::from(e) {
        StoreError::NotFound(_) => StoreError::NotFound(format!("session {session_id}")),
        other => other,
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_session(&self, s: &Session) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, cli_session_id, workspace, workspace_is_temp, model, agent, \
             permission_mode, system_prompt, allowed_tools, title, status, history_key, source, \
             created_at, updated_at, tools, forked_from, transcript_leaf, turn_mark, owner) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.cli_session_id)
        .bind(&s.workspace)
        .bind(s.workspace_is_temp)
        .bind(&s.model)
        .bind(&s.agent)
        .bind(&s.permission_mode)
        .bind(&s.system_prompt)
        .bind(Json(&s.allowed_tools))
        .bind(&s.title)
        .bind(&s.status)
        .bind(&s.history_key)
        .bind(&s.source)
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(Json(&s.tools))
        .bind(&s.forked_from)
        .bind(&s.transcript_leaf)
        .bind(&s.turn_mark)
        .bind(&s.owner)
        .execute(&self.pool)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(m) => {
                StoreError::Conflict(format!("session {} (id or history key taken): {m}", s.id))
            }
            other => other,
        })?;
        Ok(())
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(session_from_row).transpose()?)
    }

    async fn update_session(&self, s: &Session) -> Result<Session, StoreError> {
        let sql = format!(
            "UPDATE sessions SET cli_session_id = ?, workspace = ?, workspace_is_temp = ?, \
             model = ?, agent = ?, permission_mode = ?, system_prompt = ?, allowed_tools = ?, \
             title = ?, status = ?, source = ?, updated_at = ?, tools = ?, forked_from = ?, \
             transcript_leaf = ?, turn_mark = ? WHERE id = ? RETURNING {SESSION_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&s.cli_session_id)
            .bind(&s.workspace)
            .bind(s.workspace_is_temp)
            .bind(&s.model)
            .bind(&s.agent)
            .bind(&s.permission_mode)
            .bind(&s.system_prompt)
            .bind(Json(&s.allowed_tools))
            .bind(&s.title)
            .bind(&s.status)
            .bind(&s.source)
            .bind(now_millis())
            .bind(Json(&s.tools))
            .bind(&s.forked_from)
            .bind(&s.transcript_leaf)
            .bind(&s.turn_mark)
            .bind(&s.id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(session_from_row(&row)?),
            None => Err(StoreError::NotFound(format!("session {}", s.id))),
        }
    }

    async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("session {id}")));
        }
        Ok(())
    }

    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Page<Session>, StoreError> {
        let limit = filter.effective_limit();
        let after = filter.cursor.as_deref().map(decode_cursor).transpose()?;

        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE 1 = 1"
        ));
        if let Some(status) = &filter.status {
            q.push(" AND status = ").push_bind(status);
        }
        if let Some(source) = &filter.source {
            q.push(" AND source = ").push_bind(source);
        }
        if let Some(model) = &filter.model {
            q.push(" AND model = ").push_bind(model);
        }
        if let Some(owner) = &filter.owner {
            q.push(" AND owner = ").push_bind(owner);
        }
        if let Some(project) = &filter.project_id {
            q.push(" AND project_id = ").push_bind(project);
        }
        if let Some((at, id)) = after {
            q.push(" AND (created_at, id) < (")
                .push_bind(at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        // One row more than the page tells whether another page follows.
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);

        let rows = q.build().fetch_all(&self.pool).await?;
        let mut items = rows
            .iter()
            .map(session_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|s| encode_cursor(s.created_at, &s.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn find_session_by_history_key(&self, key: &str) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE history_key = ?");
        let row = sqlx::query(&sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(session_from_row).transpose()?)
    }

    async fn set_history_key(&self, session_id: &str, key: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(key) = key {
            sqlx::query("UPDATE sessions SET history_key = NULL WHERE history_key = ? AND id <> ?")
                .bind(key)
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("UPDATE sessions SET history_key = ?, updated_at = ? WHERE id = ?")
            .bind(key)
            .bind(now_millis())
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            // Dropping `tx` rolls back the key taken from another session.
            return Err(StoreError::NotFound(format!("session {session_id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn append_events_at(
        &self,
        session_id: &str,
        turn_id: &str,
        now: i64,
        events: &[(&str, Value)],
    ) -> Result<i64, StoreError> {
        let count = i64::try_from(events.len())
            .map_err(|_| StoreError::Invalid("too many events".into()))?;
        let mut tx = self.begin_write().await?;
        // The session row's counter hands out the numbers; the write lock makes it gapless.
        let last: Option<i64> = sqlx::query_scalar(
            "UPDATE sessions SET last_event_seq = last_event_seq + ? WHERE id = ? \
             RETURNING last_event_seq",
        )
        .bind(count)
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await?;
        let last = last.ok_or_else(|| StoreError::NotFound(format!("session {session_id}")))?;
        for (seq, (kind, payload)) in (last - count + 1..).zip(events) {
            sqlx::query(
                "INSERT INTO events (session_id, seq, turn_id, kind, payload, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(session_id)
            .bind(seq)
            .bind(turn_id)
            .bind(*kind)
            .bind(Json(payload))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(last)
    }

    async fn list_events(
        &self,
        session_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT session_id, seq, turn_id, kind, payload, created_at FROM events \
             WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(session_id)
        .bind(after_seq)
        .bind(i64::from(limit.min(MAX_EVENTS_PER_CALL)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn last_event_containing(
        &self,
        session_id: &str,
        kind: &str,
        needle: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        // instr, not LIKE: the needle's own `%` and `_` are not patterns.
        let row = sqlx::query(
            "SELECT session_id, seq, turn_id, kind, payload, created_at FROM events \
             WHERE session_id = ? AND kind = ? AND instr(payload, ?) > 0 \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(session_id)
        .bind(kind)
        .bind(needle)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(event_from_row).transpose()?)
    }

    async fn record_tool_call(&self, c: &ToolCallRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tool_calls (session_id, id, turn_id, tool, kind, argument_bytes, \
             outcome, duration_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (session_id, id) DO UPDATE SET \
             outcome = COALESCE(excluded.outcome, tool_calls.outcome), \
             duration_ms = COALESCE(excluded.duration_ms, tool_calls.duration_ms)",
        )
        .bind(&c.session_id)
        .bind(&c.id)
        .bind(&c.turn_id)
        .bind(&c.tool)
        .bind(&c.kind)
        .bind(c.argument_bytes)
        .bind(&c.outcome)
        .bind(c.duration_ms)
        .bind(c.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| session_ref_err(e, &c.session_id))?;
        Ok(())
    }

    async fn list_tool_calls(&self, session_id: &str) -> Result<Vec<ToolCallRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, session_id, turn_id, tool, kind, argument_bytes, outcome, duration_ms, \
             created_at FROM tool_calls WHERE session_id = ? ORDER BY created_at, id",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(tool_call_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn record_usage(&self, u: &UsageRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO usage (id, session_id, turn_id, model, input_tokens, output_tokens, \
             cache_creation_input_tokens, cache_read_input_tokens, cost_usd, duration_ms, \
             created_at, owner, end_user, outcome) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.id)
        .bind(&u.session_id)
        .bind(&u.turn_id)
        .bind(&u.model)
        .bind(u.input_tokens)
        .bind(u.output_tokens)
        .bind(u.cache_creation_input_tokens)
        .bind(u.cache_read_input_tokens)
        .bind(u.cost_usd)
        .bind(u.duration_ms)
        .bind(u.created_at)
        .bind(&u.owner)
        .bind(&u.end_user)
        .bind(if u.outcome.is_empty() {
            "completed"
        } else {
            u.outcome.as_str()
        })
        .execute(&self.pool)
        .await
        .map_err(|e| session_ref_err(e, &u.session_id))?;
        Ok(())
    }

    async fn put_reply(&self, reply: &StoredReply) -> Result<(), StoreError> {
        replies::put(&self.pool, reply).await
    }

    async fn get_reply(&self, id: &str) -> Result<Option<StoredReply>, StoreError> {
        replies::get(&self.pool, id).await
    }

    async fn delete_reply(&self, id: &str) -> Result<bool, StoreError> {
        replies::delete(&self.pool, id).await
    }

    async fn delete_replies_before(&self, created_before: i64) -> Result<u64, StoreError> {
        replies::delete_before(&self.pool, created_before).await
    }

    async fn put_agent(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        agents::put(&self.pool, agent).await
    }

    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        agents::list(&self.pool).await
    }

    async fn delete_agent(&self, name: &str) -> Result<bool, StoreError> {
        agents::delete(&self.pool, name).await
    }

    async fn put_session_settings(
        &self,
        session_id: &str,
        settings: &Value,
    ) -> Result<(), StoreError> {
        agents::put_settings(&self.pool, session_id, settings).await
    }

    async fn get_session_settings(&self, session_id: &str) -> Result<Option<Value>, StoreError> {
        agents::get_settings(&self.pool, session_id).await
    }

    async fn usage_by_model(
        &self,
        session_id: &str,
    ) -> Result<Vec<(String, UsageTotals)>, StoreError> {
        agents::usage_by_model(&self.pool, session_id).await
    }

    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        keys::put(&self.pool, key).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        keys::list(&self.pool).await
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        keys::get(&self.pool, id).await
    }

    async fn api_keys_version(&self) -> Result<(i64, i64), StoreError> {
        keys::version(&self.pool).await
    }

    // --- audit ---
    async fn append_audit(&self, entries: &[AuditRecord]) -> Result<(), StoreError> {
        super::audit::append(&self.pool, entries).await
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        super::audit::list(&self.pool, filter).await
    }

    async fn usage_for_session(&self, session_id: &str) -> Result<UsageTotals, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS requests, \
             COALESCE(SUM(input_tokens), 0) AS input_tokens, \
             COALESCE(SUM(output_tokens), 0) AS output_tokens, \
             COALESCE(SUM(cache_creation_input_tokens), 0) AS cache_creation_input_tokens, \
             COALESCE(SUM(cache_read_input_tokens), 0) AS cache_read_input_tokens, \
             CAST(SUM(cost_usd) AS REAL) AS cost_usd, \
             COALESCE(SUM(duration_ms), 0) AS duration_ms \
             FROM usage WHERE session_id = ?",
        )
        .bind(session_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(UsageTotals {
            requests: row.try_get("requests")?,
            input_tokens: row.try_get("input_tokens")?,
            output_tokens: row.try_get("output_tokens")?,
            cache_creation_input_tokens: row.try_get("cache_creation_input_tokens")?,
            cache_read_input_tokens: row.try_get("cache_read_input_tokens")?,
            cost_usd: row.try_get("cost_usd")?,
            duration_ms: row.try_get("duration_ms")?,
        })
    }

    // --- projects (isolation) ---

    async fn put_project(&self, project: &ProjectRecord) -> Result<(), StoreError> {
        projects::put(&self.pool, project).await
    }

    async fn get_project(&self, id: &str) -> Result<Option<ProjectRecord>, StoreError> {
        projects::get(&self.pool, id).await
    }

    async fn list_projects(&self, owner: Option<&str>) -> Result<Vec<ProjectRecord>, StoreError> {
        projects::list(&self.pool, owner).await
    }

    async fn delete_project(&self, id: &str) -> Result<bool, StoreError> {
        projects::delete(&self.pool, id).await
    }

    async fn count_project_sessions(&self, project_id: &str) -> Result<i64, StoreError> {
        projects::count_sessions(&self.pool, project_id).await
    }

    async fn set_session_project(
        &self,
        session_id: &str,
        project_id: Option<&str>,
    ) -> Result<(), StoreError> {
        projects::set_session_project(&self.pool, session_id, project_id).await
    }

    async fn session_projects(
        &self,
        session_ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        projects::session_projects(&self.pool, session_ids).await
    }

    // --- limits ---
    async fn usage_report(&self, query: &UsageQuery) -> Result<Vec<UsageGroup>, StoreError> {
        super::usage::report(&self.pool, query).await
    }

    async fn usage_spend_since(&self, since: i64) -> Result<Vec<(String, i64, f64)>, StoreError> {
        super::usage::spend_since(&self.pool, since).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::store::{source, status};

    async fn mem() -> SqliteStore {
        SqliteStore::open_in_memory()
            .await
            .expect("in-memory store")
    }

    fn session_at(created_at: i64) -> Session {
        let mut s = Session::new("/tmp/ws", "sonnet", source::OPENAI);
        s.created_at = created_at;
        s.updated_at = created_at;
        s
    }

    async fn add(store: &dyn Store, created_at: i64) -> Session {
        let s = session_at(created_at);
        store.create_session(&s).await.expect("create");
        s
    }

    fn tool_call(session_id: &str, id: &str, created_at: i64) -> ToolCallRecord {
        ToolCallRecord {
            id: id.into(),
            session_id: session_id.into(),
            turn_id: "t1".into(),
            tool: "get_weather".into(),
            kind: "client".into(),
            argument_bytes: 17,
            outcome: None,
            duration_ms: None,
            created_at,
        }
    }

    fn usage(session_id: &str, id: &str, cost: Option<f64>) -> UsageRecord {
        UsageRecord {
            id: id.into(),
            session_id: session_id.into(),
            turn_id: "t1".into(),
            model: "sonnet".into(),
            input_tokens: 10,
            output_tokens: 20,
            cache_creation_input_tokens: 3,
            cache_read_input_tokens: 4,
            cost_usd: cost,
            duration_ms: 100,
            created_at: now_millis(),
            owner: String::new(),
            end_user: None,
            outcome: "completed".into(),
        }
    }

    async fn count(store: &SqliteStore, table: &str, session_id: &str) -> i64 {
        sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {table} WHERE session_id = ?"
        ))
        .bind(session_id)
        .fetch_one(&store.pool)
        .await
        .expect("count")
    }

    #[tokio::test]
    async fn create_and_get_round_trip_every_field() {
        let store = mem().await;
        let mut s = Session::new("/data/workspaces/x", "opus", source::NATIVE);
        s.workspace_is_temp = true;
        s.agent = Some("reviewer".into());
        s.permission_mode = Some("acceptEdits".into());
        s.system_prompt = Some("Be brief.\nReally.".into());
        s.allowed_tools = vec!["Read".into(), "Bash(git:*)".into()];
        s.title = Some("A title with 'quotes' and ünïcode".into());
        s.status = status::RUNNING.into();
        s.history_key = Some("abc123".into());
        s.transcript_leaf = Some("leaf-uuid".into());
        s.turn_mark = Some("mark-uuid".into());
        store.create_session(&s).await.unwrap();

        assert_eq!(store.get_session(&s.id).await.unwrap(), Some(s.clone()));
        assert_eq!(store.get_session("nope").await.unwrap(), None);

        let plain = Session::new("/w", "sonnet", source::OPENAI);
        store.create_session(&plain).await.unwrap();
        assert_eq!(store.get_session(&plain.id).await.unwrap(), Some(plain));
    }

    #[tokio::test]
    async fn create_rejects_a_taken_id_or_history_key() {
        let store = mem().await;
        let mut a = session_at(1);
        a.history_key = Some("k".into());
        store.create_session(&a).await.unwrap();

        let err = store.create_session(&a).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

        let mut b = session_at(2);
        b.history_key = Some("k".into());
        let err = store.create_session(&b).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        assert_eq!(store.get_session(&b.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn update_writes_fields_and_stamps_updated_at() {
        let store = mem().await;
        let mut s = session_at(1_000);
        s.history_key = Some("hk".into());
        store.create_session(&s).await.unwrap();

        let mut changed = s.clone();
        changed.status = status::AWAITING_TOOLS.into();
        changed.title = Some("renamed".into());
        changed.allowed_tools = vec!["Write".into()];
        changed.cli_session_id = "fork-1".into();
        changed.model = "haiku".into();
        changed.agent = Some("a".into());
        changed.transcript_leaf = Some("l".into());
        changed.turn_mark = Some("m".into());
        changed.created_at = 5; // ignored
        changed.history_key = None; // ignored: set_history_key owns it
        let stored = store.update_session(&changed).await.unwrap();

        assert_eq!(stored.status, status::AWAITING_TOOLS);
        assert_eq!(stored.title.as_deref(), Some("renamed"));
        assert_eq!(stored.allowed_tools, vec!["Write".to_string()]);
        assert_eq!(stored.cli_session_id, "fork-1");
        assert_eq!(stored.model, "haiku");
        assert_eq!(stored.agent.as_deref(), Some("a"));
        assert_eq!(stored.transcript_leaf.as_deref(), Some("l"));
        assert_eq!(stored.turn_mark.as_deref(), Some("m"));
        assert_eq!(stored.created_at, 1_000);
        assert_eq!(stored.history_key.as_deref(), Some("hk"));
        assert!(stored.updated_at >= now_millis() - 60_000);
        assert_eq!(store.get_session(&s.id).await.unwrap(), Some(stored));

        let missing = session_at(1);
        let err = store.update_session(&missing).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn delete_cascades_to_events_tool_calls_and_usage() {
        let store = mem().await;
        let a = add(&store, 1).await;
        let b = add(&store, 2).await;
        for s in [&a, &b] {
            store
                .append_events(&s.id, "t1", &[("user", json!({"text": "hi"}))])
                .await
                .unwrap();
            store
                .record_tool_call(&tool_call(&s.id, "toolu_1", 1))
                .await
                .unwrap();
            store
                .record_usage(&usage(&s.id, &format!("u-{}", s.id), None))
                .await
                .unwrap();
        }

        store.delete_session(&a.id).await.unwrap();
        assert_eq!(store.get_session(&a.id).await.unwrap(), None);
        for table in ["events", "tool_calls", "usage"] {
            assert_eq!(count(&store, table, &a.id).await, 0, "{table}");
            assert_eq!(count(&store, table, &b.id).await, 1, "{table} of b");
        }
        assert!(store.list_events(&a.id, 0, 100).await.unwrap().is_empty());
        assert!(store.list_tool_calls(&a.id).await.unwrap().is_empty());
        assert_eq!(
            store.usage_for_session(&a.id).await.unwrap(),
            UsageTotals::default()
        );

        let err = store.delete_session(&a.id).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn list_pages_newest_first_without_gaps_or_repeats() {
        let store = mem().await;
        // 103 sessions over 40 distinct timestamps, so many share a created_at.
        let mut all = Vec::new();
        for i in 0..103 {
            all.push(add(&store, 1_000 + i % 40).await);
        }
        all.sort_by(|x, y| (y.created_at, &y.id).cmp(&(x.created_at, &x.id)));

        let mut filter = SessionFilter {
            limit: 25,
            ..SessionFilter::default()
        };
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = store.list_sessions(&filter).await.unwrap();
            pages += 1;
            assert!(page.items.len() <= 25);
            seen.extend(page.items.iter().map(|s| s.id.clone()));
            // Sessions created while paging are newer: they never show up on later pages.
            add(&store, 5_000 + pages).await;
            match page.next_cursor {
                Some(c) => filter.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, 5);
        let expected: Vec<String> = all.iter().map(|s| s.id.clone()).collect();
        assert_eq!(seen, expected);

        // Exactly one full page: no cursor to an empty page.
        let page = store
            .list_sessions(&SessionFilter {
                limit: 108,
                ..SessionFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), 108);
        assert_eq!(page.next_cursor, None);

        let err = store
            .list_sessions(&SessionFilter {
                cursor: Some("not a cursor!".into()),
                ..SessionFilter::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    }

    #[tokio::test]
    async fn list_filters_and_limits() {
        let store = mem().await;
        for i in 0..520 {
            let mut s = session_at(i);
            s.status = if i % 2 == 0 {
                status::IDLE
            } else {
                status::CLOSED
            }
            .into();
            s.source = if i % 5 == 0 {
                source::NATIVE
            } else {
                source::OPENAI
            }
            .into();
            s.model = if i % 3 == 0 { "opus" } else { "sonnet" }.into();
            store.create_session(&s).await.unwrap();
        }
        let list = |f: SessionFilter| {
            let store = store.clone();
            async move { store.list_sessions(&f).await.unwrap() }
        };

        let default = list(SessionFilter::default()).await;
        assert_eq!(default.items.len(), 50);
        assert!(default.next_cursor.is_some());
        let zero = list(SessionFilter {
            limit: 0,
            ..SessionFilter::default()
        })
        .await;
        assert_eq!(zero.items.len(), 50);
        let capped = list(SessionFilter {
            limit: 10_000,
            ..SessionFilter::default()
        })
        .await;
        assert_eq!(capped.items.len(), 500);
        assert!(capped.next_cursor.is_some());

        let f = SessionFilter {
            status: Some(status::IDLE.into()),
            source: Some(source::NATIVE.into()),
            model: Some("opus".into()),
            owner: None,
            project_id: None,
            limit: 500,
            cursor: None,
        };
        let page = list(f).await;
        // i % 2 == 0 && i % 5 == 0 && i % 3 == 0: multiples of 30 below 520.
        assert_eq!(page.items.len(), 18);
        assert_eq!(page.items[0].created_at, 510);
        assert!(page
            .items
            .iter()
            .all(|s| s.status == "idle" && s.source == "native" && s.model == "opus"));

        // Filters hold across pages too.
        let mut f = SessionFilter {
            source: Some(source::NATIVE.into()),
            limit: 30,
            ..SessionFilter::default()
        };
        let mut total = 0;
        loop {
            let page = list(f.clone()).await;
            assert!(page.items.iter().all(|s| s.source == "native"));
            total += page.items.len();
            match page.next_cursor {
                Some(c) => f.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(total, 104);
    }

    #[tokio::test]
    async fn history_key_belongs_to_one_session_at_a_time() {
        let store = mem().await;
        let a = add(&store, 1).await;
        let b = add(&store, 2).await;

        assert_eq!(store.find_session_by_history_key("h1").await.unwrap(), None);
        store.set_history_key(&a.id, Some("h1")).await.unwrap();
        let found = store.find_session_by_history_key("h1").await.unwrap();
        assert_eq!(found.map(|s| s.id), Some(a.id.clone()));

        // Setting the same key again on the holder is fine.
        store.set_history_key(&a.id, Some("h1")).await.unwrap();

        // Another session takes it: the first one loses it.
        store.set_history_key(&b.id, Some("h1")).await.unwrap();
        let found = store.find_session_by_history_key("h1").await.unwrap();
        assert_eq!(found.map(|s| s.id), Some(b.id.clone()));
        let a_now = store.get_session(&a.id).await.unwrap().unwrap();
        assert_eq!(a_now.history_key, None);

        // Moving on to a new key frees the old one.
        store.set_history_key(&b.id, Some("h2")).await.unwrap();
        assert_eq!(store.find_session_by_history_key("h1").await.unwrap(), None);
        let b_now = store.get_session(&b.id).await.unwrap().unwrap();
        assert_eq!(b_now.history_key.as_deref(), Some("h2"));
        assert!(b_now.updated_at > b.updated_at);

        // Clearing.
        store.set_history_key(&b.id, None).await.unwrap();
        assert_eq!(store.find_session_by_history_key("h2").await.unwrap(), None);

        // An unknown session takes nothing away (the transaction rolls back).
        store.set_history_key(&a.id, Some("h3")).await.unwrap();
        let err = store
            .set_history_key("ghost", Some("h3"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
        let found = store.find_session_by_history_key("h3").await.unwrap();
        assert_eq!(found.map(|s| s.id), Some(a.id.clone()));
    }

    #[tokio::test]
    async fn the_newest_event_containing_a_needle_is_found_however_far_back() {
        let store = mem().await;
        let a = add(&store, 1).await;
        let b = add(&store, 2).await;
        let user = |t: &str| ("user", json!({"content": [{"type": "text", "text": t}]}));
        store
            .append_events(&a.id, "t1", &[user("mark:1 100%_x"), user("mark:2 100%_x")])
            .await
            .unwrap();
        let filler: Vec<(&str, Value)> = (0..50).map(|n| user(&format!("plain {n}"))).collect();
        store.append_events(&a.id, "t2", &filler).await.unwrap();
        store
            .append_events(&b.id, "t1", &[user("mark:9")])
            .await
            .unwrap();
        let found = store
            .last_event_containing(&a.id, "user", "mark:")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.seq, 2);
        assert!(found.payload.to_string().contains("mark:2"));
        // The needle is text, not a pattern.
        assert!(store
            .last_event_containing(&a.id, "user", "100%_x")
            .await
            .unwrap()
            .is_some());
        assert!(store
            .last_event_containing(&a.id, "user", "1%0")
            .await
            .unwrap()
            .is_none());
        assert!(store
            .last_event_containing(&a.id, "text", "mark:")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn events_are_numbered_per_session_and_listed_in_order() {
        let store = mem().await;
        let a = add(&store, 1).await;
        let b = add(&store, 2).await;

        let last = store
            .append_events(
                &a.id,
                "turn-1",
                &[
                    ("user_message", json!({"text": "hello"})),
                    ("thinking", json!({"text": "hmm"})),
                    (
                        "text",
                        json!({"text": "hi!", "nested": {"n": [1, 2.5, null]}}),
                    ),
                ],
            )
            .await
            .unwrap();
        assert_eq!(last, 3);
        assert_eq!(
            store
                .append_events(&b.id, "turn-x", &[("text", json!("other"))])
                .await
                .unwrap(),
            1
        );
        let last = store
            .append_events(
                &a.id,
                "turn-2",
                &[
                    ("tool_call", json!({"id": "toolu_1"})),
                    ("result", json!({})),
                ],
            )
            .await
            .unwrap();
        assert_eq!(last, 5);
        assert_eq!(store.append_events(&a.id, "turn-3", &[]).await.unwrap(), 5);

        let events = store.list_events(&a.id, 0, 100).await.unwrap();
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert!(events.iter().all(|e| e.session_id == a.id));
        assert_eq!(events[0].kind, "user_message");
        assert_eq!(events[0].turn_id, "turn-1");
        assert_eq!(
            events[2].payload,
            json!({"text": "hi!", "nested": {"n": [1, 2.5, null]}})
        );
        assert_eq!(events[3].turn_id, "turn-2");
        assert!(events[0].created_at > 0);

        let tail = store.list_events(&a.id, 2, 2).await.unwrap();
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
        assert!(store.list_events(&a.id, 5, 10).await.unwrap().is_empty());
        assert!(store.list_events("ghost", 0, 10).await.unwrap().is_empty());

        let err = store
            .append_events("ghost", "t", &[("text", json!(1))])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
        let err = store.append_events("ghost", "t", &[]).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    }

    /// 20 tasks append batches to one session at once (and to a second session in between):
    /// the numbers come out 1..=N with no gap or repeat, each batch contiguous.
    async fn concurrent_appends_are_gapless(store: Arc<dyn Store>) {
        let mut s = Session::new("/w", "sonnet", source::NATIVE);
        store.create_session(&s).await.unwrap();
        let other = Session::new("/w", "sonnet", source::NATIVE);
        store.create_session(&other).await.unwrap();

        let mut tasks = Vec::new();
        for task in 0..20 {
            let store = store.clone();
            let (id, other_id) = (s.id.clone(), other.id.clone());
            tasks.push(tokio::spawn(async move {
                let mut lasts = Vec::new();
                for round in 0..10 {
                    let size = 1 + (task + round) % 3;
                    let batch: Vec<(&str, Value)> = (0..size)
                        .map(|i| ("text", json!({"task": task, "round": round, "i": i})))
                        .collect();
                    let last = store
                        .append_events(&id, &format!("turn-{task}"), &batch)
                        .await
                        .unwrap();
                    lasts.push((last, size as i64));
                    store
                        .append_events(&other_id, "t", &[("text", json!(task))])
                        .await
                        .unwrap();
                }
                lasts
            }));
        }
        let mut expected_total = 0;
        for t in tasks {
            for (_, size) in t.await.unwrap() {
                expected_total += size;
            }
        }

        let events = store
            .list_events(&s.id, 0, MAX_EVENTS_PER_CALL)
            .await
            .unwrap();
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=expected_total).collect::<Vec<_>>());
        // Each batch got consecutive numbers, in its own order.
        for pair in events.windows(2) {
            let (p, q) = (&pair[0].payload, &pair[1].payload);
            if p["task"] == q["task"] && p["round"] == q["round"] {
                assert_eq!(q["i"].as_i64(), p["i"].as_i64().map(|i| i + 1));
            }
        }
        let batches: HashSet<(i64, i64)> = events
            .iter()
            .filter(|e| e.payload["i"] == 0)
            .map(|e| {
                (
                    e.payload["task"].as_i64().unwrap(),
                    e.payload["round"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(batches.len(), 200);

        let other_events = store.list_events(&other.id, 0, 1000).await.unwrap();
        assert_eq!(
            other_events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=200).collect::<Vec<_>>()
        );
        s.status = status::CLOSED.into();
        store.update_session(&s).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_in_memory() {
        concurrent_appends_are_gapless(Arc::new(mem().await)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_on_a_file_with_a_pool() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("ccgw.db"))
            .await
            .unwrap();
        concurrent_appends_are_gapless(Arc::new(store.clone())).await;
        store.close().await;
    }

    #[tokio::test]
    async fn tool_calls_are_upserted_by_id() {
        let store = mem().await;
        let s = add(&store, 1).await;
        let other = add(&store, 2).await;

        store
            .record_tool_call(&tool_call(&s.id, "toolu_b", 20))
            .await
            .unwrap();
        store
            .record_tool_call(&tool_call(&s.id, "toolu_a", 10))
            .await
            .unwrap();
        // The same tool_use id in another session is another record.
        store
            .record_tool_call(&tool_call(&other.id, "toolu_a", 10))
            .await
            .unwrap();

        let mut done = tool_call(&s.id, "toolu_b", 99);
        done.outcome = Some("ok".into());
        done.duration_ms = Some(1234);
        store.record_tool_call(&done).await.unwrap();
        // A later record without outcome/duration keeps the known ones.
        store
            .record_tool_call(&tool_call(&s.id, "toolu_b", 100))
            .await
            .unwrap();

        let calls = store.list_tool_calls(&s.id).await.unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id, "toolu_a");
        assert_eq!(calls[0].outcome, None);
        assert_eq!(calls[1].id, "toolu_b");
        assert_eq!(calls[1].outcome.as_deref(), Some("ok"));
        assert_eq!(calls[1].duration_ms, Some(1234));
        assert_eq!(calls[1].created_at, 20, "first record's time stays");
        assert_eq!(
            calls[0],
            ToolCallRecord {
                created_at: 10,
                ..tool_call(&s.id, "toolu_a", 10)
            }
        );
        assert_eq!(store.list_tool_calls(&other.id).await.unwrap().len(), 1);

        let mut denied = tool_call(&s.id, "toolu_a", 0);
        denied.outcome = Some("denied".into());
        store.record_tool_call(&denied).await.unwrap();
        let calls = store.list_tool_calls(&s.id).await.unwrap();
        assert_eq!(calls[0].outcome.as_deref(), Some("denied"));
        assert_eq!(calls[0].duration_ms, None);

        let err = store
            .record_tool_call(&tool_call("ghost", "toolu_x", 1))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn usage_is_recorded_and_summed() {
        let store = mem().await;
        let s = add(&store, 1).await;
        let empty = add(&store, 2).await;

        assert_eq!(
            store.usage_for_session(&s.id).await.unwrap(),
            UsageTotals::default()
        );
        store.record_usage(&usage(&s.id, "u1", None)).await.unwrap();
        assert_eq!(
            store.usage_for_session(&s.id).await.unwrap().cost_usd,
            None,
            "no cost reported"
        );
        store
            .record_usage(&usage(&s.id, "u2", Some(0.25)))
            .await
            .unwrap();
        let mut big = usage(&s.id, "u3", Some(0.5));
        big.input_tokens = 1_000_000_000_000;
        store.record_usage(&big).await.unwrap();

        let totals = store.usage_for_session(&s.id).await.unwrap();
        assert_eq!(
            totals,
            UsageTotals {
                requests: 3,
                input_tokens: 1_000_000_000_020,
                output_tokens: 60,
                cache_creation_input_tokens: 9,
                cache_read_input_tokens: 12,
                cost_usd: Some(0.75),
                duration_ms: 300,
            }
        );
        assert_eq!(
            store.usage_for_session(&empty.id).await.unwrap(),
            UsageTotals::default()
        );

        let err = store
            .record_usage(&usage(&s.id, "u1", None))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        let err = store
            .record_usage(&usage("ghost", "u9", None))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn file_store_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("ccgw.db");

        let store = SqliteStore::open(&path).await.unwrap();
        let mut s = Session::new("/w", "sonnet", source::ANTHROPIC);
        s.allowed_tools = vec!["Read".into()];
        store.create_session(&s).await.unwrap();
        store.set_history_key(&s.id, Some("hk")).await.unwrap();
        store
            .append_events(&s.id, "t1", &[("user_message", json!({"text": "hi"}))])
            .await
            .unwrap();
        store
            .record_usage(&usage(&s.id, "u1", Some(0.1)))
            .await
            .unwrap();
        let before = store.get_session(&s.id).await.unwrap().unwrap();

        // The pragmas hold on the pooled connections.
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(busy, 5000);
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(sync, 1, "NORMAL");
        store.close().await;

        // Reopen twice: the data is there and the migrations are not applied again.
        for round in 0..2 {
            let store = SqliteStore::open(&path).await.unwrap();
            assert_eq!(
                store.get_session(&s.id).await.unwrap(),
                Some(before.clone())
            );
            let found = store.find_session_by_history_key("hk").await.unwrap();
            assert_eq!(found.map(|x| x.id), Some(s.id.clone()));
            let events = store.list_events(&s.id, 0, 10).await.unwrap();
            assert_eq!(events.len(), round + 1);
            assert_eq!(events[0].payload, json!({"text": "hi"}));
            assert_eq!(store.usage_for_session(&s.id).await.unwrap().requests, 1);
            // Numbering continues where it stopped.
            let last = store
                .append_events(&s.id, "t2", &[("text", json!("again"))])
                .await
                .unwrap();
            assert_eq!(last, round as i64 + 2);
            let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(applied, MIGRATOR.iter().count() as i64);
            store.close().await;
        }
        let store = SqliteStore::open(&path).await.unwrap();
        let seqs: Vec<i64> = store
            .list_events(&s.id, 0, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        store.close().await;
    }

    #[tokio::test]
    async fn open_reports_an_unusable_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "not a database\n".repeat(300)).unwrap();
        // A directory cannot be created below a regular file.
        let err = SqliteStore::open(&file.join("db.sqlite"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Open(_)), "{err:?}");
        // A file that is not a database.
        let err = SqliteStore::open(&file).await.unwrap_err();
        assert!(matches!(err, StoreError::Open(_)), "{err:?}");
    }

    #[tokio::test]
    async fn projects_round_trip_and_name_their_sessions() {
        let store = mem().await;
        let p = ProjectRecord {
            id: "proj_1".into(),
            owner: "key_a".into(),
            name: "web".into(),
            description: String::new(),
            defaults: json!({"model": "haiku"}),
            created_at: 1,
            updated_at: 1,
        };
        store.put_project(&p).await.unwrap();
        let other = ProjectRecord {
            id: "proj_2".into(),
            owner: "key_b".into(),
            created_at: 2,
            ..p.clone()
        };
        store.put_project(&other).await.unwrap();
        // A replace keeps the owner and the creation time.
        let changed = ProjectRecord {
            name: "web app".into(),
            owner: "key_x".into(),
            created_at: 99,
            updated_at: 5,
            ..p.clone()
        };
        store.put_project(&changed).await.unwrap();
        let got = store.get_project("proj_1").await.unwrap().unwrap();
        assert_eq!(
            (got.name.as_str(), got.owner.as_str(), got.created_at),
            ("web app", "key_a", 1)
        );
        let of_a = store.list_projects(Some("key_a")).await.unwrap();
        assert_eq!(of_a.len(), 1);
        assert_eq!(store.list_projects(None).await.unwrap()[0].id, "proj_2");

        let s = add(&store, 10).await;
        let t = add(&store, 11).await;
        store
            .set_session_project(&s.id, Some("proj_1"))
            .await
            .unwrap();
        assert!(store
            .set_session_project("ghost", Some("proj_1"))
            .await
            .is_err());
        assert_eq!(store.count_project_sessions("proj_1").await.unwrap(), 1);
        let m = store
            .session_projects(&[s.id.clone(), t.id.clone()])
            .await
            .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[&s.id], "proj_1");
        let page = store
            .list_sessions(&SessionFilter {
                project_id: Some("proj_1".into()),
                ..SessionFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        // update_session leaves the project alone.
        store.update_session(&s).await.unwrap();
        assert_eq!(store.count_project_sessions("proj_1").await.unwrap(), 1);
        assert!(store.delete_project("proj_1").await.unwrap());
        assert!(!store.delete_project("proj_1").await.unwrap());
    }
}
