//! The SQL of session leases (see `domain::leases`), for both SQL stores (see [`super`]).
//! Times come from the database's clock (`Dialect::NOW_MILLIS`), so instances on machines
//! whose clocks differ still agree on when a lease expires. Must not: decide how long a lease
//! lasts or what a holder does with it.

macro_rules! leases_sql {
    () => {
        use sqlx::{Pool, Row};

        use super::Db;
        use $crate::store::sql::Dialect;
        use $crate::store::StoreError;

        /// One atomic upsert: taken when the row is new, released or expired; `epoch` counts
        /// every acquire. `None`: another holder's lease is in force.
        pub(crate) async fn acquire(
            pool: &Pool<Db>,
            session_id: &str,
            holder: &str,
            ttl_ms: i64,
        ) -> Result<Option<i64>, StoreError> {
            let now = <Db as Dialect>::NOW_MILLIS;
            let row = sqlx::query(&format!(
                "INSERT INTO session_leases (session_id, holder, epoch, expires_at) \
                 VALUES ($1, $2, 1, {now} + $3) ON CONFLICT (session_id) DO UPDATE SET \
                 holder = excluded.holder, epoch = session_leases.epoch + 1, \
                 expires_at = excluded.expires_at \
                 WHERE session_leases.expires_at <= {now} RETURNING epoch"
            ))
            .bind(session_id)
            .bind(holder)
            .bind(ttl_ms)
            .fetch_optional(pool)
            .await?;
            row.map(|r| r.try_get::<i64, _>("epoch").map_err(StoreError::from))
                .transpose()
        }

        /// Extend a hold; false when it is no longer this holder's (someone took it over).
        pub(crate) async fn renew(
            pool: &Pool<Db>,
            session_id: &str,
            holder: &str,
            epoch: i64,
            ttl_ms: i64,
        ) -> Result<bool, StoreError> {
            let now = <Db as Dialect>::NOW_MILLIS;
            let done = sqlx::query(&format!(
                "UPDATE session_leases SET expires_at = {now} + $4 \
                 WHERE session_id = $1 AND holder = $2 AND epoch = $3"
            ))
            .bind(session_id)
            .bind(holder)
            .bind(epoch)
            .bind(ttl_ms)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        /// Give a hold up (a no-op when it was taken over meanwhile).
        pub(crate) async fn release(
            pool: &Pool<Db>,
            session_id: &str,
            holder: &str,
            epoch: i64,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE session_leases SET expires_at = 0 \
                 WHERE session_id = $1 AND holder = $2 AND epoch = $3",
            )
            .bind(session_id)
            .bind(holder)
            .bind(epoch)
            .execute(pool)
            .await?;
            Ok(())
        }
    };
}
pub(crate) use leases_sql;
