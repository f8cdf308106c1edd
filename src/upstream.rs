//! A direct client of the upstream Messages API, for the one thing the CLI cannot do for a
//! client: count tokens (`POST /v1/messages/count_tokens`).
//!
//! It talks to the same upstream with the same credentials as the CLI processes: the
//! `ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY` and `ANTHROPIC_AUTH_TOKEN` the CLI gets, that is the
//! configured CLI environment first (`--demo` and the tests set them there) and the gateway's
//! own environment after. Protocol adapters never do I/O themselves; they call this.

use std::time::Duration;

use serde_json::Value;

use crate::config::Config;

const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
const ANTHROPIC_VERSION: &str = "2023-06-01";
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why an upstream call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream answered with an error status.
    #[error("upstream error {status}: {message}")]
    Status {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    #[error("the upstream API did not answer within {} s", TIMEOUT.as_secs())]
    Timeout,
    /// No answer, or one we cannot read.
    #[error("the upstream API could not be reached: {0}")]
    Unreachable(String),
}

pub struct Upstream {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    auth_token: Option<String>,
}

impl Upstream {
    /// The upstream the CLI processes of this configuration use.
    pub fn from_config(cfg: &Config) -> Self {
        Self::from_lookup(|k| lookup(&cfg.cli_env, k, |k| std::env::var(k).ok()))
    }

    /// From variables looked up by name (an empty value counts as unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        Upstream {
            client,
            base_url: get("ANTHROPIC_BASE_URL")
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
                .trim_end_matches('/')
                .to_string(),
            api_key: get("ANTHROPIC_API_KEY"),
            auth_token: get("ANTHROPIC_AUTH_TOKEN"),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /v1/messages/count_tokens` with a Messages API body; the number of input tokens.
    pub async fn count_tokens(&self, body: &Value) -> Result<u64, UpstreamError> {
        let mut req = self
            .client
            .post(format!("{}/v1/messages/count_tokens", self.base_url))
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(body);
        if let Some(k) = &self.api_key {
            req = req.header("x-api-key", k);
        }
        if let Some(t) = &self.auth_token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let text = resp.text().await.map_err(transport)?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            let message = json
                .as_ref()
                .and_then(|j| j.pointer("/error/message"))
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(UpstreamError::Status {
                status: status.as_u16(),
                message,
                retry_after,
            });
        }
        json.as_ref()
            .and_then(|j| j.get("input_tokens"))
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                UpstreamError::Unreachable(format!(
                    "count_tokens answered without input_tokens: {}",
                    text.chars().take(300).collect::<String>()
                ))
            })
    }
}

fn transport(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        UpstreamError::Unreachable(e.to_string())
    }
}

/// A variable as the CLI sees it: the last setting in the configured CLI environment wins
/// (even an empty one, which unsets it), else the gateway's own environment.
pub(crate) fn lookup(
    cli_env: &[(String, String)],
    key: &str,
    process_env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    match cli_env.iter().rev().find(|(k, _)| k == key) {
        Some((_, v)) => Some(v.clone()),
        None => process_env(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_env_wins_and_empty_unsets() {
        let cli_env = vec![
            ("ANTHROPIC_BASE_URL".to_string(), "http://a".to_string()),
            ("ANTHROPIC_BASE_URL".to_string(), "http://b/".to_string()),
            ("ANTHROPIC_AUTH_TOKEN".to_string(), String::new()),
        ];
        let process = |k: &str| match k {
            "ANTHROPIC_AUTH_TOKEN" => Some("from-env".to_string()),
            "ANTHROPIC_API_KEY" => Some("sk-env".to_string()),
            _ => None,
        };
        let u = Upstream::from_lookup(|k| lookup(&cli_env, k, process));
        assert_eq!(u.base_url(), "http://b");
        assert_eq!(u.api_key.as_deref(), Some("sk-env"));
        assert_eq!(u.auth_token, None);
        let d = Upstream::from_lookup(|_| None);
        assert_eq!(d.base_url(), DEFAULT_BASE_URL);
    }
}
