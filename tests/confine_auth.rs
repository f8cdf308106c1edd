//! End to end: with keys configured, strangers learn only that the gateway is alive.

mod common;

use common::*;
use serde_json::json;

const KEY: &str = "operator-key-123456";

async fn get(app: &TestApp, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(format!("{}{path}", app.url));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn health_metrics_and_unknown_routes_need_a_key() {
    let app = spawn_app_with(|c| {
        c.api_keys = vec![KEY.into()];
        c.metrics_listen = Some("127.0.0.1:0".into());
    })
    .await;
    // Liveness stays open, and says nothing more.
    let resp = get(&app, "/health", None).await;
    assert_eq!(resp.status().as_u16(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v, json!({"status": "ok"}));

    // A turn, so that the relay has seen the upstream's rate limits.
    let (status, body) = app
        .request(
            "POST",
            "/v1/messages",
            Some(&json!({"model": "sonnet", "max_tokens": 32, "messages": [user("[[text:hi]]")]})),
            Some(KEY),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = get(&app, "/health", Some(KEY)).await.json().await.unwrap();
    assert!(v["live_processes"].is_u64(), "{v}");
    assert!(v["bash_sandbox"].is_string(), "{v}");
    let relay = &v["relay"];
    assert!(relay["requests"].as_u64().unwrap() >= 1, "{v}");
    assert!(
        relay["usage"]["output_tokens"].as_u64().unwrap() >= 1,
        "{v}"
    );
    assert!(
        relay["rate_limits"]["headers"]["anthropic-ratelimit-requests-remaining"].is_string(),
        "{v}"
    );

    for path in ["/metrics", "/no/such/route", "/v1/messages/nope"] {
        let resp = get(&app, path, None).await;
        assert_eq!(resp.status().as_u16(), 401, "{path}");
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"ccgw\"",
            "{path}"
        );
        let resp = get(&app, path, Some("wrong-key-1234567")).await;
        assert_eq!(resp.status().as_u16(), 401, "{path}");
    }
    assert_eq!(
        get(&app, "/metrics", Some(KEY)).await.status().as_u16(),
        200
    );
    assert_eq!(
        get(&app, "/no/such/route", Some(KEY))
            .await
            .status()
            .as_u16(),
        404
    );
    // The API's own refusals carry the header too, in the API's shape.
    let resp = app
        .client
        .post(format!("{}/v1/messages", app.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");

    // Prometheus scrapes its own address without a key.
    let addr = app.server().metrics_addr.expect("metrics_listen bound");
    let resp = app
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("ccgw_relay_requests_total"), "{text}");
    let resp = app
        .client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404, "only /metrics there");
    app.stop().await;
}
