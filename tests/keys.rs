//! End to end: API keys kept in the store. Made, listed, rotated and revoked through
//! `/admin/api/keys` and through `ccgw keys` beside a running gateway; a revoked key is refused
//! on its next request; secrets are shown once and never stored.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const ADMIN: &str = "static-admin-key-123";

async fn make_key(app: &TestApp, body: Value) -> Value {
    let (status, k) = app
        .request("POST", "/admin/api/keys", Some(&body), Some(ADMIN))
        .await;
    assert_eq!(status, 201, "{k}");
    k
}

/// A chat completion with a key: its status.
async fn chat_with(app: &TestApp, key: &str) -> (u16, Value) {
    let body = json!({"model": "sonnet", "messages": [user("[[text:hello]]")]});
    app.request("POST", "/v1/chat/completions", Some(&body), Some(key))
        .await
}

/// Poll until a request with `key` answers `want`.
async fn wait_status(app: &TestApp, key: &str, want: u16) -> bool {
    for _ in 0..50 {
        if app.request("GET", "/v1/models", None, Some(key)).await.0 == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn keys_made_through_the_admin_api_work_rotate_and_revoke_at_once() {
    // The defaults (warm pool on, temporary workspaces) plus one static admin key.
    let app = spawn_defaults_app_with(|c| c.api_keys = vec![ADMIN.into()]).await;

    let k = make_key(
        &app,
        json!({"name": "app one", "rpm": 100, "models": ["sonnet"]}),
    )
    .await;
    let secret = k["secret"].as_str().unwrap().to_string();
    let id = k["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("ccgw_"), "{k}");
    assert!(secret.starts_with(k["prefix"].as_str().unwrap()), "{k}");
    assert_eq!(k["role"], "user");
    assert_eq!(k["limits"]["rpm"], 100);
    assert_eq!(k["policy"]["models"], json!(["sonnet"]));
    assert_eq!(k["status"], "active");

    // The key works on a real turn.
    let (status, reply) = chat_with(&app, &secret).await;
    assert_eq!(status, 200, "{reply}");

    // Listings never show a secret or its hash.
    let (status, list) = app
        .request("GET", "/admin/api/keys", None, Some(ADMIN))
        .await;
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(!text.contains(&secret), "{text}");
    assert!(!text.contains("secret"), "{text}");
    assert_eq!(list["data"][0]["id"], id.as_str());

    // A user key cannot manage keys.
    let (status, err) = app
        .request("GET", "/admin/api/keys", None, Some(&secret))
        .await;
    assert_eq!(status, 403, "{err}");
    let (status, _) = app
        .request(
            "POST",
            "/admin/api/keys",
            Some(&json!({"name": "x"})),
            Some(&secret),
        )
        .await;
    assert_eq!(status, 403);

    // Rotation: the old secret is refused on its next request, the new one works, same id.
    let (status, rotated) = app
        .request(
            "POST",
            &format!("/admin/api/keys/{id}/rotate"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_eq!(rotated["id"], id.as_str());
    assert_eq!(chat_with(&app, &secret).await.0, 401);
    assert_eq!(chat_with(&app, &new_secret).await.0, 200);

    // Revocation takes effect on the very next request, in each API's error shape.
    let (status, revoked) = app
        .request(
            "DELETE",
            &format!("/admin/api/keys/{id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(revoked["status"], "revoked");
    let (status, err) = chat_with(&app, &new_secret).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["message"], "This API key has been revoked");
    let (status, err) = app
        .request(
            "POST",
            "/v1/messages",
            Some(&json!({"model": "sonnet", "max_tokens": 16, "messages": [user("hi")]})),
            Some(&new_secret),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["error"]["type"], "authentication_error", "{err}");

    // Bad input names the field; an unknown key is a 404.
    let (status, err) = app
        .request(
            "POST",
            "/admin/api/keys",
            Some(&json!({"name": "b", "budget_usd": 5, "budget_period": "week"})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "budget_period", "{err}");
    let (status, _) = app
        .request("DELETE", "/admin/api/keys/key_nope", None, Some(ADMIN))
        .await;
    assert_eq!(status, 404);

    // An expired key is refused.
    let past = json!({"name": "old", "expires_at": 1_000});
    let old = make_key(&app, past).await;
    let (status, err) = chat_with(&app, old["secret"].as_str().unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["message"], "This API key has expired");
    app.stop().await;
}

#[tokio::test]
async fn the_keys_command_works_beside_a_running_gateway_and_stores_only_hashes() {
    let app = spawn_defaults_app_with(|c| c.api_keys = vec![ADMIN.into()]).await;

    let (ok, out, err) = ccgw_keys(
        &app,
        &[
            "create",
            "--name",
            "ci bot",
            "--rpm",
            "30",
            "--budget-usd",
            "2.5",
            "--budget-period",
            "day",
            "--expires",
            "30d",
        ],
    );
    assert!(ok, "{err}");
    let secret = out.trim().to_string();
    assert!(secret.starts_with("ccgw_"), "{out}");
    assert!(err.contains("shown only now"), "{err}");

    // The running gateway picks the new key up by itself.
    assert!(
        wait_status(&app, &secret, 200).await,
        "the new key never worked"
    );
    let (status, reply) = chat_with(&app, &secret).await;
    assert_eq!(status, 200, "{reply}");

    let (ok, listed, _) = ccgw_keys(&app, &["list", "--json"]);
    assert!(ok);
    let keys: Value = serde_json::from_str(&listed).unwrap();
    let key = &keys[0];
    assert_eq!(key["name"], "ci bot");
    assert_eq!(key["limits"]["budget_usd"], 2.5);
    assert_eq!(key["limits"]["budget_period"], "day");
    assert!(key["expires_at"].as_i64().unwrap() > 0);
    assert!(!listed.contains(&secret));
    let (ok, table, _) = ccgw_keys(&app, &["list"]);
    assert!(
        ok && table.contains("ci bot") && table.contains("active"),
        "{table}"
    );

    // Only a hash is kept: the secret is nowhere in the database files.
    for f in ["ccgw.db", "ccgw.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.data.path().join(f)) {
            let hay = String::from_utf8_lossy(&bytes);
            assert!(!hay.contains(&secret), "the secret is stored in {f}");
        }
    }

    // Revoked from the command line: refused within the refresh interval.
    let id = key["id"].as_str().unwrap();
    let (ok, out, err) = ccgw_keys(&app, &["revoke", id]);
    assert!(ok && out.contains("revoked"), "{out}{err}");
    assert!(
        wait_status(&app, &secret, 401).await,
        "the revoked key still works"
    );
    let (ok, _, err) = ccgw_keys(&app, &["rotate", id]);
    assert!(!ok && err.contains("revoked"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn the_first_stored_key_turns_authentication_on_and_must_be_an_admin() {
    let app = spawn_defaults_app_with(|_| {}).await;
    // No keys: anyone may call, and is an admin.
    let (status, err) = app
        .request("POST", "/admin/api/keys", Some(&json!({"name": "u"})), None)
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "role");
    let (status, admin) = app
        .request(
            "POST",
            "/admin/api/keys",
            Some(&json!({"name": "root", "role": "admin"})),
            None,
        )
        .await;
    assert_eq!(status, 201, "{admin}");
    // From now on a key is needed.
    assert_eq!(app.request("GET", "/v1/models", None, None).await.0, 401);
    let secret = admin["secret"].as_str().unwrap();
    assert_eq!(
        app.request("GET", "/v1/models", None, Some(secret)).await.0,
        200
    );
    let (status, user_key) = app
        .request(
            "POST",
            "/admin/api/keys",
            Some(&json!({"name": "u"})),
            Some(secret),
        )
        .await;
    assert_eq!(status, 201, "{user_key}");
    app.stop().await;
}
