//! The SQL of custom agents and of sessions' run-time settings for the SQLite store. Must not:
//! check an agent's fields (the domain does) or know what a setting means.

use serde_json::Value;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::types::Json;
use sqlx::Row;

use super::{AgentRecord, StoreError, UsageTotals};

pub(super) async fn put(pool: &SqlitePool, a: &AgentRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO agents (name, description, prompt, tools, model, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
         prompt = excluded.prompt, tools = excluded.tools, model = excluded.model, \
         updated_at = excluded.updated_at",
    )
    .bind(&a.name)
    .bind(&a.description)
    .bind(&a.prompt)
    .bind(a.tools.as_ref().map(Json))
    .bind(&a.model)
    .bind(a.created_at)
    .bind(a.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn list(pool: &SqlitePool) -> Result<Vec<AgentRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, description, prompt, tools, model, created_at, updated_at \
         FROM agents ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

pub(super) async fn delete(pool: &SqlitePool, name: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM agents WHERE name = ?")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn put_settings(
    pool: &SqlitePool,
    session_id: &str,
    settings: &Value,
) -> Result<(), StoreError> {
    sqlx::query("INSERT OR REPLACE INTO session_settings (session_id, settings) VALUES (?, ?)")
        .bind(session_id)
        .bind(Json(settings))
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn get_settings(
    pool: &SqlitePool,
    session_id: &str,
) -> Result<Option<Value>, StoreError> {
    let row = sqlx::query("SELECT settings FROM session_settings WHERE session_id = ?")
        .bind(session_id)
        .fetch_optional(pool)
        .await?;
    Ok(row
        .map(|r| r.try_get::<Json<Value>, _>("settings").map(|j| j.0))
        .transpose()?)
}

pub(super) async fn usage_by_model(
    pool: &SqlitePool,
    session_id: &str,
) -> Result<Vec<(String, UsageTotals)>, StoreError> {
    let rows = sqlx::query(
        "SELECT model, COUNT(*) AS requests, \
         COALESCE(SUM(input_tokens), 0) AS input_tokens, \
         COALESCE(SUM(output_tokens), 0) AS output_tokens, \
         COALESCE(SUM(cache_creation_input_tokens), 0) AS cache_creation_input_tokens, \
         COALESCE(SUM(cache_read_input_tokens), 0) AS cache_read_input_tokens, \
         CAST(SUM(cost_usd) AS REAL) AS cost_usd, \
         COALESCE(SUM(duration_ms), 0) AS duration_ms \
         FROM usage WHERE session_id = ? GROUP BY model ORDER BY model",
    )
    .bind(session_id)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((
            r.try_get("model")?,
            UsageTotals {
                requests: r.try_get("requests")?,
                input_tokens: r.try_get("input_tokens")?,
                output_tokens: r.try_get("output_tokens")?,
                cache_creation_input_tokens: r.try_get("cache_creation_input_tokens")?,
                cache_read_input_tokens: r.try_get("cache_read_input_tokens")?,
                cost_usd: r.try_get("cost_usd")?,
                duration_ms: r.try_get("duration_ms")?,
            },
        ));
    }
    Ok(out)
}

fn from_row(row: &SqliteRow) -> Result<AgentRecord, sqlx::Error> {
    let tools: Option<Json<Vec<String>>> = row.try_get("tools")?;
    Ok(AgentRecord {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        prompt: row.try_get("prompt")?,
        tools: tools.map(|j| j.0),
        model: row.try_get("model")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
