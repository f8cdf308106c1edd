//! The SQL of usage rows, for both SQL stores (see [`super`]): recording them, a session's
//! totals, reports summed per key, model, day or end user, and the spend per key and day the
//! budgets start from. Must not: parse a client's query or decide who may see whose usage (the
//! domain's `usage` does).

/// What a usage report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsageGroupBy {
    /// One group for everything.
    #[default]
    Total,
    Key,
    Model,
    /// UTC day, `YYYY-MM-DD`.
    Day,
    /// The end user (`""` when the client named none).
    User,
}

impl UsageGroupBy {
    /// The grouping expression; `day` is the backend's (see `Dialect::DAY_OF_CREATED_AT`).
    pub(crate) fn expr(self, day: &'static str) -> &'static str {
        match self {
            UsageGroupBy::Total => "'total'",
            UsageGroupBy::Key => "owner",
            UsageGroupBy::Model => "model",
            UsageGroupBy::Day => day,
            UsageGroupBy::User => "COALESCE(end_user, '')",
        }
    }
}

/// Which usage rows a report sums. `None` is "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageQuery {
    pub owner: Option<String>,
    pub model: Option<String>,
    /// Unix ms, inclusive.
    pub from: Option<i64>,
    /// Unix ms, exclusive.
    pub to: Option<i64>,
    pub group_by: UsageGroupBy,
}

/// The sums of one group.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct UsageGroup {
    pub group: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cost_usd: f64,
    /// Turns that ended in an error (a stop sequence or a pause on tool calls is no error).
    pub errors: i64,
}

/// The sums of a report row, by the names the report of `usage_sql!` reads.
pub(crate) const REPORT_COLUMNS: &str = "COUNT(*) AS requests, \
     CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
     CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
     CAST(COALESCE(SUM(cache_read_input_tokens), 0) AS BIGINT) AS cache_read, \
     CAST(COALESCE(SUM(cache_creation_input_tokens), 0) AS BIGINT) AS cache_write, \
     CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost, \
     CAST(COALESCE(SUM(CASE WHEN outcome IN ('completed', 'tool_calls', 'stop_sequence') \
     THEN 0 ELSE 1 END), 0) AS BIGINT) AS errors";

macro_rules! usage_sql {
    () => {
        use sqlx::{Pool, Row};

        use super::Db;
        use $crate::store::sql::usage::REPORT_COLUMNS;
        use $crate::store::sql::{session_ref_err, Dialect, TOTALS_COLUMNS};
        use $crate::store::{StoreError, UsageGroup, UsageQuery, UsageRecord, UsageTotals};

        pub(crate) async fn record(pool: &Pool<Db>, u: &UsageRecord) -> Result<(), StoreError> {
            record_in(&mut *pool.acquire().await?, u).await
        }

        pub(crate) async fn record_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            u: &UsageRecord,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO usage (id, session_id, turn_id, model, input_tokens, \
                 output_tokens, cache_creation_input_tokens, cache_read_input_tokens, \
                 cost_usd, duration_ms, created_at, owner, end_user, outcome) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&u.id)
            .bind(&u.session_id)
            .bind(&u.turn_id)
            .bind(&u.model)
            .bind(u.input_tokens)
            .bind(u.output_tokens)
            .bind(u.cache_creation_input_tokens)
            .bind(u.cache_read_input_tokens)
            .bind(u.cost_usd)
            .bind(u.duration_ms)
            .bind(u.created_at)
            .bind(&u.owner)
            .bind(&u.end_user)
            .bind(if u.outcome.is_empty() {
                "completed"
            } else {
                u.outcome.as_str()
            })
            .execute(&mut *conn)
            .await
            .map_err(|e| session_ref_err(e, &u.session_id))?;
            Ok(())
        }

        fn totals_from_row(r: &<Db as sqlx::Database>::Row) -> Result<UsageTotals, StoreError> {
            Ok(UsageTotals {
                requests: r.try_get("requests")?,
                input_tokens: r.try_get("input_tokens")?,
                output_tokens: r.try_get("output_tokens")?,
                cache_creation_input_tokens: r.try_get("cache_creation_input_tokens")?,
                cache_read_input_tokens: r.try_get("cache_read_input_tokens")?,
                cost_usd: r.try_get("cost_usd")?,
                duration_ms: r.try_get("duration_ms")?,
            })
        }

        pub(crate) async fn for_session(
            pool: &Pool<Db>,
            session_id: &str,
        ) -> Result<UsageTotals, StoreError> {
            let sql = format!("SELECT {TOTALS_COLUMNS} FROM usage WHERE session_id = $1");
            let row = sqlx::query(&sql).bind(session_id).fetch_one(pool).await?;
            totals_from_row(&row)
        }

        pub(crate) async fn by_model(
            pool: &Pool<Db>,
            session_id: &str,
        ) -> Result<Vec<(String, UsageTotals)>, StoreError> {
            let sql = format!(
                "SELECT model, {TOTALS_COLUMNS} FROM usage WHERE session_id = $1 \
                 GROUP BY model ORDER BY model"
            );
            let rows = sqlx::query(&sql).bind(session_id).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get("model")?, totals_from_row(r)?)))
                .collect()
        }

        pub(crate) async fn report(
            pool: &Pool<Db>,
            q: &UsageQuery,
        ) -> Result<Vec<UsageGroup>, StoreError> {
            // The grouping expression is one of ours, never the client's text.
            let sql = format!(
                "SELECT {g} AS grp, {REPORT_COLUMNS} FROM usage \
                 WHERE ($1 IS NULL OR owner = $1) AND ($2 IS NULL OR model = $2) \
                 AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4) \
                 GROUP BY grp HAVING COUNT(*) > 0 ORDER BY grp",
                g = q.group_by.expr(<Db as Dialect>::DAY_OF_CREATED_AT)
            );
            let rows = sqlx::query(&sql)
                .bind(&q.owner)
                .bind(&q.model)
                .bind(q.from)
                .bind(q.to)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(UsageGroup {
                        group: r.try_get("grp")?,
                        requests: r.try_get("requests")?,
                        input_tokens: r.try_get("input_tokens")?,
                        output_tokens: r.try_get("output_tokens")?,
                        cache_read_input_tokens: r.try_get("cache_read")?,
                        cache_creation_input_tokens: r.try_get("cache_write")?,
                        cost_usd: r.try_get("cost")?,
                        errors: r.try_get("errors")?,
                    })
                })
                .collect()
        }

        /// `(owner, UTC day start in unix ms, USD)` of every key and day since `since`.
        pub(crate) async fn spend_since(
            pool: &Pool<Db>,
            since: i64,
        ) -> Result<Vec<(String, i64, f64)>, StoreError> {
            let rows = sqlx::query(
                "SELECT owner, (created_at / 86400000) * 86400000 AS day, \
                 CAST(SUM(cost_usd) AS DOUBLE PRECISION) AS cost FROM usage \
                 WHERE created_at >= $1 AND cost_usd IS NOT NULL GROUP BY owner, day",
            )
            .bind(since)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("owner")?, r.try_get("day")?, r.try_get("cost")?)))
                .collect()
        }
    };
}
pub(crate) use usage_sql;
