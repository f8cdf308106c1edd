//! Request bodies: JSON parsing that names the offending field, shared by every adapter. Each
//! API words its errors its own way, so the wording comes from a [`Dialect`].

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::error::ApiError;

/// How an API names fields and words a missing one.
pub struct Dialect {
    /// Fields that must be present and not null.
    pub required: &'static [&'static str],
    /// Whether an empty body counts as `{}`.
    pub empty_is_object: bool,
    /// `messages[1].content` → the API's own way of writing a field path.
    pub path: fn(&str) -> String,
    pub missing: fn(&str) -> String,
    pub invalid: fn(&str, &str) -> String,
}

/// OpenAI: `messages[1].content`, "Missing required parameter: 'model'".
pub const OPENAI: Dialect = Dialect {
    required: &["model", "messages"],
    empty_is_object: false,
    path: |p| p.to_string(),
    missing: |f| format!("Missing required parameter: '{f}'"),
    invalid: |p, why| format!("Invalid value for '{p}': {why}"),
};

/// Anthropic: `messages.1.content`, "Field required".
pub const ANTHROPIC: Dialect = Dialect {
    required: &["model", "messages"],
    empty_is_object: false,
    path: |p| p.replace('[', ".").replace(']', ""),
    missing: |_| "Field required".to_string(),
    invalid: |_, why| why.to_string(),
};

/// The native API: every field optional at this level; an empty body is `{}`.
pub const NATIVE: Dialect = Dialect {
    required: &[],
    empty_is_object: true,
    path: |p| p.to_string(),
    missing: |f| format!("'{f}' is required"),
    invalid: |p, why| format!("Invalid value for '{p}': {why}"),
};

pub fn parse<T: DeserializeOwned>(bytes: &[u8], d: &Dialect) -> Result<T, ApiError> {
    let value: Value = if bytes.is_empty() && d.empty_is_object {
        json!({})
    } else {
        serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request("", format!("The request body is not valid JSON: {e}"))
        })?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "",
            "The request body must be a JSON object",
        ));
    }
    if let Some(f) = d
        .required
        .iter()
        .find(|f| value.get(**f).is_none_or(Value::is_null))
    {
        return Err(ApiError::bad_request(*f, (d.missing)(f)));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = (d.path)(&e.path().to_string());
        let why = e.into_inner().to_string();
        ApiError::bad_request(path.clone(), (d.invalid)(&path, &why))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct R {
        model: String,
        messages: Vec<u32>,
    }

    fn param(e: ApiError) -> Option<String> {
        match e {
            ApiError::BadRequest { param, .. } => param,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_fields_in_each_dialect() {
        let missing = parse::<R>(br#"{"messages":[]}"#, &OPENAI).unwrap_err();
        assert!(missing.to_string().contains("'model'"));
        let bad = br#"{"model":"m","messages":[1,"x"]}"#;
        assert_eq!(
            param(parse::<R>(bad, &OPENAI).unwrap_err()).as_deref(),
            Some("messages[1]")
        );
        assert_eq!(
            param(parse::<R>(bad, &ANTHROPIC).unwrap_err()).as_deref(),
            Some("messages.1")
        );
        assert!(parse::<R>(b"[]", &OPENAI).is_err());
        assert!(parse::<R>(b"", &OPENAI).is_err());
        assert!(parse::<serde_json::Map<String, Value>>(b"", &NATIVE).is_ok());
    }
}
