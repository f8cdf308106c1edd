//! `GET /admin/api/audit`: the audit log for an admin key, filtered by key, session, kind and
//! time, newest first, paged by `cursor`. Extract, call the domain (`domain::audit`), render.
//! Must not: write to the log or show anything to a user key.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::keys::admin_only;
use crate::domain::audit::kind;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, NativeError};
use crate::http::AppState;
use crate::store::AuditFilter;

type Result<T> = std::result::Result<T, NativeError>;

/// The query. Times are RFC 3339 or unix milliseconds; `cursor` is a page's `next_cursor`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default)]
pub struct AuditQuery {
    pub key: Option<String>,
    pub session: Option<String>,
    pub kind: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/admin/api/audit", tag = "admin", operation_id = "admin_audit_list",
    params(AuditQuery),
    responses((status = 200, description = "A page of the audit log, newest first", body = crate::domain::audit::AuditPage))
)]
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AuditQuery>,
) -> Result<Response> {
    admin_only(&caller)?;
    if let Some(k) = q.kind.as_deref().filter(|k| !kind::ALL.contains(k)) {
        return Err(ApiError::bad_request(
            "kind",
            format!(
                "Unknown audit kind '{k}'; expected one of {}",
                kind::ALL.join(", ")
            ),
        )
        .into());
    }
    let before =
        match q.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                ApiError::bad_request("cursor", "cursor must be a next_cursor value")
            })?),
        };
    let filter = AuditFilter {
        key: q.key.filter(|k| !k.is_empty()),
        session: q.session.filter(|s| !s.is_empty()),
        kind: q.kind,
        from: q
            .from
            .as_deref()
            .map(|t| time_param(t, "from"))
            .transpose()?,
        to: q.to.as_deref().map(|t| time_param(t, "to")).transpose()?,
        before,
        limit: q.limit.unwrap_or(100),
    };
    let page = app.audit.list(&filter).await.map_err(|e| {
        ApiError::Claude(crate::claude::ClaudeError::protocol(format!("store: {e}")))
    })?;
    Ok(Json(page).into_response())
}

/// A time bound: unix milliseconds, or RFC 3339.
fn time_param(s: &str, param: &str) -> std::result::Result<i64, ApiError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            ApiError::bad_request(
                param,
                format!("{param} must be an RFC 3339 time or unix milliseconds"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_millis_or_rfc3339() {
        assert_eq!(
            time_param("1700000000000", "from").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            time_param("2027-01-02T00:00:01Z", "to").unwrap(),
            1_798_848_001_000
        );
        assert!(time_param("yesterday", "from").is_err());
    }
}
