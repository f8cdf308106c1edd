//! Hook webhooks: which URLs the gateway may call (the deployment's host allowlist, against
//! server-side request forgery), the signed POST of a hook's input, its retries within the
//! subscription's timeout, and reading the answer.
//!
//! Must not: follow redirects (a redirect could lead anywhere), log the secret or a body, or
//! wait longer than the timeout it is given.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::HookAnswer;

/// The header carrying `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "x-ccgw-signature";
/// The header carrying the Unix time (seconds) the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-ccgw-timestamp";

/// A webhook URL, if its scheme is http(s) and its host (or `host:port`) is on the list.
pub fn allowed_url(url: &str, hosts: &[String]) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("url is not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("url must be http or https".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url must not carry credentials".into());
    }
    let host = parsed
        .host_str()
        .ok_or("url has no host")?
        .to_ascii_lowercase();
    let with_port = parsed
        .port_or_known_default()
        .map(|p| format!("{host}:{p}"))
        .unwrap_or_else(|| host.clone());
    if hosts.iter().any(|h| *h == host || *h == with_port) {
        Ok(parsed)
    } else {
        Err(format!(
            "the webhook host '{with_port}' is not on this gateway's allowlist (hook_webhook_hosts)"
        ))
    }
}

/// The signature of `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    // An HMAC takes a key of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why a delivery gave no answer (logged; the default outcome then applies).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("status {0}")]
    Status(u16),
    #[error("request failed: {0}")]
    Request(String),
    #[error("the answer is not a hook output: {0}")]
    Answer(String),
}

/// POST `body` to `url`, signed; retry a failed attempt (a connection error, a 5xx, a 429)
/// up to `retries` times while the timeout lasts. A watch hook's answer is ignored; a
/// decide hook's is its JSON body (empty: no objection).
pub async fn deliver(
    client: &reqwest::Client,
    url: &reqwest::Url,
    secret: &str,
    body: &Value,
    retries: u32,
    timeout: Duration,
) -> Result<HookAnswer, WebhookError> {
    let bytes = serde_json::to_vec(body).map_err(|e| WebhookError::Request(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WebhookError::Timeout(timeout.as_secs()));
        }
        let result = tokio::time::timeout(left, post(client, url, secret, &bytes, attempt)).await;
        let err = match result {
            Err(_) => return Err(WebhookError::Timeout(timeout.as_secs())),
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err((e, retryable))) if !retryable => return Err(e),
            Ok(Err((e, _))) => e,
        };
        if attempt >= retries {
            return Err(err);
        }
        attempt += 1;
        // A short, growing pause, never past the deadline.
        let pause = Duration::from_millis(200 * u64::from(attempt));
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    secret: &str,
    bytes: &[u8],
    attempt: u32,
) -> Result<HookAnswer, (WebhookError, bool)> {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let resp = client
        .post(url.clone())
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header(SIGNATURE_HEADER, sign(secret, ts, bytes))
        .header("x-ccgw-attempt", (attempt + 1).to_string())
        .body(bytes.to_vec())
        .send()
        .await
        .map_err(|e| (WebhookError::Request(e.without_url().to_string()), true))?;
    let status = resp.status();
    if !status.is_success() {
        let retryable = status.is_server_error() || status.as_u16() == 429;
        return Err((WebhookError::Status(status.as_u16()), retryable));
    }
    let text = resp
        .bytes()
        .await
        .map_err(|e| (WebhookError::Request(e.without_url().to_string()), true))?;
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(HookAnswer::default());
    }
    serde_json::from_slice(&text).map_err(|e| (WebhookError::Answer(e.to_string()), false))
}

/// The client webhooks are sent with: no redirects, no proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_hosts_and_http_schemes() {
        let hosts = vec![
            "hooks.example.com".to_string(),
            "127.0.0.1:8123".to_string(),
        ];
        assert!(allowed_url("https://hooks.example.com/x", &hosts).is_ok());
        assert!(allowed_url("http://HOOKS.example.com:81/x", &hosts).is_ok());
        assert!(allowed_url("http://127.0.0.1:8123/x", &hosts).is_ok());
        assert!(allowed_url("http://127.0.0.1:8124/x", &hosts).is_err());
        assert!(allowed_url("http://169.254.169.254/", &hosts).is_err());
        assert!(allowed_url("file:///etc/passwd", &hosts).is_err());
        assert!(allowed_url("https://u:p@hooks.example.com/", &hosts).is_err());
        assert!(allowed_url("not a url", &hosts).is_err());
    }

    #[test]
    fn the_signature_is_an_hmac_of_timestamp_and_body() {
        // HMAC-SHA256("key", "1.{}"), computed with Python's hmac module.
        let s = sign("key", 1, b"{}");
        assert_eq!(
            s,
            "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        assert_ne!(s, sign("key", 2, b"{}"));
        assert_ne!(s, sign("other", 1, b"{}"));
    }
}
