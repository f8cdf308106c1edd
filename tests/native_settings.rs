//! End to end: a session's settings at run time (PATCH, context, thinking), what its process
//! reports (context usage, cost, MCP), resume and task stop; real CLI, mock upstream, defaults.

mod common;

use common::*;
use serde_json::{json, Value};

async fn defaults() -> TestApp {
    spawn_defaults_app_with(|_| {}).await
}

#[tokio::test]
async fn patch_changes_the_next_turn_and_refuses_what_cannot_change_mid_turn() {
    let mut app = defaults().await;
    let id = create_session(&app, json!({"model": "sonnet"})).await;
    send_message(&app, &id, "first FIRST-MARK [[text:one]]").await;
    assert!(app.last_model_request()["model"]
        .as_str()
        .unwrap()
        .contains("sonnet"));

    for (body, param) in [
        (json!({"permission_mode": "yolo"}), "permission_mode"),
        (json!({"effort": "huge"}), "effort"),
        (json!({"model": "gpt-9"}), "model"),
        (json!({"max_turns": 0}), "max_turns"),
        (
            json!({"thinking": {"type": "enabled"}}),
            "thinking.budget_tokens",
        ),
        (json!({"workspace": "/"}), "workspace"),
    ] {
        let (status, err) = app
            .request("PATCH", &format!("/api/sessions/{id}"), Some(&body), None)
            .await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["param"], param, "{body}: {err}");
    }
    let (status, info) = app
        .request(
            "PATCH",
            &format!("/api/sessions/{id}"),
            Some(&json!({"model": "haiku", "title": "renamed", "effort": "low", "max_turns": 3})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["model"], "haiku");
    assert_eq!(info["title"], "renamed");
    assert_eq!(info["effort"], "low");
    let r = send_message(&app, &id, "second [[report:history]]").await;
    assert!(
        r["text"].as_str().unwrap().contains("FIRST-MARK"),
        "the history went on: {r}"
    );
    assert!(app.last_model_request()["model"]
        .as_str()
        .unwrap()
        .contains("haiku"));
    assert!(app
        .cli_cmdlines()
        .iter()
        .any(|c| c.contains("--max-turns") && c.contains("haiku")));

    // Mid-turn: the permission mode may change, the model may not.
    let mut resp = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": "[[words:40]] [[slow:50]]", "stream": true}),
        )
        .await;
    read_sse(&mut resp, |v| v["type"] == "text_delta").await;
    let (status, _) = app
        .request(
            "PATCH",
            &format!("/api/sessions/{id}"),
            Some(&json!({"model": "sonnet"})),
            None,
        )
        .await;
    assert_eq!(status, 409);
    let (status, info) = app
        .request(
            "PATCH",
            &format!("/api/sessions/{id}"),
            Some(&json!({"permission_mode": "acceptEdits"})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{info}");
    read_sse(&mut resp, |v| v["type"] == "done").await;

    // Stored: a restart keeps the settings.
    app.restart().await;
    let (_, info) = app
        .request("GET", &format!("/api/sessions/{id}"), None, None)
        .await;
    assert_eq!(info["effort"], "low", "{info}");
    assert_eq!(info["max_turns"], 3);
    assert_eq!(info["permission_mode"], "acceptEdits");
    app.stop().await;
}

#[tokio::test]
async fn context_and_thinking_apply_from_the_next_turn() {
    let app = defaults().await;
    let id = create_session(&app, json!({"model": "haiku", "system_prompt": "OLD-SP"})).await;
    send_message(&app, &id, "first FIRST-MARK [[text:one]]").await;
    let (status, info) = app
        .request(
            "PUT",
            &format!("/api/sessions/{id}/context"),
            Some(&json!({"system_prompt": "NEW-SP", "append_system_prompt": "MORE-CONTEXT"})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["system_prompt"], "NEW-SP");
    assert_eq!(info["append_system_prompt"], "MORE-CONTEXT");
    let r = send_message(&app, &id, "second [[report:history]]").await;
    assert!(r["text"].as_str().unwrap().contains("FIRST-MARK"), "{r}");
    let sys = app.last_model_request()["system"].to_string();
    assert!(
        sys.contains("NEW-SP") && sys.contains("MORE-CONTEXT"),
        "{sys}"
    );
    assert!(!sys.contains("OLD-SP"), "{sys}");

    let (status, err) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/thinking"),
            Some(&json!({"type": "sometimes"})),
            None,
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "thinking.type");
    let (status, info) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/thinking"),
            Some(&json!({"type": "enabled", "budget_tokens": 2048})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{info}");
    send_message(&app, &id, "think [[text:ok]]").await;
    assert_eq!(app.last_model_request()["thinking"]["budget_tokens"], 2048);
    app.request(
        "POST",
        &format!("/api/sessions/{id}/thinking"),
        Some(&json!({"type": "disabled"})),
        None,
    )
    .await;
    send_message(&app, &id, "no thinking [[text:ok]]").await;
    let t = app.last_model_request()["thinking"].clone();
    assert!(t.is_null() || t["type"] == "disabled", "{t}");
    app.stop().await;
}

#[tokio::test]
async fn usage_cost_mcp_resume_and_tasks() {
    let mut app = defaults().await;
    let id = create_session(&app, json!({"model": "sonnet"})).await;
    let (status, err) = app
        .request("POST", "/api/sessions/nope/resume", None, None)
        .await;
    assert_eq!(status, 404, "{err}");
    send_message(&app, &id, "one [[usage:10,5]]").await;
    send_message(&app, &id, "two [[usage:20,7]]").await;

    let (status, usage) = app
        .request(
            "GET",
            &format!("/api/sessions/{id}/context-usage"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{usage}");
    assert!(usage["totalTokens"].is_number(), "{usage}");
    assert!(usage["categories"].is_array(), "{usage}");

    // The turns' usage is recorded in the background.
    let mut cost = Value::Null;
    for _ in 0..50 {
        cost = app
            .request("GET", &format!("/api/sessions/{id}/cost"), None, None)
            .await
            .1;
        if cost["turns"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(cost["turns"], 2, "{cost}");
    assert_eq!(cost["output_tokens"], 12, "{cost}");
    assert_eq!(cost["by_model"].as_object().unwrap().len(), 1, "{cost}");

    let (status, mcp) = app
        .request("GET", &format!("/api/sessions/{id}/mcp"), None, None)
        .await;
    assert_eq!(status, 200, "{mcp}");
    assert!(mcp["mcpServers"].is_array(), "{mcp}");

    let (status, err) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/tasks/t-1/stop"),
            None,
            None,
        )
        .await;
    // No turn runs, so no task can: a conflict with the session's state (issue 9 §6).
    assert_eq!(status, 409, "no turn runs: {err}");

    // After a restart the session has no process: resume starts one, once.
    app.restart().await;
    let (_, before) = app
        .request("GET", &format!("/api/sessions/{id}"), None, None)
        .await;
    assert_eq!(before["live"], false);
    let (status, info) = app
        .request("POST", &format!("/api/sessions/{id}/resume"), None, None)
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["live"], true, "{info}");
    let spawned = app.spawned();
    let (status, again) = app
        .request("POST", &format!("/api/sessions/{id}/resume"), None, None)
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(app.spawned(), spawned, "resume is idempotent");
    let r = send_message(&app, &id, "three [[report:history]]").await;
    assert!(r["text"].as_str().unwrap().contains("one"), "{r}");
    assert_eq!(
        app.spawned(),
        spawned,
        "the resumed process served the turn"
    );
    app.stop().await;
}
