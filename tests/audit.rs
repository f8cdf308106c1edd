//! End to end: the audit log (issue 11 §6) with the defaults (warm pool on, temporary
//! workspaces) plus keys — one static admin key and two user keys — the real CLI and the mock
//! upstream. Every kind of tool call and permission decision, key changes, a session's deletion
//! and a settings change leave an entry naming the key; `/admin/api/audit` filters and pages
//! them, for admins only; and no secret is ever in the table.

mod common;

use common::*;
use serde_json::{json, Value};

const ADMIN: &str = ADMIN_KEY;
const TOOLS: [&str; 3] = ["Read", "Bash", "Write"];

async fn app() -> TestApp {
    spawn_defaults_app_with(|c| {
        c.api_keys = vec![ADMIN.into()];
        c.builtin_tools = TOOLS.iter().map(|t| t.to_string()).collect();
    })
    .await
}

async fn audit(app: &TestApp, query: &str) -> Value {
    let (status, page) = app
        .request(
            "GET",
            &format!("/admin/api/audit?{query}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page
}

fn entries(page: &Value) -> Vec<Value> {
    page["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn every_kind_of_tool_call_and_permission_decision_is_audited_with_its_key() {
    let app = app().await;
    let (alice_id, alice_secret) = user_key(&app, "alice").await;
    let alice = String::from("alice");
    let (bob_id, bob_secret) = user_key(&app, "bob").await;

    // Alice's session: Read runs unasked, Bash asks.
    let (status, s) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet", "tools": TOOLS, "allowed_tools": ["Read"]})),
            Some(&alice_secret),
        )
        .await;
    assert_eq!(status, 201, "{s}");
    let sid = s["id"].as_str().unwrap().to_string();

    // 1. A built-in call the gateway's policy refuses: a path outside the workspace.
    let (status, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{sid}/messages"),
            Some(&json!({"content": r#"[[tool:Read {"file_path":"/etc/hostname"}]]"#})),
            Some(&alice_secret),
        )
        .await;
    assert_eq!(status, 200, "{r}");

    // 2. A built-in call that asks, answered over the API by Alice's key.
    let mut resp = app
        .client
        .post(format!("{}/api/sessions/{sid}/messages", app.url))
        .bearer_auth(&alice_secret)
        .json(
            &json!({"content": r#"[[tool:Bash {"command":"touch audited.txt"}]]"#, "stream": true}),
        )
        .send()
        .await
        .unwrap();
    let events = read_sse(&mut resp, |v| v["type"] == "permission_request").await;
    let rid = events.last().unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = app
        .request(
            "POST",
            &format!("/api/sessions/{sid}/permissions/{rid}"),
            Some(&json!({"behavior": "allow"})),
            Some(&alice_secret),
        )
        .await;
    assert_eq!(status, 200);
    read_sse(&mut resp, |v| v["type"] == "done").await;

    // 3. A direct call, with an input over the cap.
    let big = "x".repeat(5000);
    let (status, w) = app
        .request(
            "POST",
            &format!("/api/sessions/{sid}/tools/write"),
            Some(&json!({"file_path": "big.txt", "content": big})),
            Some(&alice_secret),
        )
        .await;
    assert_eq!(status, 200, "{w}");

    // 4. A client function call through /v1/chat/completions, by Bob.
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let resp = app
        .client
        .post(format!("{}/v1/chat/completions", app.url))
        .bearer_auth(&bob_secret)
        .json(&json!({"model": "sonnet", "tools": tools,
            "messages": [user(r#"[[tool:get_weather {"city":"Paris"}]]"#)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let chat: Value = resp.json().await.unwrap();
    assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls", "{chat}");

    let calls = entries(&audit(&app, "kind=tool_call").await);
    let find = |tool: &str, kind: &str| {
        calls
            .iter()
            .find(|e| e["subject"] == tool && e["detail"]["tool_kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} call of {tool} in {calls:#?}"))
    };
    let read = find("Read", "builtin");
    assert_eq!(read["detail"]["outcome"], "refused");
    assert_eq!(read["detail"]["input"]["file_path"], "/etc/hostname");
    assert_eq!(read["session_id"], sid.as_str());
    assert_eq!(read["key"]["id"], alice_id.as_str());
    assert_eq!(read["key"]["label"], alice.as_str());
    let bash = find("Bash", "builtin");
    assert_eq!(bash["detail"]["outcome"], "allowed");
    assert_eq!(bash["detail"]["input"]["command"], "touch audited.txt");
    let write = find("Write", "direct");
    assert_eq!(write["detail"]["outcome"], "ok");
    assert_eq!(write["detail"]["input_truncated"], true);
    assert!(write["detail"]["input"].as_str().unwrap().len() <= 2048);
    assert_eq!(write["key"]["id"], alice_id.as_str());
    let client = find("mcp__client__get_weather", "client");
    assert_eq!(client["detail"]["input"]["city"], "Paris");
    assert_eq!(client["key"]["id"], bob_id.as_str(), "{client}");

    let decisions = entries(&audit(&app, "kind=permission_decision").await);
    let by_policy = decisions
        .iter()
        .find(|e| e["subject"] == "Read" && e["detail"]["by"] == "policy")
        .unwrap_or_else(|| panic!("no policy refusal in {decisions:#?}"));
    assert_eq!(by_policy["detail"]["decision"], "denied");
    assert!(by_policy["detail"]["reason"].is_string());
    let by_key = decisions
        .iter()
        .find(|e| e["subject"] == rid.as_str())
        .unwrap_or_else(|| panic!("no API answer in {decisions:#?}"));
    assert_eq!(by_key["detail"]["decision"], "allowed");
    assert_eq!(by_key["detail"]["by"], "key:alice");
    assert_eq!(by_key["key"]["label"], "alice");

    // Filters: by session, by key, by time; pages newest first.
    let of_session = entries(&audit(&app, &format!("session={sid}")).await);
    assert!(!of_session.is_empty());
    assert!(of_session.iter().all(|e| e["session_id"] == sid.as_str()));
    let of_bob = entries(&audit(&app, &format!("key={bob_id}")).await);
    assert!(!of_bob.is_empty());
    assert!(of_bob.iter().all(|e| e["key"]["id"] == bob_id.as_str()));
    assert!(of_bob.iter().all(|e| e["session_id"] != sid.as_str()));
    let later = ccgw::store::now_millis() + 3_600_000;
    assert!(entries(&audit(&app, &format!("from={later}")).await).is_empty());
    assert_eq!(
        entries(&audit(&app, &format!("to={later}&kind=tool_call")).await).len(),
        calls.len()
    );
    let first = audit(&app, "kind=tool_call&limit=1").await;
    assert_eq!(entries(&first)[0]["id"], calls[0]["id"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = audit(&app, &format!("kind=tool_call&limit=1&cursor={cursor}")).await;
    assert_eq!(entries(&second)[0]["id"], calls[1]["id"]);
    let ids: Vec<i64> = calls
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let (status, bad) = app
        .request("GET", "/admin/api/audit?kind=nonsense", None, Some(ADMIN))
        .await;
    assert_eq!(
        (status, bad["error"]["param"].as_str()),
        (400, Some("kind"))
    );

    // Only admins read it.
    let (status, body) = app
        .request("GET", "/admin/api/audit", None, Some(&alice_secret))
        .await;
    assert_eq!(status, 403, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn key_changes_deletions_and_settings_are_audited_and_no_secret_is_kept() {
    let app = app().await;
    let (alice_id, alice_secret) = user_key(&app, "alice").await;
    let (bob_id, bob_secret) = user_key(&app, "bob").await;
    let (status, rotated) = app
        .request(
            "POST",
            &format!("/admin/api/keys/{alice_id}/rotate"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let alice_new = rotated["secret"].as_str().unwrap().to_string();
    let (status, _) = app
        .request(
            "DELETE",
            &format!("/admin/api/keys/{bob_id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 200);

    // A session of Alice's: a settings change, then its deletion.
    let (status, s) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet"})),
            Some(&alice_new),
        )
        .await;
    assert_eq!(status, 201, "{s}");
    let sid = s["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .request(
            "PATCH",
            &format!("/api/sessions/{sid}"),
            Some(&json!({"title": "renamed"})),
            Some(&alice_new),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .request(
            "DELETE",
            &format!("/api/sessions/{sid}"),
            None,
            Some(&alice_new),
        )
        .await;
    assert_eq!(status, 204);

    // `ccgw keys`, beside the running gateway, is audited as `cli`.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ccgw"))
        .args(["keys", "--data-dir"])
        .arg(app.data.path())
        .args(["create", "--name", "carol", "--role", "user"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let carol_secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(carol_secret.starts_with("ccgw_"), "{carol_secret}");

    let all = entries(&audit(&app, "limit=500").await);
    let one = |kind: &str, subject: &str| {
        all.iter()
            .find(|e| e["kind"] == kind && e["subject"] == subject)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} of {subject} in {all:#?}"))
    };
    let created = one("key_created", &alice_id);
    assert_eq!(created["detail"]["name"], "alice");
    assert_eq!(created["detail"]["role"], "user");
    assert!(created["key"]["label"]
        .as_str()
        .unwrap()
        .starts_with("key-"));
    one("key_created", &bob_id);
    let by_cli = all
        .iter()
        .find(|e| e["kind"] == "key_created" && e["detail"]["name"] == "carol")
        .unwrap_or_else(|| panic!("no entry for the CLI's key in {all:#?}"));
    assert_eq!(by_cli["key"]["label"], "cli");
    one("key_rotated", &alice_id);
    one("key_revoked", &bob_id);
    let deleted = one("session_deleted", &sid);
    assert_eq!(deleted["key"]["id"], alice_id.as_str());
    let changed = one("settings_changed", "settings");
    assert_eq!(changed["detail"]["change"]["title"], "renamed");
    assert_eq!(changed["session_id"], sid.as_str());

    // Straight from the table: no secret anywhere, and no entry can be changed.
    let db = app.data.path().join("ccgw.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    // Every column of every row.
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT json_object('id', id, 'at', at, 'kind', kind, 'key_id', key_id, \
         'key_label', key_label, 'session_id', session_id, 'subject', subject, \
         'detail', detail) FROM audit_log ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 7, "{rows:?}");
    let text = format!("{rows:?}");
    for secret in [ADMIN, &alice_secret, &alice_new, &bob_secret, &carol_secret] {
        assert!(
            !text.contains(secret),
            "a secret in the audit table: {text}"
        );
    }
    let update = sqlx::query("UPDATE audit_log SET kind = 'x'")
        .execute(&pool)
        .await;
    assert!(update.is_err(), "the audit log is append-only");
    assert!(sqlx::query("DELETE FROM audit_log")
        .execute(&pool)
        .await
        .is_err());
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_permission_nobody_answers_is_audited_as_refused_by_timeout() {
    let app = spawn_defaults_app_with(|c| {
        c.api_keys = vec![ADMIN.into()];
        c.builtin_tools = vec!["Bash".into()];
        c.permission_timeout_secs = 1;
    })
    .await;
    let (alice_id, alice_secret) = user_key(&app, "alice").await;
    let (status, s) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet", "tools": ["Bash"]})),
            Some(&alice_secret),
        )
        .await;
    assert_eq!(status, 201, "{s}");
    let sid = s["id"].as_str().unwrap().to_string();
    let mut resp = app
        .client
        .post(format!("{}/api/sessions/{sid}/messages", app.url))
        .bearer_auth(&alice_secret)
        .json(&json!({"content": r#"[[tool:Bash {"command":"touch unanswered.txt"}]]"#, "stream": true}))
        .send()
        .await
        .unwrap();
    // Nobody answers: the turn goes on once the request times out.
    let events = read_sse(&mut resp, |v| v["type"] == "done").await;
    assert!(
        events.iter().any(|v| v["type"] == "permission_request"),
        "{events:?}"
    );
    let decisions = entries(&audit(&app, &format!("kind=permission_decision&session={sid}")).await);
    let e = decisions
        .iter()
        .find(|e| e["detail"]["by"] == "timeout")
        .unwrap_or_else(|| panic!("no timeout decision in {decisions:#?}"));
    assert_eq!(e["subject"], "Bash");
    assert_eq!(e["detail"]["decision"], "denied");
    assert_eq!(e["key"]["id"], alice_id.as_str());
    app.stop().await;
}
