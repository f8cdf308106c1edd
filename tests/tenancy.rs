//! End to end: ownership and isolation (issue 11 §2), with two user keys and one admin key, the
//! real CLI and the mock upstream. Key B gets exactly the 404 of a missing session on every
//! route of key A's session (the SSE events and the WebSocket upgrade included) while A and the
//! admin get through (under the defaults: warm pool on, temporary workspaces); listings show
//! only a user key's own sessions; a fork belongs to who forks; a compatible-API history one
//! key produced does not continue for another; stored replies and threads are per key; the
//! console's routes need an admin key.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const ADMIN: &str = ADMIN_KEY;

/// Any request with a key: status and body text (SSE bodies are not read to their end).
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<&Value>,
    key: &str,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let streaming = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    if streaming {
        return (status, String::new());
    }
    (status, resp.text().await.unwrap_or_default())
}

/// A WebSocket upgrade of `path` with a key: `Ok` when upgraded, else the refusal's status.
async fn upgrade(app: &TestApp, path: &str, key: &str) -> Result<(), u16> {
    let url = format!("{}{path}", app.url.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, _)) => {
            let _ = ws.close(None).await;
            Ok(())
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket failed: {e}"),
    }
}

/// Every route under `/api/sessions/{id}`: method, the path after the id, a body.
fn session_routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "", None),
        ("PATCH", "", Some(json!({"title": "mine now"}))),
        ("POST", "/messages", Some(json!({"content": "hello"}))),
        ("POST", "/interrupt", None),
        ("GET", "/history", None),
        ("POST", "/fork", None),
        ("GET", "/export", None),
        ("POST", "/export", None),
        ("GET", "/events", None),
        ("GET", "/tool-calls", None),
        ("GET", "/tools/stream", None),
        (
            "POST",
            "/tools/Read",
            Some(json!({"input": {"file_path": "a.txt"}})),
        ),
        ("GET", "/tool-permissions", None),
        ("PUT", "/tool-permissions", Some(json!({"tools": ["Read"]}))),
        ("POST", "/project/init", None),
        (
            "PUT",
            "/project/workspace",
            Some(json!({"workspace": "/tmp"})),
        ),
        ("GET", "/files", None),
        ("POST", "/files/upload", Some(json!({}))),
        ("GET", "/files/a.txt", None),
        ("DELETE", "/files/a.txt", None),
        ("GET", "/changes", None),
        ("POST", "/rewind", Some(json!({"to_seq": 1}))),
        ("GET", "/memory", None),
        ("PUT", "/memory", Some(json!({"content": "x"}))),
        ("POST", "/memory", Some(json!({"content": "x"}))),
        (
            "POST",
            "/permissions/req-1",
            Some(json!({"behavior": "allow"})),
        ),
        ("GET", "/hooks", None),
        ("POST", "/hooks", Some(json!({"events": ["PreToolUse"]}))),
        ("DELETE", "/hooks/hook-1", None),
        (
            "POST",
            "/hooks/requests/req-1",
            Some(json!({"decision": "allow"})),
        ),
        ("GET", "/commands", None),
        ("POST", "/commands/compact", Some(json!({}))),
        (
            "PUT",
            "/context",
            Some(json!({"append_system_prompt": "x"})),
        ),
        ("POST", "/thinking", Some(json!({"budget_tokens": 2048}))),
        ("GET", "/context-usage", None),
        ("GET", "/cost", None),
        ("GET", "/mcp", None),
        ("POST", "/mcp/srv/reconnect", None),
        ("POST", "/mcp/srv/toggle", Some(json!({"enabled": false}))),
        ("POST", "/resume", None),
        ("POST", "/tasks/task-1/stop", None),
        ("PUT", "/agent", Some(json!({"agent": null}))),
        ("DELETE", "", None),
    ]
}

/// "No session with the id 'X'" for either id reads the same.
fn normalized(body: &str, id: &str) -> String {
    body.replace(id, "<ID>")
}

fn not_found_message(id: &str) -> String {
    format!("No session with the id '{id}'")
}

#[tokio::test]
async fn another_keys_session_is_a_404_on_every_route_while_its_owner_and_the_admin_get_through() {
    let app = spawn_defaults_app_with(|c| {
        c.api_keys = vec![ADMIN.into()];
        c.builtin_tools = vec!["Read".into()];
    })
    .await;
    let ((a_id, a), (_, b)) = (user_key(&app, "alice").await, user_key(&app, "bob").await);
    let (s, sess) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet"})),
            Some(&a),
        )
        .await;
    assert_eq!(s, 201, "{sess}");
    assert_eq!(sess["owner"], a_id.as_str());
    let id = sess["id"].as_str().unwrap().to_string();
    let (s, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/messages"),
            Some(&json!({"content": "first"})),
            Some(&a),
        )
        .await;
    assert_eq!(s, 200, "{r}");

    let missing = uuid::Uuid::new_v4().to_string();
    for (method, rest, body) in session_routes() {
        let (status, text) = call(
            &app,
            method,
            &format!("/api/sessions/{id}{rest}"),
            body.as_ref(),
            &b,
        )
        .await;
        assert_eq!(status, 404, "{method} {rest}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(
            v["error"]["message"],
            not_found_message(&id).as_str(),
            "{method} {rest}: {text}"
        );
        // Exactly what a session that does not exist gets on the same route (even where the
        // route would check its input first, or words a missing session otherwise).
        let (m_status, m_text) = call(
            &app,
            method,
            &format!("/api/sessions/{missing}{rest}"),
            body.as_ref(),
            &b,
        )
        .await;
        assert_eq!(m_status, 404, "{method} {rest}: {m_text}");
        assert_eq!(
            normalized(&text, &id),
            normalized(&m_text, &missing),
            "{method} {rest}"
        );
    }

    // The WebSocket upgrades: refused for B, as for a missing session; open for A and admin.
    for path in ["ws", "stream"] {
        assert_eq!(
            upgrade(&app, &format!("/api/sessions/{id}/{path}"), &b).await,
            Err(404)
        );
        assert_eq!(
            upgrade(&app, &format!("/api/sessions/{missing}/{path}"), &b).await,
            Err(404)
        );
        assert_eq!(
            upgrade(&app, &format!("/api/sessions/{id}/{path}"), &a).await,
            Ok(())
        );
        assert_eq!(
            upgrade(&app, &format!("/api/sessions/{id}/{path}"), ADMIN).await,
            Ok(())
        );
    }

    // A compatible request attached to A's session (`session_id`) is refused to B alike.
    let (s, e) = app
        .request(
            "POST",
            "/v1/chat/completions",
            Some(&json!({"model": "sonnet", "session_id": id, "messages": [user("hijack")]})),
            Some(&b),
        )
        .await;
    assert_eq!(s, 404, "{e}");
    assert_eq!(
        e["error"]["message"],
        not_found_message(&id).as_str(),
        "{e}"
    );

    // A and the admin get through on every reading route (and the SSE events open).
    for key in [a.as_str(), ADMIN] {
        for (method, rest, _) in session_routes().into_iter().filter(|r| r.0 == "GET") {
            let (status, text) = call(
                &app,
                method,
                &format!("/api/sessions/{id}{rest}"),
                None,
                key,
            )
            .await;
            let refused = status == 404 && text.contains(&not_found_message(&id));
            assert!(!refused, "{method} {rest} refused its owner: {text}");
        }
    }
    // The session is still there for its owner after B's DELETE.
    let (s, _) = app
        .request("GET", &format!("/api/sessions/{id}"), None, Some(&a))
        .await;
    assert_eq!(s, 200);

    // A fork belongs to who forks it: the admin's fork is not A's.
    let (s, fork) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/fork"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(s, 201, "{fork}");
    assert_ne!(fork["owner"], a_id.as_str());
    let fork_id = fork["id"].as_str().unwrap();
    let (s, _) = app
        .request("GET", &format!("/api/sessions/{fork_id}"), None, Some(&a))
        .await;
    assert_eq!(s, 404, "A does not see the admin's fork");
    app.stop().await;
}

#[tokio::test]
async fn a_listing_shows_a_user_key_its_own_sessions_and_an_admin_all() {
    let app = spawn_app_with(|c| c.api_keys = vec![ADMIN.into()]).await;
    let ((a_id, a), (b_id, b)) = (user_key(&app, "alice").await, user_key(&app, "bob").await);
    let mut mine = vec![];
    for key in [&a, &a, &b] {
        let (s, v) = app
            .request("POST", "/api/sessions", Some(&json!({})), Some(key))
            .await;
        assert_eq!(s, 201, "{v}");
        mine.push(v["id"].as_str().unwrap().to_string());
    }
    let (_, la) = app.request("GET", "/api/sessions", None, Some(&a)).await;
    let mut got = ids(&la);
    got.sort();
    let mut want = mine[..2].to_vec();
    want.sort();
    assert_eq!(got, want);
    let (_, lb) = app.request("GET", "/api/sessions", None, Some(&b)).await;
    assert_eq!(ids(&lb), vec![mine[2].clone()]);
    // A user key's `?owner=` does not widen its view.
    let (_, lb2) = app
        .request(
            "GET",
            &format!("/api/sessions?owner={a_id}"),
            None,
            Some(&b),
        )
        .await;
    assert_eq!(ids(&lb2), vec![mine[2].clone()]);
    let (_, all) = app.request("GET", "/api/sessions", None, Some(ADMIN)).await;
    assert_eq!(ids(&all).len(), 3);
    let (_, only_b) = app
        .request(
            "GET",
            &format!("/api/sessions?owner={b_id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(ids(&only_b), vec![mine[2].clone()]);
    app.stop().await;
}

/// The openai conversations one owner has in the store, once the turn's record is written.
async fn conversations_of(app: &TestApp, owner: &str) -> Vec<String> {
    let store = app.server().state.conversations.store.clone();
    let filter = ccgw::store::SessionFilter {
        source: Some("openai".into()),
        owner: Some(owner.to_string()),
        ..Default::default()
    };
    let page = store.list_sessions(&filter).await.unwrap();
    page.items.into_iter().map(|s| s.id).collect()
}

async fn chat_as(app: &TestApp, key: &str, messages: Value) -> Value {
    let (s, r) = app
        .request(
            "POST",
            "/v1/chat/completions",
            Some(&json!({"model": "sonnet", "messages": messages})),
            Some(key),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    r
}

#[tokio::test]
async fn a_history_one_key_produced_does_not_continue_for_another() {
    let app = spawn_app_with(|c| c.api_keys = vec![ADMIN.into()]).await;
    let ((a_id, a), (b_id, b)) = (user_key(&app, "alice").await, user_key(&app, "bob").await);
    let r1 = chat_as(&app, &a, json!([user("alpha")])).await;
    let a1 = r1["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        wait_for_count(&app, &a_id, 1).await,
        "A's conversation recorded"
    );
    // B sends the very history A's conversation ends at: a conversation of its own.
    let history = json!([user("alpha"), assistant(a1), user("beta")]);
    let rb = chat_as(&app, &b, history.clone()).await;
    assert_eq!(rb["choices"][0]["message"]["content"], "beta");
    assert!(
        wait_for_count(&app, &b_id, 1).await,
        "B got its own conversation"
    );
    // A's conversation was left for A: A continues it, without a second one.
    let spawned = app.spawned();
    let ra = chat_as(&app, &a, history).await;
    assert_eq!(ra["choices"][0]["message"]["content"], "beta");
    assert_eq!(app.spawned(), spawned, "A continued its live process");
    assert_eq!(conversations_of(&app, &a_id).await.len(), 1);
    assert_eq!(conversations_of(&app, &b_id).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn after_a_restart_a_stored_history_continues_only_for_its_own_key() {
    let mut app = spawn_app_with(|c| c.api_keys = vec![ADMIN.into()]).await;
    let ((a_id, a), (b_id, b)) = (user_key(&app, "alice").await, user_key(&app, "bob").await);
    let r1 = chat_as(&app, &a, json!([user("alpha")])).await;
    let a1 = r1["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(wait_for_count(&app, &a_id, 1).await);
    // The conversation now lives only in the store (and the CLI's transcript).
    app.restart().await;
    let history = json!([user("alpha"), assistant(&a1), user("beta")]);
    chat_as(&app, &b, history.clone()).await;
    assert!(
        wait_for_count(&app, &b_id, 1).await,
        "B got its own conversation"
    );
    chat_as(&app, &a, history).await;
    assert_eq!(
        conversations_of(&app, &a_id).await.len(),
        1,
        "A continued its stored conversation"
    );
    app.stop().await;
}

async fn wait_for_count(app: &TestApp, owner: &str, n: usize) -> bool {
    for _ in 0..100 {
        if conversations_of(app, owner).await.len() == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn another_keys_response_and_thread_are_not_found() {
    let app = spawn_app_with(|c| c.api_keys = vec![ADMIN.into()]).await;
    let ((_, a), (_, b)) = (user_key(&app, "alice").await, user_key(&app, "bob").await);
    // /v1/responses: previous_response_id, GET and DELETE.
    let (s, first) = app
        .request(
            "POST",
            "/v1/responses",
            Some(&json!({"model": "sonnet", "input": "alpha"})),
            Some(&a),
        )
        .await;
    assert_eq!(s, 200, "{first}");
    let rid = first["id"].as_str().unwrap();
    let (s, e) = app
        .request(
            "POST",
            "/v1/responses",
            Some(&json!({"model": "sonnet", "input": "beta", "previous_response_id": rid})),
            Some(&b),
        )
        .await;
    // OpenAI's own answer to an unknown previous response: 400, previous_response_not_found.
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["code"], "previous_response_not_found", "{e}");
    assert_eq!(e["error"]["param"], "previous_response_id", "{e}");
    for method in ["GET", "DELETE"] {
        let (s, e) = app
            .request(method, &format!("/v1/responses/{rid}"), None, Some(&b))
            .await;
        assert_eq!(s, 404, "{method}: {e}");
    }
    let (s, _) = app
        .request("GET", &format!("/v1/responses/{rid}"), None, Some(&a))
        .await;
    assert_eq!(s, 200, "the owner still reads it");

    // /v1/messages threads.
    let msg = |thread: Value, text: &str| {
        json!({"model": "sonnet", "max_tokens": 64, "thread": thread,
               "messages": [{"role": "user", "content": text}]})
    };
    let (s, m1) = app
        .request(
            "POST",
            "/v1/messages",
            Some(&msg(json!({"type": "create"}), "alpha")),
            Some(&a),
        )
        .await;
    assert_eq!(s, 200, "{m1}");
    let mid = m1["id"].as_str().unwrap();
    let cont = msg(
        json!({"type": "continue", "previous_message_id": mid}),
        "beta",
    );
    let (s, e) = app
        .request("POST", "/v1/messages", Some(&cont), Some(&b))
        .await;
    assert_eq!(s, 404, "{e}");
    assert_eq!(e["type"], "error", "Anthropic's shape: {e}");
    assert_eq!(
        e["error"]["details"]["error_code"], "thread_not_found",
        "{e}"
    );
    let (s, ok) = app
        .request("POST", "/v1/messages", Some(&cont), Some(&a))
        .await;
    assert_eq!(s, 200, "the owner continues its thread: {ok}");
    app.stop().await;
}

#[tokio::test]
async fn the_console_routes_need_an_admin_key() {
    let app = spawn_app_with(|c| c.api_keys = vec![ADMIN.into()]).await;
    let ((_, a), _) = (user_key(&app, "alice").await, user_key(&app, "bob").await);
    let id = uuid::Uuid::new_v4();
    let routes = [
        "/admin/api/conversations".to_string(),
        format!("/admin/api/conversations/{id}"),
        format!("/admin/api/conversations/{id}/events"),
        "/admin/api/events".to_string(),
        "/admin/api/stats".to_string(),
        "/api/claude-sessions".to_string(),
        format!("/api/claude-sessions/{id}"),
    ];
    for path in &routes {
        let (s, text) = call(&app, "GET", path, None, &a).await;
        assert_eq!(s, 403, "{path}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], "forbidden", "{path}: {v}");
    }
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/claude-sessions/{id}/continue"),
        Some(&json!({})),
        &a,
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(upgrade(&app, "/admin/ws", &a).await, Err(403));
    // The admin gets them.
    for path in ["/admin/api/conversations", "/admin/api/stats"] {
        let (s, text) = call(&app, "GET", path, None, ADMIN).await;
        assert_eq!(s, 200, "{path}: {text}");
    }
    // Not refused (the test's gateway shows no machine sessions: it says so with a 404).
    let (s, text) = call(&app, "GET", "/api/claude-sessions", None, ADMIN).await;
    assert!(s != 403, "{text}");
    assert_eq!(upgrade(&app, "/admin/ws", ADMIN).await, Ok(()));
    app.stop().await;
}
