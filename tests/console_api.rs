//! End to end: what the web console is built on (real CLI, mock upstream, defaults: the warm
//! pool on): the gateway-wide live feed, browser WebSocket authentication, the admin API and
//! the machine's own Claude Code sessions.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const KEY: &str = "console-test-key-1";

/// The defaults (warm pool on), with one API key.
async fn app_with_key(tweak: impl FnOnce(&mut ccgw::config::Config)) -> TestApp {
    spawn_app_with(|c| {
        c.warm_pool_size = ccgw::config::Config::default().warm_pool_size;
        c.api_keys = vec![KEY.into()];
        tweak(c);
    })
    .await
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    app.request("GET", path, None, Some(KEY)).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.request("POST", path, Some(&body), Some(KEY)).await
}

/// The kinds of a conversation's recorded history, once it holds `last` (recording follows the
/// turn by a moment).
async fn history_kinds(app: &TestApp, id: &str, last: &str) -> Vec<String> {
    let mut kinds = vec![];
    for _ in 0..50 {
        let (_, h) = get(app, &format!("/admin/api/conversations/{id}/events")).await;
        kinds = h["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        if kinds.iter().any(|k| k == last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kinds
}

/// The live feed over SSE, with the key.
async fn open_feed(app: &TestApp) -> reqwest::Response {
    app.client
        .get(format!("{}/admin/api/events", app.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
}

fn ws_url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.url.replace("http://", "ws://"))
}

/// Open a WebSocket offering these subprotocols; the HTTP status on refusal.
async fn ws_connect(
    url: &str,
    protocols: Option<&str>,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        Option<String>,
    ),
    u16,
> {
    let mut req = url.into_client_request().unwrap();
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_str(p).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, resp)) => Ok((
            ws,
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
        )),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket failed: {e}"),
    }
}

#[tokio::test]
async fn an_openai_request_appears_live_on_the_feed_and_as_history() {
    let app = app_with_key(|_| {}).await;
    let mut feed = open_feed(&app).await;
    assert_eq!(feed.status().as_u16(), 200);
    let resp = app
        .client
        .post(format!("{}/v1/chat/completions", app.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "sonnet", "user": "alice",
                      "messages": [user("hello feed [[text:Hi there]] [[usage:11,7]]")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let conv = resp
        .headers()
        .get("x-ccgw-conversation-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let items = read_sse(&mut feed, |v| v["event"]["type"] == "done").await;
    let first = &items[0];
    assert_eq!(first["event"]["type"], "user_message", "{items:?}");
    for it in &items {
        assert_eq!(it["conversation_id"], conv.as_str());
        assert_eq!(it["source"], "openai");
        assert_eq!(it["model"], "sonnet");
        assert_eq!(it["user"], "alice");
        assert!(it["ts"].as_i64().unwrap() > 1_600_000_000_000);
        assert!(it["turn_id"].as_str().is_some_and(|t| !t.is_empty()));
        let key = it["key"].as_str().unwrap();
        assert!(key.starts_with("key-") && !key.contains(KEY), "{key}");
    }
    let ids: Vec<u64> = items.iter().map(|i| i["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "in order: {ids:?}");
    let text: String = items
        .iter()
        .filter(|i| i["event"]["type"] == "text_delta")
        .map(|i| i["event"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hi there");

    // The home list shows it with its tokens; its timeline was recorded.
    let (status, list) = get(&app, "/admin/api/conversations").await;
    assert_eq!(status, 200);
    let row = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == conv.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(row["source"], "openai");
    assert_eq!(row["status"], "idle");
    assert_eq!(row["output_tokens"], 7);
    assert!(row["title"].as_str().unwrap().starts_with("hello feed"));
    let kinds = history_kinds(&app, &conv, "result").await;
    assert_eq!(kinds, ["user", "assistant", "step_end", "result"]);
    let (status, _) = get(&app, "/admin/api/conversations/no-such-id/events").await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_first_turn_is_still_recorded() {
    let app = app_with_key(|_| {}).await;
    let resp = app
        .client
        .post(format!("{}/v1/messages", app.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "sonnet", "max_tokens": 100,
                      "messages": [user("this fails [[fail:400]]")]}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error() || resp.status().is_server_error());
    let mut found = None;
    for _ in 0..50 {
        let (_, list) = get(&app, "/admin/api/conversations?source=anthropic").await;
        found = list["data"].as_array().and_then(|a| a.first().cloned());
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = found.expect("the failed conversation is listed");
    assert_eq!(row["status"], "error");
    let id = row["id"].as_str().unwrap();
    let kinds = history_kinds(&app, id, "error").await;
    assert_eq!(kinds.first().map(String::as_str), Some("user"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "error"), "{kinds:?}");
    let (status, bad) = get(&app, "/admin/api/conversations?source=nope").await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["param"], "source");
    app.stop().await;
}

#[tokio::test]
async fn a_watcher_that_never_reads_does_not_slow_a_turn() {
    let app = app_with_key(|_| {}).await;
    // A raw connection that asks for the feed and then never reads a byte.
    let addr = app.url.trim_start_matches("http://").to_string();
    let mut stuck = tokio::net::TcpStream::connect(&addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    stuck
        .write_all(
            format!(
                "GET /admin/api/events HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {KEY}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let resp = app
        .client
        .post(format!("{}/v1/chat/completions", app.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "sonnet", "messages": [user("[[words:3000]]")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    let words = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .count();
    assert_eq!(words, 3000);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    drop(stuck);
    app.stop().await;
}

#[tokio::test]
async fn browser_websockets_authenticate_by_subprotocol_or_ticket_never_the_query() {
    let app = app_with_key(|_| {}).await;
    let feed = ws_url(&app, "/admin/ws");
    assert_eq!(ws_connect(&feed, None).await.err(), Some(401));
    assert_eq!(
        ws_connect(&format!("{feed}?key={KEY}"), None).await.err(),
        Some(401),
        "a key in the query string is refused"
    );
    assert_eq!(
        ws_connect(&feed, Some("ccgw, ccgw.bearer.wrong-key-123"))
            .await
            .err(),
        Some(401)
    );
    let (mut ws, selected) = ws_connect(&feed, Some(&format!("ccgw, ccgw.bearer.{KEY}")))
        .await
        .expect("the subprotocol key is accepted");
    assert_eq!(selected.as_deref(), Some("ccgw"));

    // The feed arrives on the socket.
    let (status, _) = post(
        &app,
        "/v1/chat/completions",
        json!({"model": "sonnet", "messages": [user("over the socket [[text:ok]]")]}),
    )
    .await;
    assert_eq!(status, 200);
    let mut seen = vec![];
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
        let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        let done = v["event"]["type"] == "done";
        seen.push(v);
        if done {
            break;
        }
    }
    assert_eq!(seen.first().unwrap()["event"]["type"], "user_message");
    assert_eq!(seen.last().unwrap()["event"]["type"], "done");

    // Tickets: issued to a key holder only, good once.
    let refused = app
        .client
        .post(format!("{}/api/ws-tickets", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let (status, t) = post(&app, "/api/ws-tickets", json!({})).await;
    assert_eq!(status, 201);
    assert!(t["expires_in"].as_u64().unwrap() > 0);
    let ticket = t["ticket"].as_str().unwrap();
    let (s, _) = post(&app, "/api/sessions", json!({"model": "sonnet"})).await;
    assert_eq!(s, 201);
    let (_, session) = get(&app, "/api/sessions?limit=1").await;
    let sid = session["data"][0]["id"].as_str().unwrap().to_string();
    let session_ws = ws_url(&app, &format!("/api/sessions/{sid}/ws?ticket={ticket}"));
    ws_connect(&session_ws, None)
        .await
        .expect("a ticket opens the session's socket");
    assert_eq!(
        ws_connect(&session_ws, None).await.err(),
        Some(401),
        "a ticket is good once"
    );
    let (_, selected) = ws_connect(
        &ws_url(&app, &format!("/api/sessions/{sid}/ws")),
        Some(&format!("ccgw, ccgw.bearer.{KEY}")),
    )
    .await
    .expect("the session socket takes the subprotocol key too");
    assert_eq!(selected.as_deref(), Some("ccgw"));
    app.stop().await;
}

#[tokio::test]
async fn stats_keep_a_series_from_the_metrics() {
    let app = app_with_key(|_| {}).await;
    let (status, _) = post(
        &app,
        "/v1/chat/completions",
        json!({"model": "sonnet", "messages": [user("count me [[usage:5,9]]")]}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, _) = post(
        &app,
        "/v1/chat/completions",
        json!({"model": "no-such-model", "messages": [user("x")]}),
    )
    .await;
    let mut stats = Value::Null;
    for _ in 0..40 {
        stats = get(&app, "/admin/api/stats").await.1;
        let series = stats["series"].as_array().cloned().unwrap_or_default();
        let requests = series
            .iter()
            .any(|s| s["requests_per_s"].as_f64() > Some(0.0));
        let errors = series
            .iter()
            .any(|s| s["errors"]["404"].as_u64() >= Some(1));
        if requests && errors && series.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let series = stats["series"].as_array().unwrap();
    assert!(series.len() >= 2, "{stats}");
    assert!(
        series
            .iter()
            .any(|s| s["requests_per_s"].as_f64() > Some(0.0)),
        "{stats}"
    );
    // (The metrics recorder is one per process: other tests' requests count too.)
    assert!(
        series
            .iter()
            .any(|s| s["errors"]["404"].as_u64() >= Some(1)),
        "{stats}"
    );
    assert!(series
        .iter()
        .any(|s| s["overhead_ms"]["p99"].as_f64().is_some()));
    assert!(series
        .iter()
        .any(|s| s["ttft_ms"]["p50"].as_f64().is_some()));
    assert!(series.last().unwrap()["rss_bytes"].as_u64().unwrap() > 1_000_000);
    assert_eq!(stats["top_models"][0]["name"], "sonnet");
    assert_eq!(stats["top_models"][0]["output_tokens"], 9);
    assert!(stats["top_keys"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("key-"));
    // Only newer samples with `since`.
    let last = series.last().unwrap()["t"].as_i64().unwrap();
    let (_, newer) = get(&app, &format!("/admin/api/stats?since={last}")).await;
    assert!(newer["series"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["t"].as_i64().unwrap() > last));
    // With keys configured, /metrics needs one too.
    let metrics = app
        .client
        .get(format!("{}/metrics", app.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ccgw_time_to_first_token_seconds_bucket"));
    app.stop().await;
}

#[tokio::test]
async fn the_console_is_served_without_a_key_and_api_paths_are_not_the_app() {
    let app = app_with_key(|_| {}).await;
    let page = app
        .client
        .get(format!("{}/admin", app.url))
        .send()
        .await
        .unwrap();
    let status = page.status().as_u16();
    let html = page.text().await.unwrap();
    assert!(status == 200 || status == 503, "{status}");
    assert!(html.contains("<html") || html.contains("<!doctype html"));
    // Client-side routes get the same app.
    let deep = app
        .client
        .get(format!("{}/admin/sessions/abc", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(deep, html);
    let api = app
        .client
        .get(format!("{}/admin/api/stats", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 401, "the admin API needs the key");
    let (status, body) = get(&app, "/admin/api/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn the_machines_own_sessions_are_listed_viewed_and_continued() {
    let machine = tempfile::tempdir().unwrap();
    let dir = machine.path().to_path_buf();
    let off = app_with_key(|_| {}).await;
    let (status, body) = get(&off, "/api/claude-sessions").await;
    assert_eq!(status, 404, "off by default: {body}");
    off.stop().await;

    let app = app_with_key(|c| c.claude_sessions_dir = Some(dir.clone())).await;
    // A real transcript: a native session's first turn, copied into the "machine's" dir.
    let (_, s) = post(&app, "/api/sessions", json!({"model": "sonnet"})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let (status, _) = post(
        &app,
        &format!("/api/sessions/{id}/messages"),
        json!({"content": "remember the word PLUM [[text:noted]]"}),
    )
    .await;
    assert_eq!(status, 200);
    // The CLI's own transcript of that turn (wherever the serving process wrote it).
    let projects = app.cfg.data_dir.join("claude/projects");
    let find = || -> Option<std::path::PathBuf> {
        std::fs::read_dir(&projects)
            .ok()?
            .flatten()
            .flat_map(|p| std::fs::read_dir(p.path()).into_iter().flatten().flatten())
            .map(|f| f.path())
            .find(|p| {
                p.extension().is_some_and(|e| e == "jsonl")
                    && std::fs::read_to_string(p)
                        .is_ok_and(|t| t.contains("PLUM") && t.contains("\"role\":\"assistant\""))
            })
    };
    assert!(
        wait_for(|| find().is_some(), Duration::from_secs(5)).await,
        "no transcript under {projects:?}"
    );
    let own = find().unwrap();
    let first_line: Value = serde_json::from_str(
        std::fs::read_to_string(&own)
            .unwrap()
            .lines()
            .find(|l| l.contains("\"cwd\""))
            .unwrap(),
    )
    .unwrap();
    let ws = std::path::PathBuf::from(first_line["cwd"].as_str().unwrap());
    let project = ccgw::claude::transcript::project_dir(&dir, &ws);
    std::fs::create_dir_all(project.join("s1/subagents")).unwrap();
    std::fs::copy(&own, project.join("s1.jsonl")).unwrap();
    std::fs::write(project.join("s1/subagents/agent-x.jsonl"), "{}\n").unwrap();
    // One whose directory is outside the workspace roots.
    let outside = ccgw::claude::transcript::project_dir(&dir, std::path::Path::new("/"));
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        outside.join("s2.jsonl"),
        json!({"type":"user","cwd":"/","message":{"role":"user","content":"root"}}).to_string(),
    )
    .unwrap();

    let (status, list) = get(&app, "/api/claude-sessions").await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "subagent transcripts are skipped: {ids:?}");
    let s1 = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "s1")
        .unwrap();
    assert_eq!(s1["continuable"], true);
    assert!(s1["title"].as_str().unwrap().contains("PLUM"));

    let (status, view) = get(&app, "/api/claude-sessions/s1").await;
    assert_eq!(status, 200);
    assert_eq!(view["read_only"], true);
    let kinds: Vec<&str> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["user", "assistant"]);

    let (status, _) = get(&app, "/api/claude-sessions/..%2Fetc").await;
    assert!(status == 400 || status == 404, "{status}");
    let (status, refused) = post(&app, "/api/claude-sessions/s2/continue", json!({})).await;
    assert_eq!(status, 403, "{refused}");

    let before = std::fs::read(project.join("s1.jsonl")).unwrap();
    let (status, cont) = post(
        &app,
        "/api/claude-sessions/s1/continue",
        json!({"model": "sonnet"}),
    )
    .await;
    assert_eq!(status, 201, "{cont}");
    let new_id = cont["id"].as_str().unwrap();
    assert_eq!(cont["workspace"], ws.display().to_string());
    let (status, reply) = post(
        &app,
        &format!("/api/sessions/{new_id}/messages"),
        json!({"content": "what was the word? [[report:history]]"}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert!(
        reply["text"].as_str().unwrap().contains("PLUM"),
        "the continued session has the earlier turn: {reply}"
    );
    assert_eq!(
        std::fs::read(project.join("s1.jsonl")).unwrap(),
        before,
        "the machine's transcript is never written"
    );
    app.stop().await;
}

#[tokio::test]
async fn feed_watchers_do_not_hold_a_stopping_gateway_open() {
    let app = app_with_key(|_| {}).await;
    let mut feed = open_feed(&app).await;
    let (ws, _) = ws_connect(
        &ws_url(&app, "/admin/ws"),
        Some(&format!("ccgw, ccgw.bearer.{KEY}")),
    )
    .await
    .unwrap();
    let reader = tokio::spawn(async move { while let Ok(Some(_)) = feed.chunk().await {} });
    let started = std::time::Instant::now();
    app.stop().await;
    tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the feed's stream ended")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "stopped in {:?}, not held by its watchers",
        started.elapsed()
    );
    drop(ws);
}

#[tokio::test]
async fn a_timeline_opened_mid_turn_gets_the_turn_so_far() {
    let app = app_with_key(|_| {}).await;
    let (_, s) = post(&app, "/api/sessions", json!({"model": "sonnet"})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let mut turn = app
        .client
        .post(format!("{}/api/sessions/{id}/messages", app.url))
        .bearer_auth(KEY)
        .json(&json!({"content": "slowly [[words:40]] [[slow:100]]", "stream": true}))
        .send()
        .await
        .unwrap();
    read_sse(&mut turn, |v| {
        v["type"] == "text_delta" && v["text"].as_str().unwrap_or("").contains("w3")
    })
    .await;
    let (status, h) = get(&app, &format!("/admin/api/conversations/{id}/events")).await;
    assert_eq!(status, 200);
    let live: Vec<&str> = h["live"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(live.first(), Some(&"user_message"), "{live:?}");
    assert!(live.contains(&"text_delta"), "{live:?}");
    read_sse(&mut turn, |v| v["type"] == "done").await;
    let (_, after) = get(&app, &format!("/admin/api/conversations/{id}/events")).await;
    assert_eq!(
        after["live"],
        json!([]),
        "between turns the history has it all"
    );
    app.stop().await;
}
