//! The SQL of stored API keys for the SQLite store. Must not: hash secrets, check a key's
//! policy or decide who may see what (the domain's `tenants` does).

use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::types::Json;
use sqlx::Row;

use super::{ApiKeyRecord, StoreError};

const COLUMNS: &str = "id, name, role, prefix, secret_hash, policy, limits, created_at, \
                       updated_at, expires_at, revoked_at";

pub(super) async fn put(pool: &SqlitePool, k: &ApiKeyRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (id, name, role, prefix, secret_hash, policy, limits, created_at, \
         updated_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role, \
         prefix = excluded.prefix, secret_hash = excluded.secret_hash, \
         policy = excluded.policy, limits = excluded.limits, updated_at = excluded.updated_at, \
         expires_at = excluded.expires_at, revoked_at = excluded.revoked_at",
    )
    .bind(&k.id)
    .bind(&k.name)
    .bind(&k.role)
    .bind(&k.prefix)
    .bind(&k.secret_hash)
    .bind(Json(&k.policy))
    .bind(Json(&k.limits))
    .bind(k.created_at)
    .bind(k.updated_at)
    .bind(k.expires_at)
    .bind(k.revoked_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn list(pool: &SqlitePool) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

pub(super) async fn get(pool: &SqlitePool, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The newest `updated_at` and the number of keys: what changes whenever any key does.
pub(super) async fn version(pool: &SqlitePool) -> Result<(i64, i64), StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(updated_at), 0) AS v, COUNT(*) AS n FROM api_keys")
        .fetch_one(pool)
        .await?;
    Ok((row.try_get("v")?, row.try_get("n")?))
}

fn from_row(row: &SqliteRow) -> Result<ApiKeyRecord, StoreError> {
    let policy: Json<serde_json::Value> = row.try_get("policy")?;
    let limits: Json<serde_json::Value> = row.try_get("limits")?;
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        prefix: row.try_get("prefix")?,
        secret_hash: row.try_get("secret_hash")?,
        policy: policy.0,
        limits: limits.0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
