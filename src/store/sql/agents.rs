//! The SQL of custom agents and of sessions' run-time settings, for both SQL stores (see
//! [`super`]). Must not: check an agent's fields (the domain does) or know what a setting means.

macro_rules! agents_sql {
    () => {
        use serde_json::Value;
        use sqlx::{Pool, Row};

        use super::Db;
        use $crate::store::sql::{json_text, parse_json};
        use $crate::store::{AgentRecord, StoreError};

        pub(crate) async fn put(pool: &Pool<Db>, a: &AgentRecord) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO agents (name, description, prompt, tools, model, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
                 prompt = excluded.prompt, tools = excluded.tools, model = excluded.model, \
                 updated_at = excluded.updated_at",
            )
            .bind(&a.name)
            .bind(&a.description)
            .bind(&a.prompt)
            .bind(a.tools.as_ref().map(json_text).transpose()?)
            .bind(&a.model)
            .bind(a.created_at)
            .bind(a.updated_at)
            .execute(pool)
            .await?;
            Ok(())
        }

        pub(crate) async fn list(pool: &Pool<Db>) -> Result<Vec<AgentRecord>, StoreError> {
            let rows = sqlx::query(
                "SELECT name, description, prompt, tools, model, created_at, updated_at \
                 FROM agents ORDER BY name",
            )
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let tools: Option<&str> = row.try_get("tools")?;
                    Ok(AgentRecord {
                        name: row.try_get("name")?,
                        description: row.try_get("description")?,
                        prompt: row.try_get("prompt")?,
                        tools: tools.map(|t| parse_json("tools", t)).transpose()?,
                        model: row.try_get("model")?,
                        created_at: row.try_get("created_at")?,
                        updated_at: row.try_get("updated_at")?,
                    })
                })
                .collect()
        }

        pub(crate) async fn delete(pool: &Pool<Db>, name: &str) -> Result<bool, StoreError> {
            let done = sqlx::query("DELETE FROM agents WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn put_settings(
            pool: &Pool<Db>,
            session_id: &str,
            settings: &Value,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO session_settings (session_id, settings) VALUES ($1, $2) \
                 ON CONFLICT (session_id) DO UPDATE SET settings = excluded.settings",
            )
            .bind(session_id)
            .bind(json_text(settings)?)
            .execute(pool)
            .await?;
            Ok(())
        }

        pub(crate) async fn get_settings(
            pool: &Pool<Db>,
            session_id: &str,
        ) -> Result<Option<Value>, StoreError> {
            let row = sqlx::query("SELECT settings FROM session_settings WHERE session_id = $1")
                .bind(session_id)
                .fetch_optional(pool)
                .await?;
            row.map(|r| parse_json("settings", r.try_get("settings")?))
                .transpose()
        }
    };
}
pub(crate) use agents_sql;
