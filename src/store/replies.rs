//! The SQL of [`StoredReply`] records for the SQLite store (kept apart from the sessions' SQL,
//! which has a file of its own). Must not: know what a reply's body means.

use serde_json::Value;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::types::Json;
use sqlx::Row;

use super::{StoreError, StoredReply};

pub(super) async fn put(pool: &SqlitePool, r: &StoredReply) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR REPLACE INTO replies (id, kind, owner, previous_id, body, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&r.id)
    .bind(&r.kind)
    .bind(&r.owner)
    .bind(&r.previous_id)
    .bind(Json(&r.body))
    .bind(r.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn get(pool: &SqlitePool, id: &str) -> Result<Option<StoredReply>, StoreError> {
    let row = sqlx::query(
        "SELECT id, kind, owner, previous_id, body, created_at FROM replies WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| from_row(&r)).transpose()?)
}

pub(super) async fn delete(pool: &SqlitePool, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM replies WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn delete_before(
    pool: &SqlitePool,
    created_before: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM replies WHERE created_at < ?")
        .bind(created_before)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

fn from_row(row: &SqliteRow) -> Result<StoredReply, sqlx::Error> {
    let Json(body): Json<Value> = row.try_get("body")?;
    Ok(StoredReply {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        owner: row.try_get("owner")?,
        previous_id: row.try_get("previous_id")?,
        body,
        created_at: row.try_get("created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, Store};
    use serde_json::json;

    fn reply(id: &str, previous: Option<&str>, at: i64) -> StoredReply {
        StoredReply {
            id: id.into(),
            kind: "response".into(),
            owner: "k1".into(),
            previous_id: previous.map(String::from),
            body: json!({"output": [id]}),
            created_at: at,
        }
    }

    #[tokio::test]
    async fn replies_round_trip_replace_and_expire() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        store.put_reply(&reply("r1", None, 10)).await.unwrap();
        store.put_reply(&reply("r2", Some("r1"), 20)).await.unwrap();
        assert_eq!(
            store.get_reply("r2").await.unwrap(),
            Some(reply("r2", Some("r1"), 20))
        );
        let mut again = reply("r2", Some("r1"), 20);
        again.body = json!({"output": "new"});
        store.put_reply(&again).await.unwrap();
        assert_eq!(
            store.get_reply("r2").await.unwrap().unwrap().body["output"],
            "new"
        );
        assert_eq!(store.delete_replies_before(15).await.unwrap(), 1);
        assert_eq!(store.get_reply("r1").await.unwrap(), None);
        assert!(store.delete_reply("r2").await.unwrap());
        assert!(!store.delete_reply("r2").await.unwrap());
    }
}
