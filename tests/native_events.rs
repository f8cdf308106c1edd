//! End to end: events a watcher can rely on (issue 9 §6), with the real CLI and the mock
//! upstream, under the defaults (warm pool on): every event's envelope (`seq`, `turn_id`,
//! `ts`), the same live, watched and in the history; resuming a watcher with `Last-Event-ID`
//! and `?after=`; retries, compaction and status; subagents and stopping their tasks.

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::{json, Value};

async fn defaults() -> TestApp {
    spawn_defaults_app_with(|_| {}).await
}

/// An open watcher stream of the session (subscribed once this returns).
async fn watch(app: &TestApp, id: &str, query: &str, last_id: Option<u64>) -> reqwest::Response {
    let mut req = app
        .client
        .get(format!("{}/api/sessions/{id}/events{query}", app.url));
    if let Some(n) = last_id {
        req = req.header("Last-Event-ID", n.to_string());
    }
    let resp = req.send().await.expect("watcher connected");
    assert_eq!(resp.status().as_u16(), 200);
    resp
}

/// A streamed message's events, through `done`.
async fn stream_message(app: &TestApp, id: &str, text: &str) -> Vec<Value> {
    let mut resp = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &json!({"content": text, "stream": true}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    read_sse(&mut resp, is_end).await
}

/// The end of a live turn (a replayed `done` is an earlier turn's).
fn is_end(v: &Value) -> bool {
    (v["type"] == "done" || v["type"] == "error") && v.get("replayed").is_none()
}

async fn history(app: &TestApp, id: &str) -> Vec<Value> {
    let h = app.get_json(&format!("/api/sessions/{id}/history")).await;
    h["data"].as_array().expect("history data").clone()
}

/// An event that is a history entry of its own (carries `id:`; a delta is not).
fn stored(v: &Value) -> bool {
    v.get("stored").is_none()
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .filter(|v| stored(v))
        .map(|v| v["seq"].as_u64().expect("seq"))
        .collect()
}

fn envelope(v: &Value) -> (u64, String, String) {
    (
        v["seq"].as_u64().unwrap(),
        v["turn_id"].as_str().unwrap().to_string(),
        v["ts"].as_str().unwrap().to_string(),
    )
}

fn is_ts(s: &str) -> bool {
    // 2026-12-03T06:40:40.120Z
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
}

#[tokio::test]
async fn every_event_carries_seq_turn_and_ts_the_same_live_watched_and_in_the_history() {
    let app = defaults().await;
    let id = create_session(&app, json!({})).await;
    let mut watcher = watch(&app, &id, "", None).await;
    let live = stream_message(&app, &id, "[[think:hmm]] [[text:hello events]]").await;
    let watched = read_sse(&mut watcher, is_end).await;

    // The requester has what it sent; its watchers see that too, as the turn's first entry.
    assert_eq!(watched[0]["type"], "user_message", "{watched:?}");
    assert_eq!(watched[0]["seq"], 1);
    let turn = live[0]["turn_id"].as_str().expect("turn_id").to_string();
    let mut last = 0;
    for v in &live {
        assert_eq!(v["session_id"], id.as_str(), "{v}");
        assert_eq!(v["turn_id"], turn.as_str(), "one turn: {v}");
        assert!(is_ts(v["ts"].as_str().unwrap_or_default()), "{v}");
        let seq = v["seq"].as_u64().expect("every event has a seq");
        if stored(v) {
            assert!(seq > last, "stored seqs strictly increase: {v}");
        } else {
            assert!(seq >= last, "a delta sorts after the last entry: {v}");
        }
        last = seq;
    }
    let kinds: Vec<&str> = live
        .iter()
        .filter(|v| stored(v))
        .map(|v| v["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["thinking", "text", "done"], "{live:?}");
    let text = live.iter().find(|v| v["type"] == "text").unwrap();
    assert_eq!(text["text"], "hello events");
    assert!(live.iter().any(|v| v["type"] == "text_delta" && !stored(v)));

    // The watcher saw the same events with the same envelopes.
    let env = |evs: &[Value]| -> Vec<(String, u64, String, String)> {
        evs.iter()
            .map(|v| {
                let (s, t, ts) = envelope(v);
                (v["type"].as_str().unwrap().to_string(), s, t, ts)
            })
            .collect()
    };
    assert_eq!(env(&live), env(&watched[1..]));

    // The history holds each stored event under its seq, turn and time.
    let h = history(&app, &id).await;
    let stored_live: Vec<&Value> = watched.iter().filter(|v| stored(v)).collect();
    assert_eq!(h.len(), stored_live.len(), "{h:?}");
    for (entry, ev) in h.iter().zip(stored_live) {
        assert_eq!(entry["seq"], ev["seq"], "{entry} / {ev}");
        assert_eq!(entry["turn_id"], ev["turn_id"]);
        assert_eq!(entry["ts"], ev["ts"]);
    }
    let kinds: Vec<&str> = h.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["user", "thinking", "assistant", "result"]);
    assert_eq!(h[2]["payload"]["text"], "hello events");

    // The JSON reply of the next turn numbers on.
    let r = send_message(&app, &id, "[[text:again]]").await;
    assert_eq!(r["text"], "again");
    let h2 = history(&app, &id).await;
    assert_eq!(h2.len(), h.len() + 3, "user, assistant, result");
    assert_eq!(h2[h.len()]["seq"].as_u64(), Some(last + 1));
    assert_ne!(h2[h.len()]["turn_id"], turn.as_str(), "a new turn");
}

#[tokio::test]
async fn a_watcher_that_reconnects_gets_exactly_what_it_missed_while_a_turn_streams() {
    let app = defaults().await;
    let id = create_session(&app, json!({})).await;
    send_message(&app, &id, "[[text:first turn]]").await;
    assert_eq!(seqs_of_history(&app, &id).await, vec![1, 2, 3]);

    // A watcher sees the second turn start, then goes away mid-stream.
    let mut first = watch(&app, &id, "", None).await;
    let sender = {
        let (url, client, id) = (app.url.clone(), app.client.clone(), id.clone());
        tokio::spawn(async move {
            let mut resp = client
                .post(format!("{url}/api/sessions/{id}/messages"))
                .json(&json!({"content": "[[slow:120]] [[words:25]]", "stream": true}))
                .send()
                .await
                .unwrap();
            read_sse(&mut resp, is_end).await
        })
    };
    let seen = read_sse(&mut first, |v| v["type"] == "text_delta").await;
    drop(first);
    let last_id = *seqs(&seen).last().expect("the user message was seen");
    assert_eq!(last_id, 4);

    // One reconnects with Last-Event-ID, another with ?after= from further back.
    let mut by_header = watch(&app, &id, "", Some(last_id)).await;
    let mut by_query = watch(&app, &id, "?after=2", None).await;
    let resumed = read_sse(&mut by_header, is_end).await;
    let replayed = read_sse(&mut by_query, is_end).await;
    let live = sender.await.unwrap();

    let all = seqs_of_history(&app, &id).await;
    assert_eq!(all, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(seqs(&resumed), vec![5, 6], "{resumed:?}");
    assert_eq!(seqs(&replayed), vec![3, 4, 5, 6], "{replayed:?}");
    assert_eq!(replayed[0]["type"], "done");
    assert_eq!(replayed[0]["replayed"], true);
    assert_eq!(replayed[1]["type"], "user_message");
    // Nothing twice, and the whole answer arrives as its block.
    for evs in [&resumed, &replayed] {
        let s = seqs(evs);
        assert_eq!(s.iter().collect::<HashSet<_>>().len(), s.len());
        let text = evs
            .iter()
            .find(|v| v["type"] == "text")
            .expect("the text block");
        let want = live.iter().find(|v| v["type"] == "text").unwrap();
        assert_eq!(text["text"], want["text"]);
        assert_eq!(envelope(text), envelope(want));
    }
    assert!(live.iter().any(|v| v["type"] == "text_delta"));
}

async fn seqs_of_history(app: &TestApp, id: &str) -> Vec<u64> {
    history(app, id)
        .await
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_bad_resume_point_is_a_400_naming_it() {
    let app = defaults().await;
    let id = create_session(&app, json!({})).await;
    for bad in ["x", "-1", "1.5"] {
        let (status, body) = app
            .request(
                "GET",
                &format!("/api/sessions/{id}/events?after={bad}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["param"], "after", "{body}");
    }
    let resp = app
        .client
        .get(format!("{}/api/sessions/{id}/events", app.url))
        .header("Last-Event-ID", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["param"], "Last-Event-ID", "{body}");
    let (status, _) = app
        .request("GET", "/api/sessions/no-such/events?after=1", None, None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_retried_upstream_call_is_an_event_and_in_the_history() {
    // The test harness turns the CLI's retries off; the gateway's default retries.
    let app = spawn_defaults_app_with(|c| c.cli_max_retries = 2).await;
    let id = create_session(&app, json!({})).await;
    let live = stream_message(&app, &id, "[[fail:529:1]] [[text:after a retry]]").await;
    let retry = live
        .iter()
        .find(|v| v["type"] == "retry")
        .unwrap_or_else(|| panic!("a retry event: {live:?}"));
    assert_eq!(retry["error_status"], 529, "{retry}");
    assert_eq!(retry["attempt"], 1);
    assert!(stored(retry));
    assert_eq!(live.last().unwrap()["type"], "done");
    let h = history(&app, &id).await;
    let entry = h
        .iter()
        .find(|e| e["kind"] == "retry")
        .expect("retry in the history");
    assert_eq!(entry["seq"], retry["seq"]);
    assert_eq!(entry["payload"]["error_status"], 529);
}

#[tokio::test]
async fn compaction_and_its_status_are_events_and_in_the_history() {
    let app = defaults().await;
    let id = create_session(&app, json!({"model": "haiku"})).await;
    for i in 0..3 {
        send_message(&app, &id, &format!("message {i} [[text:reply {i}]]")).await;
    }
    let mut resp = app
        .post(
            &format!("/api/sessions/{id}/commands/compact"),
            &json!({"args": ["[[text:SUMMARY]]"], "stream": true}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let live = read_sse(&mut resp, is_end).await;
    let status = live
        .iter()
        .find(|v| v["type"] == "status")
        .unwrap_or_else(|| panic!("a status event: {live:?}"));
    assert_eq!(status["status"], "compacting", "{status}");
    let compacted = live
        .iter()
        .find(|v| v["type"] == "compacted")
        .unwrap_or_else(|| panic!("a compacted event: {live:?}"));
    assert_eq!(compacted["trigger"], "manual");
    assert!(compacted["pre_tokens"].is_number(), "{compacted}");
    assert!(status["seq"].as_u64() < compacted["seq"].as_u64());
    let h = history(&app, &id).await;
    for (kind, ev) in [("status", status), ("compacted", compacted)] {
        let e = h
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} in the history: {h:?}"));
        assert_eq!(e["seq"], ev["seq"]);
    }
}

/// A session whose model may run subagents without asking.
async fn agent_session(app: &TestApp) -> String {
    create_session(app, json!({"tools": ["Agent"], "allowed_tools": ["Agent"]})).await
}

fn agent_call(prompt: &str) -> String {
    format!(
        "[[tool:Agent {}]]",
        json!({"description": "look around", "prompt": prompt, "subagent_type": "general-purpose"})
    )
}

async fn agents_app() -> TestApp {
    spawn_defaults_app_with(|c| c.builtin_tools = vec!["Agent".into()]).await
}

#[tokio::test]
async fn a_subagents_events_name_the_agent_call_that_runs_them() {
    let app = agents_app().await;
    let id = agent_session(&app).await;
    let live = stream_message(&app, &id, &agent_call("[[text:SUB-ANSWER]]")).await;
    let call = live
        .iter()
        .find(|v| v["type"] == "tool_call" && v["name"] == "Agent")
        .unwrap_or_else(|| panic!("the Agent call: {live:?}"));
    let parent = call["id"].as_str().unwrap();
    let sub: Vec<&Value> = live.iter().filter(|v| v["type"] == "subagent").collect();
    assert!(!sub.is_empty(), "{live:?}");
    for v in &sub {
        assert_eq!(v["parent_tool_use_id"], parent, "{v}");
        assert!(stored(v));
    }
    // The subagent's prompt, as it received it. (This CLI sends a subagent's tool calls and
    // results, not its final text-only answer, which reaches the main thread as the result.)
    assert!(
        sub.iter()
            .any(|v| v["role"] == "user" && v.to_string().contains("SUB-ANSWER")),
        "{sub:?}"
    );
    let task = live
        .iter()
        .find(|v| v["type"] == "task" && v["subtype"] == "task_started")
        .unwrap_or_else(|| panic!("task_started: {live:?}"));
    assert_eq!(task["parent_tool_use_id"], parent);
    for t in live.iter().filter(|v| v["type"] == "task") {
        assert_eq!(t["parent_tool_use_id"], parent, "every task event: {t}");
    }
    let h = history(&app, &id).await;
    let in_history: Vec<&Value> = h.iter().filter(|e| e["kind"] == "subagent").collect();
    assert_eq!(in_history.len(), sub.len());
    assert_eq!(in_history[0]["payload"]["parent_tool_use_id"], parent);
}

#[tokio::test]
async fn a_running_subagent_task_can_be_stopped() {
    let app = agents_app().await;
    let id = agent_session(&app).await;
    let (url, client, sid) = (app.url.clone(), app.client.clone(), id.clone());
    let mut resp = client
        .post(format!("{url}/api/sessions/{sid}/messages"))
        .json(&json!({"content": agent_call("[[hang]]"), "stream": true}))
        .send()
        .await
        .unwrap();
    let started = read_sse(&mut resp, |v| {
        v["type"] == "task" && v["subtype"] == "task_started"
    })
    .await;
    let task_id = started.last().unwrap()["task_id"]
        .as_str()
        .expect("task id")
        .to_string();
    // A task the turn never started is not found (the CLI itself would answer success).
    let (status, body) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/tasks/no-such-task/stop"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-task"),
        "{body}"
    );
    let (status, body) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/tasks/{task_id}/stop"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task_id"], task_id.as_str());
    let rest = read_sse(&mut resp, is_end).await;
    let ended = rest
        .iter()
        .find(|v| v["type"] == "task" && v["subtype"] == "task_notification")
        .unwrap_or_else(|| panic!("the task's end: {rest:?}"));
    assert_eq!(ended["task_id"], task_id.as_str());
    assert_ne!(ended["detail"]["status"], "completed", "{ended}");
    assert_eq!(
        rest.last().unwrap()["type"],
        "done",
        "the turn goes on: {rest:?}"
    );
    // With no turn running, no task runs.
    let (status, body) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/tasks/{task_id}/stop"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&task_id),
        "{body}"
    );
}

#[tokio::test]
async fn the_websocket_resumes_after_a_seq_too() {
    use futures::StreamExt;
    let app = defaults().await;
    let id = create_session(&app, json!({})).await;
    send_message(&app, &id, "[[text:one]]").await;
    send_message(&app, &id, "[[text:two]]").await;
    let url = format!(
        "{}/api/sessions/{id}/ws?after=3",
        app.url.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(30), ws.next())
            .await
            .expect("a frame")
            .unwrap()
            .unwrap();
        got.push(serde_json::from_str::<Value>(msg.to_text().unwrap()).unwrap());
    }
    assert_eq!(seqs(&got), vec![4, 5, 6], "{got:?}");
    assert_eq!(got[1]["type"], "text");
    assert_eq!(got[1]["text"], "two");
    assert!(got.iter().all(|v| v["replayed"] == true));
    let bad = format!(
        "{}/api/sessions/{id}/ws?after=soon",
        app.url.replace("http://", "ws://")
    );
    assert!(
        tokio_tungstenite::connect_async(bad).await.is_err(),
        "a 400"
    );
}
