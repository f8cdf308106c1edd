//! Bad input: a clear 4xx in the protocol's own shape naming the field, nothing lost, and
//! the session goes on.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use crate::support::*;

#[tokio::test]
async fn malformed_native_blocks_are_400_naming_the_field_and_the_session_goes_on() {
    let app = spawn_defaults().await;
    let c = &app.client;
    let id = new_session(c, &app.url, json!({"model": "sonnet"})).await;
    // The first message of the session is a bad one.
    let cases = [
        (json!([{"type": "text"}]), "content[0].text"),
        (json!([{"type": "text", "text": 5}]), "content[0].text"),
        (json!([{"type": "document"}]), "content[0].source"),
        (
            json!([{"type": "text", "text": "ok"}, {"type": "image", "source": {"type": "base64"}}]),
            "content[1].source.media_type",
        ),
        (json!([{"type": "video", "source": {}}]), "content[0].type"),
        (json!([7]), "content[0]"),
    ];
    for (content, param) in cases {
        let (status, body) = say(c, &app.url, &id, content.clone()).await;
        assert_eq!(status, 400, "{content}: {body}");
        assert_eq!(body["error"]["param"], param, "{content}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    let (status, r) = say(c, &app.url, &id, json!("a good one [[report:history]]")).await;
    assert_eq!(status, 200, "{r}");
    let (status, r) = say(c, &app.url, &id, json!("and on [[report:history]]")).await;
    assert_eq!(status, 200, "{r}");
    assert!(r["text"].as_str().unwrap().contains("a good one"), "{r}");
    assert_at_rest_with(&app, 1, "after bad blocks").await;
    app.stop().await;
}

#[tokio::test]
async fn a_session_whose_first_turn_failed_goes_on_and_survives_a_restart() {
    let mut app = spawn_defaults().await;
    let id = new_session(&app.client, &app.url, json!({"model": "sonnet"})).await;
    // The CLI dies under the first turn, before it has written any transcript.
    let (url, client, sid) = (app.url.clone(), app.client.clone(), id.clone());
    let hung = tokio::spawn(async move { say(&client, &url, &sid, json!("first [[hang]]")).await });
    let upstream_saw_it = || {
        app.model_requests()
            .iter()
            .any(|r| r.body.to_string().contains("first [[hang]]"))
    };
    assert!(wait_for(upstream_saw_it, Duration::from_secs(20)).await);
    // Its process is the one whose workspace the model was told about.
    let asked = app.model_requests().last().unwrap().body.to_string();
    let pid = processes_under(app.data.path())
        .into_iter()
        .find(|p| {
            std::fs::read_link(format!("/proc/{p}/cwd"))
                .is_ok_and(|cwd| asked.contains(&cwd.display().to_string()))
        })
        .expect("the turn's process");
    // SAFETY: test code, signalling a process of this test.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let (status, _) = hung.await.unwrap();
    assert_eq!(status, 502);
    for n in 0..3 {
        let (status, r) = say(&app.client, &app.url, &id, json!(format!("next {n}"))).await;
        assert_eq!(status, 200, "message {n} after the failed first turn: {r}");
    }
    app.restart().await;
    let (status, r) = say(&app.client, &app.url, &id, json!("[[report:history]]")).await;
    assert_eq!(status, 200, "{r}");
    let text = r["text"].as_str().unwrap();
    assert!(text.contains("next 2"), "{text}");
    assert!(!text.contains("first [[hang]]"), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_prompt_is_a_400_and_the_session_stays_usable() {
    let app = spawn_defaults().await;
    let c = &app.client;
    // Over the model's context window (the mock's 200k tokens), under the body limit.
    let huge = "lorem ipsum ".repeat(90_000);
    let id = new_session(c, &app.url, json!({"model": "sonnet"})).await;
    let (status, r) = say(c, &app.url, &id, json!("before")).await;
    assert_eq!(status, 200, "{r}");
    let (status, body) = say(c, &app.url, &id, json!(huge)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    for n in 0..3 {
        let (status, r) = say(
            c,
            &app.url,
            &id,
            json!(format!("after {n} [[report:history]]")),
        )
        .await;
        assert_eq!(status, 200, "message {n} after the oversized one: {r}");
        let text = r["text"].as_str().unwrap();
        assert!(text.contains("before") && !text.contains("lorem"), "{text}");
    }
    // The compatible APIs, in their own shapes.
    let (status, body) = app
        .chat(json!({"model": "sonnet", "messages": [user(&huge)]}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let (status, body) = app
        .anthropic(json!({"model": "sonnet", "max_tokens": 10, "messages": [user(&huge)]}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("prompt is too long"));
    assert_at_rest_with(&app, 1, "after oversized prompts").await;
    app.stop().await;
}

/// The body of a response, and whether it is JSON.
async fn raw(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn every_error_comes_in_the_protocols_shape() {
    let app = spawn_app_with(|c| c.max_body_bytes = 4096).await;
    let big = "x".repeat(8192);
    let post = |path: &str, body: Vec<u8>| {
        app.client
            .post(format!("{}{path}", app.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Over the body limit: 413, in each API's shape.
    let body = json!({"model": "sonnet", "messages": [user(&big)]}).to_string();
    let (status, b) = raw(post("/v1/chat/completions", body.clone().into_bytes())
        .await
        .unwrap())
    .await;
    assert_eq!(status, 413);
    assert_eq!(b["error"]["type"], "invalid_request_error", "{b}");
    assert_eq!(b["error"]["code"], "request_too_large", "{b}");
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        let (status, b) = raw(post(path, body.clone().into_bytes()).await.unwrap()).await;
        assert_eq!(status, 413);
        assert_eq!(b["type"], "error", "{path}: {b}");
        assert_eq!(b["error"]["type"], "request_too_large", "{path}: {b}");
    }
    let (status, b) = raw(post(
        "/api/sessions",
        json!({"title": big}).to_string().into_bytes(),
    )
    .await
    .unwrap())
    .await;
    assert_eq!(status, 413);
    assert_eq!(b["error"]["code"], "request_too_large", "{b}");

    // A byte order mark in front of a good body is read past.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(
        json!({"model": "sonnet", "messages": [user("bom")]})
            .to_string()
            .into_bytes(),
    );
    let (status, b) = raw(post("/v1/chat/completions", bom).await.unwrap()).await;
    assert_eq!(status, 200, "{b}");

    // Broken JSON inside a field names that field.
    let surrogate = br#"{"model": "sonnet", "messages": [{"role": "user", "content": "\ud800"}]}"#;
    let (status, b) = raw(post("/v1/chat/completions", surrogate.to_vec())
        .await
        .unwrap())
    .await;
    assert_eq!(status, 400);
    assert_eq!(b["error"]["param"], "messages[0].content", "{b}");
    let (status, b) = raw(post("/v1/messages", surrogate.to_vec()).await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("messages.0.content: "),
        "{b}"
    );
    let huge_number = br#"{"model": "sonnet", "temperature": 1e400, "messages": [{"role": "user", "content": "x"}]}"#;
    let (status, b) = raw(post("/v1/chat/completions", huge_number.to_vec())
        .await
        .unwrap())
    .await;
    assert_eq!(status, 400);
    assert_eq!(b["error"]["param"], "temperature", "{b}");
    let (status, b) = raw(post("/api/sessions", br#"{"title": "\udfff"}"#.to_vec())
        .await
        .unwrap())
    .await;
    assert_eq!(status, 400);
    assert_eq!(b["error"]["param"], "title", "{b}");
    app.stop().await;
}

#[tokio::test]
async fn cli_internals_never_reach_the_client() {
    // An upstream nobody listens on: the CLI's own wording names the address it tried.
    let app = spawn_app_with(|c| {
        c.cli_env = vec![
            ("ANTHROPIC_BASE_URL".into(), "http://127.0.0.1:9".into()),
            ("ANTHROPIC_API_KEY".into(), "sk-test".into()),
        ];
    })
    .await;
    let (status, body) = app
        .chat(json!({"model": "sonnet", "messages": [user("hello")]}))
        .await;
    assert_eq!(status, 502, "{body}");
    let text = body.to_string();
    for leak in [
        "127.0.0.1",
        "API Error",
        "ConnectionRefused",
        "inference gateway",
    ] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    assert_eq!(
        body["error"]["message"],
        "The upstream model API could not be reached"
    );
    app.stop().await;
}
