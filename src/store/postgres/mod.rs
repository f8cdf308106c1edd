//! The Postgres [`Store`](super::Store): a pool of connections to a server named by a
//! `postgres://` URL, and the migrations of `migrations/postgres/` (embedded in the binary), run
//! at start-up under the migrator's advisory lock, so gateways starting together apply each
//! one once.
//!
//! Owns: the pool, the migrations and Postgres's [`Dialect`]; the queries are the ones both SQL
//! stores share (`store::sql`). Rows are locked by the statements that change them (an event
//! append's `UPDATE sessions … RETURNING` holds its session row until commit), so the default
//! READ COMMITTED isolation keeps event numbers gapless.
//!
//! Must not: know about HTTP or the CLI, leak sqlx/Postgres types through the `Store` trait, or
//! log the URL's password (see [`super::redact_url`]).

pub mod scratch;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Postgres;

use super::sql::{sql_backend, Dialect};
use super::{
    redact_url, AgentRecord, ApiKeyRecord, AuditFilter, AuditRecord, Page, ProjectRecord, Session,
    SessionFilter, StoreError, StoredEvent, StoredReply, ToolCallRecord, UsageGroup, UsageQuery,
    UsageRecord, UsageTotals,
};

/// The files of `migrations/postgres/`. As for SQLite: never edit one that has shipped.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections in the pool: a server takes many clients, so more than SQLite's few.
const POOL_SIZE: u32 = 16;
/// How long a caller waits for a free pooled connection (and start-up for the server).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// A [`Store`](super::Store) in a Postgres database. Cheap to clone (a handle to one pool).
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`) and brings its
    /// schema up to date. Errors name the URL without its password.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let shown = redact_url(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Open(format!("database_url {shown}: {e}")))?
            .application_name("ccgw");
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(format!("connecting to {shown}: {e}")))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Open(format!("migrations on {shown}: {e}")))?;
        Ok(PgStore { pool })
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Dialect for Postgres {
    // strpos, not LIKE: the needle's own `%` and `_` are not patterns.
    const PAYLOAD_CONTAINS_3: &'static str = "strpos(payload, $3) > 0";
    const DAY_OF_CREATED_AT: &'static str =
        "to_char(to_timestamp(created_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')";
    const NOW_MILLIS: &'static str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

    async fn begin_write(
        pool: &sqlx::Pool<Postgres>,
    ) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        pool.begin().await
    }
}

sql_backend!(PgStore, sqlx::Postgres);
