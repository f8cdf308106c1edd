//! `GET /admin/api/usage`: usage and cost of every key, filtered by key, model and time and
//! grouped by key, model, day or end user, as JSON or CSV. Admin keys only. Must not: compute
//! anything (the domain's `usage` does).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::Extension;

use super::keys::admin_only;
use crate::api::native::usage::render;
use crate::domain::usage;
use crate::http::auth::Caller;
use crate::http::error::NativeError;
use crate::http::AppState;

#[utoipa::path(
    get, path = "/admin/api/usage", tag = "admin", operation_id = "admin_usage_report",
    responses((status = 200, description = "Usage and cost, grouped; CSV with `format=csv`",
        content((crate::domain::usage::Report = "application/json"), (String = "text/csv"))))
)]
pub async fn report(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, NativeError> {
    admin_only(&caller)?;
    let req = usage::parse(&params)?;
    let format = req.format;
    let report = usage::report(&*app.conversations.store, req, None).await?;
    render(&report, format)
}
