//! End to end: the CLI never holds the real credentials. Every process reaches the upstream
//! through the gateway's loopback relay with a token of its own; the upstream (the mock) gets
//! the real credentials; the environment the model can see holds no secret.

mod common;

use std::time::{Duration, Instant};

use ccgw::relay::{Credentials, Relay};
use common::*;
use futures::StreamExt as _;
use serde_json::{json, Value};
use sha2::Digest as _;

const REAL_KEY: &str = "sk-ant-real-key-0123456789-must-never-leak";

fn digest(value: &str) -> String {
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

/// The environment of a live CLI process, from /proc.
fn environ(pid: u32) -> Vec<(String, String)> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn env_get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

async fn app_with_credentials(vars: &[(&str, &str)]) -> TestApp {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    spawn_app_with(move |c| {
        c.cli_env.retain(|(k, _)| k == "ANTHROPIC_BASE_URL");
        c.cli_env.extend(vars);
    })
    .await
}

async fn one_turn(app: &TestApp) {
    let body = json!({"model": "sonnet", "max_tokens": 64, "messages": [user("[[text:pong]]")]});
    let (status, body) = app.anthropic(body).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["content"][0]["text"], "pong");
}

#[tokio::test]
async fn each_kind_of_credential_reaches_the_upstream_in_place_of_the_token() {
    /// The gateway's credential variables, and the credential headers the upstream must get.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [(&'a str, String)]);
    let cases: [Case; 4] = [
        (
            &[("ANTHROPIC_API_KEY", REAL_KEY)],
            &[("x-api-key", digest(REAL_KEY))],
        ),
        (
            &[("ANTHROPIC_AUTH_TOKEN", REAL_KEY)],
            &[("authorization", digest(&format!("Bearer {REAL_KEY}")))],
        ),
        (
            &[("CLAUDE_CODE_OAUTH_TOKEN", REAL_KEY)],
            &[("authorization", digest(&format!("Bearer {REAL_KEY}")))],
        ),
        (
            &[
                ("ANTHROPIC_API_KEY", REAL_KEY),
                ("ANTHROPIC_CUSTOM_HEADERS", "X-Team-Secret: blue-42"),
            ],
            &[("x-api-key", digest(REAL_KEY))],
        ),
    ];
    for (vars, expected) in cases {
        let app = app_with_credentials(vars).await;
        one_turn(&app).await;
        let reqs = app.model_requests();
        let last = reqs.last().unwrap();
        for (header, want) in expected {
            assert_eq!(
                last.credentials.get(*header),
                Some(want),
                "{vars:?}: {last:?}"
            );
        }
        // Exactly the credential headers the CLI sends with that credential, nothing more.
        assert_eq!(last.credentials.len(), expected.len(), "{vars:?}: {last:?}");
        if vars.iter().any(|(k, _)| *k == "ANTHROPIC_CUSTOM_HEADERS") {
            assert_eq!(last.headers["x-team-secret"], "blue-42");
        }
        // The process itself holds none of it.
        let pid = *app.pool().pids().first().expect("a live process");
        let env = environ(pid);
        assert!(!env
            .iter()
            .any(|(_, v)| v.contains(REAL_KEY) || v.contains("blue-42")));
        let token = vars
            .iter()
            .filter_map(|(k, _)| env_get(&env, k))
            .next()
            .unwrap_or_else(|| panic!("{vars:?}: the token is in the credential's variable"));
        assert!(token.starts_with("ccgw-relay-"), "{token}");
        assert!(env_get(&env, "ANTHROPIC_BASE_URL")
            .unwrap()
            .starts_with("http://127.0.0.1:"));
        app.stop().await;
    }
}

/// The same request, sent through the relay with a token and straight to the upstream with
/// the real key, reaches the upstream the same; so does the streamed answer come back.
#[tokio::test]
async fn the_relay_forwards_requests_and_streams_unchanged() {
    let direct = ccgw::mock_upstream::MockUpstream::start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let behind = ccgw::mock_upstream::MockUpstream::start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let base = behind.base_url();
    let relay = Relay::start(Credentials::from_lookup(|k| match k {
        "ANTHROPIC_BASE_URL" => Some(base.clone()),
        "ANTHROPIC_API_KEY" => Some(REAL_KEY.to_string()),
        _ => None,
    }))
    .await
    .unwrap();
    let token = relay.issue("test");
    let client = reqwest::Client::new();
    let body = json!({
        "model": "claude-sonnet-5", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "[[words:6]] [[slow:150]]"}],
    });
    let send = |url: String, key: String| {
        client
            .post(format!("{url}/v1/messages?beta=true"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "claude-code-20250219")
            .header("user-agent", "claude-cli/test")
            .json(&body)
            .send()
    };
    // Time to the first byte and the whole body, for each path.
    async fn read(
        resp: reqwest::Response,
    ) -> (Duration, Duration, Vec<u8>, reqwest::header::HeaderMap) {
        let start = Instant::now();
        let headers = resp.headers().clone();
        let mut stream = resp.bytes_stream();
        let mut first = None;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            first.get_or_insert_with(|| start.elapsed());
            out.extend_from_slice(&chunk.unwrap());
        }
        (first.unwrap(), start.elapsed(), out, headers)
    }
    let (_, _, want, _) = read(send(direct.base_url(), REAL_KEY.into()).await.unwrap()).await;
    let (first, total, got, headers) =
        read(send(relay.url(), token.secret().to_string()).await.unwrap()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    assert!(got.len() > 200);
    // Streamed as it came: the first bytes long before the last (6 words, 150 ms apart).
    assert!(total >= Duration::from_millis(600), "{total:?}");
    assert!(
        first + Duration::from_millis(400) < total,
        "{first:?} of {total:?}"
    );
    assert_eq!(headers["content-type"], "text/event-stream; charset=utf-8");
    // The upstream saw the same request.
    let (a, b) = (&direct.requests()[0], &behind.requests()[0]);
    assert_eq!(a.body, b.body);
    assert_eq!(a.path, b.path);
    assert_eq!(a.credentials, b.credentials);
    let strip = |h: &std::collections::BTreeMap<String, String>| {
        let mut h = h.clone();
        h.remove("host");
        h
    };
    assert_eq!(strip(&a.headers), strip(&b.headers));
    // What the relay learnt: usage, rate limits.
    let ledger = relay.ledger();
    let rec = ledger.recent().pop().unwrap();
    assert_eq!(rec.status, 200);
    assert_eq!(rec.model.as_deref(), Some("claude-sonnet-5"));
    assert_eq!(
        Some(rec.usage.unwrap().output_tokens),
        b.usage.as_ref().and_then(|u| u["output_tokens"].as_u64())
    );
    let limits = ledger.summary().rate_limits;
    assert!(limits
        .headers
        .contains_key("anthropic-ratelimit-requests-remaining"));

    // Upstream errors are passed on as they came, and recorded.
    let err_body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "[[fail:529]]"}]});
    let resp = client
        .post(format!("{}/v1/messages", relay.url()))
        .header("x-api-key", token.secret())
        .json(&err_body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 529);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert_eq!(ledger.summary().errors, 1);

    // A token that is gone is refused, in the API's own error shape.
    let secret = token.secret().to_string();
    drop(token);
    let resp = send(relay.url(), secret).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    let resp = send(relay.url(), REAL_KEY.into()).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401, "the real key is no token");
    assert_eq!(behind.requests().len(), 2, "refused requests never went on");
}

#[tokio::test]
async fn a_stopped_processs_token_is_refused() {
    let app = spawn_app().await;
    let resp = app.post("/api/sessions", &json!({"model": "sonnet"})).await;
    let s: Value = resp.json().await.unwrap();
    let id = s["id"].as_str().unwrap().to_string();
    let resp = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": "[[text:hi]]"}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let pid = *app.pool().pids().first().expect("a live process");
    let env = environ(pid);
    let url = env_get(&env, "ANTHROPIC_BASE_URL").unwrap().to_string();
    let token = env_get(&env, "ANTHROPIC_API_KEY").unwrap().to_string();
    let ask = |token: String| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{url}/v1/messages"))
                .header("x-api-key", token)
                .json(&json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        ask(token.clone()).await,
        200,
        "the live process's token works"
    );
    let del = app
        .client
        .delete(format!("{}/api/sessions/{id}", app.url))
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success());
    assert!(wait_for(|| !pid_alive(pid), Duration::from_secs(10)).await);
    // Revoked the moment the gateway reaps the process (just after it is gone from the OS).
    let mut status = 0;
    for _ in 0..50 {
        status = ask(token.clone()).await;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401, "the token died with its process");
    app.stop().await;
}

/// Bash `env` shows no secret, and after the session the real key is nowhere on disk: not in
/// the transcripts, not in the database (or its WAL).
#[tokio::test]
async fn the_model_sees_no_secret_and_none_is_stored() {
    let app = spawn_app_with(|c| {
        c.builtin_tools = vec!["Bash".into()];
        c.unsandboxed_bash = true;
        c.cli_env.retain(|(k, _)| k == "ANTHROPIC_BASE_URL");
        c.cli_env
            .push(("ANTHROPIC_API_KEY".into(), REAL_KEY.into()));
        c.api_keys = vec!["client-key-123456".into()];
    })
    .await;
    let (status, s) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet", "tools": ["Bash"], "allowed_tools": ["Bash"]})),
            Some("client-key-123456"),
        )
        .await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_string();
    let (status, reply) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/messages"),
            Some(&json!({"content": r#"[[tool:Bash {"command":"env"}]]"#})),
            Some("client-key-123456"),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let text = reply.to_string();
    assert!(text.contains("PATH="), "the env output came back: {text}");
    for secret in [REAL_KEY, "client-key-123456", "CCGW_", "CARGO_"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // The CLI writes its transcript just after the turn.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let data = app.data.path().to_path_buf();
    let mut hits = Vec::new();
    for entry in walk(&data) {
        if let Ok(bytes) = std::fs::read(&entry) {
            if bytes
                .windows(REAL_KEY.len())
                .any(|w| w == REAL_KEY.as_bytes())
            {
                hits.push(entry);
            }
        }
    }
    assert!(hits.is_empty(), "the real key is stored in {hits:?}");
    app.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    assert!(
        out.iter()
            .any(|p| p.extension().is_some_and(|e| e == "jsonl")),
        "the data dir holds the transcripts: {out:?}"
    );
    assert!(
        out.iter()
            .any(|p| p.file_name().is_some_and(|n| n == "ccgw.db")),
        "{out:?}"
    );
    out
}
