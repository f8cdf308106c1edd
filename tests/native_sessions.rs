//! End to end: the native session API (real CLI, mock upstream).

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};

async fn create(app: &TestApp, body: Value) -> Value {
    let resp = app.post("/api/sessions", &body).await;
    assert_eq!(resp.status().as_u16(), 201);
    resp.json().await.unwrap()
}

async fn send(app: &TestApp, id: &str, content: &str) -> (u16, Value) {
    let resp = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": content}),
        )
        .await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let resp = app
        .client
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_session_lives_across_messages() {
    let app = spawn_app().await;
    let s = create(
        &app,
        json!({"model": "sonnet", "system_prompt": "NATIVE-SP", "title": "t1"}),
    )
    .await;
    let id = s["id"].as_str().unwrap();
    assert_eq!(s["status"], "idle");
    assert_eq!(s["workspace_is_temp"], true);
    let (status, r1) = send(&app, id, "hello native [[usage:5,3]]").await;
    assert_eq!(status, 200, "{r1}");
    assert_eq!(r1["text"], "hello native");
    assert_eq!(r1["usage"]["input_tokens"], 5);
    let (_, r2) = send(&app, id, "second [[report:history]]").await;
    assert!(
        r2["text"].as_str().unwrap().contains("hello native"),
        "{r2}"
    );
    assert!(app.last_model_request()["system"]
        .to_string()
        .contains("NATIVE-SP"));
    assert_eq!(app.spawned(), 1);
    let (_, info) = get(&app, &format!("/api/sessions/{id}")).await;
    assert_eq!(info["status"], "idle");
    assert_eq!(info["live"], true);
    // History is written by a recorder that follows the session's events: give it a moment.
    let mut h = Value::Null;
    for _ in 0..50 {
        h = get(&app, &format!("/api/sessions/{id}/history")).await.1;
        if h["data"].as_array().is_some_and(|a| a.len() >= 6) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kinds: Vec<&str> = h["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["user", "assistant", "result", "user", "assistant", "result"]
    );
    let (_, list) = get(&app, "/api/sessions?limit=10").await;
    assert_eq!(list["data"][0]["id"], id);
    app.stop().await;
}

#[tokio::test]
async fn unknown_sessions_are_404_and_busy_ones_409() {
    let app = spawn_app().await;
    let (status, body) = send(&app, "no-such-session", "x").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let s = create(&app, json!({"model": "sonnet"})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let mut slow = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": "[[slow:200]] [[words:30]]", "stream": true}),
        )
        .await;
    read_sse(&mut slow, |v| v["type"] == "text_delta").await;
    let (status, body) = send(&app, &id, "another").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    // Interrupt the running turn: it ends as interrupted, and the session stays usable.
    let resp = app
        .post(&format!("/api/sessions/{id}/interrupt"), &json!({}))
        .await;
    assert_eq!(resp.json::<Value>().await.unwrap()["interrupted"], true);
    let rest = read_sse(&mut slow, |v| v["type"] == "done" || v["type"] == "error").await;
    assert_eq!(
        rest.last().unwrap()["stop_reason"],
        "interrupted",
        "{rest:?}"
    );
    let (status, r) = send(&app, &id, "after interrupt").await;
    assert_eq!(status, 200, "{r}");
    // The CLI keeps its interruption marker in the history, as Claude Code does.
    assert!(
        r["text"].as_str().unwrap().ends_with("after interrupt"),
        "{r}"
    );
    let (status, _) = get(&app, "/api/sessions/nope/history").await;
    assert_eq!(status, 404);
    let bad = app.post("/api/sessions", &json!({"model": "gpt-9"})).await;
    assert_eq!(bad.status().as_u16(), 404);
    let bad = app.post("/api/sessions", &json!({"tools": "Bash"})).await;
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"]["param"],
        "tools"
    );
    app.stop().await;
}

#[tokio::test]
async fn streamed_messages_are_typed_events() {
    let app = spawn_app().await;
    let s = create(&app, json!({"model": "sonnet"})).await;
    let id = s["id"].as_str().unwrap();
    let mut resp = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": "[[think:hm]] [[words:6]]", "stream": true}),
        )
        .await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = read_sse(&mut resp, |v| v["type"] == "done").await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"init"));
    assert!(kinds.contains(&"thinking_delta"));
    assert_eq!(kinds.last(), Some(&"done"));
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "text_delta")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "w1 w2 w3 w4 w5 w6");
    app.stop().await;
}

#[tokio::test]
async fn two_watchers_receive_the_same_events() {
    let app = spawn_app().await;
    let s = create(&app, json!({"model": "sonnet"})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let watch = |app: &TestApp| {
        let url = format!("{}/api/sessions/{id}/events", app.url);
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    let mut w1 = watch(&app).await;
    let mut w2 = watch(&app).await;
    let (status, _) = send(&app, &id, "[[words:8]]").await;
    assert_eq!(status, 200);
    let e1 = read_sse(&mut w1, |v| v["type"] == "done").await;
    let e2 = read_sse(&mut w2, |v| v["type"] == "done").await;
    assert!(e1.len() > 8);
    assert_eq!(e1, e2);
    assert_eq!(e1[0]["type"], "user_message");
    app.stop().await;
}

#[tokio::test]
async fn a_permission_request_answered_over_http() {
    let app = spawn_app_with(|c| c.builtin_tools = vec!["Bash".into()]).await;
    let s = create(&app, json!({"model": "sonnet", "tools": ["Bash"]})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let ws = s["workspace"].as_str().unwrap().to_string();
    let mut resp = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": r#"[[tool:Bash {"command":"touch allowed.txt"}]]"#, "stream": true}),
        )
        .await;
    let events = read_sse(&mut resp, |v| v["type"] == "permission_request").await;
    let req = events.last().unwrap().clone();
    assert_eq!(req["type"], "permission_request", "{events:?}");
    assert_eq!(req["tool_name"], "Bash");
    assert_eq!(req["input"]["command"], "touch allowed.txt");
    let ans = app
        .post(
            &format!(
                "/api/sessions/{id}/permissions/{}",
                req["request_id"].as_str().unwrap()
            ),
            &json!({"behavior": "allow"}),
        )
        .await;
    assert_eq!(ans.status().as_u16(), 200);
    let rest = read_sse(&mut resp, |v| v["type"] == "done").await;
    let text: String = rest
        .iter()
        .filter(|e| e["type"] == "text_delta")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(text.starts_with("done | tool results:"), "{text}");
    assert!(
        std::path::Path::new(&ws).join("allowed.txt").exists(),
        "the tool ran"
    );

    // Denied: the tool does not run and the model is told why.
    let mut resp = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": r#"[[tool:Bash {"command":"touch denied.txt"}]]"#, "stream": true}),
        )
        .await;
    let events = read_sse(&mut resp, |v| v["type"] == "permission_request").await;
    let rid = events.last().unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(
        &format!("/api/sessions/{id}/permissions/{rid}"),
        &json!({"behavior": "deny", "message": "not today"}),
    )
    .await;
    let rest = read_sse(&mut resp, |v| v["type"] == "done").await;
    let result = rest.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(result["is_error"], true);
    assert!(result["content"].to_string().contains("not today"));
    assert!(!std::path::Path::new(&ws).join("denied.txt").exists());
    // Answering again: nothing waits.
    let again = app
        .post(
            &format!("/api/sessions/{id}/permissions/{rid}"),
            &json!({"behavior": "allow"}),
        )
        .await;
    assert_eq!(again.status().as_u16(), 404);
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_session_leaves_no_process_and_no_temporary_workspace() {
    let app = spawn_app().await;
    let s = create(&app, json!({"model": "sonnet"})).await;
    let id = s["id"].as_str().unwrap();
    let ws = std::path::PathBuf::from(s["workspace"].as_str().unwrap());
    send(&app, id, "make it live").await;
    assert!(ws.is_dir());
    assert_eq!(processes_under(app.data.path()).len(), 1);
    let resp = app
        .client
        .delete(format!("{}/api/sessions/{id}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert!(
        wait_for(
            || processes_under(app.data.path()).is_empty(),
            Duration::from_secs(15)
        )
        .await
    );
    assert!(
        wait_for(|| !ws.exists(), Duration::from_secs(5)).await,
        "temporary workspace removed"
    );
    let (status, _) = get(&app, &format!("/api/sessions/{id}")).await;
    assert_eq!(status, 404);

    // A workspace of the user's own is never removed (it lies inside the workspace roots).
    std::fs::create_dir_all(app.cfg.workspaces_dir()).unwrap();
    let mine = tempfile::tempdir_in(app.cfg.workspaces_dir()).unwrap();
    let s = create(&app, json!({"model": "sonnet", "workspace": mine.path()})).await;
    let id = s["id"].as_str().unwrap();
    send(&app, id, "hi").await;
    app.client
        .delete(format!("{}/api/sessions/{id}", app.url))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(mine.path().is_dir());
    app.stop().await;
}

#[tokio::test]
async fn a_fork_leaves_the_original_untouched() {
    let app = spawn_app().await;
    let s = create(&app, json!({"model": "sonnet", "title": "orig"})).await;
    let a = s["id"].as_str().unwrap().to_string();
    send(&app, &a, "shared start").await;
    let resp = app
        .post(&format!("/api/sessions/{a}/fork"), &json!({}))
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    let b: Value = resp.json().await.unwrap();
    let bid = b["id"].as_str().unwrap().to_string();
    assert_eq!(b["forked_from"], a.as_str());
    let (status, rb) = send(&app, &bid, "fork only [[report:history]]").await;
    assert_eq!(status, 200, "{rb}");
    let fork_view = rb["text"].as_str().unwrap().to_string();
    assert!(
        fork_view.contains("shared start"),
        "the fork sees the original's history: {fork_view}"
    );
    let (_, ra) = send(&app, &a, "original again [[report:history]]").await;
    let orig_view = ra["text"].as_str().unwrap();
    assert!(orig_view.contains("shared start"));
    assert!(
        !orig_view.contains("fork only"),
        "the original never sees the fork: {orig_view}"
    );
    let (_, info_b) = get(&app, &format!("/api/sessions/{bid}")).await;
    let (_, info_a) = get(&app, &format!("/api/sessions/{a}")).await;
    assert_ne!(info_a["cli_session_id"], info_b["cli_session_id"]);
    app.stop().await;
}

#[tokio::test]
async fn export_as_json_and_markdown() {
    let app = spawn_app().await;
    let s = create(&app, json!({"model": "sonnet", "title": "Export me"})).await;
    let id = s["id"].as_str().unwrap();
    send(&app, id, "exported words").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let j: Value = app
        .client
        .post(format!("{}/api/sessions/{id}/export", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j["session"]["id"], id);
    assert!(j["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "assistant" && e["payload"]["text"] == "exported words"));
    let md = app
        .client
        .post(format!(
            "{}/api/sessions/{id}/export?format=markdown",
            app.url
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(md.starts_with("# Export me"), "{md}");
    assert!(md.contains("## User\n\nexported words"));
    assert!(md.contains("## Assistant\n\nexported words"));
    app.stop().await;
}

#[tokio::test]
async fn websocket_sends_messages_and_receives_events() {
    let app = spawn_app().await;
    let s = create(&app, json!({"model": "sonnet"})).await;
    let id = s["id"].as_str().unwrap();
    let url = format!(
        "{}/api/sessions/{id}/ws",
        app.url.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        json!({"type": "message", "content": "[[words:5]]"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut text = String::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        match v["type"].as_str().unwrap() {
            "text_delta" => text.push_str(v["text"].as_str().unwrap()),
            "done" => break,
            "error" => panic!("{v}"),
            _ => {}
        }
    }
    assert_eq!(text, "w1 w2 w3 w4 w5");
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "{\"type\":\"bogus\"}".into(),
    ))
    .await
    .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "error");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_sessions_never_cross_events() {
    let app = spawn_app_with(|c| c.max_live_processes = 6).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(
            create(&app, json!({"model": "sonnet"})).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (client, url) = (app.client.clone(), format!("{}/api/sessions/{id}/messages", app.url));
            tokio::spawn(async move {
                let body = json!({"content": format!("[[slow:20]] session-{i} says hello"), "stream": true});
                let text = client.post(url).json(&body).send().await.unwrap().text().await.unwrap();
                let events = sse_data(&text);
                let got: String = events.iter().filter(|e| e["type"] == "text_delta").map(|e| e["text"].as_str().unwrap()).collect();
                (i, got)
            })
        })
        .collect();
    for t in tasks {
        let (i, got) = t.await.unwrap();
        assert_eq!(got, format!("session-{i} says hello"));
    }
    app.stop().await;
}

#[tokio::test]
async fn compatible_requests_can_attach_to_a_session() {
    let app = spawn_app().await;
    let s = create(&app, json!({"model": "sonnet"})).await;
    let id = s["id"].as_str().unwrap();
    send(&app, id, "first through the native API").await;
    let (status, body) = app
        .chat(json!({"model": "sonnet", "session_id": id, "messages": [user("then through OpenAI [[report:history]]")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        text.contains("first through the native API"),
        "the session's history reached the model: {text}"
    );
    assert_eq!(app.spawned(), 1, "the session's own process served both");
    app.stop().await;
}

#[tokio::test]
async fn the_native_tools_field_is_named_in_errors() {
    let app = spawn_app().await;
    let (status, err) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"tools": ["WebFetch"]})),
            None,
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "tools", "{err}");
    app.stop().await;
}

#[tokio::test]
async fn events_name_the_native_session_and_the_clis_id_apart() {
    let app = spawn_app_with(|c| {
        c.warm_pool_size = ccgw::config::Config::default().warm_pool_size;
    })
    .await;
    let s = create(&app, json!({"model": "sonnet"})).await;
    let id = s["id"].as_str().unwrap();
    let mut cli_ids = vec![];
    for text in ["one [[text:a]]", "two [[text:b]]"] {
        let resp = app
            .post(
                &format!("/api/sessions/{id}/messages"),
                &json!({"content": text, "stream": true}),
            )
            .await;
        let events = sse_data(&resp.text().await.unwrap());
        for kind in ["init", "done"] {
            let ev = events
                .iter()
                .find(|e| e["type"] == kind)
                .unwrap_or_else(|| panic!("no {kind}: {events:?}"));
            assert_eq!(ev["session_id"], id, "{ev}");
            assert!(ev["cli_session_id"].is_string(), "{ev}");
            cli_ids.push(ev["cli_session_id"].clone());
        }
        assert!(events.iter().all(|e| e["session_id"] == id));
    }
    assert!(cli_ids.iter().all(|c| c.as_str() != Some(id)));
    let (_, r) = send(&app, id, "three [[text:c]]").await;
    assert_eq!(r["session_id"], id);
    assert!(
        r["cli_session_id"].is_string() && r["cli_session_id"] != id,
        "{r}"
    );
    app.stop().await;
}

#[tokio::test]
async fn attaching_keeps_max_tokens_and_thinking() {
    let app = spawn_app().await;
    let s = create(&app, json!({"model": "haiku"})).await;
    let id = s["id"].as_str().unwrap();
    let (status, body) = app
        .anthropic(
            json!({"model": "haiku", "session_id": id, "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": [user("attached [[text:ok]]")]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let req = app.last_model_request();
    assert_eq!(req["max_tokens"], 4096, "{}", req["max_tokens"]);
    assert_eq!(
        req["thinking"]["budget_tokens"], 2048,
        "{}",
        req["thinking"]
    );
    let (status, body) = app
        .anthropic(
            json!({"model": "haiku", "session_id": id, "max_tokens": 4096,
            "thinking": {"type": "disabled"},
            "messages": [user("again [[text:ok]]")]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let req = app.last_model_request();
    assert!(
        req.get("thinking").is_none() || req["thinking"]["type"] == "disabled",
        "{}",
        req["thinking"]
    );
    app.stop().await;
}

/// A body without a required field is a 400 naming that field (it used to name ".", the
/// object that lacked it).
#[tokio::test]
async fn a_missing_required_field_is_named() {
    let app = spawn_defaults_app_with(|_| {}).await;
    let id = create_session(&app, json!({"model": "sonnet"})).await;
    let (status, err) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/permissions/req-1"),
            Some(&json!({"message": "no behavior"})),
            None,
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "behavior", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("behavior"),
        "{err}"
    );
    app.stop().await;
}

/// A message sent while the session is held by a control request (context usage starts the
/// session's process first) waits for it instead of being refused (it was a 409).
#[tokio::test]
async fn a_message_waits_for_a_control_request_that_holds_its_session() {
    let app = spawn_defaults_app_with(|_| {}).await;
    let id = create_session(&app, json!({"model": "sonnet"})).await;
    let usage = {
        let (c, url) = (
            app.client.clone(),
            format!("{}/api/sessions/{id}/context-usage", app.url),
        );
        tokio::spawn(async move { c.get(url).send().await.unwrap().status().as_u16() })
    };
    // Until the control request holds the session (its process is starting).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reply = send_message(&app, &id, "right after").await;
    assert_eq!(reply["text"], "right after", "{reply}");
    assert_eq!(usage.await.unwrap(), 200);
    app.stop().await;
}

/// Each reply reports its own turn's cost. The CLI's `total_cost_usd` is its process's running
/// total; passed on as it was, the third reply cost more than the first two together, and the
/// usage records summed to several times the truth.
#[tokio::test]
async fn each_reply_reports_its_own_turns_cost() {
    let app = spawn_defaults_app_with(|_| {}).await;
    let id = create_session(&app, json!({"model": "sonnet"})).await;
    let mut costs = Vec::new();
    for n in 0..3 {
        let r = send_message(&app, &id, &format!("turn {n} [[words:30]]")).await;
        costs.push(
            r["cost_usd"]
                .as_f64()
                .unwrap_or_else(|| panic!("a cost: {r}")),
        );
    }
    assert!(costs.iter().all(|c| *c > 0.0), "{costs:?}");
    assert!(
        costs[2] < costs[0] + costs[1],
        "the third turn's own cost, not the running total: {costs:?}"
    );
    app.stop().await;
}
