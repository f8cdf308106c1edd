//! The SQL of sessions, their events and their tool calls, for both SQL stores (see
//! [`super`]): CRUD, keyset pages, history keys, gapless event numbers.
//!
//! Must not: validate statuses, sources or event kinds (the callers do), or know what a
//! payload holds.

/// Columns of a session row, in the order [`from_row`] reads them by name.
pub(crate) const SESSION_COLUMNS: &str = "id, cli_session_id, workspace, workspace_is_temp, \
     model, agent, permission_mode, system_prompt, allowed_tools, title, status, history_key, \
     source, created_at, updated_at, tools, forked_from, transcript_leaf, turn_mark, owner";

/// The columns [`Store::update_session`](crate::store::Store::update_session) writes (all but
/// the id, the history key, the owner and the timestamps), in the order `bind_written` binds.
pub(crate) const WRITTEN_COLUMNS: &str = "cli_session_id, workspace, workspace_is_temp, model, \
     agent, permission_mode, system_prompt, allowed_tools, title, status, source, tools, \
     forked_from, transcript_leaf, turn_mark";

pub(crate) const EVENT_COLUMNS: &str = "session_id, seq, turn_id, kind, payload, created_at";

pub(crate) const TOOL_CALL_COLUMNS: &str =
    "id, session_id, turn_id, tool, kind, argument_bytes, outcome, duration_ms, created_at";

/// Events per INSERT statement: far below SQLite's bound-parameter limit.
pub(crate) const EVENTS_PER_INSERT: usize = 500;

macro_rules! sessions_sql {
    () => {
        use serde_json::Value;
        use sqlx::{Pool, QueryBuilder, Row};

        use super::Db;
        use $crate::store::sql::sessions::{
            EVENTS_PER_INSERT, EVENT_COLUMNS, SESSION_COLUMNS, TOOL_CALL_COLUMNS, WRITTEN_COLUMNS,
        };
        use $crate::store::sql::{
            decode_cursor, encode_cursor, json_text, parse_json, session_ref_err, Dialect,
        };
        use $crate::store::{
            now_millis, Page, Session, SessionFilter, StoreError, StoredEvent, ToolCallRecord,
            MAX_EVENTS_PER_CALL,
        };

        type DbRow = <Db as sqlx::Database>::Row;
        /// One connection, pooled or inside a transaction: the `*_in` queries take one, so a
        /// caller can run several in one transaction (see `turns`).
        pub(crate) type Conn = <Db as sqlx::Database>::Connection;

        fn from_row(row: &DbRow) -> Result<Session, StoreError> {
            Ok(Session {
                id: row.try_get("id")?,
                cli_session_id: row.try_get("cli_session_id")?,
                workspace: row.try_get("workspace")?,
                workspace_is_temp: row.try_get("workspace_is_temp")?,
                model: row.try_get("model")?,
                agent: row.try_get("agent")?,
                permission_mode: row.try_get("permission_mode")?,
                system_prompt: row.try_get("system_prompt")?,
                allowed_tools: parse_json("allowed_tools", row.try_get("allowed_tools")?)?,
                tools: parse_json("tools", row.try_get("tools")?)?,
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

        fn event_from_row(row: &DbRow) -> Result<StoredEvent, StoreError> {
            Ok(StoredEvent {
                session_id: row.try_get("session_id")?,
                seq: row.try_get("seq")?,
                turn_id: row.try_get("turn_id")?,
                kind: row.try_get("kind")?,
                payload: parse_json("payload", row.try_get("payload")?)?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn tool_call_from_row(row: &DbRow) -> Result<ToolCallRecord, StoreError> {
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

        /// Binds the columns of [`WRITTEN_COLUMNS`] as `$1…$15`, in its order.
        fn bind_written<'q>(
            q: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
            s: &'q Session,
        ) -> Result<sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>, StoreError> {
            Ok(q.bind(&s.cli_session_id)
                .bind(&s.workspace)
                .bind(s.workspace_is_temp)
                .bind(&s.model)
                .bind(&s.agent)
                .bind(&s.permission_mode)
                .bind(&s.system_prompt)
                .bind(json_text(&s.allowed_tools)?)
                .bind(&s.title)
                .bind(&s.status)
                .bind(&s.source)
                .bind(json_text(&s.tools)?)
                .bind(&s.forked_from)
                .bind(&s.transcript_leaf)
                .bind(&s.turn_mark))
        }

        pub(crate) async fn create(pool: &Pool<Db>, s: &Session) -> Result<(), StoreError> {
            create_in(&mut *pool.acquire().await?, s, false).await
        }

        /// Inserts `s`; when `unless_exists`, a session already kept under its id stays as it is.
        pub(crate) async fn create_in(
            conn: &mut Conn,
            s: &Session,
            unless_exists: bool,
        ) -> Result<(), StoreError> {
            let placeholders: Vec<String> = (1..=20).map(|n| format!("${n}")).collect();
            let sql = format!(
                "INSERT INTO sessions ({WRITTEN_COLUMNS}, id, history_key, owner, created_at, \
                 updated_at) VALUES ({}){}",
                placeholders.join(", "),
                if unless_exists {
                    " ON CONFLICT (id) DO NOTHING"
                } else {
                    ""
                }
            );
            bind_written(sqlx::query(&sql), s)?
                .bind(&s.id)
                .bind(&s.history_key)
                .bind(&s.owner)
                .bind(s.created_at)
                .bind(s.updated_at)
                .execute(&mut *conn)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(m) => StoreError::Conflict(format!(
                        "session {} (id or history key taken): {m}",
                        s.id
                    )),
                    other => other,
                })?;
            Ok(())
        }

        pub(crate) async fn get(pool: &Pool<Db>, id: &str) -> Result<Option<Session>, StoreError> {
            let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
            let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(from_row).transpose()
        }

        pub(crate) async fn update(pool: &Pool<Db>, s: &Session) -> Result<Session, StoreError> {
            let set: Vec<String> = WRITTEN_COLUMNS
                .split(", ")
                .enumerate()
                .map(|(i, column)| format!("{column} = ${}", i + 1))
                .collect();
            let sql = format!(
                "UPDATE sessions SET {}, updated_at = $16 WHERE id = $17 \
                 RETURNING {SESSION_COLUMNS}",
                set.join(", ")
            );
            let row = bind_written(sqlx::query(&sql), s)?
                .bind(now_millis())
                .bind(&s.id)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => from_row(&row),
                None => Err(StoreError::NotFound(format!("session {}", s.id))),
            }
        }

        pub(crate) async fn delete(pool: &Pool<Db>, id: &str) -> Result<(), StoreError> {
            let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("session {id}")));
            }
            Ok(())
        }

        pub(crate) async fn list(
            pool: &Pool<Db>,
            filter: &SessionFilter,
        ) -> Result<Page<Session>, StoreError> {
            let limit = filter.effective_limit();
            let after = filter.cursor.as_deref().map(decode_cursor).transpose()?;

            let mut q = QueryBuilder::<Db>::new(format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE 1 = 1"
            ));
            let columns = [
                ("status", &filter.status),
                ("source", &filter.source),
                ("model", &filter.model),
                ("owner", &filter.owner),
                ("project_id", &filter.project_id),
            ];
            for (column, value) in columns {
                if let Some(value) = value {
                    q.push(format!(" AND {column} = ")).push_bind(value.clone());
                }
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

            let rows = q.build().fetch_all(pool).await?;
            let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
            let next_cursor = if items.len() > limit as usize {
                items.truncate(limit as usize);
                items.last().map(|s| encode_cursor(s.created_at, &s.id))
            } else {
                None
            };
            Ok(Page { items, next_cursor })
        }

        pub(crate) async fn by_history_key(
            pool: &Pool<Db>,
            key: &str,
        ) -> Result<Option<Session>, StoreError> {
            let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE history_key = $1");
            let row = sqlx::query(&sql).bind(key).fetch_optional(pool).await?;
            row.as_ref().map(from_row).transpose()
        }

        pub(crate) async fn set_history_key(
            pool: &Pool<Db>,
            session_id: &str,
            key: Option<&str>,
        ) -> Result<(), StoreError> {
            let mut tx = <Db as Dialect>::begin_write(pool).await?;
            set_history_key_in(&mut tx, session_id, key).await?;
            tx.commit().await?;
            Ok(())
        }

        /// [`set_history_key`], inside the caller's write transaction: it takes the key from
        /// any other session, so it must not commit on its own.
        pub(crate) async fn set_history_key_in(
            tx: &mut Conn,
            session_id: &str,
            key: Option<&str>,
        ) -> Result<(), StoreError> {
            if let Some(key) = key {
                release_history_key_in(tx, key, session_id).await?;
            }
            let done =
                sqlx::query("UPDATE sessions SET history_key = $1, updated_at = $2 WHERE id = $3")
                    .bind(key)
                    .bind(now_millis())
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
            if done.rows_affected() == 0 {
                // Dropping the transaction rolls back the key taken from another session.
                return Err(StoreError::NotFound(format!("session {session_id}")));
            }
            Ok(())
        }

        /// Take history key `key` from every session but `session_id` (inside the caller's
        /// write transaction, which then gives it to `session_id`).
        pub(crate) async fn release_history_key_in(
            tx: &mut Conn,
            key: &str,
            session_id: &str,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE sessions SET history_key = NULL WHERE history_key = $1 AND id <> $2",
            )
            .bind(key)
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
            Ok(())
        }

        pub(crate) async fn append_events(
            pool: &Pool<Db>,
            session_id: &str,
            turn_id: &str,
            now: i64,
            events: &[(&str, Value)],
        ) -> Result<i64, StoreError> {
            let mut tx = <Db as Dialect>::begin_write(pool).await?;
            let last = append_events_in(&mut tx, session_id, turn_id, now, events).await?;
            tx.commit().await?;
            Ok(last)
        }

        /// [`append_events`], inside the caller's write transaction (which makes the numbers
        /// gapless); the last number handed out.
        pub(crate) async fn append_events_in(
            tx: &mut Conn,
            session_id: &str,
            turn_id: &str,
            now: i64,
            events: &[(&str, Value)],
        ) -> Result<i64, StoreError> {
            let count = i64::try_from(events.len())
                .map_err(|_| StoreError::Invalid("too many events".into()))?;
            // The session row's counter hands out the numbers; its write lock (SQLite's
            // database lock, Postgres's row lock) makes them gapless.
            let last: Option<i64> = sqlx::query_scalar(
                "UPDATE sessions SET last_event_seq = last_event_seq + $1 WHERE id = $2 \
                 RETURNING last_event_seq",
            )
            .bind(count)
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await?;
            let last = last.ok_or_else(|| StoreError::NotFound(format!("session {session_id}")))?;
            insert_events_in(tx, session_id, turn_id, now, last - count + 1, events).await?;
            Ok(last)
        }

        /// Insert `events` numbered from `first`, numbers the session row's counter handed out
        /// in the same transaction.
        pub(crate) async fn insert_events_in(
            tx: &mut Conn,
            session_id: &str,
            turn_id: &str,
            now: i64,
            first: i64,
            events: &[(&str, Value)],
        ) -> Result<(), StoreError> {
            let numbered: Vec<(i64, &str, String)> = (first..)
                .zip(events)
                .map(|(seq, (kind, payload))| Ok((seq, *kind, json_text(payload)?)))
                .collect::<Result<_, StoreError>>()?;
            for chunk in numbered.chunks(EVENTS_PER_INSERT) {
                let mut q =
                    QueryBuilder::<Db>::new(format!("INSERT INTO events ({EVENT_COLUMNS}) "));
                q.push_values(chunk, |mut row, (seq, kind, payload)| {
                    row.push_bind(session_id)
                        .push_bind(*seq)
                        .push_bind(turn_id)
                        .push_bind(*kind)
                        .push_bind(payload.as_str())
                        .push_bind(now);
                });
                q.build().execute(&mut *tx).await?;
            }
            Ok(())
        }

        pub(crate) async fn list_events(
            pool: &Pool<Db>,
            session_id: &str,
            after_seq: i64,
            limit: u32,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE session_id = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3"
            );
            let rows = sqlx::query(&sql)
                .bind(session_id)
                .bind(after_seq)
                .bind(i64::from(limit.min(MAX_EVENTS_PER_CALL)))
                .fetch_all(pool)
                .await?;
            rows.iter().map(event_from_row).collect()
        }

        pub(crate) async fn last_event_containing(
            pool: &Pool<Db>,
            session_id: &str,
            kind: &str,
            needle: &str,
        ) -> Result<Option<StoredEvent>, StoreError> {
            // A text search, not LIKE: the needle's own `%` and `_` are not patterns.
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE session_id = $1 AND kind = $2 \
                 AND {} ORDER BY seq DESC LIMIT 1",
                <Db as Dialect>::PAYLOAD_CONTAINS_3
            );
            let row = sqlx::query(&sql)
                .bind(session_id)
                .bind(kind)
                .bind(needle)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(event_from_row).transpose()
        }

        pub(crate) async fn record_tool_call(
            pool: &Pool<Db>,
            c: &ToolCallRecord,
        ) -> Result<(), StoreError> {
            record_tool_call_in(&mut *pool.acquire().await?, c).await
        }

        pub(crate) async fn record_tool_call_in(
            conn: &mut Conn,
            c: &ToolCallRecord,
        ) -> Result<(), StoreError> {
            let sql = format!(
                "INSERT INTO tool_calls ({TOOL_CALL_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (session_id, id) DO UPDATE SET \
                 outcome = COALESCE(excluded.outcome, tool_calls.outcome), \
                 duration_ms = COALESCE(excluded.duration_ms, tool_calls.duration_ms)"
            );
            sqlx::query(&sql)
                .bind(&c.id)
                .bind(&c.session_id)
                .bind(&c.turn_id)
                .bind(&c.tool)
                .bind(&c.kind)
                .bind(c.argument_bytes)
                .bind(&c.outcome)
                .bind(c.duration_ms)
                .bind(c.created_at)
                .execute(&mut *conn)
                .await
                .map_err(|e| session_ref_err(e, &c.session_id))?;
            Ok(())
        }

        pub(crate) async fn list_tool_calls(
            pool: &Pool<Db>,
            session_id: &str,
        ) -> Result<Vec<ToolCallRecord>, StoreError> {
            let sql = format!(
                "SELECT {TOOL_CALL_COLUMNS} FROM tool_calls WHERE session_id = $1 \
                 ORDER BY created_at, id"
            );
            let rows = sqlx::query(&sql).bind(session_id).fetch_all(pool).await?;
            rows.iter().map(tool_call_from_row).collect()
        }
    };
}
pub(crate) use sessions_sql;
