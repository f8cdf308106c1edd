//! End to end: the model's file tools stay in the session's workspace (real CLI, mock upstream;
//! the mock's `[[tool:NAME {input}]]` makes the model call a built-in tool).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

const FILE_TOOLS: [&str; 5] = ["Read", "Glob", "Grep", "Edit", "Write"];

/// root/{ws/{inside.txt, link -> root/outside}, outside/secret.txt}
struct Layout {
    _root: tempfile::TempDir,
    root: PathBuf,
    ws: PathBuf,
    outside: PathBuf,
}

fn layout() -> Layout {
    let root = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(root.path()).unwrap();
    let ws = base.join("ws");
    let outside = base.join("outside");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(ws.join("inside.txt"), "hello inside\n").unwrap();
    std::fs::write(outside.join("secret.txt"), "TOPSECRET\n").unwrap();
    std::os::unix::fs::symlink(&outside, ws.join("link")).unwrap();
    Layout {
        _root: root,
        root: base,
        ws,
        outside,
    }
}

fn directive(tool: &str, input: Value) -> String {
    format!("[[tool:{tool} {input}]]")
}

/// Every way out for every file tool: `../`, an absolute path, a symlink inside pointing out.
fn escapes(outside: &Path) -> Vec<String> {
    let abs = outside.display().to_string();
    let mut calls = Vec::new();
    for base in ["../outside".to_string(), abs, "link".to_string()] {
        calls.push(directive(
            "Read",
            json!({"file_path": format!("{base}/secret.txt")}),
        ));
        calls.push(directive("Glob", json!({"pattern": "*", "path": base})));
        calls.push(directive(
            "Grep",
            json!({"pattern": "TOPSECRET", "path": base, "output_mode": "content"}),
        ));
        // The CLI refuses to edit a file it has not read (and every read out is refused), but
        // an empty `old_string` creates a new file: that Edit reaches the check.
        calls.push(directive(
            "Edit",
            json!({"file_path": format!("{base}/edited.txt"), "old_string": "", "new_string": "EDITED"}),
        ));
        calls.push(directive(
            "Write",
            json!({"file_path": format!("{base}/written.txt"), "content": "WRITTEN"}),
        ));
    }
    calls
}

async fn session(app: &TestApp, ws: &Path) -> String {
    let resp = app
        .post(
            "/api/sessions",
            &json!({"model": "sonnet", "workspace": ws, "tools": FILE_TOOLS, "allowed_tools": FILE_TOOLS}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    let s: Value = resp.json().await.unwrap();
    s["id"].as_str().unwrap().to_string()
}

/// One turn; its tool results, in call order.
async fn turn(app: &TestApp, id: &str, content: &str) -> Vec<Value> {
    let mut resp = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": content, "stream": true}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let events = read_sse(&mut resp, |v| v["type"] == "done" || v["type"] == "error").await;
    assert_eq!(events.last().unwrap()["type"], "done", "{events:?}");
    // Read-only tools run at once and finish in any order; the mock numbers its calls
    // (`toolu_mock_<request>_<k>`), so put the results back in call order.
    let mut results: Vec<Value> = events
        .into_iter()
        .filter(|e| e["type"] == "tool_result")
        .collect();
    results.sort_by_key(|r| {
        r["tool_use_id"]
            .as_str()
            .and_then(|id| id.rsplit('_').next())
            .and_then(|k| k.parse::<usize>().ok())
    });
    results
}

#[tokio::test]
async fn file_tools_are_refused_outside_the_workspace_and_work_inside() {
    let l = layout();
    let root = l.root.clone();
    let app = spawn_app_with(|c| {
        c.builtin_tools = FILE_TOOLS.iter().map(|t| t.to_string()).collect();
        c.workspace_roots = vec![root];
    })
    .await;
    let id = session(&app, &l.ws).await;

    let calls = escapes(&l.outside);
    let results = turn(&app, &id, &calls.join(" ")).await;
    assert_eq!(results.len(), calls.len(), "{results:?}");
    for (call, result) in calls.iter().zip(&results) {
        let text = result["content"].to_string();
        assert_eq!(result["is_error"], true, "{call}: {text}");
        assert!(
            text.contains("is outside the session's workspace"),
            "{call}: {text}"
        );
        assert!(!text.contains("TOPSECRET"), "{call}: {text}");
    }
    assert_eq!(
        std::fs::read_to_string(l.outside.join("secret.txt")).unwrap(),
        "TOPSECRET\n"
    );
    for name in ["written.txt", "edited.txt"] {
        assert!(!l.outside.join(name).exists(), "{name}");
        assert!(!l.root.join(name).exists(), "{name}");
    }
    // The refusals are in the session's history.
    let history = app.get_json(&format!("/api/sessions/{id}/history")).await;
    assert!(
        history
            .to_string()
            .contains("is outside the session's workspace"),
        "{history}"
    );

    // Inside, the same tools work.
    let inside = [
        directive("Read", json!({"file_path": "inside.txt"})),
        directive("Glob", json!({"pattern": "*.txt"})),
        directive(
            "Grep",
            json!({"pattern": "hello", "path": ".", "output_mode": "content"}),
        ),
        directive(
            "Write",
            json!({"file_path": "sub/new.txt", "content": "NEW"}),
        ),
    ];
    let results = turn(&app, &id, &inside.join(" ")).await;
    assert_eq!(results.len(), inside.len(), "{results:?}");
    for (call, result) in inside.iter().zip(&results) {
        assert_ne!(result["is_error"], true, "{call}: {result}");
    }
    assert!(
        results[0]["content"].to_string().contains("hello inside"),
        "{results:?}"
    );
    assert!(results[1]["content"].to_string().contains("inside.txt"));
    assert!(results[2]["content"].to_string().contains("hello inside"));
    assert_eq!(
        std::fs::read_to_string(l.ws.join("sub/new.txt")).unwrap(),
        "NEW"
    );
    let abs = l.ws.join("inside.txt").display().to_string();
    let edit = directive(
        "Edit",
        json!({"file_path": abs, "old_string": "hello", "new_string": "bye"}),
    );
    let results = turn(&app, &id, &edit).await;
    assert_ne!(results[0]["is_error"], true, "{results:?}");
    assert_eq!(
        std::fs::read_to_string(l.ws.join("inside.txt")).unwrap(),
        "bye inside\n"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_gateways_own_dirs_are_refused_even_inside_the_workspace() {
    // The workspace root holds the data dir: a session working at the root still cannot
    // reach the database or the CLI's config.
    let l = layout();
    let data = l.root.join("ws/gateway-data");
    let (root, data_dir) = (l.root.clone(), data.clone());
    let app = spawn_app_with(|c| {
        c.builtin_tools = FILE_TOOLS.iter().map(|t| t.to_string()).collect();
        c.workspace_roots = vec![root];
        c.data_dir = data_dir;
    })
    .await;
    std::fs::write(data.join("notes.txt"), "gateway notes\n").unwrap();
    let id = session(&app, &l.ws).await;
    let calls = [
        directive("Read", json!({"file_path": "gateway-data/notes.txt"})),
        directive(
            "Glob",
            json!({"pattern": "**/*", "path": "gateway-data/claude"}),
        ),
        directive(
            "Write",
            json!({"file_path": "gateway-data/x.txt", "content": "x"}),
        ),
    ];
    let results = turn(&app, &id, &calls.join(" ")).await;
    assert_eq!(results.len(), calls.len(), "{results:?}");
    for (call, result) in calls.iter().zip(&results) {
        let text = result["content"].to_string();
        assert_eq!(result["is_error"], true, "{call}: {text}");
        assert!(
            text.contains("a directory the gateway keeps to itself"),
            "{call}: {text}"
        );
    }
    assert!(!data.join("x.txt").exists());
    app.stop().await;
}

/// The issue's own report, under the defaults (warm pool on, temporary workspace, no keys):
/// `Read` of `../../../../../etc/hostname` through the Messages API.
#[tokio::test]
async fn reading_etc_hostname_is_refused_under_the_defaults() {
    let app = spawn_app_with(|c| {
        c.builtin_tools = vec!["Read".into()];
        c.warm_pool_size = ccgw::config::Config::default().warm_pool_size;
    })
    .await;
    for path in ["../../../../../etc/hostname", "/etc/hostname"] {
        let body = json!({
            "model": "sonnet",
            "max_tokens": 1024,
            "builtin_tools": ["Read"],
            "messages": [user(&directive("Read", json!({"file_path": path})))],
        });
        let (status, body) = app.anthropic(body).await;
        assert_eq!(status, 200, "{body}");
        // Nothing but the refusal came back to the model (the CLI hands the hook the path
        // made absolute against the workspace).
        let text = body["content"][0]["text"].as_str().unwrap_or_default();
        assert!(
            text.starts_with("done | tool results: path '")
                && text.ends_with("etc/hostname' is outside the session's workspace")
                && !text.contains('\n'),
            "{path}: {body}"
        );
    }
    app.stop().await;
}

/// Bash runs in Claude Code's sandbox (bubblewrap): it cannot read the database or the CLI's
/// config, cannot write outside the workspace, and reaches no network, while it works inside.
#[tokio::test]
async fn bash_is_sandboxed() {
    let app = spawn_app_with(|c| c.builtin_tools = vec!["Bash".into()]).await;
    let health = app.get_json("/health").await;
    let how = health["bash_sandbox"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !how.starts_with("bubblewrap") {
        // Without the sandbox, Bash is refused (unsandboxed_bash is off).
        let resp = app
            .post(
                "/api/sessions",
                &json!({"model": "sonnet", "tools": ["Bash"]}),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 400, "{how}");
        app.stop().await;
        return;
    }
    let resp = app
        .post(
            "/api/sessions",
            &json!({"model": "sonnet", "tools": ["Bash"], "allowed_tools": ["Bash"]}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    let s: Value = resp.json().await.unwrap();
    let id = s["id"].as_str().unwrap().to_string();
    let data = app.data.path().display().to_string();
    let script = format!(
        "head -c 16 {data}/ccgw.db >/dev/null 2>&1 && echo DB=read || echo DB=denied; \
         [ -z \"$(ls -A {data}/claude 2>/dev/null)\" ] && echo CFG=hidden || echo CFG=visible; \
         touch {data}/escape.txt 2>/dev/null && echo WRITE_OUT=ok || echo WRITE_OUT=denied; \
         echo inside > inside.txt && echo WRITE_IN=ok; \
         (exec 3<>/dev/tcp/1.1.1.1/80) 2>/dev/null && echo NET=open || echo NET=closed"
    );
    let results = turn(&app, &id, &directive("Bash", json!({ "command": script }))).await;
    let out = results[0]["content"].to_string();
    for want in [
        "DB=denied",
        "CFG=hidden",
        "WRITE_OUT=denied",
        "WRITE_IN=ok",
        "NET=closed",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert!(!std::path::Path::new(&data).join("escape.txt").exists());
    // What the sandbox hides is there for the gateway itself.
    assert!(std::fs::read_dir(app.data.path().join("claude"))
        .unwrap()
        .next()
        .is_some());
    app.stop().await;
}
