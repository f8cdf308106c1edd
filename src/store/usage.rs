//! The SQL of usage reports for the SQLite store: rows summed per key, model, day or end user,
//! and the spend per key and day the budgets start from. Must not: parse a client's query or
//! decide who may see whose usage (the domain's `usage` does).

use sqlx::sqlite::SqlitePool;
use sqlx::Row;

use super::StoreError;

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
    fn expr(self) -> &'static str {
        match self {
            UsageGroupBy::Total => "'total'",
            UsageGroupBy::Key => "owner",
            UsageGroupBy::Model => "model",
            UsageGroupBy::Day => "strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')",
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
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
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

pub(super) async fn report(
    pool: &SqlitePool,
    q: &UsageQuery,
) -> Result<Vec<UsageGroup>, StoreError> {
    // The grouping expression is one of ours, never the client's text.
    let sql = format!(
        "SELECT {g} AS grp, COUNT(*) AS requests, \
         COALESCE(SUM(input_tokens), 0) AS input_tokens, \
         COALESCE(SUM(output_tokens), 0) AS output_tokens, \
         COALESCE(SUM(cache_read_input_tokens), 0) AS cache_read, \
         COALESCE(SUM(cache_creation_input_tokens), 0) AS cache_write, \
         CAST(COALESCE(SUM(cost_usd), 0) AS REAL) AS cost, \
         COALESCE(SUM(CASE WHEN outcome IN ('completed', 'tool_calls', 'stop_sequence') \
         THEN 0 ELSE 1 END), 0) AS errors \
         FROM usage WHERE (?1 IS NULL OR owner = ?1) AND (?2 IS NULL OR model = ?2) \
         AND (?3 IS NULL OR created_at >= ?3) AND (?4 IS NULL OR created_at < ?4) \
         GROUP BY grp HAVING COUNT(*) > 0 ORDER BY grp",
        g = q.group_by.expr()
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

/// `(owner, UTC day start in unix ms, USD)` of every key and day since `since` (unix ms).
pub(super) async fn spend_since(
    pool: &SqlitePool,
    since: i64,
) -> Result<Vec<(String, i64, f64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT owner, (created_at / 86400000) * 86400000 AS day, \
         CAST(SUM(cost_usd) AS REAL) AS cost FROM usage \
         WHERE created_at >= ? AND cost_usd IS NOT NULL GROUP BY owner, day",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("owner")?, r.try_get("day")?, r.try_get("cost")?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{now_millis, source, Session, SqliteStore, Store, UsageRecord};

    fn row(session: &str, owner: &str, model: &str, user: Option<&str>, at: i64) -> UsageRecord {
        UsageRecord {
            id: uuid::Uuid::new_v4().to_string(),
            session_id: session.into(),
            turn_id: "t".into(),
            model: model.into(),
            input_tokens: 10,
            output_tokens: 20,
            cache_creation_input_tokens: 1,
            cache_read_input_tokens: 2,
            cost_usd: Some(0.5),
            duration_ms: 5,
            created_at: at,
            owner: owner.into(),
            end_user: user.map(String::from),
            outcome: "completed".into(),
        }
    }

    #[tokio::test]
    async fn reports_sum_per_group_and_filter() {
        let store = SqliteStore::open_in_memory().await.expect("store");
        let s = Session::new("/w", "sonnet", source::OPENAI);
        store.create_session(&s).await.expect("session");
        let day = 86_400_000;
        let t = 1_773_576_000_000; // 2026-03-15T12:00:00Z
        for r in [
            row(&s.id, "key_a", "sonnet", Some("alice"), t),
            row(&s.id, "key_a", "opus", None, t + day),
            row(&s.id, "key_b", "sonnet", Some("bob"), t),
        ] {
            store.record_usage(&r).await.expect("usage");
        }
        let mut err = row(&s.id, "key_b", "sonnet", None, t);
        err.outcome = "upstream_error".into();
        err.cost_usd = None;
        store.record_usage(&err).await.expect("usage");

        let by = |group_by| UsageQuery {
            group_by,
            ..Default::default()
        };
        let keys = store.usage_report(&by(UsageGroupBy::Key)).await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            (keys[0].group.as_str(), keys[0].requests, keys[0].cost_usd),
            ("key_a", 2, 1.0)
        );
        assert_eq!((keys[1].requests, keys[1].errors), (2, 1));
        assert_eq!(keys[1].input_tokens, 20);
        let days = store.usage_report(&by(UsageGroupBy::Day)).await.unwrap();
        let names: Vec<_> = days.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["2026-03-15", "2026-03-16"]);
        let users = store.usage_report(&by(UsageGroupBy::User)).await.unwrap();
        let names: Vec<_> = users.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["", "alice", "bob"]);
        let only = UsageQuery {
            owner: Some("key_a".into()),
            model: Some("sonnet".into()),
            ..Default::default()
        };
        let total = store.usage_report(&only).await.unwrap();
        assert_eq!(total.len(), 1);
        assert_eq!((total[0].group.as_str(), total[0].requests), ("total", 1));
        let window = UsageQuery {
            from: Some(t + 1),
            to: Some(t + 2 * day),
            ..Default::default()
        };
        assert_eq!(store.usage_report(&window).await.unwrap()[0].requests, 1);
        let none = UsageQuery {
            owner: Some("key_z".into()),
            ..Default::default()
        };
        assert!(store.usage_report(&none).await.unwrap().is_empty());

        let spend = store.usage_spend_since(t - day).await.unwrap();
        let a: f64 = spend
            .iter()
            .filter(|(o, _, _)| o == "key_a")
            .map(|(_, _, c)| c)
            .sum();
        assert_eq!(a, 1.0);
        assert!(spend.iter().all(|(_, d, _)| d % day == 0));
        assert!(store
            .usage_spend_since(now_millis() + day)
            .await
            .unwrap()
            .is_empty());
    }
}
