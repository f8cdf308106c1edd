//! End to end: per-key policy (issue 11 §3) with the defaults (warm pool on) plus keys — one
//! static admin key, a restricted user key and an unrestricted one — the real CLI and the mock
//! upstream. Each refusal is a 403 naming the field, in the native, OpenAI and Anthropic shapes;
//! what the key allows passes; other keys are not held to it.

mod common;

use common::*;
use serde_json::{json, Value};

const ADMIN: &str = ADMIN_KEY;

struct Setup {
    app: TestApp,
    /// The restricted key's secret.
    narrow: String,
    /// A user key without a policy.
    free: String,
    root: tempfile::TempDir,
    elsewhere: tempfile::TempDir,
}

async fn setup() -> Setup {
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let roots = vec![root.path().to_path_buf(), elsewhere.path().to_path_buf()];
    let app = spawn_defaults_app_with(|c| {
        c.api_keys = vec![ADMIN.into()];
        c.builtin_tools = vec!["Read".into(), "Bash".into()];
        c.workspace_roots = roots;
    })
    .await;
    let key = |body: Value| {
        let app = &app;
        async move {
            let (status, k) = app
                .request("POST", "/admin/api/keys", Some(&body), Some(ADMIN))
                .await;
            assert_eq!(status, 201, "{k}");
            k["secret"].as_str().unwrap().to_string()
        }
    };
    let narrow = key(json!({
        "name": "narrow", "role": "user",
        "models": ["claude-haiku-4-5"],
        "tools": ["Read"],
        "permission_mode": "default",
        "agents": ["reviewer"],
        "workspace_roots": [root.path().display().to_string()],
    }))
    .await;
    let free = key(json!({"name": "free", "role": "user"})).await;
    Setup {
        app,
        narrow,
        free,
        root,
        elsewhere,
    }
}

/// A refusal in the native shape: 403, `policy_denied`, naming `param`.
fn refused(status: u16, body: &Value, param: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "policy_denied", "{body}");
    assert_eq!(body["error"]["param"], param, "{body}");
}

#[tokio::test]
async fn native_requests_beyond_the_keys_policy_are_refused_naming_the_field() {
    let s = setup().await;
    let app = &s.app;
    let create = |body: Value, key: String| async move {
        app.request("POST", "/api/sessions", Some(&body), Some(&key))
            .await
    };
    let n = || s.narrow.clone();
    let (st, b) = create(json!({"model": "opus"}), n()).await;
    refused(st, &b, "model");
    let (st, b) = create(
        json!({"model": "claude-haiku-4-5", "tools": ["Read", "Bash"]}),
        n(),
    )
    .await;
    refused(st, &b, "tools[1]");
    let (st, b) = create(
        json!({"model": "claude-haiku-4-5", "permission_mode": "acceptEdits"}),
        n(),
    )
    .await;
    refused(st, &b, "permission_mode");
    let (st, b) = create(
        json!({"model": "claude-haiku-4-5", "agent": "Explore"}),
        n(),
    )
    .await;
    refused(st, &b, "agent");
    let outside = s.elsewhere.path().display().to_string();
    let (st, b) = create(
        json!({"model": "claude-haiku-4-5", "workspace": outside}),
        n(),
    )
    .await;
    refused(st, &b, "workspace");

    // What the key allows passes, and a message runs in it.
    let inside = s.root.path().join("project");
    std::fs::create_dir(&inside).unwrap();
    let (st, b) = create(
        json!({"model": "claude-haiku-4-5", "tools": ["Read"], "permission_mode": "plan",
               "workspace": inside.display().to_string()}),
        n(),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let sid = b["id"].as_str().unwrap().to_string();
    let (st, reply) = app
        .request(
            "POST",
            &format!("/api/sessions/{sid}/messages"),
            Some(&json!({"content": "[[text:within policy]]"})),
            Some(&s.narrow),
        )
        .await;
    assert_eq!(st, 200, "{reply}");
    assert_eq!(reply["text"], "within policy");

    // Changing the session is held to the same policy.
    let at = |p: &str| format!("/api/sessions/{sid}{p}");
    let (st, b) = app
        .request(
            "PATCH",
            &at(""),
            Some(&json!({"model": "opus"})),
            Some(&s.narrow),
        )
        .await;
    refused(st, &b, "model");
    let (st, b) = app
        .request(
            "PATCH",
            &at(""),
            Some(&json!({"permission_mode": "auto"})),
            Some(&s.narrow),
        )
        .await;
    refused(st, &b, "permission_mode");
    let (st, b) = app
        .request(
            "PATCH",
            &at(""),
            Some(&json!({"model": "claude-haiku-4-5-20251001", "permission_mode": "default"})),
            Some(&s.narrow),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = app
        .request(
            "PUT",
            &at("/tool-permissions"),
            Some(&json!({"tools": ["Bash"]})),
            Some(&s.narrow),
        )
        .await;
    refused(st, &b, "tools[0]");
    let (st, b) = app
        .request(
            "PUT",
            &at("/agent"),
            Some(&json!({"agent": "Explore"})),
            Some(&s.narrow),
        )
        .await;
    refused(st, &b, "agent");
    let (st, b) = app
        .request(
            "POST",
            &at("/tools/bash"),
            Some(&json!({"command": "true"})),
            Some(&s.narrow),
        )
        .await;
    refused(st, &b, "name");

    // Another user key and the admin key are not held to it.
    for key in [s.free.as_str(), ADMIN] {
        let (st, b) = app
            .request(
                "POST",
                "/api/sessions",
                Some(
                    &json!({"model": "opus", "tools": ["Bash"], "permission_mode": "acceptEdits"}),
                ),
                Some(key),
            )
            .await;
        assert_eq!(st, 201, "{b}");
    }

    // Each refusal is in the audit log, with the field.
    let (st, page) = app
        .request(
            "GET",
            "/admin/api/audit?kind=policy_refused",
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200);
    let params: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        [
            "name",
            "agent",
            "tools[0]",
            "permission_mode",
            "model",
            "workspace",
            "agent",
            "permission_mode",
            "tools[1]",
            "model"
        ]
    );
    s.app.stop().await;
}

#[tokio::test]
async fn compatible_apis_refuse_a_model_beyond_the_key_in_their_own_shape() {
    let s = setup().await;
    let app = &s.app;
    let post = |path: &'static str, body: Value, key: String| async move {
        let resp = app
            .client
            .post(format!("{}{path}", app.url))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    };
    let msgs = json!([user("[[text:hello]]")]);

    let (st, b) = post(
        "/v1/chat/completions",
        json!({"model": "haiku", "messages": msgs}),
        s.narrow.clone(),
    )
    .await;
    assert_eq!(st, 403, "{b}");
    assert_eq!(b["error"]["type"], "permission_error", "{b}");
    assert_eq!(b["error"]["param"], "model", "{b}");
    assert_eq!(b["error"]["code"], "policy_denied", "{b}");
    let (st, b) = post(
        "/v1/chat/completions",
        json!({"model": "claude-haiku-4-5", "builtin_tools": ["Bash"], "messages": msgs}),
        s.narrow.clone(),
    )
    .await;
    assert_eq!(
        (st, b["error"]["param"].as_str()),
        (403, Some("builtin_tools[0]")),
        "{b}"
    );

    let (st, b) = post(
        "/v1/messages",
        json!({"model": "opus", "max_tokens": 50, "messages": msgs}),
        s.narrow.clone(),
    )
    .await;
    assert_eq!(st, 403, "{b}");
    assert_eq!(b["type"], "error", "{b}");
    assert_eq!(b["error"]["type"], "permission_error", "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("model: "),
        "{b}"
    );

    let (st, b) = post(
        "/v1/responses",
        json!({"model": "opus", "input": "[[text:hello]]"}),
        s.narrow.clone(),
    )
    .await;
    assert_eq!(
        (st, b["error"]["param"].as_str()),
        (403, Some("model")),
        "{b}"
    );

    // The allowed model passes, on each API.
    let (st, b) = post(
        "/v1/chat/completions",
        json!({"model": "claude-haiku-4-5", "messages": msgs}),
        s.narrow.clone(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["choices"][0]["message"]["content"], "hello");
    let (st, b) = post(
        "/v1/messages",
        json!({"model": "claude-haiku-4-5-20251001", "max_tokens": 50, "messages": [user("[[text:hi there]]")]}),
        s.narrow.clone(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    // Another key may use any model.
    let (st, b) = post(
        "/v1/chat/completions",
        json!({"model": "opus", "messages": [user("[[text:free]]")]}),
        s.free.clone(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    s.app.stop().await;
}
