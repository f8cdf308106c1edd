//! End to end: a native session's workspace — the workspace roots, files (upload, list,
//! download, delete) and memory (CLAUDE.md reaching the model), with the defaults (warm pool
//! on, temporary workspace, no keys) and the real CLI.

mod common;

use base64::Engine;
use ccgw::config::Config;
use common::*;
use serde_json::{json, Value};

async fn app() -> TestApp {
    spawn_app_with(|c| {
        c.warm_pool_size = Config::default().warm_pool_size;
        c.max_upload_bytes = 64;
    })
    .await
}

async fn session(app: &TestApp, body: Value) -> (u16, Value) {
    app.request("POST", "/api/sessions", Some(&body), None)
        .await
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn raw(app: &TestApp, method: &str, path: &str) -> reqwest::Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    app.client
        .request(m, format!("{}{path}", app.url))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_named_workspace_must_lie_inside_the_workspace_roots() {
    let app = app().await;
    let (s, body) = session(&app, json!({"workspace": "/"})).await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("'/'"),
        "{body}"
    );
    let outside = tempfile::tempdir().unwrap();
    let (s, _) = session(&app, json!({"workspace": outside.path()})).await;
    assert_eq!(s, 403);
    // A link inside the roots that leads out is judged by where it leads.
    std::fs::create_dir_all(app.cfg.workspaces_dir()).unwrap();
    let link = app.cfg.workspaces_dir().join("out");
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    let (s, _) = session(&app, json!({"workspace": link})).await;
    assert_eq!(s, 403);
    let inside = tempfile::tempdir_in(app.cfg.workspaces_dir()).unwrap();
    let (s, body) = session(&app, json!({"workspace": inside.path()})).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["workspace_is_temp"], false);
    let (s, body) = session(&app, json!({"workspace": "relative/dir"})).await;
    assert_eq!(
        (s, body["error"]["param"].clone()),
        (400, json!("workspace"))
    );
    app.stop().await;

    // Configured roots replace the default.
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let app = spawn_app_with(|c| c.workspace_roots = vec![root.path().to_path_buf()]).await;
    let (s, body) = session(&app, json!({"workspace": project})).await;
    assert_eq!(s, 201, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn files_are_uploaded_listed_downloaded_and_deleted_inside_the_workspace() {
    let app = app().await;
    let (_, s) = session(&app, json!({})).await;
    let id = s["id"].as_str().unwrap();
    let files = format!("/api/sessions/{id}/files");

    // JSON, one file.
    let (st, up) = app
        .request(
            "POST",
            &format!("{files}/upload"),
            Some(&json!({"path": "docs/readme.txt", "content_base64": b64("hello\n")})),
            None,
        )
        .await;
    assert_eq!(st, 201, "{up}");
    assert_eq!(up["data"][0]["path"], "docs/readme.txt");
    assert_eq!(up["data"][0]["size"], 6);

    // Multipart, two files with relative paths.
    let boundary = "XBOUNDARYX";
    let part = |name: &str, data: &str| {
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n{data}\r\n")
    };
    let form = format!(
        "{}{}--{boundary}--\r\n",
        part("src/main.rs", "fn main() {}\n"),
        part("data.json", "{\"a\":1}")
    );
    let resp = app
        .client
        .post(format!("{}{files}/upload", app.url))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(form.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2, "{body}");

    // No overwrite unless asked; nothing of a refused upload is written.
    let (st, body) = app
        .request(
            "POST",
            &format!("{files}/upload"),
            Some(
                &json!({"files": [{"path": "new.txt", "content_base64": b64("n")},
                                   {"path": "docs/readme.txt", "content_base64": b64("changed")}]}),
            ),
            None,
        )
        .await;
    assert_eq!(st, 409, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("docs/readme.txt"));
    assert_eq!(
        raw(&app, "GET", &format!("{files}/new.txt"))
            .await
            .status()
            .as_u16(),
        404
    );
    let (st, _) = app
        .request("POST", &format!("{files}/upload"),
            Some(&json!({"path": "docs/readme.txt", "content_base64": b64("changed\n"), "overwrite": true})), None)
        .await;
    assert_eq!(st, 201);
    // Over the size limit: 413; outside the workspace: 403 naming the path; bad base64: 400.
    let (st, _) = app
        .request(
            "POST",
            &format!("{files}/upload"),
            Some(&json!({"path": "big.bin", "content_base64": b64(&"x".repeat(65))})),
            None,
        )
        .await;
    assert_eq!(st, 413);
    let (st, body) = app
        .request(
            "POST",
            &format!("{files}/upload"),
            Some(&json!({"path": "../../escape.txt", "content_base64": b64("x")})),
            None,
        )
        .await;
    assert_eq!(st, 403);
    assert!(body.to_string().contains("../../escape.txt"), "{body}");
    let (st, body) = app
        .request(
            "POST",
            &format!("{files}/upload"),
            Some(&json!({"path": "a", "content_base64": "!!"})),
            None,
        )
        .await;
    assert_eq!(
        (st, body["error"]["param"].clone()),
        (400, json!("content_base64"))
    );

    // Listing: top level, then everything.
    let (_, top) = app.request("GET", &files, None, None).await;
    let names: Vec<&str> = top["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["data.json", "docs", "src"]);
    let docs = top["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "docs")
        .unwrap();
    assert_eq!(docs["kind"], "dir");
    assert!(docs["mtime"].is_string());
    let (_, all) = app
        .request("GET", &format!("{files}?recursive=true"), None, None)
        .await;
    let names: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["data.json", "docs", "docs/readme.txt", "src", "src/main.rs"]
    );
    let (_, sub) = app
        .request("GET", &format!("{files}?path=src"), None, None)
        .await;
    assert_eq!(sub["data"][0]["size"], 13);

    // Download with the right content type.
    let r = raw(&app, "GET", &format!("{files}/docs/readme.txt")).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), "changed\n");
    let r = raw(&app, "GET", &format!("{files}/data.json")).await;
    assert_eq!(r.headers()["content-type"], "application/json");
    // A link out of the workspace is not followed.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        std::path::Path::new(s["workspace"].as_str().unwrap()).join("leak"),
    )
    .unwrap();
    assert_eq!(
        raw(&app, "GET", &format!("{files}/leak"))
            .await
            .status()
            .as_u16(),
        403
    );

    // Delete: a file, then a directory only when asked.
    assert_eq!(
        raw(&app, "DELETE", &format!("{files}/data.json"))
            .await
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        raw(&app, "GET", &format!("{files}/data.json"))
            .await
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        raw(&app, "DELETE", &format!("{files}/src"))
            .await
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        raw(&app, "DELETE", &format!("{files}/src?recursive=true"))
            .await
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        raw(&app, "DELETE", &format!("{files}/nope.txt"))
            .await
            .status()
            .as_u16(),
        404
    );

    // The model works on the same files.
    let (st, reply) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/messages"),
            Some(&json!({"content": "[[report:history]] look at the files"})),
            None,
        )
        .await;
    assert_eq!(st, 200, "{reply}");
    app.stop().await;
}

#[tokio::test]
async fn memory_is_the_workspaces_claude_md_and_reaches_the_model() {
    let app = app().await;
    let (_, s) = session(&app, json!({"model": "sonnet"})).await;
    let id = s["id"].as_str().unwrap();
    let memory = format!("/api/sessions/{id}/memory");
    let (st, m) = app.request("GET", &memory, None, None).await;
    assert_eq!((st, m["exists"].clone()), (200, json!(false)));
    let (st, m) = app
        .request(
            "PUT",
            &memory,
            Some(&json!({"content": "Always answer in MEMO-ONE style."})),
            None,
        )
        .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["content"], "Always answer in MEMO-ONE style.\n");
    let (_, m) = app
        .request(
            "POST",
            &memory,
            Some(&json!({"content": "Also MEMO-TWO."})),
            None,
        )
        .await;
    assert_eq!(
        m["content"],
        "Always answer in MEMO-ONE style.\nAlso MEMO-TWO.\n"
    );
    let on_disk = std::fs::read_to_string(
        std::path::Path::new(s["workspace"].as_str().unwrap()).join("CLAUDE.md"),
    )
    .unwrap();
    assert_eq!(on_disk, m["content"].as_str().unwrap());
    let (st, body) = app
        .request("PUT", &memory, Some(&json!({"text": "x"})), None)
        .await;
    assert_eq!(
        (st, body["error"]["param"].clone()),
        (400, json!("content")),
        "{body}"
    );

    // The model receives it, once per version.
    let (st, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/messages"),
            Some(&json!({"content": "hello"})),
            None,
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let sent = app.last_model_request().to_string();
    assert!(
        sent.contains("MEMO-ONE") && sent.contains("MEMO-TWO"),
        "{sent}"
    );
    app.request(
        "POST",
        &format!("/api/sessions/{id}/messages"),
        Some(&json!({"content": "again"})),
        None,
    )
    .await;
    let sent = app.last_model_request().to_string();
    assert_eq!(
        sent.matches("MEMO-TWO").count(),
        1,
        "sent once, kept in the conversation"
    );
    app.request(
        "PUT",
        &memory,
        Some(&json!({"content": "Now MEMO-THREE."})),
        None,
    )
    .await;
    app.request(
        "POST",
        &format!("/api/sessions/{id}/messages"),
        Some(&json!({"content": "third"})),
        None,
    )
    .await;
    let sent = app.last_model_request().to_string();
    assert!(sent.contains("MEMO-THREE"), "{sent}");
    app.stop().await;
}

async fn last_seq(app: &TestApp, id: &str) -> u64 {
    let (_, h) = app
        .request("GET", &format!("/api/sessions/{id}/history"), None, None)
        .await;
    h["data"]
        .as_array()
        .unwrap()
        .last()
        .map(|e| e["seq"].as_u64().unwrap())
        .unwrap_or(0)
}

#[tokio::test]
async fn changes_show_diffs_since_the_start_or_a_seq_and_rewind_restores_them() {
    let tools = ["Read", "Edit", "Write", "Bash"];
    let app = spawn_app_with(|c| {
        c.warm_pool_size = Config::default().warm_pool_size;
        c.builtin_tools = tools.iter().map(|t| t.to_string()).collect();
    })
    .await;
    let (_, s) = session(
        &app,
        json!({"model": "sonnet", "tools": tools, "allowed_tools": tools}),
    )
    .await;
    let id = s["id"].as_str().unwrap();
    let ws = std::path::PathBuf::from(s["workspace"].as_str().unwrap());
    let call = |tool: &'static str, input: Value| {
        let path = format!("/api/sessions/{id}/tools/{tool}");
        let app = &app;
        async move { app.request("POST", &path, Some(&input), None).await }
    };
    assert_eq!(
        call("write", json!({"file_path": "a.txt", "content": "one\n"}))
            .await
            .0,
        200
    );
    // The model changes a file too.
    let (st, r) = app
        .request("POST", &format!("/api/sessions/{id}/messages"),
            Some(&json!({"content": "first-turn [[tool:Bash {\"command\":\"echo model > m.txt\"}]]"})), None)
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        std::fs::read_to_string(ws.join("m.txt")).unwrap(),
        "model\n"
    );
    let after_turn = last_seq(&app, id).await;
    assert_eq!(
        call(
            "edit",
            json!({"file_path": "a.txt", "old_string": "one", "new_string": "uno"})
        )
        .await
        .0,
        200
    );

    let (st, ch) = app
        .request("GET", &format!("/api/sessions/{id}/changes"), None, None)
        .await;
    assert_eq!(st, 200, "{ch}");
    let summary: Vec<(String, String)> = ch["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a.txt".into(), "created".into()),
            ("m.txt".into(), "created".into())
        ]
    );
    assert!(
        ch["data"][0]["diff"].as_str().unwrap().contains("+uno"),
        "{ch}"
    );
    let (_, since) = app
        .request(
            "GET",
            &format!("/api/sessions/{id}/changes?since={after_turn}"),
            None,
            None,
        )
        .await;
    let data = since["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{since}");
    assert_eq!(data[0]["status"], "modified");
    let diff = data[0]["diff"].as_str().unwrap();
    assert!(diff.contains("-one") && diff.contains("+uno"), "{diff}");
    let (st, body) = app
        .request(
            "GET",
            &format!("/api/sessions/{id}/changes?since=x"),
            None,
            None,
        )
        .await;
    assert_eq!((st, body["error"]["param"].clone()), (400, json!("since")));

    // Rewind the files to the end of the first turn, then to the start.
    let (st, rw) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/rewind"),
            Some(&json!({"to_seq": after_turn})),
            None,
        )
        .await;
    assert_eq!(st, 200, "{rw}");
    assert_eq!(rw["files"], json!(["a.txt"]));
    assert_eq!(std::fs::read_to_string(ws.join("a.txt")).unwrap(), "one\n");
    assert!(ws.join("m.txt").exists());
    let (st, _) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/rewind"),
            Some(&json!({"to_seq": 0})),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert!(!ws.join("a.txt").exists() && !ws.join("m.txt").exists());
    let (st, body) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/rewind"),
            Some(&json!({})),
            None,
        )
        .await;
    assert_eq!((st, body["error"]["param"].clone()), (400, json!("to_seq")));
    let (st, _) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/rewind"),
            Some(&json!({"to_seq": 100000})),
            None,
        )
        .await;
    assert_eq!(st, 400);

    // "Branch from here": the files and the conversation as of the first turn, in a new session.
    let (st, rw) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/rewind"),
            Some(&json!({"to_seq": after_turn, "conversation": true})),
            None,
        )
        .await;
    assert_eq!(st, 201, "{rw}");
    let fork = rw["session"]["id"].as_str().unwrap();
    assert_eq!(rw["session"]["forked_from"], id);
    let fork_ws = std::path::PathBuf::from(rw["session"]["workspace"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(fork_ws.join("a.txt")).unwrap(),
        "one\n"
    );
    let (st, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{fork}/messages"),
            Some(&json!({"content": "[[report:history]]"})),
            None,
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert!(r["text"].as_str().unwrap().contains("first-turn"), "{r}");
    app.stop().await;
}
