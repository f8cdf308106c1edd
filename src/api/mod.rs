//! Thin protocol adapters. Each turns its wire format into a domain request and the domain's
//! events back into its wire format; none of them touches a CLI process.

pub mod admin;
pub mod anthropic;
pub mod models;
pub mod native;
pub mod openai;
pub mod responses;

/// The field a bad request names (for the adapters' tests).
#[cfg(test)]
pub(crate) fn bad_param(e: crate::http::error::ApiError) -> String {
    match e {
        crate::http::error::ApiError::BadRequest { param, .. } => param.unwrap_or_default(),
        other => panic!("not a bad request: {other:?}"),
    }
}
