//! The SQLite [`Store`]: one database file in the data dir, WAL journal, a small pool,
//! migrations (from `migrations/`, embedded in the binary) run at start-up.
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

use super::{
    now_millis, Page, Session, SessionFilter, Store, StoreError, StoredEvent, ToolCallRecord,
    UsageRecord, UsageTotals, MAX_EVENTS_PER_CALL,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connections in the pool of a file-backed store.
const POOL_SIZE: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

const SESSION_COLUMNS: &str = "id, cli_session_id, workspace, workspace_is_temp, model, agent, \
     permission_mode, system_prompt, allowed_tools, title, status, history_key, source, \
     created_at, updated_at";

/// A [`Store`] in a SQLite database. Cheap to clone (it is a handle to one pool).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it and its parent directory if needed) the database at `path`, and
    /// brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open(format!("creating {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
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
        title: row.try_get("title")?,
        status: row.try_get("status")?,
        history_key: row.try_get("history_key")?,
        source: row.try_get("source")?,
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
             created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
             title = ?, status = ?, source = ?, updated_at = ? \
             WHERE id = ? RETURNING {SESSION_COLUMNS}"
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

    async fn append_events(
        &self,
        session_id: &str,
        turn_id: &str,
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
        let now = now_millis();
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
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&self.pool)
        .await
        .map_err(|e| session_ref_err(e, &u.session_id))?;
        Ok(())
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
}

