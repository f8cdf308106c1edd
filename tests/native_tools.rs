//! End to end: the native API's tools — the catalog, direct tool calls (confined to the
//! session's workspace, recorded, shown to watchers) and the tool-call history, with the
//! defaults (warm pool on, temporary workspace, no keys) and the real CLI.

mod common;

use std::time::Duration;

use ccgw::config::Config;
use common::*;
use futures::StreamExt;
use serde_json::{json, Value};

const DIRECT: [&str; 6] = ["Read", "Glob", "Grep", "Edit", "Write", "Bash"];

/// The defaults, with the deployment allowing the direct tools.
async fn app_with_tools() -> TestApp {
    spawn_app_with(|c| {
        c.warm_pool_size = Config::default().warm_pool_size;
        c.builtin_tools = DIRECT.iter().map(|t| t.to_string()).collect();
    })
    .await
}

async fn session(app: &TestApp, tools: &[&str]) -> (String, String) {
    let (status, s) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet", "tools": tools})),
            None,
        )
        .await;
    assert_eq!(status, 201, "{s}");
    (
        s["id"].as_str().unwrap().into(),
        s["workspace"].as_str().unwrap().into(),
    )
}

async fn tool(app: &TestApp, id: &str, name: &str, input: Value) -> (u16, Value) {
    app.request(
        "POST",
        &format!("/api/sessions/{id}/tools/{name}"),
        Some(&input),
        None,
    )
    .await
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(app: &TestApp, path: &str) -> Ws {
    let url = format!("{}{path}", app.url.replacen("http", "ws", 1));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Frames until one matches `until` (or 10 s pass).
async fn frames(ws: &mut Ws, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .unwrap()
            .unwrap();
        let Ok(text) = msg.to_text() else { continue };
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        let last = until(&v);
        out.push(v);
        if last {
            return out;
        }
    }
}

#[tokio::test]
async fn the_catalog_lists_builtin_tools_and_what_the_deployment_allows() {
    let app = spawn_app_with(|c| {
        c.warm_pool_size = Config::default().warm_pool_size;
        c.builtin_tools = vec!["Read".into()];
    })
    .await;
    let (status, body) = app.request("GET", "/api/tools", None, None).await;
    assert_eq!(status, 200);
    let tools = body["data"].as_array().unwrap();
    let find = |n: &str| {
        tools
            .iter()
            .find(|t| t["name"] == n)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(find("Read")["allowed"], true);
    assert_eq!(find("Read")["direct"], true);
    assert!(find("Read")["input_schema"]["properties"]["file_path"].is_object());
    assert_eq!(find("Bash")["allowed"], false);
    assert!(!find("Bash")["description"].as_str().unwrap().is_empty());
    assert_eq!(find("WebFetch")["direct"], false);
    app.stop().await;
}

#[tokio::test]
async fn direct_calls_run_in_the_workspace_and_are_recorded_and_watched() {
    let app = app_with_tools().await;
    let (id, workspace) = session(&app, &DIRECT).await;
    let mut watcher = ws(&app, &format!("/api/sessions/{id}/stream")).await;
    let mut status = ws(&app, &format!("/api/sessions/{id}/tools/stream")).await;

    let (s, w) = tool(
        &app,
        &id,
        "write",
        json!({"file_path": "src/lib.rs", "content": "fn a() {}\nfn b() {}\n"}),
    )
    .await;
    assert_eq!(s, 200, "{w}");
    assert_eq!(w["is_error"], false);
    assert!(w["diff"].as_str().unwrap().contains("+fn b() {}"), "{w}");
    let on_disk =
        std::fs::read_to_string(std::path::Path::new(&workspace).join("src/lib.rs")).unwrap();
    assert_eq!(on_disk, "fn a() {}\nfn b() {}\n");

    let (s, e) = tool(
        &app,
        &id,
        "edit",
        json!({"file_path": "src/lib.rs", "old_string": "fn b", "new_string": "fn beta"}),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    let diff = e["diff"].as_str().unwrap();
    assert!(
        diff.contains("-fn b() {}") && diff.contains("+fn beta() {}"),
        "{diff}"
    );

    let (_, r) = tool(&app, &id, "read", json!({"file_path": "src/lib.rs"})).await;
    assert_eq!(r["content"], "     1\tfn a() {}\n     2\tfn beta() {}\n");
    let (_, g) = tool(&app, &id, "glob", json!({"pattern": "**/*.rs"})).await;
    assert_eq!(g["data"]["filenames"], json!(["src/lib.rs"]));
    let (_, gr) = tool(
        &app,
        &id,
        "search",
        json!({"pattern": "BETA", "-i": true, "output_mode": "content"}),
    )
    .await;
    assert_eq!(
        gr["data"]["lines"],
        json!(["src/lib.rs:2:fn beta() {}"]),
        "{gr}"
    );
    let (_, b) = tool(
        &app,
        &id,
        "bash",
        json!({"command": "pwd; ls src; echo key=${ANTHROPIC_API_KEY:-unset}"}),
    )
    .await;
    let canonical = std::fs::canonicalize(&workspace).unwrap();
    assert_eq!(
        b["data"]["stdout"],
        format!("{}\nlib.rs\nkey=unset\n", canonical.display()),
        "{b}"
    );
    assert_eq!(b["data"]["exit_code"], 0);

    // The watchers saw every call start and end; the status stream carries status only.
    let seen = frames(&mut watcher, |v| {
        v["type"] == "tool_result"
            && v["content"]
                .as_str()
                .is_some_and(|c| c.contains("key=unset"))
    })
    .await;
    assert_eq!(
        seen.iter().filter(|v| v["type"] == "tool_call").count(),
        6,
        "{seen:?}"
    );
    let st = frames(&mut status, |v| {
        v["type"] == "tool_result" && v["tool"] == "Bash"
    })
    .await;
    let started: Vec<&Value> = st.iter().filter(|v| v["type"] == "tool_started").collect();
    assert_eq!(started.len(), 6);
    assert!(started.iter().all(|v| v["kind"] == "direct"));
    assert!(st
        .iter()
        .filter(|v| v["type"] == "tool_result")
        .all(|v| v["duration_ms"].is_u64() && v.get("content").is_none()));

    // The history has every call, newest last, filterable and paged.
    let (_, h) = app
        .request("GET", &format!("/api/sessions/{id}/tool-calls"), None, None)
        .await;
    let calls = h["data"].as_array().unwrap();
    let names: Vec<&str> = calls.iter().map(|c| c["tool"].as_str().unwrap()).collect();
    assert_eq!(names, ["Write", "Edit", "Read", "Glob", "Grep", "Bash"]);
    assert!(calls
        .iter()
        .all(|c| c["kind"] == "direct" && c["permission"]["by"] == "client"));
    assert!(calls[1]["diff"].as_str().unwrap().contains("+fn beta"));
    assert_eq!(calls[2]["is_error"], false);
    let (_, only) = app
        .request(
            "GET",
            &format!("/api/sessions/{id}/tool-calls?tool=Edit"),
            None,
            None,
        )
        .await;
    assert_eq!(only["data"].as_array().unwrap().len(), 1);
    let (_, p1) = app
        .request(
            "GET",
            &format!("/api/sessions/{id}/tool-calls?limit=4"),
            None,
            None,
        )
        .await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 4);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = app
        .request(
            "GET",
            &format!("/api/sessions/{id}/tool-calls?limit=4&cursor={cursor}"),
            None,
            None,
        )
        .await;
    assert_eq!(p2["data"][0]["tool"], "Grep");
    assert!(p2["next_cursor"].is_null());

    // The model's next turn sees what the direct calls wrote: the same workspace.
    let (s, reply) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/messages"),
            Some(&json!({"content": "[[tool:Read {\"file_path\":\"src/lib.rs\"}]]"})),
            None,
        )
        .await;
    assert_eq!(s, 200, "{reply}");
    assert!(
        reply["tool_results"].to_string().contains("fn beta"),
        "{reply}"
    );
    // Stop once the warm pool is full again: a refill cut short by the stop is another test's.
    let full = Config::default().warm_pool_size;
    wait_for(|| app.pool().warm_count() == full, Duration::from_secs(20)).await;
    app.stop().await;
}

#[tokio::test]
async fn paths_outside_the_workspace_are_refused_and_bad_input_is_named() {
    let app = app_with_tools().await;
    let (id, workspace) = session(&app, &DIRECT).await;
    std::fs::create_dir_all(&workspace).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "s3cret").unwrap();
    std::os::unix::fs::symlink(
        outside.path(),
        std::path::Path::new(&workspace).join("link"),
    )
    .unwrap();
    for (name, input, shown) in [
        ("read", json!({"file_path": "/etc/passwd"}), "/etc/passwd"),
        (
            "read",
            json!({"file_path": "link/secret.txt"}),
            "link/secret.txt",
        ),
        (
            "write",
            json!({"file_path": "../escape.txt", "content": "x"}),
            "../escape.txt",
        ),
        ("glob", json!({"pattern": "/etc/*"}), "/etc/*"),
        ("grep", json!({"pattern": "s3cret", "path": "link"}), "link"),
    ] {
        let (s, body) = tool(&app, &id, name, input).await;
        assert_eq!(s, 403, "{name}: {body}");
        assert!(body.to_string().contains(shown), "{name}: {body}");
    }
    // A search of the whole workspace does not follow the link out either.
    let (_, all) = tool(&app, &id, "grep", json!({"pattern": "s3cret"})).await;
    assert_eq!(all["data"]["num_files"], 0, "{all}");

    let (s, body) = tool(&app, &id, "read", json!({"path": "x"})).await;
    assert_eq!(s, 400);
    assert!(body.to_string().contains("file_path"), "{body}");
    let (s, body) = tool(&app, &id, "bash", json!({"command": "true", "timeout": 0})).await;
    assert_eq!(s, 400);
    assert_eq!(body["error"]["param"], "timeout", "{body}");
    let (s, _) = tool(&app, &id, "teleport", json!({})).await;
    assert_eq!(s, 404);
    // A tool failure is a result marked as an error, as the model would get it.
    let (s, body) = tool(&app, &id, "read", json!({"file_path": "missing.txt"})).await;
    assert_eq!((s, body["is_error"].clone()), (200, json!(true)), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn only_tools_the_deployment_and_the_session_allow_run() {
    // The defaults allow no built-in tool.
    let app = spawn_app_with(|c| c.warm_pool_size = Config::default().warm_pool_size).await;
    let (id, _) = session(&app, &[]).await;
    let (s, body) = tool(&app, &id, "bash", json!({"command": "true"})).await;
    assert_eq!(s, 403);
    assert!(body.to_string().contains("Bash"), "{body}");
    app.stop().await;

    let app = app_with_tools().await;
    let (id, _) = session(&app, &["Read"]).await;
    let (s, body) = tool(&app, &id, "write", json!({"file_path": "a", "content": ""})).await;
    assert_eq!(s, 403);
    assert!(body.to_string().contains("Write"), "{body}");
    let (s, _) = tool(&app, "no-such-session", "read", json!({"file_path": "a"})).await;
    assert_eq!(s, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_timed_out_bash_is_killed_with_its_whole_group() {
    let app = app_with_tools().await;
    let (id, workspace) = session(&app, &["Bash"]).await;
    let t = std::time::Instant::now();
    let (s, body) = tool(
        &app,
        &id,
        "bash",
        json!({"command": "sleep 60 & echo $! > bg.pid; sleep 60", "timeout": 500}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["is_error"], true);
    assert_eq!(body["data"]["interrupted"], true);
    assert!(t.elapsed() < Duration::from_secs(10));
    let pid: u32 = std::fs::read_to_string(std::path::Path::new(&workspace).join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_for(|| !pid_alive(pid), Duration::from_secs(5)).await,
        "the background job was killed"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_models_calls_show_in_the_history_with_their_permission_decision() {
    let app = app_with_tools().await;
    let (id, workspace) = session(&app, &["Bash"]).await;
    let mut status = ws(&app, &format!("/api/sessions/{id}/tools/stream")).await;
    let mut resp = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": r#"[[tool:Bash {"command":"touch by-model.txt"}]]"#, "stream": true}),
        )
        .await;
    let events = read_sse(&mut resp, |v| v["type"] == "permission_request").await;
    let rid = events.last().unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ans = app
        .post(
            &format!("/api/sessions/{id}/permissions/{rid}"),
            &json!({"behavior": "allow"}),
        )
        .await;
    assert_eq!(ans.status().as_u16(), 200);
    read_sse(&mut resp, |v| v["type"] == "done").await;
    let st = frames(&mut status, |v| v["type"] == "tool_result").await;
    let types: Vec<&str> = st.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "tool_started",
            "permission_requested",
            "permission_decided",
            "tool_result"
        ],
        "{st:?}"
    );
    assert_eq!(st[2]["decision"], "allowed");

    let mut calls = Value::Null;
    for _ in 0..50 {
        calls = app
            .request("GET", &format!("/api/sessions/{id}/tool-calls"), None, None)
            .await
            .1;
        if calls["data"][0]["result"].is_string()
            && calls["data"][0]["permission"]["by"].is_string()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = &calls["data"][0];
    assert_eq!(c["tool"], "Bash", "{calls}");
    assert_eq!(c["kind"], "builtin");
    assert_eq!(c["input"]["command"], "touch by-model.txt");
    assert!(c["result"].is_string(), "{c}");
    assert_eq!(c["is_error"], false);
    assert_eq!(c["permission"]["decision"], "allowed");
    assert_eq!(c["permission"]["by"], "client");
    assert_eq!(c["permission"]["request_id"], rid.as_str());
    assert!(c["turn_id"].is_string() && c["duration_ms"].is_i64());
    assert!(std::path::Path::new(&workspace)
        .join("by-model.txt")
        .exists());
    app.stop().await;
}
