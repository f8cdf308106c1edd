//! End to end: slash commands through `/api/.../commands` (real CLI, mock upstream, defaults).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn defaults_with(tools: &[&str]) -> TestApp {
    let tools: Vec<String> = tools.iter().map(|t| t.to_string()).collect();
    spawn_defaults_app_with(move |c| c.builtin_tools = tools).await
}

async fn command(app: &TestApp, id: &str, name: &str, body: Value) -> (u16, Value) {
    app.request(
        "POST",
        &format!("/api/sessions/{id}/commands/{name}"),
        Some(&body),
        None,
    )
    .await
}

#[tokio::test]
async fn commands_are_listed_and_the_gateway_answers_its_own() {
    let app = defaults_with(&[]).await;
    let (status, list) = app.request("GET", "/api/commands", None, None).await;
    assert_eq!(status, 200, "{list}");
    let find = |name: &str| {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
    };
    assert_eq!(find("compact").unwrap()["source"], "cli");
    assert!(find("compact").unwrap()["argument_hint"].is_string());
    assert_eq!(find("help").unwrap()["source"], "gateway");
    assert!(find("config").is_none(), "refused commands are not offered");

    let id = create_session(&app, json!({"model": "sonnet"})).await;
    let (status, help) = command(&app, &id, "help", json!({})).await;
    assert_eq!(status, 200, "{help}");
    assert!(
        help["output"].as_str().unwrap().contains("/compact"),
        "{help}"
    );
    assert_eq!(help["session_id"], id.as_str());
    let (_, agents) = command(&app, &id, "agents", json!({})).await;
    assert!(
        agents["output"].as_str().unwrap().contains("Explore"),
        "{agents}"
    );
    let (status, model) = command(&app, &id, "model", json!({"args": "haiku"})).await;
    assert_eq!(status, 200, "{model}");
    assert_eq!(model["structured"]["model"], "haiku");
    send_message(&app, &id, "hi [[text:ok]]").await;
    assert!(app.last_model_request()["model"]
        .as_str()
        .unwrap()
        .contains("haiku"));

    let (status, err) = command(&app, &id, "no-such-command", json!({})).await;
    assert_eq!(status, 404, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-command"));
    let (status, _) = command(&app, &id, "config", json!({})).await;
    assert_eq!(status, 400);
    let (status, err) = command(&app, &id, "cost", json!({"args": 5})).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "args");
    app.stop().await;
}

#[tokio::test]
async fn context_cost_compact_and_clear() {
    let app = defaults_with(&[]).await;
    let id = create_session(&app, json!({"model": "haiku"})).await;
    for i in 0..4 {
        send_message(
            &app,
            &id,
            &format!("message {i} MSG-{i} [[text:reply {i}]]"),
        )
        .await;
    }
    let (status, ctx) = command(&app, &id, "context", json!({})).await;
    assert_eq!(status, 200, "{ctx}");
    assert!(ctx["structured"]["totalTokens"].is_number(), "{ctx}");
    let table = ctx["output"].as_str().unwrap().to_string();
    assert!(!table.is_empty(), "{ctx}");

    let (status, cost) = command(&app, &id, "cost", json!({})).await;
    assert_eq!(status, 200, "{cost}");
    assert!(cost["output"].as_str().unwrap().contains("cost"), "{cost}");
    assert!(cost["structured"]["turns"].as_u64().unwrap() >= 4, "{cost}");

    let (status, compact) = command(
        &app,
        &id,
        "compact",
        json!({"args": ["keep", "MSG-3", "[[text:SUMMARY-OF-THE-TALK]]"]}),
    )
    .await;
    assert_eq!(status, 200, "{compact}");
    assert_ne!(
        compact["output"],
        table.as_str(),
        "not the earlier /context output"
    );
    assert!(compact["structured"]["pre_tokens"].is_number(), "{compact}");
    let summarised = app.last_model_request()["messages"].to_string();
    assert!(
        summarised.contains("MSG-3"),
        "the instructions reached the model"
    );

    let before = app
        .request("GET", &format!("/api/sessions/{id}"), None, None)
        .await
        .1;
    let (status, clear) = command(&app, &id, "clear", json!({})).await;
    assert_eq!(status, 200, "{clear}");
    assert_eq!(clear["session_id"], id.as_str());
    let after = app
        .request("GET", &format!("/api/sessions/{id}"), None, None)
        .await
        .1;
    assert_ne!(before["cli_session_id"], after["cli_session_id"], "{after}");
    let r = send_message(&app, &id, "fresh [[report:history]]").await;
    assert!(!r["text"].as_str().unwrap().contains("MSG-0"), "{r}");
    let history = app
        .request("GET", &format!("/api/sessions/{id}/history"), None, None)
        .await
        .1;
    assert!(
        history.to_string().contains("/clear"),
        "the history marks the boundary"
    );

    // SSE.
    let resp = app
        .post(
            &format!("/api/sessions/{id}/commands/cost"),
            &json!({"stream": true}),
        )
        .await;
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.last().unwrap()["type"], "done", "{events:?}");
    app.stop().await;
}

#[tokio::test]
async fn init_review_and_workspace_commands() {
    let app = defaults_with(&["Write"]).await;
    let id = create_session(&app, json!({"model": "sonnet", "tools": ["Write"]})).await;
    send_message(&app, &id, "hello [[text:hi]]").await;
    let ws = app
        .request("GET", &format!("/api/sessions/{id}"), None, None)
        .await
        .1["workspace"]
        .as_str()
        .unwrap()
        .to_string();
    let claude_md = std::path::Path::new(&ws).join("CLAUDE.md");
    let write = json!({"file_path": claude_md, "content": "# Project memory\n"});
    // /init asks for Write like any tool; the JSON reply says so instead of hanging.
    let (status, init) = command(
        &app,
        &id,
        "init",
        json!({"args": format!("[[tool:Write {write}]]")}),
    )
    .await;
    assert_eq!(status, 200, "{init}");
    assert_eq!(init["stop_reason"], "permission_required", "{init}");
    let rid = init["permission_requests"][0]["request_id"]
        .as_str()
        .unwrap();
    assert_eq!(init["permission_requests"][0]["tool_name"], "Write");
    let (status, _) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/permissions/{rid}"),
            Some(&json!({"behavior": "allow"})),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        wait_for(|| claude_md.is_file(), Duration::from_secs(20)).await,
        "/init wrote CLAUDE.md"
    );
    // The session is usable again once the turn ends.
    let mut ok = false;
    for _ in 0..100 {
        let (status, _) = app
            .request(
                "POST",
                &format!("/api/sessions/{id}/messages"),
                Some(&json!({"content": "after [[text:fine]]"})),
                None,
            )
            .await;
        if status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the session works after the permission");

    let (status, review) =
        command(&app, &id, "review", json!({"args": "[[text:REVIEWED-OK]]"})).await;
    assert_eq!(status, 200, "{review}");
    assert!(
        review["output"].as_str().unwrap().contains("REVIEWED-OK"),
        "{review}"
    );

    let dir = std::path::Path::new(&ws).join(".claude/commands");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("greet.md"),
        "---\ndescription: Greets someone\nargument-hint: <name>\n---\nGreet $1 warmly [[text:GREETED-$1]]\n",
    )
    .unwrap();
    let (_, list) = app
        .request("GET", &format!("/api/sessions/{id}/commands"), None, None)
        .await;
    let greet = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "greet")
        .cloned()
        .expect("the workspace's command is listed");
    assert_eq!(greet["source"], "workspace");
    assert_eq!(greet["description"], "Greets someone");
    let (status, r) = command(&app, &id, "greet", json!({"args": ["Ann"]})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["output"], "GREETED-Ann", "{r}");
    app.stop().await;
}
