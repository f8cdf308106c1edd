//! End to end: upstream providers (`[providers.NAME]`). Two extra mock upstreams serve as two
//! providers, each with its own secret in the gateway's environment; the real CLI runs every
//! turn. Each model's requests reach its own upstream with its own credential and headers, and
//! no credential reaches an upstream it does not belong to, nor any CLI process.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use ccgw::config::Config;
use ccgw::domain::providers::ProviderConfig;
use ccgw::mock_upstream::{LoggedRequest, MockUpstream};
use common::*;
use serde_json::{json, Value};
use sha2::Digest as _;

/// The secrets, each in a variable of the gateway's own environment (names unique to this
/// file, so no other test reads or sets them).
const ALPHA_VAR: &str = "CCGW_TEST_PROVIDER_ALPHA_KEY";
const ALPHA_SECRET: &str = "alpha-secret-4f1c";
const BETA_VAR: &str = "CCGW_TEST_PROVIDER_BETA_TOKEN";
const BETA_SECRET: &str = "beta-secret-9d2e";
/// What `spawn_app_with` gives the gateway's own upstream.
const DEFAULT_SECRET: &str = "sk-test";

fn set_secrets() {
    std::env::set_var(ALPHA_VAR, ALPHA_SECRET);
    std::env::set_var(BETA_VAR, BETA_SECRET);
}

fn digest(header_value: &str) -> String {
    hex::encode(sha2::Sha256::digest(header_value.as_bytes()))
}

fn provider(base_url: &str, models: &[(&str, &str)]) -> ProviderConfig {
    ProviderConfig {
        base_url: base_url.to_string(),
        models: models
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// alpha: an API key and an extra header; beta: a bearer token.
fn two_providers(alpha: &MockUpstream, beta: &MockUpstream) -> BTreeMap<String, ProviderConfig> {
    let mut a = provider(&alpha.base_url(), &[("alpha-model", "alpha-large")]);
    a.api_key_env = Some(ALPHA_VAR.into());
    a.headers.insert("X-Alpha-Team".into(), "blue".into());
    let mut b = provider(&beta.base_url(), &[("beta-model", "beta-chat")]);
    b.auth_token_env = Some(BETA_VAR.into());
    [("alpha".to_string(), a), ("beta".to_string(), b)].into()
}

/// Every credential digest an upstream saw, on any request.
fn credentials_seen(log: &[LoggedRequest]) -> Vec<String> {
    log.iter()
        .flat_map(|r| r.credentials.values().cloned())
        .collect()
}

#[tokio::test]
async fn each_provider_model_reaches_its_own_upstream_with_its_own_credentials() {
    set_secrets();
    let (alpha, beta) = (start_mock().await, start_mock().await);
    let providers = two_providers(&alpha, &beta);
    // The defaults (warm pool on, temporary workspaces, no keys), with a provider model warm too.
    let app = spawn_defaults_app_with(|c| {
        c.providers = providers;
        c.warm_models = vec!["sonnet".into(), "alpha-model".into()];
    })
    .await;
    let size = Config::default().warm_pool_size;
    assert!(
        wait_for(
            || app.pool().warm_count() == 2 * size,
            Duration::from_secs(30)
        )
        .await,
        "the pool fills for both models: {}",
        app.pool().warm_count()
    );

    // OpenAI chat completions to alpha's model: served by a warm process of alpha's.
    let (cold, hits) = (app.pool().cold_spawn_count(), app.pool().warm_hit_count());
    let (status, body) = app
        .chat(json!({"model": "alpha-model", "messages": [user("hello alpha")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(reply_text(&body), "hello alpha");
    assert_eq!(body["model"], "alpha-model");
    assert_eq!(app.pool().warm_hit_count(), hits + 1, "a warm hit");
    assert_eq!(
        app.pool().cold_spawn_count(),
        cold,
        "nothing started for it"
    );

    // Anthropic messages to beta's model.
    let (status, body) = app
        .anthropic(json!({"model": "beta-model", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hello beta"}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["content"][0]["text"], "hello beta");

    // Token counts for beta's model are asked of beta.
    let resp = app
        .post(
            "/v1/messages/count_tokens",
            &json!({"model": "beta-model", "messages": [{"role": "user", "content": "count me"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let counted: Vec<LoggedRequest> = beta
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/messages/count_tokens"))
        .collect();
    assert_eq!(counted.len(), 1, "beta counted the tokens");
    assert_eq!(counted[0].body["model"], "beta-chat");
    assert_eq!(
        counted[0].credentials["authorization"],
        digest(&format!("Bearer {BETA_SECRET}"))
    );

    // A native session on beta's model.
    let session = create_session(&app, json!({"model": "beta-model"})).await;
    let reply = send_message(&app, &session, "native beta").await;
    assert!(reply.to_string().contains("native beta"), "{reply}");

    // The gateway's own model still goes to the gateway's own upstream.
    let (status, body) = app
        .chat(json!({"model": "sonnet", "messages": [user("hello default")]}))
        .await;
    assert_eq!(status, 200, "{body}");

    // alpha saw its model, its key and its header, on every model request.
    let a = alpha.messages_requests();
    assert!(!a.is_empty(), "alpha was called");
    for r in &a {
        assert_eq!(r.body["model"], "alpha-large", "{:?}", r.body["model"]);
        assert_eq!(r.credentials["x-api-key"], digest(ALPHA_SECRET));
        assert_eq!(
            r.headers.get("x-alpha-team").map(String::as_str),
            Some("blue")
        );
    }
    // beta saw its model and its token, three turns' worth.
    let b = beta.messages_requests();
    assert!(b.len() >= 2, "beta was called for both turns: {}", b.len());
    for r in &b {
        assert_eq!(r.body["model"], "beta-chat");
        assert_eq!(
            r.credentials["authorization"],
            digest(&format!("Bearer {BETA_SECRET}"))
        );
        assert!(!r.headers.contains_key("x-alpha-team"), "alpha's header");
    }
    let texts = |log: &[LoggedRequest]| -> String {
        log.iter().map(|r| r.body.to_string()).collect::<String>()
    };
    assert!(texts(&b).contains("hello beta") && texts(&b).contains("native beta"));
    assert!(!texts(&a).contains("hello beta") && !texts(&a).contains("native beta"));
    assert!(!texts(&b).contains("hello alpha"));
    // No credential reached an upstream it does not belong to, on any request at all.
    let alpha_key = digest(ALPHA_SECRET);
    let beta_token = digest(&format!("Bearer {BETA_SECRET}"));
    let defaults = [
        digest(DEFAULT_SECRET),
        digest(&format!("Bearer {DEFAULT_SECRET}")),
    ];
    let seen_a = credentials_seen(&alpha.requests());
    let seen_b = credentials_seen(&beta.requests());
    let seen_own = credentials_seen(&app.mock.requests());
    assert!(!seen_a.contains(&beta_token) && !seen_a.iter().any(|d| defaults.contains(d)));
    assert!(!seen_b.contains(&alpha_key) && !seen_b.iter().any(|d| defaults.contains(d)));
    assert!(!seen_own.contains(&alpha_key) && !seen_own.contains(&beta_token));
    let own = app.model_requests();
    assert!(own.iter().all(|r| r.body["model"] == "claude-sonnet-5"));
    assert!(own
        .iter()
        .any(|r| r.body.to_string().contains("hello default")));

    // No CLI process can read a provider's secret from its environment.
    let pids = processes_under(app.data.path());
    assert!(!pids.is_empty());
    for pid in pids {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let env = String::from_utf8_lossy(&env);
        assert!(
            !env.contains(ALPHA_SECRET) && !env.contains(BETA_SECRET),
            "process {pid} holds a provider's secret"
        );
        assert!(!env.contains(ALPHA_VAR) && !env.contains(BETA_VAR));
    }

    // The listings name each model's provider.
    let list = app.get_json("/v1/models").await;
    let find = |list: &Value, id: &str| -> Value {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} listed"))
    };
    assert_eq!(find(&list, "alpha-model")["owned_by"], "alpha");
    assert_eq!(find(&list, "beta-model")["provider"], "beta");
    assert_eq!(find(&list, "sonnet")["owned_by"], "anthropic");
    let one = app.get_json("/v1/models/beta-model").await;
    assert_eq!(one["owned_by"], "beta");
    let anthropic: Value = app
        .client
        .get(format!("{}/v1/models?limit=100", app.url))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(find(&anthropic, "alpha-model")["provider"], "alpha");
    assert_eq!(find(&anthropic, "sonnet")["provider"], "anthropic");

    // /health (no keys configured: the details for anyone) checks each provider.
    let health = app.get_json("/health").await;
    let providers = health["providers"].as_array().expect("providers listed");
    assert_eq!(providers.len(), 2);
    for p in providers {
        assert_eq!(p["reachable"], true, "{p}");
        assert!(
            p["credentials"]
                .as_object()
                .unwrap()
                .values()
                .all(|v| v == true),
            "{p}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_session_keeps_its_provider_across_a_restart() {
    set_secrets();
    let (alpha, beta) = (start_mock().await, start_mock().await);
    let providers = two_providers(&alpha, &beta);
    let mut app = spawn_defaults_app_with(|c| c.providers = providers).await;
    let session = create_session(&app, json!({"model": "beta-model"})).await;
    send_message(&app, &session, "before the restart").await;
    app.restart().await;
    // Resumed by a new process: the model is resolved again, to the same provider.
    send_message(&app, &session, "after the restart [[report:history]]").await;
    let last = beta
        .messages_requests()
        .last()
        .cloned()
        .expect("beta called");
    assert_eq!(last.body["model"], "beta-chat");
    assert!(last.body.to_string().contains("before the restart"));
    assert!(last.body.to_string().contains("after the restart"));
    assert!(alpha.messages_requests().is_empty());
    assert!(
        app.model_requests().is_empty(),
        "nothing went to the own upstream"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_provider_is_reported_and_the_gateway_stays_ready() {
    set_secrets();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut down = provider(&closed, &[("down-model", "down-1")]);
    down.api_key_env = Some("CCGW_TEST_PROVIDER_NEVER_SET".into());
    let app = spawn_defaults_app_with(|c| c.providers = [("down".to_string(), down)].into()).await;
    let health = app.get_json("/health").await;
    let p = &health["providers"][0];
    assert_eq!(p["name"], "down");
    assert_eq!(p["reachable"], false, "{p}");
    assert!(p["error"].as_str().unwrap().contains("connect"), "{p}");
    assert_eq!(p["credentials"]["CCGW_TEST_PROVIDER_NEVER_SET"], false);
    assert_eq!(app.get_json("/health/ready").await["ready"], true);
    let (status, body) = app
        .chat(json!({"model": "sonnet", "messages": [user("still fine")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    // The provider's own model fails as an unreachable upstream does, in OpenAI's shape.
    let (status, body) = app
        .chat(json!({"model": "down-model", "messages": [user("nobody home")]}))
        .await;
    assert!(status >= 500, "{status} {body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_provider_config_is_a_clear_startup_error() {
    let data = tempfile::tempdir().unwrap();
    let start = |providers: BTreeMap<String, ProviderConfig>| {
        let cfg = Config {
            port: 0,
            data_dir: data.path().to_path_buf(),
            warm_pool_size: 0,
            providers,
            ..Config::default()
        };
        async move {
            match ccgw::server::start(cfg).await {
                Ok(_) => panic!("the gateway started"),
                Err(e) => format!("{e:#}"),
            }
        }
    };
    let e = start(
        [(
            "kimi".into(),
            provider("api.moonshot.ai", &[("kimi", "k2")]),
        )]
        .into(),
    )
    .await;
    assert!(
        e.contains("providers.kimi.base_url") && e.contains("http(s)"),
        "{e}"
    );
    let e = start(
        [
            ("a".into(), provider("http://a", &[("shared", "x")])),
            ("b".into(), provider("http://b", &[("shared", "y")])),
        ]
        .into(),
    )
    .await;
    assert!(
        e.contains("'shared'")
            && e.contains("providers.a.models")
            && e.contains("providers.b.models"),
        "{e}"
    );
    let e = start([("a".into(), provider("http://a", &[("opus", "x")]))].into()).await;
    assert!(e.contains("'opus'") && e.contains("[models]"), "{e}");
    // Nothing was left running: the data dir is free for a gateway that starts.
    assert!(processes_under(data.path()).is_empty());
}

#[tokio::test]
async fn a_reload_puts_a_new_provider_table_into_force() {
    set_secrets();
    let (alpha, beta) = (start_mock().await, start_mock().await);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ccgw.toml");
    let table = |url: &str, model: &str| {
        format!(
            "warm_models = [\"sonnet\", \"p-model\"]\n[providers.p]\nbase_url = \"{url}\"\n\
             api_key_env = \"{ALPHA_VAR}\"\nmodels = {{ p-model = \"{model}\" }}\n"
        )
    };
    std::fs::write(&file, table(&alpha.base_url(), "first-name")).unwrap();
    let loaded = Config::load(Some(&file)).unwrap();
    let app = spawn_defaults_app_with(|c| {
        c.providers = loaded.providers.clone();
        c.warm_models = loaded.warm_models.clone();
    })
    .await;
    let overrides = {
        let c = app.cfg.clone();
        move |n: &mut Config| {
            n.port = c.port;
            n.data_dir = c.data_dir.clone();
            n.cli_env = c.cli_env.clone();
            n.cli_max_retries = c.cli_max_retries;
        }
    };
    let mut first = Config::load(Some(&file)).unwrap();
    overrides(&mut first);
    let reloader = ccgw::reload::Reloader::new(
        ccgw::reload::Source {
            file: Some(file.clone()),
            overrides: Box::new(overrides),
        },
        app.server().state.clone(),
        first,
    );
    let (status, _) = app
        .chat(json!({"model": "p-model", "messages": [user("to the first")]}))
        .await;
    assert_eq!(status, 200);
    let to_alpha = alpha.messages_requests();
    assert!(!to_alpha.is_empty());
    assert!(to_alpha.iter().all(|r| r.body["model"] == "first-name"));

    // The provider moves to another upstream under another model name.
    std::fs::write(&file, table(&beta.base_url(), "second-name")).unwrap();
    let report = reloader.reload().unwrap();
    assert_eq!(report.applied, vec!["providers"], "{report:?}");
    assert!(report.needs_restart.is_empty(), "{report:?}");
    // The warm pool is refilled for the new pair: a new conversation is a warm hit there.
    let size = Config::default().warm_pool_size;
    assert!(
        wait_for(
            || app.pool().warm_count() == 2 * size,
            Duration::from_secs(30)
        )
        .await
    );
    let hits = app.pool().warm_hit_count();
    let (status, body) = app
        .chat(json!({"model": "p-model", "messages": [user("to the second")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.pool().warm_hit_count(), hits + 1);
    let b = beta.messages_requests();
    assert!(!b.is_empty(), "the new process went to the new upstream");
    assert!(b.iter().all(|r| r.body["model"] == "second-name"));
    assert_eq!(b[0].credentials["x-api-key"], digest(ALPHA_SECRET));
    assert_eq!(
        alpha.messages_requests().len(),
        to_alpha.len(),
        "nothing more to the old one"
    );
    let health = app.get_json("/health").await;
    assert_eq!(health["providers"][0]["base_url"], beta.base_url());

    // A table that does not validate changes nothing.
    std::fs::write(&file, table("not a url", "third-name")).unwrap();
    let e = format!("{:#}", reloader.reload().unwrap_err());
    assert!(e.contains("providers.p.base_url"), "{e}");
    let one = app.get_json("/v1/models/p-model").await;
    assert_eq!(one["owned_by"], "p");
    app.stop().await;
}
