//! The SQL of stored API keys, for both SQL stores (see [`super`]). Must not: hash secrets,
//! check a key's policy or decide who may see what (the domain's `tenants` does).

pub(crate) const KEY_COLUMNS: &str = "id, name, role, prefix, secret_hash, policy, limits, \
     created_at, updated_at, expires_at, revoked_at";

macro_rules! keys_sql {
    () => {
        use sqlx::{Pool, Row};

        use super::Db;
        use $crate::store::sql::keys::KEY_COLUMNS;
        use $crate::store::sql::{json_text, parse_json};
        use $crate::store::{ApiKeyRecord, StoreError};

        pub(crate) async fn put(pool: &Pool<Db>, k: &ApiKeyRecord) -> Result<(), StoreError> {
            let sql = format!(
                "INSERT INTO api_keys ({KEY_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role, \
                 prefix = excluded.prefix, secret_hash = excluded.secret_hash, \
                 policy = excluded.policy, limits = excluded.limits, \
                 updated_at = excluded.updated_at, expires_at = excluded.expires_at, \
                 revoked_at = excluded.revoked_at"
            );
            sqlx::query(&sql)
                .bind(&k.id)
                .bind(&k.name)
                .bind(&k.role)
                .bind(&k.prefix)
                .bind(&k.secret_hash)
                .bind(json_text(&k.policy)?)
                .bind(json_text(&k.limits)?)
                .bind(k.created_at)
                .bind(k.updated_at)
                .bind(k.expires_at)
                .bind(k.revoked_at)
                .execute(pool)
                .await?;
            Ok(())
        }

        pub(crate) async fn list(pool: &Pool<Db>) -> Result<Vec<ApiKeyRecord>, StoreError> {
            let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id");
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            rows.iter().map(from_row).collect()
        }

        pub(crate) async fn get(
            pool: &Pool<Db>,
            id: &str,
        ) -> Result<Option<ApiKeyRecord>, StoreError> {
            let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
            let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(from_row).transpose()
        }

        /// The newest `updated_at` and the number of keys: what changes whenever any key does.
        pub(crate) async fn version(pool: &Pool<Db>) -> Result<(i64, i64), StoreError> {
            let row = sqlx::query(
                "SELECT CAST(COALESCE(MAX(updated_at), 0) AS BIGINT) AS v, COUNT(*) AS n \
                 FROM api_keys",
            )
            .fetch_one(pool)
            .await?;
            Ok((row.try_get("v")?, row.try_get("n")?))
        }

        fn from_row(row: &<Db as sqlx::Database>::Row) -> Result<ApiKeyRecord, StoreError> {
            Ok(ApiKeyRecord {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                role: row.try_get("role")?,
                prefix: row.try_get("prefix")?,
                secret_hash: row.try_get("secret_hash")?,
                policy: parse_json("policy", row.try_get("policy")?)?,
                limits: parse_json("limits", row.try_get("limits")?)?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                expires_at: row.try_get("expires_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }
    };
}
pub(crate) use keys_sql;
