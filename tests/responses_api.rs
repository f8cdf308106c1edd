//! The Responses API end to end (real server, real CLI, mock upstream): follow-ups by
//! `previous_response_id` and by `item_reference` continue the conversation's live process, and
//! a function call's output resumes the paused CLI turn.

mod common;

use common::*;
use serde_json::{json, Value};

async fn respond(app: &TestApp, body: Value) -> Value {
    let resp = app.post("/v1/responses", &body).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn text(r: &Value) -> String {
    r["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "message")
        .flat_map(|o| o["content"].as_array().unwrap().iter())
        .filter_map(|c| c["text"].as_str())
        .collect()
}

#[tokio::test]
async fn follow_ups_continue_the_live_process() {
    let app = spawn_app().await;
    let first = respond(&app, json!({"model": "sonnet", "input": "alpha"})).await;
    assert_eq!(text(&first), "alpha");
    let second = respond(
        &app,
        json!({"model": "sonnet", "previous_response_id": first["id"], "input": "beta [[report:history]]"}),
    )
    .await;
    assert!(text(&second).contains("alpha"), "{second}");
    // The same conversation again, now as an item_reference to the second reply (the Vercel
    // AI SDK's way), continues the same process too.
    let msg_id = second["output"][0]["id"].as_str().unwrap().to_string();
    let third = respond(
        &app,
        json!({"model": "sonnet", "input": [
            {"role": "user", "content": "alpha"},
            {"type": "item_reference", "id": first["output"][0]["id"]},
            {"role": "user", "content": "beta [[report:history]]"},
            {"type": "item_reference", "id": msg_id},
            {"role": "user", "content": "gamma"}]}),
    )
    .await;
    assert_eq!(text(&third), "gamma");
    assert_eq!(app.spawned(), 1, "one process served every turn");
    app.stop().await;
}

#[tokio::test]
async fn a_function_call_output_resumes_the_paused_turn() {
    let app = spawn_app().await;
    let tools = json!([{"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}]);
    let first = respond(
        &app,
        json!({"model": "sonnet", "tools": tools, "input": "time? [[tool:get_time]]"}),
    )
    .await;
    let call = first["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "function_call")
        .cloned()
        .unwrap();
    assert_eq!(call["name"], "get_time");
    let second = respond(
        &app,
        json!({"model": "sonnet", "tools": tools, "previous_response_id": first["id"],
            "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "noon"}]}),
    )
    .await;
    assert_eq!(text(&second), "done | tool results: noon");
    assert_eq!(app.spawned(), 1);
    let got = app
        .get_json(&format!("/v1/responses/{}", second["id"].as_str().unwrap()))
        .await;
    assert_eq!(got["id"], second["id"]);
    assert_eq!(got["previous_response_id"], first["id"]);
    app.stop().await;
}

#[tokio::test]
async fn a_key_sees_only_its_own_responses() {
    let app =
        spawn_app_with(|c| c.api_keys = vec!["key-one-12345".into(), "key-two-12345".into()]).await;
    let as_key = |key: &str, path: &str| {
        app.client
            .get(format!("{}{path}", app.url))
            .header("authorization", format!("Bearer {key}"))
    };
    let created = app
        .client
        .post(format!("{}/v1/responses", app.url))
        .header("authorization", "Bearer key-one-12345")
        .json(&json!({"model": "sonnet", "input": "mine"}))
        .send()
        .await
        .unwrap();
    let r: Value = created.json().await.unwrap();
    let path = format!("/v1/responses/{}", r["id"].as_str().unwrap());
    assert_eq!(
        as_key("key-one-12345", &path)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        as_key("key-two-12345", &path)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    app.stop().await;
}
