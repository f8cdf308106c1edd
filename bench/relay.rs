//! `relay`: what the credential relay adds to a model request. The same streamed Messages API
//! request (a body the size of the CLI's first one) goes, interleaved, straight to the
//! project's mock upstream with the real key (what the CLI did before the relay) and through
//! the relay with a process token; each is timed from send to the last byte of the stream.
//! Prints p50/p90/p99 of both and the difference. A cargo example; never part of the gateway.
//!
//! usage: cargo run --release --example relay [-- REQUESTS]

use std::time::{Duration, Instant};

use ccgw::mock_upstream::MockUpstream;
use ccgw::relay::{Credentials, Relay};
use futures::StreamExt as _;
use serde_json::json;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let mock = MockUpstream::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("mock upstream");
    let base = mock.base_url();
    let key = "sk-bench-real-key";
    let relay = Relay::start(Credentials::from_lookup(|k| match k {
        "ANTHROPIC_BASE_URL" => Some(base.clone()),
        "ANTHROPIC_API_KEY" => Some(key.to_string()),
        _ => None,
    }))
    .await
    .expect("relay");
    let token = relay.issue("bench");
    // About the size of the CLI's first request (system prompt, tool list, a user turn).
    let padding = "x".repeat(40_000);
    let body = json!({
        "model": "claude-sonnet-5", "max_tokens": 1024, "stream": true,
        "system": [{"type": "text", "text": padding}],
        "messages": [{"role": "user", "content": "[[words:40]]"}],
    })
    .to_string();
    let client = reqwest::Client::new();
    let once = |url: String, key: String| {
        let req = client
            .post(format!("{url}/v1/messages?beta=true"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(body.clone());
        async move {
            let start = Instant::now();
            let resp = req.send().await.expect("sent");
            assert!(resp.status().is_success(), "{}", resp.status());
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                chunk.expect("chunk");
            }
            start.elapsed()
        }
    };
    // Warm both paths' connections first.
    for _ in 0..50 {
        once(base.clone(), key.into()).await;
        once(relay.url(), token.secret().into()).await;
    }
    mock.clear();
    let (mut direct, mut relayed) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..2 * n {
        if i % 2 == 0 {
            direct.push(once(base.clone(), key.into()).await);
        } else {
            relayed.push(once(relay.url(), token.secret().into()).await);
        }
    }
    direct.sort();
    relayed.sort();
    println!("requests per path: {n} (interleaved, streamed, ~41 kB body, 40-word answer)");
    for (name, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        let (d, r) = (pct(&direct, p), pct(&relayed, p));
        println!(
            "{name}: direct {d:.3} ms, relay {r:.3} ms, added {:.3} ms",
            r - d
        );
    }
    let summary = relay.ledger().summary();
    println!(
        "relay recorded {} requests, {} output tokens",
        summary.requests, summary.usage.output_tokens
    );
}
