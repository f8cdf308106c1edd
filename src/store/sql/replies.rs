//! The SQL of [`StoredReply`](crate::store::StoredReply) records, for both SQL stores (see
//! [`super`]). Must not: know what a reply's body means.

macro_rules! replies_sql {
    () => {
        use sqlx::{Pool, Row};

        use super::Db;
        use $crate::store::sql::{json_text, parse_json};
        use $crate::store::{StoreError, StoredReply};

        pub(crate) async fn put(pool: &Pool<Db>, r: &StoredReply) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO replies (id, kind, owner, previous_id, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
                 kind = excluded.kind, owner = excluded.owner, \
                 previous_id = excluded.previous_id, body = excluded.body, \
                 created_at = excluded.created_at",
            )
            .bind(&r.id)
            .bind(&r.kind)
            .bind(&r.owner)
            .bind(&r.previous_id)
            .bind(json_text(&r.body)?)
            .bind(r.created_at)
            .execute(pool)
            .await?;
            Ok(())
        }

        pub(crate) async fn get(
            pool: &Pool<Db>,
            id: &str,
        ) -> Result<Option<StoredReply>, StoreError> {
            let row = sqlx::query(
                "SELECT id, kind, owner, previous_id, body, created_at FROM replies \
                 WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            row.map(|row| {
                Ok(StoredReply {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    owner: row.try_get("owner")?,
                    previous_id: row.try_get("previous_id")?,
                    body: parse_json("body", row.try_get("body")?)?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .transpose()
        }

        pub(crate) async fn delete(pool: &Pool<Db>, id: &str) -> Result<bool, StoreError> {
            let done = sqlx::query("DELETE FROM replies WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn delete_before(
            pool: &Pool<Db>,
            created_before: i64,
        ) -> Result<u64, StoreError> {
            let done = sqlx::query("DELETE FROM replies WHERE created_at < $1")
                .bind(created_before)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        }
    };
}
pub(crate) use replies_sql;
