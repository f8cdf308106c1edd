//! Upstream providers (`[providers.NAME]`): other Anthropic-compatible APIs whose models the
//! gateway serves beside its own upstream's.
//!
//! Owns the provider settings and their checks, the credentials the relay uses for each
//! provider (read from the gateway's environment by the variables' names given in the config),
//! and the reachability check `/health` and `ccgw doctor` report.
//!
//! Must not: hold a credential in the config, show or log one, or send one in a probe.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::relay::Credentials;

/// How long a probe of a provider's base URL may take before it counts as unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One `[providers.NAME]` table.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// The provider's Anthropic-compatible endpoint (what `ANTHROPIC_BASE_URL` would be).
    pub base_url: String,
    /// The gateway's environment variable holding the API key (sent as `x-api-key`).
    pub api_key_env: Option<String>,
    /// The gateway's environment variable holding the token (sent as `Authorization: Bearer`).
    pub auth_token_env: Option<String>,
    /// Extra headers on every request to the provider.
    pub headers: BTreeMap<String, String>,
    /// Public model id → the provider's model name (the CLI's `--model`).
    pub models: BTreeMap<String, String>,
}

/// Header values may identify a tenant or a project: shown as a digest, so that a change shows
/// (a reload compares this) and the values do not.
impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values: Vec<String> = self.headers.values().cloned().collect();
        f.debug_struct("Provider")
            .field("base_url", &self.base_url)
            .field("api_key_env", &self.api_key_env)
            .field("auth_token_env", &self.auth_token_env)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("header_values", &crate::config::redacted(&values))
            .field("models", &self.models)
            .finish()
    }
}

impl ProviderConfig {
    /// The names of the variables holding its credentials.
    pub fn credential_vars(&self) -> Vec<&str> {
        [&self.api_key_env, &self.auth_token_env]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// What the relay sends this provider, the secrets read by name through `env` (the
    /// gateway's environment). Built the way the gateway's own upstream is, from the variables
    /// the CLI would have had.
    pub fn credentials(&self, env: impl Fn(&str) -> Option<String>) -> Credentials {
        Credentials::from_lookup(|var| self.cli_var(var, &env))
    }

    /// A client of the provider's API for what the gateway asks itself (token counts).
    pub fn upstream(&self, env: impl Fn(&str) -> Option<String>) -> crate::upstream::Upstream {
        crate::upstream::Upstream::from_lookup(|var| self.cli_var(var, &env))
    }

    /// The upstream variable `var` as the CLI would have it to reach this provider directly.
    fn cli_var(&self, var: &str, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        match var {
            "ANTHROPIC_BASE_URL" => Some(self.base_url.clone()),
            "ANTHROPIC_API_KEY" => self.api_key_env.as_deref().and_then(env),
            "ANTHROPIC_AUTH_TOKEN" => self.auth_token_env.as_deref().and_then(env),
            "ANTHROPIC_CUSTOM_HEADERS" => Some(
                self.headers
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}\n"))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// Every provider's credentials, by name, for the relay.
pub fn credentials_table(
    providers: &BTreeMap<String, ProviderConfig>,
    env: impl Fn(&str) -> Option<String>,
) -> Vec<(String, Credentials)> {
    providers
        .iter()
        .map(|(name, p)| (name.clone(), p.credentials(&env)))
        .collect()
}

/// The gateway's environment, as provider credentials are read from it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Check the providers against each other and the provider-less model table (`[models]`);
/// the first problem, naming the setting.
pub fn check_config(
    providers: &BTreeMap<String, ProviderConfig>,
    models: &BTreeMap<String, String>,
    cli_extra_env: &[String],
) -> Result<(), String> {
    // Where each public id is defined, to name both places of a second definition.
    let mut defined: BTreeMap<&str, String> = models
        .keys()
        .map(|id| (id.as_str(), "[models]".to_string()))
        .collect();
    for (name, p) in providers {
        let at = format!("providers.{name}");
        if !valid_name(name) {
            return Err(format!(
                "{at}: a provider's name is 1 to 64 letters, digits, '-' or '_'"
            ));
        }
        check_base_url(&p.base_url).map_err(|e| format!("{at}.base_url {e}"))?;
        for (field, var) in [
            ("api_key_env", &p.api_key_env),
            ("auth_token_env", &p.auth_token_env),
        ] {
            if let Some(v) = var.as_deref().filter(|v| !valid_env_name(v)) {
                return Err(format!(
                    "{at}.{field} must be the name of an environment variable (got {v:?})"
                ));
            }
        }
        for (h, v) in &p.headers {
            let hn = HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("{at}.headers: {h:?} is not a valid header name"))?;
            if matches!(hn.as_str(), "x-api-key" | "authorization") {
                return Err(format!(
                    "{at}.headers.{h}: credentials do not belong in the config; name the \
                     variable holding them in api_key_env or auth_token_env"
                ));
            }
            HeaderValue::from_str(v)
                .map_err(|_| format!("{at}.headers.{h}: not a valid header value"))?;
        }
        // A secret must stay with the relay: no rule may pass it on to the CLI.
        let inherited = |v: &&str| {
            !crate::claude::args::inherited_env([(v.to_string(), String::new())], cli_extra_env)
                .is_empty()
        };
        if let Some(var) = p.credential_vars().into_iter().find(inherited) {
            return Err(format!(
                "{at}: the credential variable {var} would reach every CLI process \
                 (cli_extra_env or the CLI's own settings pass it on); name another variable"
            ));
        }
        if p.models.is_empty() {
            return Err(format!("{at}.models is empty: name at least one model"));
        }
        for (id, cli) in &p.models {
            if cli.trim().is_empty() {
                return Err(format!(
                    "{at}.models.{id}: the provider's model name is empty"
                ));
            }
            let here = format!("{at}.models");
            if let Some(before) = defined.insert(id, here.clone()) {
                return Err(format!(
                    "the model id '{id}' is defined twice: in {before} and in {here}"
                ));
            }
        }
    }
    Ok(())
}

fn check_base_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("must be an absolute http(s) URL (got {url:?}: {e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("must be an absolute http(s) URL (got {url:?})"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not hold credentials: use api_key_env or auth_token_env".into());
    }
    Ok(())
}

/// One provider as `/health` and `ccgw doctor` report it.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderCheck {
    pub name: String,
    pub base_url: String,
    /// The public model ids it serves.
    pub models: Vec<String>,
    /// Each credential variable's name and whether the gateway's environment sets it.
    pub credentials: BTreeMap<String, bool>,
    /// Whether the base URL answered HTTP at all (any status counts).
    pub reachable: bool,
    /// The status it answered with.
    pub status: Option<u16>,
    /// Why it did not answer.
    pub error: Option<String>,
    pub probe_ms: u64,
}

impl ProviderCheck {
    /// Whether its requests can go out: credentials set and the endpoint reachable.
    pub fn ok(&self) -> bool {
        self.reachable && self.credentials.values().all(|set| *set)
    }
}

/// Check every provider at once: its credential variables are set, its base URL answers. The
/// probe is a plain `GET` without any credential.
pub async fn check_all(
    providers: &BTreeMap<String, ProviderConfig>,
    env: impl Fn(&str) -> Option<String>,
) -> Vec<ProviderCheck> {
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .connect_timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let probes = providers.iter().map(|(name, p)| {
        let credentials = p
            .credential_vars()
            .into_iter()
            .map(|v| (v.to_string(), env(v).is_some_and(|s| !s.trim().is_empty())))
            .collect();
        let client = client.clone();
        async move {
            let started = Instant::now();
            let answer = client.get(&p.base_url).send().await;
            let (status, error) = match answer {
                Ok(r) => (Some(r.status().as_u16()), None),
                Err(e) if e.is_timeout() => (
                    None,
                    Some(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
                ),
                Err(e) => (None, Some(probe_error(&e))),
            };
            ProviderCheck {
                name: name.clone(),
                base_url: p.base_url.clone(),
                models: p.models.keys().cloned().collect(),
                credentials,
                reachable: status.is_some(),
                status,
                error,
                probe_ms: started.elapsed().as_millis() as u64,
            }
        }
    });
    futures::future::join_all(probes).await
}

/// The innermost cause (e.g. "Connection refused"), which says more than reqwest's wrapper.
fn probe_error(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    format!("could not connect: {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(toml_text: &str) -> BTreeMap<String, ProviderConfig> {
        #[derive(Deserialize)]
        struct File {
            providers: BTreeMap<String, ProviderConfig>,
        }
        toml::from_str::<File>(toml_text).unwrap().providers
    }

    const KIMI: &str = "[providers.kimi]\nbase_url = \"https://api.moonshot.ai/anthropic\"\n\
        auth_token_env = \"MOONSHOT_API_KEY\"\nheaders = { X-Team = \"blue\" }\n\
        models = { kimi = \"kimi-k2-turbo-preview\" }\n";

    #[test]
    fn a_provider_parses_and_checks() {
        let p = parse(KIMI);
        assert_eq!(p["kimi"].models["kimi"], "kimi-k2-turbo-preview");
        assert_eq!(p["kimi"].credential_vars(), ["MOONSHOT_API_KEY"]);
        check_config(&p, &crate::domain::models::default_table(), &[]).unwrap();
        assert!(toml::from_str::<ProviderConfig>("base_url = \"x\"\ncolour = 1").is_err());
    }

    #[test]
    fn bad_providers_are_named() {
        let none = BTreeMap::new();
        let err = |text: &str| check_config(&parse(text), &none, &[]).unwrap_err();
        let e = err("[providers.a]\nbase_url = \"api.example.com\"\nmodels = { m = \"x\" }\n");
        assert!(e.contains("providers.a.base_url"), "{e}");
        let e = err("[providers.a]\nmodels = { m = \"x\" }\n");
        assert!(e.contains("providers.a.base_url"), "{e}");
        let e = err("[providers.a]\nbase_url = \"ftp://h/x\"\nmodels = { m = \"x\" }\n");
        assert!(e.contains("http(s)"), "{e}");
        let e = err("[providers.a]\nbase_url = \"https://u:p@h\"\nmodels = { m = \"x\" }\n");
        assert!(e.contains("credentials"), "{e}");
        let e = err("[providers.a]\nbase_url = \"http://h\"\napi_key_env = \"not a name\"\nmodels = { m = \"x\" }\n");
        assert!(e.contains("providers.a.api_key_env"), "{e}");
        let e = err("[providers.a]\nbase_url = \"http://h\"\nheaders = { Authorization = \"Bearer x\" }\nmodels = { m = \"x\" }\n");
        assert!(e.contains("providers.a.headers.Authorization"), "{e}");
        let e = err("[providers.a]\nbase_url = \"http://h\"\n");
        assert!(e.contains("providers.a.models"), "{e}");
        let e = err("[providers.a]\nbase_url = \"http://h\"\nmodels = { m = \" \" }\n");
        assert!(e.contains("providers.a.models.m"), "{e}");
    }

    #[test]
    fn an_id_defined_twice_names_both_places() {
        let two = parse(
            "[providers.a]\nbase_url = \"http://a\"\nmodels = { m = \"x\" }\n\
             [providers.b]\nbase_url = \"http://b\"\nmodels = { m = \"y\" }\n",
        );
        let e = check_config(&two, &BTreeMap::new(), &[]).unwrap_err();
        assert!(
            e.contains("'m'")
                && e.contains("providers.a.models")
                && e.contains("providers.b.models"),
            "{e}"
        );
        let one = parse("[providers.a]\nbase_url = \"http://a\"\nmodels = { sonnet = \"x\" }\n");
        let e = check_config(&one, &crate::domain::models::default_table(), &[]).unwrap_err();
        assert!(
            e.contains("'sonnet'") && e.contains("[models]") && e.contains("providers.a"),
            "{e}"
        );
    }

    #[test]
    fn credentials_come_from_the_named_variables_and_never_show() {
        let p = parse(KIMI).remove("kimi").unwrap();
        let env = |k: &str| (k == "MOONSHOT_API_KEY").then(|| "sk-moon-secret".to_string());
        let c = p.credentials(env);
        assert_eq!(c.base_url, "https://api.moonshot.ai/anthropic");
        assert_eq!(c.auth_token.as_deref(), Some("sk-moon-secret"));
        assert_eq!(c.api_key, None);
        assert_eq!(c.oauth_token, None);
        assert_eq!(c.custom_headers.len(), 1);
        assert_eq!(c.custom_headers[0].0.as_str(), "x-team");
        assert!(!format!("{c:?}").contains("sk-moon-secret"));
        // A header value changed shows in Debug (what a reload compares), without the value.
        let mut other = p.clone();
        other.headers.insert("X-Team".into(), "green".into());
        assert_ne!(format!("{p:?}"), format!("{other:?}"));
        assert!(!format!("{p:?}").contains("blue"));
        // Unset: no credential at all, never someone else's.
        let c = p.credentials(|_| None);
        assert_eq!((c.api_key, c.auth_token), (None, None));
    }

    #[test]
    fn providers_come_from_the_file_or_the_environment_and_are_checked() {
        let file = "warm_models = [\"kimi\"]\n\
            [providers.moonshot]\nbase_url = \"https://api.moonshot.ai/anthropic\"\n\
            auth_token_env = \"MOONSHOT_API_KEY\"\nmodels = { kimi = \"kimi-k2\" }\n";
        let cfg = Config::from_toml(file).unwrap();
        assert_eq!(cfg.providers["moonshot"].models["kimi"], "kimi-k2");
        cfg.validate().unwrap();
        let mut env = Config::default();
        env.apply_env(|k| {
            (k == "CCGW_PROVIDERS").then(|| {
                r#"{"ds": {"base_url": "https://api.deepseek.com/anthropic", "models": {"ds": "deepseek-chat"}}}"#.into()
            })
        })
        .unwrap();
        env.validate().unwrap();
        assert_eq!(env.providers["ds"].models["ds"], "deepseek-chat");
        // A provider's secret passed on to the CLI is refused.
        let leaky = Config {
            cli_extra_env: vec!["MOONSHOT_API_KEY".into()],
            ..cfg.clone()
        };
        let e = leaky.validate().unwrap_err().to_string();
        assert!(
            e.contains("providers.moonshot") && e.contains("MOONSHOT_API_KEY"),
            "{e}"
        );
        let bad = Config::from_toml(&file.replace("https://api.moonshot.ai/anthropic", "moonshot"))
            .unwrap();
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("providers.moonshot.base_url"), "{e}");
        let unknown = Config::from_toml("warm_models = [\"nope\"]").unwrap();
        assert!(unknown
            .validate()
            .unwrap_err()
            .to_string()
            .contains("'nope'"));
    }

    #[tokio::test]
    async fn the_check_tells_reachable_from_refused_and_reports_missing_variables() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let app = axum::Router::new()
                .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "no such page") });
            axum::serve(listener, app).await.unwrap();
        });
        // A port that was just free: nothing listens there.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let providers = parse(&format!(
            "[providers.up]\nbase_url = \"http://{open}/anthropic\"\napi_key_env = \"UP_KEY\"\n\
             models = {{ up = \"u\" }}\n\
             [providers.down]\nbase_url = \"http://{closed}\"\nauth_token_env = \"DOWN_TOKEN\"\n\
             models = {{ down = \"d\" }}\n"
        ));
        let checks = check_all(&providers, |k| (k == "UP_KEY").then(|| "k".into())).await;
        let by = |n: &str| checks.iter().find(|c| c.name == n).unwrap();
        let up = by("up");
        assert!(up.reachable && up.ok(), "{up:?}");
        assert_eq!(up.status, Some(404), "any status counts as reachable");
        assert!(up.credentials["UP_KEY"]);
        let down = by("down");
        assert!(!down.reachable && !down.ok(), "{down:?}");
        assert!(!down.credentials["DOWN_TOKEN"]);
        assert!(
            down.error.as_deref().unwrap().contains("connect"),
            "{down:?}"
        );
        assert_eq!(down.models, ["down"]);
    }
}
