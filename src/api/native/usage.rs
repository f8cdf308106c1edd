//! `GET /api/usage`: a key's view of its own usage (the admin report's query, forced to the
//! caller's key), as JSON or CSV (`?format=csv`). Must not: let a caller see another key's
//! usage (it never reads a `key` it was given) or compute anything (the domain's `usage` does).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::domain::usage::{self, Format, Report};
use crate::http::auth::Caller;
use crate::http::error::{ApiError, NativeError};
use crate::http::AppState;

#[utoipa::path(
    get, path = "/api/usage", tag = "native", operation_id = "usage_own",
    responses((status = 200, description = "The key's own usage and cost, grouped; CSV with `format=csv`",
        content((crate::domain::usage::Report = "application/json"), (String = "text/csv"))))
)]
pub async fn own(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, NativeError> {
    let req = usage::parse(&params)?;
    let format = req.format;
    let report = usage::report(&*app.conversations.store, req, Some(&caller.owner)).await?;
    render(&report, format)
}

/// The report in the asked format.
pub(crate) fn render(report: &Report, format: Format) -> Result<Response, NativeError> {
    Ok(match format {
        Format::Json => Json(report).into_response(),
        Format::Csv => {
            let text = usage::to_csv(report).map_err(|e| {
                ApiError::Claude(crate::claude::ClaudeError::protocol(format!("csv: {e}")))
            })?;
            ([(CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response()
        }
    })
}
