//! The SQLite [`Store`](super::Store): one database file in the data dir, WAL journal, a small pool,
//! migrations (from `migrations/sqlite/`, embedded in the binary) run at start-up.
//!
//! Owns: the pool, its pragmas, the migrations, and SQLite's [`Dialect`]; the queries are the
//! ones both SQL stores share (`store::sql`). Write transactions start with `BEGIN IMMEDIATE`,
//! so concurrent writers queue on SQLite's lock (within `busy_timeout`) instead of failing when
//! a read transaction tries to become a write one.
//!
//! Must not: know about HTTP or the CLI, or leak sqlx/SQLite types through the `Store` trait.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Sqlite;

use super::sql::{sql_backend, Dialect};
use super::{
    AgentRecord, ApiKeyRecord, AuditFilter, AuditRecord, Page, ProjectRecord, Session,
    SessionFilter, StoreError, StoredEvent, StoredReply, ToolCallRecord, UsageGroup, UsageQuery,
    UsageRecord, UsageTotals,
};

/// The files of `migrations/sqlite/`, embedded at compile time (`build.rs` makes a new file
/// trigger a rebuild). Never edit a migration that has shipped: its checksum is recorded, and start-up
/// fails on a mismatch.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connections in the pool of a file-backed store.
const POOL_SIZE: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the WAL is copied back into the database file (see [`checkpoint_in_background`]).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

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
            .foreign_keys(true)
            // No commit copies the WAL back itself: a background task does (see below).
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A file's connection does not go stale as a server's can: no ping (a round trip
            // to the connection's thread) before every query.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(format!("opening {}: {e}", path.display())))?;
        let store = Self::start(pool).await?;
        checkpoint_in_background(store.pool.clone());
        Ok(store)
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
}

/// Copy the WAL back into the database file every [`CHECKPOINT_EVERY`], off every commit's
/// path, until the pool is closed.
///
/// Why: with SQLite's automatic checkpoints, the commit that finds the WAL past 1,000 pages
/// copies them all before it returns. A turn's reply waits for its commit, so at a few hundred
/// turns a second one reply in a hundred waited milliseconds for a checkpoint. A passive
/// checkpoint runs beside readers and writers and never waits for them.
fn checkpoint_in_background(pool: SqlitePool) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if pool.is_closed() {
                return;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "could not checkpoint the database's WAL");
            }
        }
    });
}

impl Dialect for Sqlite {
    // instr, not LIKE: the needle's own `%` and `_` are not patterns.
    const PAYLOAD_CONTAINS_3: &'static str = "instr(payload, $3) > 0";
    const DAY_OF_CREATED_AT: &'static str = "strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')";
    const NOW_MILLIS: &'static str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

    /// `BEGIN IMMEDIATE`: the write lock is taken at the start, so a transaction never fails
    /// trying to turn a read lock into a write one while another writer holds it.
    async fn begin_write(
        pool: &sqlx::Pool<Sqlite>,
    ) -> Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }
}

sql_backend!(SqliteStore, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    //! What only SQLite has: its file, its pragmas, its migrations table. The behaviour both
    //! backends share is tested once for both, in `tests/store/`.
    use serde_json::json;

    use super::*;
    use crate::store::{source, Store};

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

    /// No commit checkpoints (it would wait for it); the background task copies the WAL back.
    #[tokio::test]
    async fn the_wal_is_copied_back_off_the_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ccgw.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let auto: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(auto, 0, "no automatic checkpoint on a commit");
        tokio::time::sleep(CHECKPOINT_EVERY * 2).await;
        let before = std::fs::metadata(&path).unwrap().len();
        let text = "x".repeat(2000);
        for _ in 0..300 {
            let s = Session::new("/w", "sonnet", source::OPENAI);
            store.create_session(&s).await.unwrap();
            store
                .append_events(&s.id, "t1", &[("text", json!({ "text": text }))])
                .await
                .unwrap();
        }
        // The rows went to the WAL; a checkpoint copies their pages into the database file.
        let grown = || std::fs::metadata(&path).unwrap().len() > before + 300 * 2000;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !grown() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            grown(),
            "the database file took the WAL's pages ({before} bytes before)"
        );
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
}
