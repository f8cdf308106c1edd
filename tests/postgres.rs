//! End to end on a Postgres store (`database_url = postgres://…`), under the gateway's defaults
//! (warm pool on, temporary workspaces, no keys), with the real CLI and the mock upstream: a
//! native session, a compatible conversation that continues across a restart, and a key made
//! by `ccgw keys` against the same database. Nothing goes to a SQLite file.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_conversations_and_keys_live_in_postgres() {
    let url = postgres_database().await;
    let mut app = spawn_defaults_app_with(|c| c.database_url = url.clone()).await;

    // A native session, made and messaged.
    let id = create_session(&app, json!({"model": "sonnet"})).await;
    let reply = send_message(&app, &id, "[[text:hello from postgres]]").await;
    assert!(reply.to_string().contains("hello from postgres"), "{reply}");
    let session = app.get_json(&format!("/api/sessions/{id}")).await;
    assert_eq!(session["id"], id.as_str(), "{session}");

    // A compatible conversation, continued after a restart on the same database.
    chat_continues_across_a_restart(&mut app).await;
    // The native session is still there after the restart, with its history.
    let events = app.get_json(&format!("/api/sessions/{id}/history")).await;
    assert!(
        events.to_string().contains("hello from postgres"),
        "{events}"
    );

    // A key made by `ccgw keys` against the same database: the running gateway takes it
    // up (the first stored key turns authentication on) and accepts it.
    let (ok, out, err) = ccgw_keys(&app, &["create", "--name", "root", "--role", "admin"]);
    assert!(ok, "{err}");
    let secret = out.trim().to_string();
    assert!(secret.starts_with("ccgw_"), "{out}");
    let mut refused = false;
    for _ in 0..100 {
        if app.request("GET", "/v1/models", None, None).await.0 == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the gateway never took up the stored key");
    let body = json!({"model": "sonnet", "messages": [user("[[text:keyed]]")]});
    let (status, reply): (u16, Value) = app
        .request("POST", "/v1/chat/completions", Some(&body), Some(&secret))
        .await;
    assert_eq!(status, 200, "{reply}");
    let (ok, listed, _) = ccgw_keys(&app, &["list", "--json"]);
    assert!(ok && listed.contains("\"root\""), "{listed}");

    // Every record went to Postgres: no SQLite file was made.
    assert!(!app.data.path().join("ccgw.db").exists());
    app.stop().await;
}

#[tokio::test]
async fn a_database_url_of_another_kind_stops_the_start_naming_the_setting() {
    let cfg = ccgw::config::Config {
        port: 0,
        data_dir: tempfile::tempdir().expect("temp dir").keep(),
        database_url: "mysql://root:hunter2@127.0.0.1/ccgw".into(),
        ..ccgw::config::Config::default()
    };
    let err = ccgw::server::start(cfg.clone())
        .await
        .err()
        .expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("database_url"), "{text}");
    assert!(!text.contains("hunter2"), "the password was shown: {text}");
    let _ = std::fs::remove_dir_all(&cfg.data_dir);
}
