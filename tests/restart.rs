//! End to end: conversations and sessions survive a gateway restart (SQLite store + the CLI's
//! own transcripts), with the real CLI and the mock upstream.

mod common;

use common::*;
use serde_json::{json, Value};

fn transcripts(dir: &std::path::Path) -> usize {
    fn walk(d: &std::path::Path, n: &mut usize) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name()
                    .is_some_and(|f| f == "subagents" || f == "memory")
                {
                    continue;
                }
                walk(&p, n);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&dir.join("claude").join("projects"), &mut n);
    n
}

#[tokio::test]
async fn a_compatible_conversation_continues_after_a_restart() {
    let mut app = spawn_app().await;
    chat_continues_across_a_restart(&mut app).await;
    // Continued (the CLI's one session resumed), not replayed into a second session.
    assert_eq!(transcripts(app.data.path()), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_native_session_continues_after_a_restart() {
    let mut app = spawn_app().await;
    let resp = app
        .post(
            "/api/sessions",
            &json!({"model": "sonnet", "title": "durable"}),
        )
        .await;
    let s: Value = resp.json().await.unwrap();
    let id = s["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": "remember me"}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    app.restart().await;

    let info: Value = app.get_json(&format!("/api/sessions/{id}")).await;
    assert_eq!(info["title"], "durable");
    assert_eq!(info["live"], false);
    let list: Value = app.get_json("/api/sessions").await;
    assert_eq!(list["data"][0]["id"], id.as_str());
    let r: Value = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": "and now [[report:history]]"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(r["text"].as_str().unwrap().contains("remember me"), "{r}");
    let h: Value = app.get_json(&format!("/api/sessions/{id}/history")).await;
    assert!(h["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "user" && e["payload"]["content"][0]["text"] == "remember me"));
    app.stop().await;
}

#[tokio::test]
async fn usage_and_tool_calls_are_recorded_per_request() {
    let app = spawn_app().await;
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]);
    let first = user("[[tool:lookup {\"q\":1}]] [[usage:13,4]]");
    let resp = app
        .post(
            "/v1/chat/completions",
            &json!({"model": "sonnet", "tools": tools, "messages": [first]}),
        )
        .await;
    let id = resp.headers()["x-ccgw-conversation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let r1: Value = resp.json().await.unwrap();
    let call = r1["choices"][0]["message"]["tool_calls"][0].clone();
    let (status, _) = app
        .chat(json!({"model": "sonnet", "tools": tools, "messages": [first, r1["choices"][0]["message"],
            {"role": "tool", "tool_call_id": call["id"], "content": "found"}]}))
        .await;
    assert_eq!(status, 200);
    let store = app.server().state.conversations.store.clone();
    let mut settled = false;
    for _ in 0..100 {
        let calls = store.list_tool_calls(&id).await.unwrap_or_default();
        let usage = store.usage_for_session(&id).await.unwrap_or_default();
        if usage.requests == 2 && calls.iter().any(|c| c.outcome.as_deref() == Some("ok")) {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        settled,
        "usage for both requests and the tool call's outcome are stored"
    );
    let calls = store.list_tool_calls(&id).await.unwrap();
    assert_eq!(calls[0].tool, "lookup");
    assert_eq!(calls[0].kind, "client");
    let usage = store.usage_for_session(&id).await.unwrap();
    assert!(usage.input_tokens >= 13, "{usage:?}");
    app.stop().await;
}
