//! The SQL of projects, and of the project a session belongs to (`sessions.project_id`), for
//! both SQL stores (see [`super`]). Must not: validate a project's defaults or decide who may
//! see it (the domain's `projects` does).

pub(crate) const PROJECT_COLUMNS: &str =
    "id, owner, name, description, defaults, created_at, updated_at";

macro_rules! projects_sql {
    () => {
        use std::collections::HashMap;

        use sqlx::{Pool, QueryBuilder, Row};

        use super::Db;
        use $crate::store::sql::projects::PROJECT_COLUMNS;
        use $crate::store::sql::{json_text, parse_json};
        use $crate::store::{ProjectRecord, StoreError};

        /// Inserts a project, or replaces the one with its id (the owner and creation time
        /// stay).
        pub(crate) async fn put(pool: &Pool<Db>, p: &ProjectRecord) -> Result<(), StoreError> {
            let sql = format!(
                "INSERT INTO projects ({PROJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                 description = excluded.description, defaults = excluded.defaults, \
                 updated_at = excluded.updated_at"
            );
            sqlx::query(&sql)
                .bind(&p.id)
                .bind(&p.owner)
                .bind(&p.name)
                .bind(&p.description)
                .bind(json_text(&p.defaults)?)
                .bind(p.created_at)
                .bind(p.updated_at)
                .execute(pool)
                .await?;
            Ok(())
        }

        pub(crate) async fn get(
            pool: &Pool<Db>,
            id: &str,
        ) -> Result<Option<ProjectRecord>, StoreError> {
            let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1");
            let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(from_row).transpose()
        }

        /// Newest first; only `owner`'s when given.
        pub(crate) async fn list(
            pool: &Pool<Db>,
            owner: Option<&str>,
        ) -> Result<Vec<ProjectRecord>, StoreError> {
            let mut q = QueryBuilder::<Db>::new(format!("SELECT {PROJECT_COLUMNS} FROM projects"));
            if let Some(o) = owner {
                q.push(" WHERE owner = ").push_bind(o);
            }
            q.push(" ORDER BY created_at DESC, id DESC");
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(from_row).collect()
        }

        pub(crate) async fn delete(pool: &Pool<Db>, id: &str) -> Result<bool, StoreError> {
            let done = sqlx::query("DELETE FROM projects WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn count_sessions(
            pool: &Pool<Db>,
            project_id: &str,
        ) -> Result<i64, StoreError> {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE project_id = $1")
                .bind(project_id)
                .fetch_one(pool)
                .await?;
            Ok(row.try_get("n")?)
        }

        pub(crate) async fn set_session_project(
            pool: &Pool<Db>,
            session_id: &str,
            project_id: Option<&str>,
        ) -> Result<(), StoreError> {
            let done = sqlx::query("UPDATE sessions SET project_id = $1 WHERE id = $2")
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
        pub(crate) async fn session_projects(
            pool: &Pool<Db>,
            session_ids: &[String],
        ) -> Result<HashMap<String, String>, StoreError> {
            if session_ids.is_empty() {
                return Ok(HashMap::new());
            }
            let mut q = QueryBuilder::<Db>::new(
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

        fn from_row(r: &<Db as sqlx::Database>::Row) -> Result<ProjectRecord, StoreError> {
            Ok(ProjectRecord {
                id: r.try_get("id")?,
                owner: r.try_get("owner")?,
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                defaults: parse_json("defaults", r.try_get("defaults")?)?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }
    };
}
pub(crate) use projects_sql;
