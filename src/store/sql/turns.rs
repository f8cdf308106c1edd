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
        use sqlx::Pool;

        use super::sessions::{
            append_events_in, create_in, end_turn_in, record_tool_call_in, set_history_key_in,
        };
        use super::usage::record_in;
        use super::Db;
        use $crate::store::sql::Dialect;
        use $crate::store::{now_millis, StoreError, TurnRecord, TurnRow};

        pub(crate) async fn record(pool: &Pool<Db>, t: &TurnRecord) -> Result<(), StoreError> {
            let mut tx = <Db as Dialect>::begin_write(pool).await?;
            match &t.row {
                TurnRow::Unchanged => {}
                TurnRow::Create(s) => create_in(&mut tx, s, false).await?,
                TurnRow::CreateIfMissing(s) => create_in(&mut tx, s, true).await?,
                TurnRow::End(end) => end_turn_in(&mut tx, &t.session_id, end).await?,
            }
            if let Some(key) = &t.history_key {
                set_history_key_in(&mut tx, &t.session_id, key.as_deref()).await?;
            }
            if let Some(u) = &t.usage {
                record_in(&mut tx, u).await?;
            }
            for c in &t.tool_calls {
                record_tool_call_in(&mut tx, c).await?;
            }
            if !t.events.is_empty() {
                append_events_in(&mut tx, &t.session_id, &t.turn_id, now_millis(), &t.events)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }
    };
}
pub(crate) use turns_sql;
