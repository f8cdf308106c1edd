//! What the two SQL stores (SQLite and Postgres) share: the queries and the row mapping, written
//! once and compiled for each backend's sqlx driver.
//!
//! Owns: the [`Dialect`] each backend supplies (the few fragments that differ between SQLite and
//! Postgres, and how a write transaction starts), the JSON-as-text columns, page cursors, and
//! [`sql_backend!`], which instantiates every query module for one driver and implements
//! [`Store`](super::Store) on a store type with a `pool` field by calling them.
//!
//! Why macros: sqlx's generic `Database` bounds (encode, decode and executor bounds for every
//! type, higher-ranked) would have to be restated on every function; a query module written as
//! a `macro_rules!` body that names the call site's `Db` type alias is checked by the compiler
//! once per backend with concrete types instead, and stays plain sqlx code to read.
//!
//! Must not: open pools, run migrations or set connection options (each backend's module does),
//! or use SQL that only one backend accepts outside [`Dialect`]. Placeholders are `$N`, which
//! both drivers bind by number.

pub(super) mod agents;
pub(super) mod audit;
pub(super) mod keys;
pub(super) mod leases;
pub(super) mod projects;
pub(super) mod replies;
pub(super) mod sessions;
pub(super) mod turns;
pub(super) mod usage;

use std::future::Future;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// The SQL that differs between the backends.
pub(crate) trait Dialect: sqlx::Database {
    /// True when the `payload` column's text contains parameter `$3`, as text (no pattern).
    const PAYLOAD_CONTAINS_3: &'static str;
    /// The UTC day (`YYYY-MM-DD`) of the `created_at` column (unix ms).
    const DAY_OF_CREATED_AT: &'static str;
    /// The database's clock now, in unix milliseconds (a BIGINT).
    const NOW_MILLIS: &'static str;

    /// Starts a transaction that writes: concurrent writers of the same rows queue behind it.
    fn begin_write(
        pool: &sqlx::Pool<Self>,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self>, sqlx::Error>> + Send;
}

/// A JSON value as the text both backends keep in their JSON columns.
pub(crate) fn json_text<T: Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("JSON value: {e}")))
}

/// A JSON column's text, parsed.
pub(crate) fn parse_json<T: DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Database(format!("column {column} holds bad JSON: {e}")))
}

/// A page cursor: the sort key of the last row of the page, opaque to callers.
pub(crate) fn encode_cursor(created_at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    let invalid = || StoreError::Invalid(format!("malformed cursor {cursor:?}"));
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (at, id) = text.split_once(':').ok_or_else(invalid)?;
    let at = at.parse::<i64>().map_err(|_| invalid())?;
    Ok((at, id.to_string()))
}

/// A missing referenced session, named.
pub(crate) fn session_ref_err(e: sqlx::Error, session_id: &str) -> StoreError {
    match StoreError::from(e) {
        StoreError::NotFound(_) => StoreError::NotFound(format!("session {session_id}")),
        other => other,
    }
}

/// The usage sums every totals query selects, by the names `usage_sql!` reads.
pub(crate) const TOTALS_COLUMNS: &str = "COUNT(*) AS requests, \
     CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
     CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
     CAST(COALESCE(SUM(cache_creation_input_tokens), 0) AS BIGINT) AS cache_creation_input_tokens, \
     CAST(COALESCE(SUM(cache_read_input_tokens), 0) AS BIGINT) AS cache_read_input_tokens, \
     CAST(SUM(cost_usd) AS DOUBLE PRECISION) AS cost_usd, \
     CAST(COALESCE(SUM(duration_ms), 0) AS BIGINT) AS duration_ms";

/// Instantiates every query module for the driver `$db` in a module `sql`, and implements
/// [`Store`](crate::store::Store) for `$store` (which has a `pool: sqlx::Pool<$db>` field).
macro_rules! sql_backend {
    ($store:ty, $db:ty) => {
        /// The shared queries, compiled for this backend.
        mod sql {
            #[allow(unused_imports)]
            use super::*;
            pub(crate) type Db = $db;
            pub(crate) mod sessions {
                $crate::store::sql::sessions::sessions_sql!();
            }
            pub(crate) mod agents {
                $crate::store::sql::agents::agents_sql!();
            }
            pub(crate) mod audit {
                $crate::store::sql::audit::audit_sql!();
            }
            pub(crate) mod keys {
                $crate::store::sql::keys::keys_sql!();
            }
            pub(crate) mod leases {
                $crate::store::sql::leases::leases_sql!();
            }
            pub(crate) mod projects {
                $crate::store::sql::projects::projects_sql!();
            }
            pub(crate) mod replies {
                $crate::store::sql::replies::replies_sql!();
            }
            pub(crate) mod usage {
                $crate::store::sql::usage::usage_sql!();
            }
            pub(crate) mod turns {
                $crate::store::sql::turns::turns_sql!();
            }
        }
        $crate::store::sql::store_impl!($store);
    };
}
pub(crate) use sql_backend;

/// `impl Store for $store`: each method calls its query in the `sql` module beside it.
macro_rules! store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn create_session(&self, s: &Session) -> Result<(), StoreError> {
                sql::sessions::create(&self.pool, s).await
            }
            async fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError> {
                sql::sessions::get(&self.pool, id).await
            }
            async fn update_session(&self, s: &Session) -> Result<Session, StoreError> {
                sql::sessions::update(&self.pool, s).await
            }
            async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
                sql::sessions::delete(&self.pool, id).await
            }
            async fn list_sessions(&self, f: &SessionFilter) -> Result<Page<Session>, StoreError> {
                sql::sessions::list(&self.pool, f).await
            }
            async fn find_session_by_history_key(
                &self,
                key: &str,
            ) -> Result<Option<Session>, StoreError> {
                sql::sessions::by_history_key(&self.pool, key).await
            }
            async fn set_history_key(&self, id: &str, key: Option<&str>) -> Result<(), StoreError> {
                sql::sessions::set_history_key(&self.pool, id, key).await
            }
            async fn append_events_at(
                &self,
                session_id: &str,
                turn_id: &str,
                at: i64,
                events: &[(&str, serde_json::Value)],
            ) -> Result<i64, StoreError> {
                sql::sessions::append_events(&self.pool, session_id, turn_id, at, events).await
            }
            async fn last_event_containing(
                &self,
                session_id: &str,
                kind: &str,
                needle: &str,
            ) -> Result<Option<StoredEvent>, StoreError> {
                sql::sessions::last_event_containing(&self.pool, session_id, kind, needle).await
            }
            async fn list_events(
                &self,
                session_id: &str,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<StoredEvent>, StoreError> {
                sql::sessions::list_events(&self.pool, session_id, after_seq, limit).await
            }
            async fn record_tool_call(&self, c: &ToolCallRecord) -> Result<(), StoreError> {
                sql::sessions::record_tool_call(&self.pool, c).await
            }
            async fn list_tool_calls(&self, id: &str) -> Result<Vec<ToolCallRecord>, StoreError> {
                sql::sessions::list_tool_calls(&self.pool, id).await
            }
            async fn record_usage(&self, u: &UsageRecord) -> Result<(), StoreError> {
                sql::usage::record(&self.pool, u).await
            }
            async fn record_turn(&self, t: &$crate::store::TurnRecord) -> Result<(), StoreError> {
                sql::turns::record(&self.pool, t).await
            }
            async fn usage_for_session(&self, id: &str) -> Result<UsageTotals, StoreError> {
                sql::usage::for_session(&self.pool, id).await
            }
            async fn put_reply(&self, reply: &StoredReply) -> Result<(), StoreError> {
                sql::replies::put(&self.pool, reply).await
            }
            async fn get_reply(&self, id: &str) -> Result<Option<StoredReply>, StoreError> {
                sql::replies::get(&self.pool, id).await
            }
            async fn delete_reply(&self, id: &str) -> Result<bool, StoreError> {
                sql::replies::delete(&self.pool, id).await
            }
            async fn delete_replies_before(&self, before: i64) -> Result<u64, StoreError> {
                sql::replies::delete_before(&self.pool, before).await
            }
            async fn put_agent(&self, agent: &AgentRecord) -> Result<(), StoreError> {
                sql::agents::put(&self.pool, agent).await
            }
            async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
                sql::agents::list(&self.pool).await
            }
            async fn delete_agent(&self, name: &str) -> Result<bool, StoreError> {
                sql::agents::delete(&self.pool, name).await
            }
            async fn put_session_settings(
                &self,
                session_id: &str,
                settings: &serde_json::Value,
            ) -> Result<(), StoreError> {
                sql::agents::put_settings(&self.pool, session_id, settings).await
            }
            async fn get_session_settings(
                &self,
                session_id: &str,
            ) -> Result<Option<serde_json::Value>, StoreError> {
                sql::agents::get_settings(&self.pool, session_id).await
            }
            async fn usage_by_model(
                &self,
                session_id: &str,
            ) -> Result<Vec<(String, UsageTotals)>, StoreError> {
                sql::usage::by_model(&self.pool, session_id).await
            }
            async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
                sql::keys::put(&self.pool, key).await
            }
            async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
                sql::keys::list(&self.pool).await
            }
            async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
                sql::keys::get(&self.pool, id).await
            }
            async fn api_keys_version(&self) -> Result<(i64, i64), StoreError> {
                sql::keys::version(&self.pool).await
            }
            async fn put_project(&self, project: &ProjectRecord) -> Result<(), StoreError> {
                sql::projects::put(&self.pool, project).await
            }
            async fn get_project(&self, id: &str) -> Result<Option<ProjectRecord>, StoreError> {
                sql::projects::get(&self.pool, id).await
            }
            async fn list_projects(
                &self,
                owner: Option<&str>,
            ) -> Result<Vec<ProjectRecord>, StoreError> {
                sql::projects::list(&self.pool, owner).await
            }
            async fn delete_project(&self, id: &str) -> Result<bool, StoreError> {
                sql::projects::delete(&self.pool, id).await
            }
            async fn count_project_sessions(&self, project_id: &str) -> Result<i64, StoreError> {
                sql::projects::count_sessions(&self.pool, project_id).await
            }
            async fn set_session_project(
                &self,
                session_id: &str,
                project_id: Option<&str>,
            ) -> Result<(), StoreError> {
                sql::projects::set_session_project(&self.pool, session_id, project_id).await
            }
            async fn session_projects(
                &self,
                session_ids: &[String],
            ) -> Result<std::collections::HashMap<String, String>, StoreError> {
                sql::projects::session_projects(&self.pool, session_ids).await
            }
            async fn append_audit(&self, entries: &[AuditRecord]) -> Result<(), StoreError> {
                sql::audit::append(&self.pool, entries).await
            }
            async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
                sql::audit::list(&self.pool, f).await
            }
            async fn usage_report(&self, q: &UsageQuery) -> Result<Vec<UsageGroup>, StoreError> {
                sql::usage::report(&self.pool, q).await
            }
            async fn usage_spend_since(
                &self,
                since: i64,
            ) -> Result<Vec<(String, i64, f64)>, StoreError> {
                sql::usage::spend_since(&self.pool, since).await
            }
            async fn acquire_lease(
                &self,
                session_id: &str,
                holder: &str,
                ttl_ms: i64,
            ) -> Result<Option<i64>, StoreError> {
                sql::leases::acquire(&self.pool, session_id, holder, ttl_ms).await
            }
            async fn renew_lease(
                &self,
                session_id: &str,
                holder: &str,
                epoch: i64,
                ttl_ms: i64,
            ) -> Result<bool, StoreError> {
                sql::leases::renew(&self.pool, session_id, holder, epoch, ttl_ms).await
            }
            async fn release_lease(
                &self,
                session_id: &str,
                holder: &str,
                epoch: i64,
            ) -> Result<(), StoreError> {
                sql::leases::release(&self.pool, session_id, holder, epoch).await
            }
        }
    };
}
pub(crate) use store_impl;
