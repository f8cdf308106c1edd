//! Per-key limits end to end (issue 11 §4): the real server with the warm pool on, the real CLI
//! against the mock upstream, one static admin key and stored user keys made through
//! /admin/api/keys. Requests per minute, tokens per minute, turns at once and a budget each
//! give a 429 in the API's own shape with `retry-after` and the `x-ratelimit-*` headers; a
//! successful turn carries the headers too; another key and the admin are never affected.

mod common;

use std::time::Duration;

use common::{spawn_defaults_app_with, user, user_key_with, wait_for, TestApp, ADMIN_KEY};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

const ADMIN: &str = ADMIN_KEY;

const RATE_HEADERS: [&str; 6] = [
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
];

async fn app() -> TestApp {
    spawn_defaults_app_with(|c| c.api_keys = vec![ADMIN.into()]).await
}

async fn send(app: &TestApp, path: &str, body: &Value, key: &str) -> (u16, HeaderMap, Value) {
    let resp = app
        .client
        .post(format!("{}{path}", app.url))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

fn chat(text: &str) -> Value {
    json!({"model": "sonnet", "messages": [user(text)]})
}

fn anthropic(text: &str) -> Value {
    json!({"model": "sonnet", "max_tokens": 100, "messages": [{"role": "user", "content": text}]})
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} in {h:?}"))
        .to_str()
        .expect("a text header")
}

#[tokio::test]
async fn rpm_and_tpm_refuse_with_openais_headers_and_spare_other_keys() {
    let app = app().await;
    let (_, a) = user_key_with(&app, "a", json!({"rpm": 2, "tpm": 1000})).await;
    let (_, b) = user_key_with(&app, "b", json!({"rpm": 2})).await;

    // Successful turns carry what is left.
    let (status, h, body) = send(&app, "/v1/chat/completions", &chat("one"), &a).await;
    assert_eq!(status, 200, "{body}");
    for name in RATE_HEADERS {
        header(&h, name);
    }
    assert_eq!(header(&h, "x-ratelimit-limit-requests"), "2");
    assert_eq!(header(&h, "x-ratelimit-remaining-requests"), "1");
    assert_eq!(header(&h, "x-ratelimit-limit-tokens"), "1000");
    assert_eq!(header(&h, "x-ratelimit-remaining-tokens"), "1000");
    let (status, h, _) = send(&app, "/v1/chat/completions", &chat("two"), &a).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-ratelimit-remaining-requests"), "0");

    // The third within the minute is refused, in OpenAI's shape and Anthropic's.
    let (status, h, body) = send(&app, "/v1/chat/completions", &chat("three"), &a).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let wait: u64 = header(&h, "retry-after").parse().expect("seconds");
    assert!((1..=30).contains(&wait), "{wait}");
    for name in RATE_HEADERS {
        header(&h, name);
    }
    assert_eq!(header(&h, "x-ratelimit-remaining-requests"), "0");
    let (status, h, body) = send(&app, "/v1/messages", &anthropic("four"), &a).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    header(&h, "retry-after");

    // Another key, the admin, and a route that runs no turn are not affected.
    let (status, h, _) = send(&app, "/v1/chat/completions", &chat("b one"), &b).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-ratelimit-remaining-requests"), "1");
    assert!(h.get("x-ratelimit-limit-tokens").is_none(), "b has no tpm");
    for n in 0..3 {
        let (status, h, _) = send(
            &app,
            "/v1/chat/completions",
            &chat(&format!("admin {n}")),
            ADMIN,
        )
        .await;
        assert_eq!(status, 200);
        assert!(h.get("x-ratelimit-limit-requests").is_none(), "{h:?}");
    }
    let (status, _) = app.request("GET", "/v1/models", None, Some(&a)).await;
    assert_eq!(status, 200);

    // Tokens per minute: counted from the turn's reported usage, refused on the next request.
    let (_, t) = user_key_with(&app, "t", json!({"tpm": 50})).await;
    let (status, h, body) = send(
        &app,
        "/v1/chat/completions",
        &chat("spend [[usage:40,30]]"),
        &t,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["total_tokens"], 70);
    assert_eq!(header(&h, "x-ratelimit-remaining-tokens"), "50");
    let (status, h, body) = send(&app, "/v1/chat/completions", &chat("more"), &t).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        body["error"]["code"], "tokens_rate_limit_exceeded",
        "{body}"
    );
    assert_eq!(header(&h, "x-ratelimit-limit-tokens"), "50");
    assert_eq!(header(&h, "x-ratelimit-remaining-tokens"), "0");
    let wait: u64 = header(&h, "retry-after").parse().expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_turns_are_capped_and_the_slot_comes_back_however_the_turn_ends() {
    let app = app().await;
    let (id, k) = user_key_with(&app, "c", json!({"max_concurrency": 1})).await;
    let limits = app.server().state.conversations.limits.clone();

    // A slow streamed turn holds the slot while it runs.
    let mut slow = chat("[[words:40]] [[slow:100]]");
    slow["stream"] = json!(true);
    let mut resp = app
        .client
        .post(format!("{}/v1/chat/completions", app.url))
        .bearer_auth(&k)
        .json(&slow)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    assert!(resp.chunk().await.expect("a chunk").is_some());
    assert_eq!(limits.running(&id), 1);
    let (status, h, body) = send(&app, "/v1/chat/completions", &chat("second"), &k).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        body["error"]["code"], "concurrency_limit_exceeded",
        "{body}"
    );
    assert_eq!(header(&h, "retry-after"), "1");
    // Other keys run meanwhile.
    let (status, _, _) = send(&app, "/v1/chat/completions", &chat("admin"), ADMIN).await;
    assert_eq!(status, 200);
    // Once the slow turn is read to its end, the next one passes at once.
    while resp.chunk().await.expect("a chunk").is_some() {}
    let (status, _, body) = send(&app, "/v1/chat/completions", &chat("third"), &k).await;
    assert_eq!(status, 200, "{body}");

    // A client that goes away mid-turn gives the slot back too.
    let resp = app
        .client
        .post(format!("{}/v1/chat/completions", app.url))
        .bearer_auth(&k)
        .json(&slow)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    assert_eq!(limits.running(&id), 1);
    drop(resp);
    assert!(
        wait_for(|| limits.running(&id) == 0, Duration::from_secs(10)).await,
        "the slot came back"
    );
    let (status, _, body) = send(&app, "/v1/chat/completions", &chat("fourth"), &k).await;
    assert_eq!(status, 200, "{body}");

    // A native turn that fails (an upstream error) gives it back as well.
    let (status, s) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet"})),
            Some(&k),
        )
        .await;
    assert_eq!(status, 201, "{s}");
    let sid = s["id"].as_str().expect("id");
    let path = format!("/api/sessions/{sid}/messages");
    let (status, _, body) = send(&app, &path, &json!({"content": "[[fail:400]]"}), &k).await;
    assert!(status >= 400, "{status} {body}");
    assert_eq!(limits.running(&id), 0);
    let (status, _, body) = send(&app, &path, &json!({"content": "after"}), &k).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_turn_that_crosses_the_budget_spends_it_for_every_api() {
    let mut app = app().await;
    let (id, k) = user_key_with(
        &app,
        "spender",
        json!({"budget_usd": 0.001, "budget_period": "day"}),
    )
    .await;
    let (_, other) = user_key_with(&app, "other", json!({"budget_usd": 0.001})).await;

    // Under the budget: the turn runs, and its cost (far over 0.001 USD) crosses it.
    let (status, _, body) = send(
        &app,
        "/v1/chat/completions",
        &chat("big [[usage:1000,1000]]"),
        &k,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let limits = app.server().state.conversations.limits.clone();
    let spent = limits.spent(
        &id,
        &ccgw::domain::tenants::KeyLimits {
            budget_usd: Some(0.001),
            budget_period: Some("day".into()),
            ..Default::default()
        },
    );
    assert!(spent > 0.001, "{spent}");

    // Every turn route now refuses it, each in its own shape.
    let (status, h, body) = send(&app, "/v1/chat/completions", &chat("again"), &k).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "insufficient_quota", "{body}");
    assert_eq!(body["error"]["code"], "insufficient_quota");
    let wait: u64 = header(&h, "retry-after").parse().expect("seconds");
    assert!(wait <= 86_400, "until the day's end: {wait}");
    let (status, _, body) = send(&app, "/v1/messages", &anthropic("again"), &k).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    let (status, s) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet"})),
            Some(&k),
        )
        .await;
    assert_eq!(status, 201, "making a session runs no turn: {s}");
    let sid = s["id"].as_str().expect("id");
    let (status, _, body) = send(
        &app,
        &format!("/api/sessions/{sid}/messages"),
        &json!({"content": "again"}),
        &k,
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");

    // Another key's budget is its own.
    let (status, _, body) = send(&app, "/v1/chat/completions", &chat("mine"), &other).await;
    assert_eq!(status, 200, "{body}");

    // The spend outlives a restart: it is loaded from the usage table.
    app.restart().await;
    let (status, _, body) = send(&app, "/v1/chat/completions", &chat("after"), &k).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "insufficient_quota", "{body}");
    app.stop().await;
}
