//! Capacity leaks: a client that gives up before its first byte, at any point of a turn's
//! start, must give back its slot, its queue place and its process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccgw::domain::conversations::Stage;
use serde_json::{json, Value};

use crate::common::*;
use crate::support::*;

/// POST a chat completion and give up after `after`: the client goes away mid-request.
async fn give_up(app: &TestApp, body: Value, after: Duration) {
    let client = reqwest::Client::builder().timeout(after).build().unwrap();
    let sent = client
        .post(format!("{}/v1/chat/completions", app.url))
        .json(&body)
        .send()
        .await;
    assert!(sent.is_err(), "the request was meant to be cut off");
}

/// A history the gateway has never seen, ending in a tool call and its result: its tail is
/// replayed over stdin into the new process before the turn starts.
fn replayed_history(prompt: &str) -> Value {
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "parameters": {"type": "object", "properties": {}}}}]);
    json!({"model": "sonnet", "tools": tools, "messages": [
        user("earlier question"),
        assistant("earlier answer"),
        user("look it up"),
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "found it"},
        user(prompt),
    ]})
}

#[tokio::test]
async fn clients_that_give_up_during_process_set_up_give_back_every_slot() {
    let app = spawn_defaults().await;
    // A model without warm processes starts one: spawn, then `initialize`, which a new CLI
    // answers only once it has booted. Cut off at several moments of that.
    for ms in [5, 60, 250, 600] {
        give_up(
            &app,
            json!({"model": "haiku", "messages": [user("cold start")]}),
            Duration::from_millis(ms),
        )
        .await;
    }
    assert_at_rest(&app, "cut off while a new process started").await;
    // The history replay of a new (warm) process.
    for ms in [5, 40, 120, 300] {
        give_up(
            &app,
            replayed_history("and now?"),
            Duration::from_millis(ms),
        )
        .await;
    }
    assert_at_rest(&app, "cut off during a history replay").await;
    // Every slot came back: a request still gets an answer, not a 429.
    let (status, body) = app
        .chat(json!({"model": "haiku", "messages": [user("still there?")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_gives_up_in_the_queue_leaves_no_count_and_the_pool_refills() {
    let app = spawn_defaults_with(|c| {
        c.max_live_processes = 2;
        c.process_idle_ttl_secs = 2;
    })
    .await;
    // Two streams hold both slots (they take the two warm processes).
    let mut busy = Vec::new();
    for i in 0..2 {
        let (url, client) = (app.url.clone(), app.client.clone());
        busy.push(tokio::spawn(async move {
            let body = json!({"model": "sonnet", "stream": true,
                "messages": [user(&format!("busy {i} [[slow:100]] [[words:30]]"))]});
            let resp = client
                .post(format!("{url}/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .unwrap();
            resp.text().await.unwrap()
        }));
    }
    assert!(
        wait_for(
            || app.pool().live_count() == 2 && app.pool().warm_count() == 0,
            Duration::from_secs(20)
        )
        .await
    );
    // A third waits in the queue, then gives up.
    give_up(
        &app,
        json!({"model": "sonnet", "messages": [user("queued")]}),
        Duration::from_millis(700),
    )
    .await;
    assert!(
        wait_for(|| app.pool().queue_depth() == 0, Duration::from_secs(2)).await,
        "queue depth {} after the queued client left",
        app.pool().queue_depth()
    );
    for b in busy {
        assert!(b.await.unwrap().contains("[DONE]"));
    }
    // The idle conversation processes expire, and the warm pool takes their room again.
    assert_at_rest(&app, "after the queue emptied").await;
    app.stop().await;
}

/// Hold every request's start at `target` until dropped; tell the test when one got there.
fn hold_at(
    app: &TestApp,
) -> (
    Arc<Mutex<Option<Stage>>>,
    tokio::sync::mpsc::UnboundedReceiver<Stage>,
) {
    let target: Arc<Mutex<Option<Stage>>> = Arc::default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let t = target.clone();
    app.server()
        .state
        .conversations
        .set_stage_hook(Box::new(move |stage| {
            if *t.lock().unwrap() == Some(stage) {
                let _ = tx.send(stage);
                Box::pin(tokio::time::sleep(Duration::from_secs(120)))
            } else {
                Box::pin(std::future::ready(()))
            }
        }));
    (target, rx)
}

#[tokio::test]
async fn a_request_dropped_at_any_stage_of_its_start_gives_everything_back() {
    let app = spawn_defaults().await;
    let (target, mut reached) = hold_at(&app);
    // A conversation with a live process, continued below (its process is set up again).
    let (status, r1) = app
        .chat(json!({"model": "sonnet", "messages": [user("the first turn")]}))
        .await;
    assert_eq!(status, 200);
    let a1 = r1["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let continued = |prompt: &str| {
        json!({"model": "sonnet", "temperature": 0.5,
            "messages": [user("the first turn"), assistant(&a1), user(prompt)]})
    };
    let session = new_session(&app.client, &app.url, json!({"model": "sonnet"})).await;
    let session_path = format!("/api/sessions/{session}/messages");
    // Each case, and the idle conversation processes left afterwards (the first turn's, until
    // its conversation's set-up is dropped and the process with it).
    let cases: Vec<(Stage, &str, Value, usize)> = vec![
        (
            Stage::Initialize,
            "/v1/chat/completions",
            json!({"model": "sonnet", "messages": [user("warm")]}),
            1,
        ),
        (
            Stage::Initialize,
            "/v1/chat/completions",
            json!({"model": "haiku", "messages": [user("cold")]}),
            1,
        ),
        (
            Stage::Configure,
            "/v1/chat/completions",
            continued("dropped"),
            0,
        ),
        (
            Stage::Replay,
            "/v1/chat/completions",
            replayed_history("dropped"),
            0,
        ),
        (
            Stage::Begin,
            "/v1/chat/completions",
            json!({"model": "sonnet", "messages": [user("begin")]}),
            0,
        ),
        (
            Stage::Begin,
            "/v1/messages",
            json!({"model": "sonnet", "max_tokens": 9, "messages": [user("begin")]}),
            0,
        ),
        (Stage::Begin, &session_path, json!({"content": "begin"}), 0),
    ];
    for (stage, path, body, idle) in cases {
        *target.lock().unwrap() = Some(stage);
        let (url, client) = (format!("{}{path}", app.url), app.client.clone());
        let request = tokio::spawn(async move { client.post(url).json(&body).send().await });
        let got = tokio::time::timeout(Duration::from_secs(30), reached.recv())
            .await
            .expect("the request reached its stage");
        assert_eq!(got, Some(stage));
        // The client goes away.
        request.abort();
        let _ = request.await;
        *target.lock().unwrap() = None;
        assert_at_rest_with(&app, idle, &format!("dropped at {stage:?} of {path}")).await;
    }
    // Nothing was lost: the conversation and the session go on with their history.
    let (status, r) = app.chat(continued("on [[report:history]]")).await;
    assert_eq!(status, 200, "{r}");
    let got = model_messages(&app.last_model_request());
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        vec!["the first turn", "the first turn", "on [[report:history]]"]
    );
    let (status, r) = say(&app.client, &app.url, &session, json!("on")).await;
    assert_eq!(status, 200, "{r}");
    app.stop().await;
}
