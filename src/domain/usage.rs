//! Usage reports: a client's query (`key`, `model`, `from`, `to`, `group_by`, `format`) read
//! and checked, the store's sums, the totals over them, and their CSV form.
//!
//! Owns who sees whose usage: an admin asks about any key (or all), a user's view is forced to
//! its own key whatever it asks. Must not: know HTTP (the adapters pick the status and the
//! content type) or write SQL (the store's `usage` does).

use std::collections::HashMap;

use serde::Serialize;

use crate::store::{Store, StoreError, UsageGroup, UsageGroupBy, UsageQuery};

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// A query value that cannot be read; `param` names it.
    #[error("{message}")]
    Invalid { param: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(param: &str, message: impl Into<String>) -> UsageError {
    UsageError::Invalid {
        param: param.into(),
        message: message.into(),
    }
}

/// How a report is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// A report query as read from the client.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRequest {
    pub query: UsageQuery,
    pub format: Format,
}

/// The report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub object: &'static str,
    /// `key`, `model`, `day`, `user`, or `total`.
    pub group_by: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Unix ms, inclusive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// Unix ms, exclusive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    pub data: Vec<UsageGroup>,
    /// The sums over every group.
    pub total: UsageGroup,
}

fn group_name(g: UsageGroupBy) -> &'static str {
    match g {
        UsageGroupBy::Total => "total",
        UsageGroupBy::Key => "key",
        UsageGroupBy::Model => "model",
        UsageGroupBy::Day => "day",
        UsageGroupBy::User => "user",
    }
}

/// Read a query string's values. Unknown parameters are ignored (lenient, like the bodies);
/// a bad value is an error naming it.
pub fn parse(params: &HashMap<String, String>) -> Result<ReportRequest, UsageError> {
    let get = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let group_by = match get("group_by") {
        None => UsageGroupBy::Total,
        Some("key") => UsageGroupBy::Key,
        Some("model") => UsageGroupBy::Model,
        Some("day") => UsageGroupBy::Day,
        Some("user") => UsageGroupBy::User,
        Some(other) => {
            return Err(invalid(
                "group_by",
                format!("group_by must be key, model, day or user, not '{other}'"),
            ))
        }
    };
    let format = match get("format") {
        None | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some(other) => {
            return Err(invalid(
                "format",
                format!("format must be json or csv, not '{other}'"),
            ))
        }
    };
    let from = get("from").map(|v| instant("from", v, false)).transpose()?;
    let to = get("to").map(|v| instant("to", v, true)).transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(invalid("to", "to must be later than from"));
        }
    }
    Ok(ReportRequest {
        query: UsageQuery {
            owner: get("key").map(String::from),
            model: get("model").map(String::from),
            from,
            to,
            group_by,
        },
        format,
    })
}

/// An RFC 3339 time, or a date (`YYYY-MM-DD`, UTC): from its start, or for `to` through its
/// end. Unix ms.
fn instant(param: &str, v: &str, end_of_day: bool) -> Result<i64, UsageError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(v, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(v, &fmt) {
        Ok(d) => {
            let start = d.midnight().assume_utc().unix_timestamp() * 1000;
            Ok(if end_of_day {
                start + 86_400_000
            } else {
                start
            })
        }
        Err(_) => Err(invalid(
            param,
            format!("{param} must be an RFC 3339 time or a date (YYYY-MM-DD), not '{v}'"),
        )),
    }
}

/// The report for `req`; `own` forces it to one key (a user's own view).
pub async fn report(
    store: &dyn Store,
    mut req: ReportRequest,
    own: Option<&str>,
) -> Result<Report, UsageError> {
    if let Some(owner) = own {
        req.query.owner = Some(owner.to_string());
    }
    let data = store.usage_report(&req.query).await?;
    let total = data.iter().fold(
        UsageGroup {
            group: "total".into(),
            ..Default::default()
        },
        |mut t, g| {
            t.requests += g.requests;
            t.input_tokens += g.input_tokens;
            t.output_tokens += g.output_tokens;
            t.cache_read_input_tokens += g.cache_read_input_tokens;
            t.cache_creation_input_tokens += g.cache_creation_input_tokens;
            t.cost_usd += g.cost_usd;
            t.errors += g.errors;
            t
        },
    );
    let q = req.query;
    Ok(Report {
        object: "usage_report",
        group_by: group_name(q.group_by),
        key: q.owner,
        model: q.model,
        from: q.from,
        to: q.to,
        data,
        total,
    })
}

/// The report as CSV: a header naming the grouping, one line per group.
pub fn to_csv(r: &Report) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        r.group_by,
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "cost_usd",
        "errors",
    ])?;
    for g in &r.data {
        w.write_record([
            g.group.clone(),
            g.requests.to_string(),
            g.input_tokens.to_string(),
            g.output_tokens.to_string(),
            g.cache_read_input_tokens.to_string(),
            g.cache_creation_input_tokens.to_string(),
            g.cost_usd.to_string(),
            g.errors.to_string(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<ReportRequest, UsageError> {
        parse(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn param(r: Result<ReportRequest, UsageError>) -> String {
        match r {
            Err(UsageError::Invalid { param, .. }) => param,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_dates_times_and_groups() {
        let r = q(&[
            ("from", "2026-03-15"),
            ("to", "2026-03-15"),
            ("group_by", "user"),
            ("format", "csv"),
        ])
        .unwrap();
        assert_eq!(r.query.from, Some(1_773_532_800_000));
        assert_eq!(r.query.to, Some(1_773_532_800_000 + 86_400_000));
        assert_eq!(r.query.group_by, UsageGroupBy::User);
        assert_eq!(r.format, Format::Csv);
        let t = q(&[("from", "2026-03-15T12:00:00Z"), ("key", "key_1")]).unwrap();
        assert_eq!(t.query.from, Some(1_773_576_000_000));
        assert_eq!(t.query.owner.as_deref(), Some("key_1"));
        assert_eq!(q(&[]).unwrap().query, UsageQuery::default());
    }

    #[test]
    fn bad_values_name_their_field() {
        assert_eq!(param(q(&[("group_by", "week")])), "group_by");
        assert_eq!(param(q(&[("from", "yesterday")])), "from");
        assert_eq!(param(q(&[("to", "2026-13-01")])), "to");
        assert_eq!(param(q(&[("format", "xml")])), "format");
        assert_eq!(
            param(q(&[("from", "2026-03-16"), ("to", "2026-03-15")])),
            "to"
        );
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let r = Report {
            object: "usage_report",
            group_by: "user",
            key: None,
            model: None,
            from: None,
            to: None,
            data: vec![UsageGroup {
                group: "a,\"b\"".into(),
                requests: 2,
                cost_usd: 0.25,
                ..Default::default()
            }],
            total: UsageGroup::default(),
        };
        let text = to_csv(&r).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("user,requests,input_tokens,output_tokens,cache_read_input_tokens,cache_creation_input_tokens,cost_usd,errors")
        );
        assert_eq!(lines.next(), Some("\"a,\"\"b\"\"\",2,0,0,0,0,0.25,0"));
    }
}
