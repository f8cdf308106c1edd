//! Readiness follows the CLI: an instance whose CLI cannot run answers `/health/ready` with 503
//! (`cli_unavailable`), and becomes ready again by itself once the CLI is repaired.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::common::spawn_defaults_app_with;

fn write_cli(path: &Path, body: &str) {
    // Written beside and renamed over, so a running start never sees half a script.
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn ready(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client
        .get(format!("{url}/health/ready"))
        .send()
        .await
        .expect("ready answers");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn wait_ready(client: &reqwest::Client, url: &str, want: u16) -> Value {
    for _ in 0..150 {
        let (status, body) = ready(client, url).await;
        if status == want {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/health/ready never answered {want}");
}

#[tokio::test]
async fn readiness_is_false_while_the_cli_cannot_run_and_comes_back_by_itself() {
    let real = ccgw::config::Config::default().resolve_claude_bin();
    let dir = tempfile::tempdir().unwrap();
    let cli = dir.path().join("claude");
    write_cli(&cli, &format!("exec '{}' \"$@\"", real.display()));
    let app = spawn_defaults_app_with(|c| c.claude_bin = Some(cli.clone())).await;
    let (status, body) = ready(&app.client, &app.url).await;
    assert_eq!((status, &body), (200, &json!({"ready": true})));

    // The CLI breaks. A conversation that needs a new process (a model the pool does not keep
    // warm) cannot start, and readiness turns false with the reason.
    write_cli(&cli, "echo 'broken install' >&2; exit 3");
    let (status, err) = app
        .chat(json!({"model": "opus", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert!(status >= 500, "{status} {err}");
    let body = wait_ready(&app.client, &app.url, 503).await;
    assert_eq!(body["reason"], "cli_unavailable", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("--version"),
        "{body}"
    );
    // Liveness stays up: the instance is alive, just not ready.
    let live = app
        .client
        .get(format!("{}/health", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    // Repaired: ready again without any request having to prove it, and turns work.
    write_cli(&cli, &format!("exec '{}' \"$@\"", real.display()));
    wait_ready(&app.client, &app.url, 200).await;
    let (status, reply) = app
        .chat(json!({"model": "opus", "messages": [{"role": "user", "content": "[[text:back]]"}]}))
        .await;
    assert_eq!(status, 200, "{reply}");
    app.stop().await;
}
