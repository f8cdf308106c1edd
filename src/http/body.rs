//! Request bodies: JSON parsing that names the offending field, shared by every adapter. Each
//! API words its errors its own way, so the wording comes from a [`Dialect`].

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::http::error::ApiError;

/// How an API names fields and words a missing one.
pub struct Dialect {
    /// Fields that must be present and not null.
    pub required: &'static [&'static str],
    /// Whether an empty (or all-whitespace) body counts as `{}`.
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
    // A byte order mark may be read past (RFC 8259 §8.1).
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Some(parsed) = parse_well_formed(bytes, d) {
        return Ok(parsed);
    }
    let value: Value = if d.empty_is_object && bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        read_value(bytes, d)?
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
        let at = e.path().to_string();
        let why = e.into_inner().to_string();
        // serde names a missing field only in its message, at the path of the object that
        // lacks it ("." at the top): the field itself is what the client must be told.
        if let Some(field) = missing_field(&why) {
            let full = match at.as_str() {
                "." | "" => field.to_string(),
                _ => format!("{at}.{field}"),
            };
            let path = (d.path)(&full);
            return ApiError::bad_request(path.clone(), (d.missing)(&path));
        }
        let path = (d.path)(&at);
        ApiError::bad_request(path.clone(), (d.invalid)(&path, &why))
    })
}

/// The field serde's "missing field `x`" message names.
fn missing_field(why: &str) -> Option<&str> {
    why.strip_prefix("missing field `")?.split('`').next()
}

/// The body as JSON; when it is not, the error names the field whose value broke it (a lone
/// surrogate escape in `messages[0].content`, a number out of range in `temperature`).
fn read_value(bytes: &[u8], d: &Dialect) -> Result<Value, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: Value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // Up to the segment it could not name (`?`: a key that did not parse).
        let full = e.path().to_string();
        let path = full.split('?').next().unwrap_or("").trim_end_matches('.');
        let why = format!("The request body is not valid JSON: {}", e.inner());
        match path {
            "." | "" => ApiError::bad_request("", why),
            _ => {
                let path = (d.path)(path);
                ApiError::bad_request(path.clone(), (d.invalid)(&path, &why))
            }
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request("", format!("The request body is not valid JSON: {e}"))
    })?;
    Ok(value)
}

/// A well-formed body, read straight into its type: the path through a `Value` above only runs
/// to explain what is wrong with one that is not (and cost a third of a chat turn's CPU in the
/// benchmarks, bench/RESULTS.md). `None`: take that path.
fn parse_well_formed<T: DeserializeOwned>(bytes: &[u8], d: &Dialect) -> Option<T> {
    // Only an object (a struct would also read from an array, by position).
    if !bytes.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    if !d.required.is_empty() {
        // The top-level keys, and whether each is null, without building the values.
        let top: std::collections::HashMap<&str, Option<serde::de::IgnoredAny>> =
            serde_json::from_slice(bytes).ok()?;
        if d.required
            .iter()
            .any(|f| !matches!(top.get(f), Some(Some(_))))
        {
            return None;
        }
    }
    serde_json::from_slice(bytes).ok()
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
    fn an_empty_or_blank_native_body_is_an_empty_object() {
        for b in [&b""[..], b" \r\n\t"] {
            let v: Value = parse(b, &NATIVE).unwrap();
            assert_eq!(v, json!({}));
        }
        assert!(parse::<Value>(b" ", &OPENAI).is_err());
    }

    #[test]
    fn a_missing_field_is_named_itself_not_its_object() {
        #[derive(serde::Deserialize, Debug)]
        struct Inner {
            #[allow(dead_code)]
            role: String,
        }
        #[derive(serde::Deserialize, Debug)]
        struct Outer {
            #[allow(dead_code)]
            name: String,
            #[allow(dead_code)]
            items: Vec<Inner>,
        }
        let top = parse::<Outer>(br#"{"items":[]}"#, &NATIVE).unwrap_err();
        assert_eq!(param(top).as_deref(), Some("name"));
        let nested = parse::<Outer>(br#"{"name":"x","items":[{}]}"#, &NATIVE).unwrap_err();
        assert_eq!(param(nested).as_deref(), Some("items[0].role"));
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
        // Broken JSON inside a value names its field; a byte order mark is read past.
        let surrogate = br#"{"model":"m","messages":[1,"\ud800"]}"#;
        assert_eq!(
            param(parse::<R>(surrogate, &OPENAI).unwrap_err()).as_deref(),
            Some("messages[1]")
        );
        let big = br#"{"model":"m","messages":[1e400]}"#;
        assert_eq!(
            param(parse::<R>(big, &ANTHROPIC).unwrap_err()).as_deref(),
            Some("messages.0")
        );
        assert!(param(parse::<R>(b"{nope", &OPENAI).unwrap_err()).is_none());
        assert!(parse::<R>(b"\xEF\xBB\xBF{\"model\":\"m\",\"messages\":[]}", &OPENAI).is_ok());
        assert!(parse::<R>(b"", &OPENAI).is_err());
        assert!(parse::<serde_json::Map<String, Value>>(b"", &NATIVE).is_ok());
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Opt {
        model: Option<String>,
        messages: Vec<u32>,
    }

    #[test]
    fn the_straight_read_keeps_every_rule_of_the_value_path() {
        // Well-formed: both paths agree.
        let ok = br#" {"model":"m","messages":[1,2]}"#;
        let v: Opt = parse(ok, &OPENAI).unwrap();
        assert_eq!(v.messages, vec![1, 2]);
        // A required field that the type leaves optional must still be present and not null.
        let null = parse::<Opt>(br#"{"model":null,"messages":[]}"#, &OPENAI).unwrap_err();
        assert_eq!(param(null).as_deref(), Some("model"));
        let absent = parse::<Opt>(br#"{"messages":[]}"#, &ANTHROPIC).unwrap_err();
        assert_eq!(param(absent).as_deref(), Some("model"));
        // An array never reads as a struct, even one that would fit by position.
        assert!(parse::<Opt>(br#"["m",[1]]"#, &OPENAI).is_err());
        // Duplicate keys: the last one wins, as in the Value path.
        let dup: Opt = parse(br#"{"model":"a","model":"b","messages":[]}"#, &OPENAI).unwrap();
        assert_eq!(dup.model.as_deref(), Some("b"));
        // Escaped keys still count.
        let esc: Opt = parse(br#"{"mod\u0065l":"m","messages":[]}"#, &OPENAI).unwrap();
        assert_eq!(esc.model.as_deref(), Some("m"));
    }
}
