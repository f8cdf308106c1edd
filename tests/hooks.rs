//! End to end: hooks over HTTP (issue 17 §2), with the real CLI and the mock upstream. A
//! decide hook answered over the API, a signed webhook that allows one call and denies
//! another, a watch hook seen by a watcher, a UserPromptSubmit hook's context reaching the
//! model (under the defaults, warm pool on), bad subscriptions, the default outcome when
//! nobody answers, and confinement that no hook can override.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "hook-test-secret-0123456789";

async fn app_with_tools(hosts: Vec<String>) -> TestApp {
    spawn_app_with(|c| {
        c.builtin_tools = vec!["Bash".into(), "Read".into()];
        c.hook_webhook_hosts = hosts;
        c.hook_secret = Some(SECRET.into());
    })
    .await
}

async fn tool_session(app: &TestApp, tools: &[&str]) -> (String, String) {
    let (status, s) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet", "tools": tools, "allowed_tools": tools})),
            None,
        )
        .await;
    assert_eq!(status, 201, "{s}");
    (
        s["id"].as_str().unwrap().into(),
        s["workspace"].as_str().unwrap().into(),
    )
}

async fn subscribe(app: &TestApp, id: &str, body: Value) -> (u16, Value) {
    app.request(
        "POST",
        &format!("/api/sessions/{id}/hooks"),
        Some(&body),
        None,
    )
    .await
}

/// Answer a waiting decide request over the API.
async fn answer(app: &TestApp, id: &str, rid: &str, body: Value) -> (u16, Value) {
    app.request(
        "POST",
        &format!("/api/sessions/{id}/hooks/requests/{rid}"),
        Some(&body),
        None,
    )
    .await
}

/// A streamed message, open: read it with `read_sse`.
async fn stream(app: &TestApp, id: &str, text: &str) -> reqwest::Response {
    let resp = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": text, "stream": true}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    resp
}

fn is_end(v: &Value) -> bool {
    v["type"] == "done" || v["type"] == "error"
}

/// Every tool_result text the model was sent, over all its requests.
fn tool_results(app: &TestApp) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for r in app.model_requests() {
        for m in r.body["messages"].as_array().into_iter().flatten() {
            for b in m["content"].as_array().into_iter().flatten() {
                if b["type"] == "tool_result" {
                    let text = match &b["content"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let pair = (text, b["is_error"] == true);
                    if !out.contains(&pair) {
                        out.push(pair);
                    }
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn a_decide_hook_answered_over_the_api_denies_bash_and_the_model_gets_the_reason() {
    let app = app_with_tools(vec![]).await;
    let (id, workspace) = tool_session(&app, &["Bash"]).await;
    let (s, sub) = subscribe(
        &app,
        &id,
        json!({"event": "PreToolUse", "matcher": "Bash", "mode": "decide", "timeout_secs": 60}),
    )
    .await;
    assert_eq!(s, 201, "{sub}");
    assert!(sub["id"].as_str().unwrap().starts_with("hook_"));
    assert_eq!(sub["timeout_secs"], 60);

    let mut resp = stream(&app, &id, r#"[[tool:Bash {"command":"touch hooked.txt"}]]"#).await;
    let events = read_sse(&mut resp, |v| v["type"] == "hook_request").await;
    let ask = events.last().unwrap();
    assert_eq!(ask["type"], "hook_request", "{events:?}");
    assert_eq!(ask["hook_event"], "PreToolUse");
    assert_eq!(ask["input"]["tool_name"], "Bash");
    assert_eq!(ask["input"]["tool_input"]["command"], "touch hooked.txt");
    assert!(ask["input"].get("transcript_path").is_none(), "{ask}");
    assert_eq!(ask["hook_ids"][0], sub["id"]);
    assert!(ask["seq"].is_u64() && ask["turn_id"].is_string() && ask["ts"].is_string());
    let rid = ask["request_id"].as_str().unwrap().to_string();

    // The waiting request is listed, so a client that reconnects can answer it.
    let list = app.get_json(&format!("/api/sessions/{id}/hooks")).await;
    assert_eq!(list["data"][0]["id"], sub["id"]);
    assert_eq!(list["pending"][0]["request_id"], rid.as_str());

    // A bad answer is a 400 naming the field, and leaves the request waiting.
    let (s, bad) = answer(&app, &id, &rid, json!({"decision": "perhaps"})).await;
    assert_eq!(s, 400, "{bad}");
    assert_eq!(bad["error"]["param"], "decision", "{bad}");
    let (s, ok) = answer(
        &app,
        &id,
        &rid,
        json!({"decision": "deny", "reason": "HOOK-SAYS-NO to touching files"}),
    )
    .await;
    assert_eq!(s, 200, "{ok}");
    assert_eq!(ok["decision"], "deny");
    let rest = read_sse(&mut resp, is_end).await;
    assert_eq!(rest.last().unwrap()["type"], "done", "{rest:?}");
    let results = tool_results(&app);
    assert!(
        results
            .iter()
            .any(|(t, err)| *err && t.contains("HOOK-SAYS-NO to touching files")),
        "{results:?}"
    );
    assert!(!std::path::Path::new(&workspace).join("hooked.txt").exists());
    // Answered once: a second answer finds nothing waiting.
    let (s, _) = answer(&app, &id, &rid, json!({"decision": "allow"})).await;
    assert_eq!(s, 404);
    app.stop().await;
}

/// What the test's webhook receiver was sent: headers and body bytes.
type Received = Arc<Mutex<Vec<(axum::http::HeaderMap, Vec<u8>)>>>;

/// A webhook receiver on a free port: it denies a Bash command naming `deny-me` and allows
/// the rest.
async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push((headers, body.to_vec()));
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let cmd = v["input"]["tool_input"]["command"].as_str().unwrap_or("");
                    axum::Json(if cmd.contains("deny-me") {
                        json!({"hookSpecificOutput": {"hookEventName": "PreToolUse",
                               "permissionDecision": "deny", "permissionDecisionReason": "WEBHOOK-DENIED"}})
                    } else {
                        json!({"decision": "allow"})
                    })
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("127.0.0.1:{}", addr.port()), got)
}

fn verify(headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    let ts = headers["x-ccgw-timestamp"].to_str().unwrap();
    let sig = headers["x-ccgw-signature"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    want == sig
}

#[tokio::test]
async fn a_signed_webhook_allows_one_call_and_denies_another() {
    let (host, got) = receiver().await;
    let app = app_with_tools(vec![host.clone()]).await;
    let (id, workspace) = tool_session(&app, &["Bash"]).await;
    let (s, sub) = subscribe(
        &app,
        &id,
        json!({"event": "PreToolUse", "matcher": "Bash", "mode": "decide",
               "url": format!("http://{host}/hook"), "timeout_secs": 20}),
    )
    .await;
    assert_eq!(s, 201, "{sub}");

    let mut resp = stream(
        &app,
        &id,
        r#"[[tool:Bash {"command":"touch allowed.txt"}]]"#,
    )
    .await;
    let ev = read_sse(&mut resp, is_end).await;
    assert_eq!(ev.last().unwrap()["type"], "done", "{ev:?}");
    let mut resp = stream(
        &app,
        &id,
        r#"[[tool:Bash {"command":"touch deny-me.txt"}]]"#,
    )
    .await;
    let ev = read_sse(&mut resp, is_end).await;
    assert_eq!(ev.last().unwrap()["type"], "done", "{ev:?}");

    let ws = std::path::Path::new(&workspace);
    assert!(ws.join("allowed.txt").exists(), "the allowed call ran");
    assert!(!ws.join("deny-me.txt").exists(), "the denied call did not");
    let results = tool_results(&app);
    assert!(
        results
            .iter()
            .any(|(t, e)| *e && t.contains("WEBHOOK-DENIED")),
        "{results:?}"
    );

    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one delivery per call");
    for (headers, body) in &got {
        assert!(verify(headers, body), "the signature verifies");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["session_id"], id.as_str());
        assert_eq!(v["hook_id"], sub["id"]);
        assert_eq!(v["hook_event"], "PreToolUse");
        assert!(v["input"].get("transcript_path").is_none());
        // A body changed in transit does not verify.
        let mut forged = body.clone();
        forged.extend_from_slice(b" ");
        assert!(!verify(headers, &forged));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_post_tool_use_watch_hook_reaches_a_watcher() {
    let app = app_with_tools(vec![]).await;
    let (id, _) = tool_session(&app, &["Bash"]).await;
    let (s, sub) = subscribe(&app, &id, json!({"event": "PostToolUse", "mode": "watch"})).await;
    assert_eq!(s, 201, "{sub}");
    let mut watcher = app
        .client
        .get(format!("{}/api/sessions/{id}/events", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(watcher.status().as_u16(), 200);
    let mut resp = stream(
        &app,
        &id,
        r#"[[tool:Bash {"command":"echo watched-output"}]]"#,
    )
    .await;
    let seen = read_sse(&mut watcher, |v| v["type"] == "hook").await;
    let hook = seen.last().unwrap();
    assert_eq!(hook["type"], "hook", "{seen:?}");
    assert_eq!(hook["hook_event"], "PostToolUse");
    assert_eq!(hook["hook_ids"][0], sub["id"]);
    assert_eq!(hook["input"]["tool_name"], "Bash");
    assert!(
        hook["input"]["tool_response"]
            .to_string()
            .contains("watched-output"),
        "{hook}"
    );
    assert!(hook["seq"].is_u64() && hook["turn_id"].is_string() && hook["ts"].is_string());
    // The turn went on by itself.
    let ev = read_sse(&mut resp, is_end).await;
    assert_eq!(ev.last().unwrap()["type"], "done");
    app.stop().await;
}

#[tokio::test]
async fn under_the_defaults_a_user_prompt_submit_hooks_context_reaches_the_model() {
    let app = spawn_defaults_app_with(|_| {}).await;
    let id = create_session(&app, json!({"model": "sonnet"})).await;
    let (s, sub) = subscribe(
        &app,
        &id,
        json!({"event": "UserPromptSubmit", "mode": "decide"}),
    )
    .await;
    assert_eq!(s, 201, "{sub}");
    // The non-streamed reply stops at the request, like a permission request.
    let (s, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/messages"),
            Some(&json!({"content": "what do you know?"})),
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["stop_reason"], "hook_required", "{r}");
    let req = &r["hook_requests"][0];
    assert_eq!(req["hook_event"], "UserPromptSubmit");
    assert_eq!(req["input"]["prompt"], "what do you know?");
    let rid = req["request_id"].as_str().unwrap();
    let (s, _) = answer(
        &app,
        &id,
        rid,
        json!({"additionalContext": "CTX-FROM-HOOK: the build is green"}),
    )
    .await;
    assert_eq!(s, 200);
    let mut found = false;
    for _ in 0..100 {
        found = app.model_requests().iter().any(|r| {
            r.body["messages"]
                .to_string()
                .contains("CTX-FROM-HOOK: the build is green")
        });
        if found {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "the context reached the model");
    // The process was a warm one: the session took the warm process's workspace.
    let info = app.get_json(&format!("/api/sessions/{id}")).await;
    let warm_root = app.cfg.data_dir.join("workspaces");
    assert!(
        info["workspace"]
            .as_str()
            .unwrap()
            .starts_with(warm_root.to_str().unwrap()),
        "{info}"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_subscriptions_are_400s_naming_the_field() {
    let app = app_with_tools(vec!["hooks.example.com".into()]).await;
    let id = create_session(&app, json!({"model": "sonnet"})).await;
    let cases = [
        (json!({"event": "OnLunch", "mode": "watch"}), "event"),
        (json!({"event": "PreToolUse", "mode": "shout"}), "mode"),
        (
            json!({"event": "PreToolUse", "mode": "watch", "matcher": "(unclosed"}),
            "matcher",
        ),
        (
            json!({"event": "PreToolUse", "mode": "decide", "timeout_secs": 0}),
            "timeout_secs",
        ),
        (
            json!({"event": "PreToolUse", "mode": "decide", "timeout_secs": 100000}),
            "timeout_secs",
        ),
        (
            json!({"event": "PreToolUse", "mode": "decide", "url": "http://169.254.169.254/latest"}),
            "url",
        ),
        (
            json!({"event": "PreToolUse", "mode": "decide", "url": "http://127.0.0.1:22/"}),
            "url",
        ),
        (
            json!({"event": "PreToolUse", "mode": "decide", "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let (s, e) = subscribe(&app, &id, body.clone()).await;
        assert_eq!(s, 400, "{body} → {e}");
        assert_eq!(e["error"]["param"], field, "{body} → {e}");
    }
    let (s, ok) = subscribe(
        &app,
        &id,
        json!({"event": "PostToolUse", "mode": "watch", "url": "https://hooks.example.com/audit"}),
    )
    .await;
    assert_eq!(s, 201, "an allowed host: {ok}");
    let (s, _) = subscribe(
        &app,
        "no-such-session",
        json!({"event": "Stop", "mode": "watch"}),
    )
    .await;
    assert_eq!(s, 404);
    let hook_id = ok["id"].as_str().unwrap();
    let (s, _) = app
        .request(
            "DELETE",
            &format!("/api/sessions/{id}/hooks/{hook_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .request(
            "DELETE",
            &format!("/api/sessions/{id}/hooks/{hook_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 404);
    let list = app.get_json(&format!("/api/sessions/{id}/hooks")).await;
    assert_eq!(list["data"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_decide_hook_nobody_answers_takes_the_default_outcome() {
    let app = app_with_tools(vec![]).await;
    let (id, workspace) = tool_session(&app, &["Bash"]).await;
    let (_, sub) = subscribe(
        &app,
        &id,
        json!({"event": "PreToolUse", "mode": "decide", "timeout_secs": 1}),
    )
    .await;
    assert_eq!(sub["default"], "deny", "the deployment's default");
    let t = std::time::Instant::now();
    let mut resp = stream(
        &app,
        &id,
        r#"[[tool:Bash {"command":"touch unanswered.txt"}]]"#,
    )
    .await;
    let ev = read_sse(&mut resp, is_end).await;
    assert_eq!(ev.last().unwrap()["type"], "done", "{ev:?}");
    assert!(t.elapsed() >= Duration::from_secs(1));
    let ws = std::path::Path::new(&workspace);
    assert!(!ws.join("unanswered.txt").exists());
    assert!(
        tool_results(&app)
            .iter()
            .any(|(t, e)| *e && t.contains("gave no answer in time")),
        "{:?}",
        tool_results(&app)
    );

    // A subscription whose default is to go on lets the call run.
    let hid = sub["id"].as_str().unwrap();
    app.request(
        "DELETE",
        &format!("/api/sessions/{id}/hooks/{hid}"),
        None,
        None,
    )
    .await;
    let (s, sub) = subscribe(
        &app,
        &id,
        json!({"event": "PreToolUse", "mode": "decide", "timeout_secs": 1, "default": "continue"}),
    )
    .await;
    assert_eq!(s, 201, "{sub}");
    let mut resp = stream(
        &app,
        &id,
        r#"[[tool:Bash {"command":"touch went-on.txt"}]]"#,
    )
    .await;
    read_sse(&mut resp, is_end).await;
    assert!(ws.join("went-on.txt").exists());
    app.stop().await;
}

#[tokio::test]
async fn confinement_refuses_a_path_outside_the_workspace_whatever_a_hook_allows() {
    let app = app_with_tools(vec![]).await;
    let (id, workspace) = tool_session(&app, &["Read"]).await;
    // Written before the first turn: the session's temporary workspace is made then.
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(
        std::path::Path::new(&workspace).join("inside.txt"),
        "INSIDE-TEXT",
    )
    .unwrap();
    let (s, _) = subscribe(
        &app,
        &id,
        json!({"event": "PreToolUse", "mode": "decide", "timeout_secs": 30}),
    )
    .await;
    assert_eq!(s, 201);

    // Outside the workspace: refused before any hook is asked.
    let mut resp = stream(&app, &id, r#"[[tool:Read {"file_path":"/etc/hostname"}]]"#).await;
    let ev = read_sse(&mut resp, is_end).await;
    assert!(ev.iter().all(|v| v["type"] != "hook_request"), "{ev:?}");
    let refused = tool_results(&app);
    assert!(
        refused
            .iter()
            .any(|(t, e)| *e && t.contains("/etc/hostname")),
        "{refused:?}"
    );

    // Inside, but a hook that allows it and rewrites the path outside is refused too.
    let mut resp = stream(&app, &id, r#"[[tool:Read {"file_path":"inside.txt"}]]"#).await;
    let ev = read_sse(&mut resp, |v| v["type"] == "hook_request").await;
    let rid = ev.last().unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = answer(
        &app,
        &id,
        &rid,
        json!({"permissionDecision": "allow", "updatedInput": {"file_path": "/etc/passwd"}}),
    )
    .await;
    assert_eq!(s, 200);
    read_sse(&mut resp, is_end).await;
    let results = tool_results(&app);
    assert!(
        !results.iter().any(|(t, _)| t.contains("root:")),
        "nothing of /etc/passwd reached the model: {results:?}"
    );
    assert!(
        results.iter().any(|(t, e)| *e && t.contains("/etc/passwd")),
        "{results:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_deployment_hook_from_the_config_reaches_its_webhook_from_every_session() {
    let (host, got) = receiver().await;
    let audit: ccgw::domain::hooks::HookSpec = serde_json::from_value(json!({
        "event": "PostToolUse", "mode": "watch", "url": format!("http://{host}/hook")
    }))
    .unwrap();
    let app = spawn_app_with(|c| {
        c.builtin_tools = vec!["Bash".into()];
        c.hook_webhook_hosts = vec![host.clone()];
        c.hook_secret = Some(SECRET.into());
        c.hooks = vec![audit];
    })
    .await;
    let mut sessions = Vec::new();
    for n in 0..2 {
        let (id, _) = tool_session(&app, &["Bash"]).await;
        let list = app.get_json(&format!("/api/sessions/{id}/hooks")).await;
        assert_eq!(list["data"][0]["scope"], "deployment", "{list}");
        let hid = list["data"][0]["id"].as_str().unwrap().to_string();
        let (s, _) = app
            .request(
                "DELETE",
                &format!("/api/sessions/{id}/hooks/{hid}"),
                None,
                None,
            )
            .await;
        assert_eq!(s, 403, "a deployment hook is not a session's to remove");
        let text = format!(r#"[[tool:Bash {{"command":"echo audited-{n}"}}]]"#);
        let mut resp = stream(&app, &id, &text).await;
        read_sse(&mut resp, is_end).await;
        sessions.push(id);
    }
    assert!(
        wait_for(|| got.lock().unwrap().len() >= 2, Duration::from_secs(10)).await,
        "both sessions' calls were sent"
    );
    let got = got.lock().unwrap().clone();
    let mut seen: Vec<String> = Vec::new();
    for (headers, body) in &got {
        assert!(verify(headers, body));
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["hook_event"], "PostToolUse");
        assert_eq!(v["mode"], "watch");
        seen.push(v["session_id"].as_str().unwrap().to_string());
    }
    seen.sort();
    sessions.sort();
    assert_eq!(seen, sessions);
    app.stop().await;
}
