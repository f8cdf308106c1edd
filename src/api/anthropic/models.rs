//! The model table in Anthropic's shape (`GET /v1/models` and `/v1/models/{id}` for clients
//! that send `anthropic-version`, as every Anthropic SDK does): `{data:[{type:"model", id,
//! display_name, created_at, ...}], has_more, first_id, last_id}`, paged with `limit`,
//! `after_id` and `before_id`. Pure rendering over the domain's table.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::models::{ModelEntry, ModelTable};
use crate::http::error::ApiError;

/// Anthropic's default and largest page.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub after_id: Option<String>,
    pub before_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub display_name: String,
    /// RFC 3339.
    pub created_at: String,
    pub lifecycle: &'static str,
    pub capabilities: Option<Value>,
    pub deprecated_at: Option<String>,
    pub retires_at: Option<String>,
    pub line: Option<Value>,
    pub max_input_tokens: Option<u64>,
    pub max_tokens: Option<u64>,
    /// The provider that serves it (`[providers.NAME]`), or `anthropic` (not in Anthropic's
    /// own shape; clients ignore fields they do not know).
    pub provider: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelPage {
    pub data: Vec<ModelInfo>,
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
}

/// One model; `created_at` is when this gateway started serving the table.
pub fn info(m: &ModelEntry, created_unix: u64) -> ModelInfo {
    let id = m.id.as_str();
    ModelInfo {
        provider: m.owned_by().to_string(),
        kind: "model",
        id: id.to_string(),
        display_name: display_name(id),
        created_at: time::OffsetDateTime::from_unix_timestamp(created_unix as i64)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default(),
        lifecycle: "active",
        capabilities: None,
        deprecated_at: None,
        retires_at: None,
        line: None,
        max_input_tokens: None,
        max_tokens: None,
    }
}

/// One page of the table, in its order.
pub fn page(table: &ModelTable, q: &ListQuery, created_unix: u64) -> Result<ModelPage, ApiError> {
    let limit = match q.limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::bad_request(
                "limit",
                format!("Input should be between 1 and {MAX_LIMIT}"),
            ))
        }
    };
    let entries: Vec<&ModelEntry> = table.all().collect();
    let ids: Vec<&str> = entries.iter().map(|m| m.id.as_str()).collect();
    let position = |id: &str, field: &str| {
        ids.iter().position(|i| *i == id).ok_or_else(|| {
            ApiError::bad_request(field, format!("No model with the id '{id}' to page from"))
        })
    };
    let (start, end) = match (&q.after_id, &q.before_id) {
        (Some(a), _) => {
            let from = position(a, "after_id")? + 1;
            (from, (from + limit).min(ids.len()))
        }
        (None, Some(b)) => {
            let to = position(b, "before_id")?;
            (to.saturating_sub(limit), to)
        }
        (None, None) => (0, limit.min(ids.len())),
    };
    let has_more = if q.before_id.is_some() && q.after_id.is_none() {
        start > 0
    } else {
        end < ids.len()
    };
    let data: Vec<ModelInfo> = entries[start..end]
        .iter()
        .map(|m| info(m, created_unix))
        .collect();
    Ok(ModelPage {
        first_id: data.first().map(|m| m.id.clone()),
        last_id: data.last().map(|m| m.id.clone()),
        has_more,
        data,
    })
}

/// `claude-opus-4-8` → `Claude Opus 4.8`; a trailing date is dropped.
fn display_name(id: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut version: Vec<&str> = Vec::new();
    for part in id.split('-') {
        if part.len() == 8 && part.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if part.chars().all(|c| c.is_ascii_digit()) {
            version.push(part);
            continue;
        }
        if !version.is_empty() {
            words.push(version.join("."));
            version.clear();
        }
        let mut c = part.chars();
        words.push(match c.next() {
            Some(f) => f.to_uppercase().chain(c).collect(),
            None => String::new(),
        });
    }
    if !version.is_empty() {
        words.push(version.join("."));
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::models::default_table;

    #[test]
    fn names_read_like_anthropics() {
        assert_eq!(display_name("claude-opus-4-8"), "Claude Opus 4.8");
        assert_eq!(
            display_name("claude-haiku-4-5-20251001"),
            "Claude Haiku 4.5"
        );
        assert_eq!(display_name("sonnet"), "Sonnet");
        assert_eq!(display_name("claude-code"), "Claude Code");
    }

    #[test]
    fn pages_follow_the_cursors() {
        let t = ModelTable::new(&default_table());
        let all = page(
            &t,
            &ListQuery {
                limit: Some(1000),
                ..Default::default()
            },
            0,
        )
        .unwrap();
        assert!(!all.has_more);
        assert_eq!(all.data.len(), t.all().count());
        assert_eq!(all.data[0].created_at, "1970-01-01T00:00:00Z");
        let first = page(
            &t,
            &ListQuery {
                limit: Some(2),
                ..Default::default()
            },
            0,
        )
        .unwrap();
        assert!(first.has_more);
        assert_eq!(first.first_id.as_deref(), Some(all.data[0].id.as_str()));
        let next = page(
            &t,
            &ListQuery {
                limit: Some(2),
                after_id: first.last_id.clone(),
                ..Default::default()
            },
            0,
        )
        .unwrap();
        assert_eq!(next.data[0].id, all.data[2].id);
        let back = page(
            &t,
            &ListQuery {
                limit: Some(5),
                before_id: next.first_id.clone(),
                ..Default::default()
            },
            0,
        )
        .unwrap();
        assert_eq!(back.data.len(), 2);
        assert!(!back.has_more);
        assert!(page(
            &t,
            &ListQuery {
                limit: Some(0),
                ..Default::default()
            },
            0
        )
        .is_err());
        assert!(page(
            &t,
            &ListQuery {
                after_id: Some("gpt".into()),
                ..Default::default()
            },
            0
        )
        .is_err());
    }
}
