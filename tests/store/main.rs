//! One store test suite, run against both backends: every test is written once over a
//! [`Fixture`] (a `Store` and the URL it was opened from) and instantiated for SQLite (a
//! temporary file) and for Postgres (a fresh database on this binary's one Postgres server, see
//! `common::postgres_database`). The Postgres half fails, never skips, without Postgres.

#[path = "../common/mod.rs"]
mod common;
mod leases;
mod records;
mod sessions;
mod turns;

use leases::*;
use records::*;
use sessions::*;
use turns::*;

use std::sync::Arc;

use ccgw::store::{
    now_millis, source, DatabaseUrl, Durability, Session, Store, ToolCallRecord, UsageRecord,
};
use sqlx::{Connection, Executor};

pub(crate) struct Fixture {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
}

async fn fixture(url: DatabaseUrl, dir: Option<tempfile::TempDir>) -> Fixture {
    let store = ccgw::store::open(&url, Durability::Normal)
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", url.shown()));
    Fixture {
        store,
        url,
        _dir: dir,
    }
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    fixture(DatabaseUrl::Sqlite(dir.path().join("ccgw.db")), Some(dir)).await
}

async fn postgres() -> Fixture {
    fixture(
        DatabaseUrl::Postgres(common::postgres_database().await),
        None,
    )
    .await
}

/// Runs `$body` with `$c` a connection of its own to the fixture's database, whichever backend
/// it is; connection errors become `Err(String)`.
macro_rules! with_connection {
    ($url:expr, |$c:ident| $body:expr) => {
        match $url {
            DatabaseUrl::Sqlite(path) => {
                let url = format!("sqlite://{}", path.display());
                let mut $c = sqlx::SqliteConnection::connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                $body
            }
            DatabaseUrl::Postgres(url) => {
                let mut $c = sqlx::PgConnection::connect(url)
                    .await
                    .map_err(|e| e.to_string())?;
                $body
            }
        }
    };
}

impl Fixture {
    /// Runs `sql` on a connection of its own, beside the store (what an operator with a SQL
    /// shell could do).
    pub(crate) async fn raw(&self, sql: &str) -> Result<u64, String> {
        with_connection!(&self.url, |c| c
            .execute(sql)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| e.to_string()))
    }

    /// Rows of `table` that name `session_id`.
    pub(crate) async fn count(&self, table: &str, session_id: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE session_id = $1");
        let count = async {
            with_connection!(&self.url, |c| sqlx::query_scalar(&sql)
                .bind(session_id)
                .fetch_one(&mut c)
                .await
                .map_err(|e| e.to_string()))
        };
        count.await.expect("count")
    }

    /// The same database, opened again (a restart).
    pub(crate) async fn reopen(&self) -> Arc<dyn Store> {
        ccgw::store::open(&self.url, Durability::Normal)
            .await
            .expect("reopen")
    }
}

pub(crate) fn session_at(created_at: i64) -> Session {
    let mut s = Session::new("/tmp/ws", "sonnet", source::OPENAI);
    s.created_at = created_at;
    s.updated_at = created_at;
    s
}

pub(crate) async fn add(store: &dyn Store, created_at: i64) -> Session {
    let s = session_at(created_at);
    store.create_session(&s).await.expect("create");
    s
}

pub(crate) fn tool_call(session_id: &str, id: &str, created_at: i64) -> ToolCallRecord {
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

pub(crate) fn usage(session_id: &str, id: &str, cost: Option<f64>) -> UsageRecord {
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

/// Each test above, once per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::postgres().await).await;
                }
            )*
        }
    };
}

on_both_backends!(
    create_and_get_round_trip_every_field,
    create_rejects_a_taken_id_or_history_key,
    update_writes_fields_and_stamps_updated_at,
    delete_cascades_to_events_tool_calls_and_usage,
    list_pages_newest_first_without_gaps_or_repeats,
    list_filters_and_limits,
    history_key_belongs_to_one_session_at_a_time,
    the_newest_event_containing_a_needle_is_found_however_far_back,
    events_are_numbered_per_session_and_listed_in_order,
    concurrent_appends_are_gapless,
    tool_calls_are_upserted_by_id,
    usage_is_recorded_and_summed,
    projects_round_trip_and_name_their_sessions,
    usage_reports_sum_per_group_and_filter,
    replies_round_trip_replace_and_expire,
    agents_and_session_settings_round_trip,
    api_keys_round_trip_and_version,
    audit_appends_lists_filters_and_refuses_changes,
    records_survive_a_reopen,
    a_session_keeps_its_owner_and_fork,
    a_lease_is_held_once_and_its_epoch_counts_acquires,
    an_expired_lease_is_taken_over_and_the_old_hold_cannot_renew,
    concurrent_acquires_have_exactly_one_winner,
    a_turn_is_recorded_whole,
    a_turn_is_recorded_all_or_nothing,
    a_failed_turn_creates_its_record_only_when_missing,
);
