//! The SQL of projects for the SQLite store, and of the project a session belongs to
//! (`sessions.project_id`). Must not: validate a project's defaults or decide who may see it
//! (the domain's `projects` does).

use std::collections::HashMap;

use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::types::Json;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{ProjectRecord, StoreError};

const COLUMNS: &str = "id, owner, name, description, defaults, created_at, updated_at";

/// Inserts a project, or replaces the one with its id (the owner and creation time stay).
pub(super) async fn put(pool: &SqlitePool, p: &ProjectRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO projects (id, owner, name, description, defaults, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
         description = excluded.description, defaults = excluded.defaults, \
         updated_at = excluded.updated_at",
    )
    .bind(&p.id)
    .bind(&p.owner)
    .bind(&p.name)
    .bind(&p.description)
    .bind(Json(&p.defaults))
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn get(pool: &SqlitePool, id: &str) -> Result<Option<ProjectRecord>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM projects WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Newest first; only `owner`'s when given.
pub(super) async fn list(
    pool: &SqlitePool,
    owner: Option<&str>,
) -> Result<Vec<ProjectRecord>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {COLUMNS} FROM projects"));
    if let Some(o) = owner {
        q.push(" WHERE owner = ").push_bind(o);
    }
    q.push(" ORDER BY created_at DESC, id DESC");
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(from_row).collect()
}

pub(super) async fn delete(pool: &SqlitePool, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM projects WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn count_sessions(pool: &SqlitePool, project_id: &str) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE project_id = ?")
        .bind(project_id)
        .fetch_one(pool)
        .await?;
    Ok(row.try_get("n")?)
}

pub(super) async fn set_session_project(
    pool: &SqlitePool,
    session_id: &str,
    project_id: Option<&str>,
) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE sessions SET project_id = ? WHERE id = ?")
        .bind(project_id)
        .bind(session_id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("session {session_id}")));
    }
    Ok(())
}

/// The project of each of these sessions that has one.
pub(super) async fn session_projects(
    pool: &SqlitePool,
    session_ids: &[String],
) -> Result<HashMap<String, String>, StoreError> {
    if session_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT id, project_id FROM sessions WHERE project_id IS NOT NULL AND id IN (",
    );
    let mut ids = q.separated(", ");
    for id in session_ids {
        ids.push_bind(id);
    }
    q.push(")");
    let rows = q.build().fetch_all(pool).await?;
    rows.iter()
        .map(|r| -> Result<(String, String), StoreError> {
            Ok((r.try_get("id")?, r.try_get("project_id")?))
        })
        .collect()
}

fn from_row(r: &SqliteRow) -> Result<ProjectRecord, StoreError> {
    let Json(defaults) = r.try_get::<Json<serde_json::Value>, _>("defaults")?;
    Ok(ProjectRecord {
        id: r.try_get("id")?,
        owner: r.try_get("owner")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        defaults,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}
