//! End to end: a session's tool permissions, `/init` through `project/init` and moving a
//! session to another workspace, with the defaults (warm pool on) and the real CLI.

mod common;

use common::*;
use serde_json::{json, Value};

const TOOLS: [&str; 3] = ["Read", "Write", "Bash"];

async fn app_with(roots: Option<std::path::PathBuf>) -> TestApp {
    spawn_defaults_app_with(move |c| {
        c.builtin_tools = TOOLS.iter().map(|t| t.to_string()).collect();
        if let Some(r) = roots {
            c.workspace_roots = vec![r];
        }
    })
    .await
}

async fn put(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.request("PUT", path, Some(&body), None).await
}

async fn workspace(app: &TestApp, id: &str) -> std::path::PathBuf {
    let s = app.get_json(&format!("/api/sessions/{id}")).await;
    std::path::PathBuf::from(s["workspace"].as_str().unwrap())
}

#[tokio::test]
async fn tool_permissions_change_what_the_model_may_use_from_the_next_call() {
    let app = app_with(None).await;
    let id = create_session(
        &app,
        json!({"model": "sonnet", "tools": ["Read", "Bash"], "allowed_tools": ["Read", "Bash"]}),
    )
    .await;
    let path = format!("/api/sessions/{id}/tool-permissions");
    let (s, p) = app.request("GET", &path, None, None).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        p,
        json!({"tools": ["Read", "Bash"], "allowed_tools": ["Read", "Bash"], "denied_tools": []})
    );

    send_message(
        &app,
        &id,
        r#"first-turn [[tool:Bash {"command":"touch one.txt"}]]"#,
    )
    .await;
    let ws = workspace(&app, &id).await;
    assert!(ws.join("one.txt").is_file(), "Bash ran while allowed");

    // Denied: refused from the next call, on the same live process.
    let spawned = app.spawned();
    let (s, p) = put(&app, &path, json!({"denied_tools": ["Bash"]})).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["denied_tools"], json!(["Bash"]));
    let r = send_message(&app, &id, r#"[[tool:Bash {"command":"touch two.txt"}]]"#).await;
    assert!(
        !ws.join("two.txt").exists(),
        "a denied tool never runs: {r}"
    );
    assert!(
        r["tool_results"].to_string().contains("denied"),
        "the model is told why: {r}"
    );
    assert_eq!(app.spawned(), spawned, "no new process for allowed/denied");
    // Nor may a client call it directly.
    let (s, e) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/tools/bash"),
            Some(&json!({"command": "touch three.txt"})),
            None,
        )
        .await;
    assert_eq!(s, 403, "{e}");
    assert!(e.to_string().contains("denied"), "{e}");
    assert!(!ws.join("three.txt").exists());

    // A new tool set: offered from the next turn, in a process that keeps the history.
    let (s, p) = put(
        &app,
        &path,
        json!({"tools": ["Read", "Write"], "allowed_tools": ["Write"], "denied_tools": []}),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    let file = ws.join("w.txt");
    let write = json!({"file_path": file, "content": "written\n"});
    let r = send_message(&app, &id, &format!("[[tool:Write {write}]]")).await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "written\n", "{r}");
    let r = send_message(&app, &id, "[[report:tools]]").await;
    let offered = r["text"].as_str().unwrap();
    assert!(
        offered.contains("Write") && !offered.contains("Bash"),
        "{offered}"
    );
    let r = send_message(&app, &id, "[[report:history]]").await;
    assert!(r["text"].as_str().unwrap().contains("first-turn"), "{r}");
    let stored = app.get_json(&format!("/api/sessions/{id}")).await;
    assert_eq!(stored["tools"], json!(["Read", "Write"]), "{stored}");

    // Bad input, named.
    let (s, e) = put(&app, &path, json!({"allowed_tools": ["Read", 3]})).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["param"], "allowed_tools[1]", "{e}");
    let (s, e) = put(&app, &path, json!({"denied_tools": ["Bash(git:*)"]})).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["param"], "denied_tools[0]", "{e}");
    let (s, e) = put(&app, &path, json!({"allowed_tools": ["Bash"]})).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["param"], "allowed_tools[0]", "{e}");
    let (s, e) = put(&app, &path, json!({"tools": ["Read", "WebFetch"]})).await;
    assert_eq!(s, 403, "{e}");
    assert!(e.to_string().contains("WebFetch"), "{e}");
    let (s, e) = put(&app, &path, json!({"rules": []})).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["param"], "rules", "{e}");
    let (s, _) = put(&app, "/api/sessions/nope/tool-permissions", json!({})).await;
    assert_eq!(s, 404);

    // They are kept across a restart.
    let (s, _) = put(&app, &path, json!({"denied_tools": ["Read"]})).await;
    assert_eq!(s, 200);
    let mut app = app;
    app.restart().await;
    let (s, p) = app.request("GET", &path, None, None).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        p,
        json!({"tools": ["Read", "Write"], "allowed_tools": ["Write"], "denied_tools": ["Read"]})
    );
    app.stop().await;
}

#[tokio::test]
async fn project_init_runs_init_and_returns_the_claude_md_it_wrote() {
    let app = app_with(None).await;
    let id = create_session(
        &app,
        json!({"model": "sonnet", "tools": ["Write"], "allowed_tools": ["Write"]}),
    )
    .await;
    send_message(&app, &id, "hello [[text:hi]]").await;
    let md = workspace(&app, &id).await.join("CLAUDE.md");
    let write = json!({"file_path": md, "content": "# Project\n\nBuild with cargo.\n"});
    let (s, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/project/init"),
            Some(&json!({"args": format!("[[tool:Write {write}]]")})),
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["command"], "init");
    assert_eq!(r["session_id"], id.as_str());
    assert_eq!(r["claude_md"]["exists"], true, "{r}");
    assert_eq!(r["claude_md"]["path"], "CLAUDE.md");
    assert_eq!(
        r["claude_md"]["content"],
        "# Project\n\nBuild with cargo.\n"
    );
    assert_eq!(
        std::fs::read_to_string(&md).unwrap(),
        "# Project\n\nBuild with cargo.\n"
    );
    let (s, e) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/project/init"),
            Some(&json!({"args": 5})),
            None,
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["param"], "args");
    app.stop().await;
}

#[tokio::test]
async fn a_session_moves_to_another_workspace_with_its_history() {
    let roots = tempfile::tempdir().unwrap();
    let app = app_with(Some(roots.path().to_path_buf())).await;
    let id = create_session(
        &app,
        json!({"model": "sonnet", "tools": ["Read"], "allowed_tools": ["Read"]}),
    )
    .await;
    send_message(&app, &id, "remember-this [[text:noted]]").await;
    let old = workspace(&app, &id).await;

    let target = roots.path().join("proj");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("marker.txt"), "MARKER-IN-NEW-WS").unwrap();
    let path = format!("/api/sessions/{id}/project/workspace");
    let (s, info) = put(&app, &path, json!({"path": target})).await;
    assert_eq!(s, 200, "{info}");
    let canonical = target.canonicalize().unwrap();
    assert_eq!(info["workspace"], canonical.display().to_string());
    assert_eq!(info["workspace_is_temp"], false);
    assert_ne!(old, canonical);

    // The model's tools see the new directory, and the conversation goes on.
    let read = json!({"file_path": canonical.join("marker.txt")});
    let r = send_message(&app, &id, &format!("[[tool:Read {read}]]")).await;
    assert!(
        r["tool_results"].to_string().contains("MARKER-IN-NEW-WS"),
        "{r}"
    );
    let r = send_message(&app, &id, "[[report:history]]").await;
    assert!(r["text"].as_str().unwrap().contains("remember-this"), "{r}");

    // Outside the roots, not a directory, missing: refused, naming the path.
    let outside = tempfile::tempdir().unwrap();
    let (s, e) = put(&app, &path, json!({"path": outside.path()})).await;
    assert_eq!(s, 403, "{e}");
    assert!(
        e.to_string()
            .contains(&outside.path().display().to_string()),
        "{e}"
    );
    let (s, e) = put(&app, &path, json!({"path": "relative/dir"})).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["param"], "path");
    let (s, e) = put(&app, &path, json!({})).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["param"], "path");
    let after = app.get_json(&format!("/api/sessions/{id}")).await;
    assert_eq!(after["workspace"], canonical.display().to_string());
    app.stop().await;
}

#[tokio::test]
async fn rewind_restores_the_files_and_a_deleted_session_takes_its_checkpoints_along() {
    let app = app_with(None).await;
    let id = create_session(
        &app,
        json!({"model": "sonnet", "tools": ["Write"], "allowed_tools": ["Write"]}),
    )
    .await;
    send_message(&app, &id, "hello [[text:hi]]").await;
    let ws = workspace(&app, &id).await;
    let history = app.get_json(&format!("/api/sessions/{id}/history")).await;
    let before = history["data"].as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    let file = ws.join("made.txt");
    let write = json!({"file_path": file, "content": "by the model\n"});
    send_message(&app, &id, &format!("[[tool:Write {write}]]")).await;
    assert!(file.is_file());
    let (s, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/rewind"),
            Some(&json!({"to_seq": before})),
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["files"], json!(["made.txt"]), "{r}");
    assert!(!file.exists(), "the model's file is gone again");

    let checkpoints = app.data.path().join("checkpoints").join(&id);
    assert!(checkpoints.is_dir());
    let (s, _) = app
        .request("DELETE", &format!("/api/sessions/{id}"), None, None)
        .await;
    assert_eq!(s, 204);
    assert!(!checkpoints.exists(), "checkpoints go with their session");
    app.stop().await;
}
