//! The SQL of the audit log, for both SQL stores (see [`super`]): append a batch, list a
//! filtered page. Must not: decide what is recorded, strip secrets or cap inputs (the domain's
//! `audit` does), or ever update or delete an entry (both schemas' triggers refuse it anyway).

/// Largest page of the audit log.
pub const MAX_AUDIT_PAGE: usize = 500;

/// The entry's key: its own, or its session's owner's now.
pub(crate) const KEY: &str =
    "COALESCE(key_id, (SELECT s.owner FROM sessions s WHERE s.id = audit_log.session_id))";
pub(crate) const LABEL: &str = "COALESCE(key_label, (SELECT k.name FROM api_keys k \
     JOIN sessions s ON s.owner = k.id WHERE s.id = audit_log.session_id))";

macro_rules! audit_sql {
    () => {
        use sqlx::{Pool, QueryBuilder, Row};

        use super::Db;
        use $crate::store::sql::audit::{KEY, LABEL, MAX_AUDIT_PAGE};
        use $crate::store::sql::{json_text, parse_json};
        use $crate::store::{AuditFilter, AuditRecord, StoreError};

        pub(crate) async fn append(
            pool: &Pool<Db>,
            entries: &[AuditRecord],
        ) -> Result<(), StoreError> {
            if entries.is_empty() {
                return Ok(());
            }
            let mut tx = pool.begin().await?;
            for e in entries {
                // An entry that does not name its key belongs to the session's owner.
                sqlx::query(
                    "INSERT INTO audit_log (at, kind, key_id, key_label, session_id, subject, \
                     detail) VALUES ($1, $2, \
                     COALESCE($3, (SELECT owner FROM sessions WHERE id = $4)), \
                     COALESCE($5, (SELECT k.name FROM api_keys k JOIN sessions s \
                     ON s.owner = k.id WHERE s.id = $4)), $4, $6, $7)",
                )
                .bind(e.at)
                .bind(&e.kind)
                .bind(&e.key_id)
                .bind(&e.session_id)
                .bind(&e.key_label)
                .bind(&e.subject)
                .bind(json_text(&e.detail)?)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        }

        pub(crate) async fn list(
            pool: &Pool<Db>,
            f: &AuditFilter,
        ) -> Result<Vec<AuditRecord>, StoreError> {
            // An entry written before its conversation's record existed (a compatible-API
            // conversation's first turn is recorded when it ends) gets the owner the record
            // has now.
            let mut q = QueryBuilder::<Db>::new(format!(
                "SELECT id, at, kind, {KEY} AS key_id, {LABEL} AS key_label, session_id, \
                 subject, detail FROM audit_log WHERE 1 = 1"
            ));
            if let Some(k) = &f.key {
                q.push(format!(" AND {KEY} = ")).push_bind(k.clone());
            }
            if let Some(s) = &f.session {
                q.push(" AND session_id = ").push_bind(s.clone());
            }
            if let Some(k) = &f.kind {
                q.push(" AND kind = ").push_bind(k.clone());
            }
            if let Some(from) = f.from {
                q.push(" AND at >= ").push_bind(from);
            }
            if let Some(to) = f.to {
                q.push(" AND at < ").push_bind(to);
            }
            if let Some(before) = f.before {
                q.push(" AND id < ").push_bind(before);
            }
            let limit = f.limit.clamp(1, MAX_AUDIT_PAGE) as i64;
            q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            let rows = q.build().fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(AuditRecord {
                        id: r.try_get("id")?,
                        at: r.try_get("at")?,
                        kind: r.try_get("kind")?,
                        key_id: r.try_get("key_id")?,
                        key_label: r.try_get("key_label")?,
                        session_id: r.try_get("session_id")?,
                        subject: r.try_get("subject")?,
                        detail: parse_json("detail", r.try_get("detail")?)?,
                    })
                })
                .collect()
        }
    };
}
pub(crate) use audit_sql;
