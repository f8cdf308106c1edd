//! The SQL of a finished turn's records, for both SQL stores (see [`super`]): the session row,
//! its history key, the usage row, the tool calls and the history entries, in one write
//! transaction.
//!
//! Why one: a turn's reply waits until its records are in the store (what a client was told
//! survives a crash right after). Written one call at a time they were six transactions and
//! about twenty round trips to the database's worker, in series, on every turn.
//!
//! Must not: decide what a turn records (the domain does); it writes what it is given, in the
//! order the records refer to each other.

macro_rules! turns_sql {
    () => {
        use sqlx::{Pool, QueryBuilder};

        use super::sessions::{
            create_in, insert_events_in, record_tool_call_in, release_history_key_in,
        };
        use super::usage::record_in;
        use super::Db;
        use $crate::store::sql::Dialect;
        use $crate::store::{now_millis, StoreError, TurnRecord, TurnRow};

        /// In as few statements as the records allow: each is a round trip to the database
        /// (for SQLite, to its connection's thread), and the client waits for all of them.
        pub(crate) async fn record(pool: &Pool<Db>, t: &TurnRecord) -> Result<(), StoreError> {
            let now = now_millis();
            let mut tx = <Db as Dialect>::begin_write(pool).await?;
            let end = match &t.row {
                TurnRow::Create(s) => {
                    create_in(&mut tx, s, false).await?;
                    None
                }
                TurnRow::CreateIfMissing(s) => {
                    create_in(&mut tx, s, true).await?;
                    None
                }
                TurnRow::End(end) => Some(end),
                TurnRow::Unchanged => None,
            };
            if let Some(Some(key)) = &t.history_key {
                release_history_key_in(&mut tx, key, &t.session_id).await?;
            }
            // One statement moves the row on: the turn's fields, its history key, and the
            // numbers of its history entries.
            let count = i64::try_from(t.events.len())
                .map_err(|_| StoreError::Invalid("too many events".into()))?;
            if end.is_some() || t.history_key.is_some() || count > 0 {
                let mut q = QueryBuilder::<Db>::new("UPDATE sessions SET updated_at = ");
                q.push_bind(now);
                if let Some(e) = end {
                    q.push(", status = ").push_bind(&e.status);
                    q.push(", cli_session_id = ").push_bind(&e.cli_session_id);
                    q.push(", workspace = ").push_bind(&e.workspace);
                    q.push(", transcript_leaf = ").push_bind(&e.transcript_leaf);
                    q.push(", turn_mark = ").push_bind(&e.turn_mark);
                }
                if let Some(key) = &t.history_key {
                    q.push(", history_key = ").push_bind(key.as_deref());
                }
                q.push(", last_event_seq = last_event_seq + ")
                    .push_bind(count)
                    .push(" WHERE id = ")
                    .push_bind(&t.session_id)
                    .push(" RETURNING last_event_seq");
                let last: Option<i64> = q.build_query_scalar().fetch_optional(&mut *tx).await?;
                let last =
                    last.ok_or_else(|| StoreError::NotFound(format!("session {}", t.session_id)))?;
                if count > 0 {
                    let first = last - count + 1;
                    insert_events_in(&mut tx, &t.session_id, &t.turn_id, now, first, &t.events)
                        .await?;
                }
            }
            if let Some(u) = &t.usage {
                record_in(&mut tx, u).await?;
            }
            for c in &t.tool_calls {
                record_tool_call_in(&mut tx, c).await?;
            }
            tx.commit().await?;
            Ok(())
        }
    };
}
pub(crate) use turns_sql;
