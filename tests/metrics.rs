//! End to end: `GET /metrics` exports the gateway-overhead histogram and request counters,
//! with the real CLI against the mock upstream.

mod common;

use common::*;
use serde_json::json;

/// The value of one sample line (`name{labels} value`) in Prometheus text, or 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

async fn scrape(app: &TestApp) -> String {
    let resp = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    resp.text().await.expect("body")
}

#[tokio::test]
async fn overhead_histogram_and_counters_count_a_request() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    let chat = r#"ccgw_requests_total{endpoint="/v1/chat/completions",status="200"}"#;
    let count = "ccgw_gateway_overhead_seconds_count";

    let resp = app
        .post(
            "/v1/chat/completions",
            &json!({"model": "sonnet", "messages": [user("metrics please")]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    // The CLI's share of the request travels in Server-Timing.
    let timing = resp.headers()["server-timing"]
        .to_str()
        .unwrap()
        .to_string();
    let dur = |name: &str| -> f64 {
        timing
            .split(", ")
            .find_map(|m| m.strip_prefix(name)?.strip_prefix(";dur=")?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in server-timing: {timing}"))
    };
    assert!(dur("cli") > 0.0, "{timing}");
    assert!(dur("gw") > 0.0, "{timing}");
    let _ = resp.text().await;

    let (status, chunks) = app
        .chat_stream(json!({"model": "sonnet", "messages": [user("and streamed")]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(chunks.last().unwrap(), &json!("[DONE]"));

    let after = scrape(&app).await;
    assert!(
        after.contains("# TYPE ccgw_gateway_overhead_seconds histogram"),
        "{after}"
    );
    assert_eq!(
        sample(&after, count) - sample(&before, count),
        2.0,
        "{after}"
    );
    assert_eq!(sample(&after, chat) - sample(&before, chat), 2.0, "{after}");
    // Two turns, each well under a second of gateway time (the CLI's part is excluded).
    let sum = sample(&after, "ccgw_gateway_overhead_seconds_sum")
        - sample(&before, "ccgw_gateway_overhead_seconds_sum");
    assert!(sum > 0.0 && sum < 2.0, "overhead sum {sum}");
    assert!(after.contains("ccgw_live_processes "), "{after}");
    assert!(after.contains("ccgw_queue_depth 0"), "{after}");
    assert!(
        sample(&after, "ccgw_process_spawns_total") >= 2.0,
        "{after}"
    );

    // Errors are counted by route template and status, unknown paths as "unmatched".
    let missing = app
        .client
        .get(format!("{}/v1/models/no-such-model", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let _ = app
        .client
        .get(format!("{}/nowhere", app.url))
        .send()
        .await
        .unwrap();
    let text = scrape(&app).await;
    assert!(
        sample(
            &text,
            r#"ccgw_requests_total{endpoint="/v1/models/{id}",status="404"}"#
        ) >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"ccgw_requests_total{endpoint="unmatched",status="404"}"#
        ) >= 1.0,
        "{text}"
    );
    app.stop().await;
}
