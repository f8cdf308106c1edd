//! Stopping: SIGTERM drains (readiness false, no new turns, running turns end with
//! `stop_reason: "shutdown"`, recorded and resumable, watchers' streams end cleanly), and a
//! second instance on one data dir refuses to start.

use std::time::{Duration, Instant};

use ccgw::mock_upstream::MockUpstream;
use futures::StreamExt as _;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::common::{spawn_defaults_app_with, sse_data, wait_for};
use super::support::{new_session, post_json, say, External};

#[tokio::test]
async fn a_second_instance_on_one_data_dir_refuses_to_start_and_says_why() {
    let app = spawn_defaults_app_with(|_| {}).await;
    let second = ccgw::server::start(app.cfg.clone()).await;
    let err = match second {
        Ok(s) => {
            s.stop().await;
            panic!("a second gateway started on the same data dir");
        }
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("another ccgw instance"), "{err}");
    assert!(
        err.contains(&std::process::id().to_string()),
        "names the holder: {err}"
    );
    assert!(err.contains("data_dir"), "says what to do: {err}");
    assert!(
        err.contains("use Postgres"),
        "names the way to run several: {err}"
    );
    // The first one is untouched.
    let r = app
        .client
        .get(format!("{}/health", app.url))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status(), 200);
    app.stop().await;
}

/// Read an SSE response to its end (or `limit`), as JSON frames; `None` if it broke.
async fn read_to_end(resp: reqwest::Response, limit: Duration) -> Option<Vec<Value>> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
            Ok(Some(Err(_))) => return None,
            Ok(None) => return Some(sse_data(&String::from_utf8_lossy(&body))),
            Err(_) => panic!("the watcher's stream did not end within {limit:?}"),
        }
    }
}

#[tokio::test]
async fn sigterm_drains_a_streamed_turn_which_ends_recorded_and_resumable() {
    let mock = MockUpstream::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("mock");
    let data = tempfile::tempdir().expect("temp dir");
    // The defaults (warm pool on), with a short drain so the running turn is interrupted.
    let gw = External::start(data.path(), &mock, &[("CCGW_DRAIN_TIMEOUT_SECS", "1")]);
    let client = reqwest::Client::new();
    let id = new_session(&client, &gw.url, json!({})).await;
    let watcher = client
        .get(format!("{}/api/sessions/{id}/events", gw.url))
        .send()
        .await
        .expect("watch");
    assert_eq!(watcher.status(), 200);
    let ws_url = format!(
        "{}/api/sessions/{id}/ws",
        gw.url.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");

    // A long streamed answer: 400 words, 40 ms apart.
    let (url, c) = (gw.url.clone(), client.clone());
    let sid = id.clone();
    let turn = tokio::spawn(async move {
        say(
            &c,
            &url,
            &sid,
            json!("tell a long story [[words:400]] [[slow:40]]"),
        )
        .await
    });
    assert!(
        wait_for(
            || mock
                .requests()
                .iter()
                .any(|r| r.body.to_string().contains("tell a long story")),
            Duration::from_secs(60)
        )
        .await,
        "the model was asked"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;

    let signalled = Instant::now();
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(gw.pid() as i32, libc::SIGTERM);
    }
    // Readiness turns false and no new turn starts, while the running one goes on.
    let mut ready = 200;
    for _ in 0..100 {
        let r = client.get(format!("{}/health/ready", gw.url)).send().await;
        ready = r.map(|r| r.status().as_u16()).unwrap_or(0);
        if ready != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready, 503, "readiness is false while draining");
    let refused = client
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "shutting_down", "{body}");

    // The running turn is interrupted once the drain times out, and ends cleanly.
    let (status, reply) = turn.await.expect("turn task");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["stop_reason"], "shutdown", "{reply}");
    let said = reply["text"].as_str().unwrap_or_default().to_string();
    assert!(
        !said.is_empty(),
        "what was said before the drain is kept: {reply}"
    );

    // The watcher saw the turn end and then the shutdown, and its stream ended properly.
    let frames = read_to_end(watcher, Duration::from_secs(30))
        .await
        .expect("the watcher's stream ended cleanly, not broken");
    let kinds: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    let done = frames
        .iter()
        .find(|f| f["type"] == "done")
        .unwrap_or_else(|| panic!("a done event: {kinds:?}"));
    assert_eq!(done["stop_reason"], "shutdown", "{done}");
    assert_eq!(kinds.last(), Some(&"shutdown"), "{kinds:?}");
    assert!(!kinds.contains(&"error"), "{kinds:?}");

    // So did the WebSocket watcher's: `shutdown`, then a close frame saying it goes away.
    let mut last_text = String::new();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) => last_text = t.to_string(),
            Ok(Some(Ok(WsMessage::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => {}
            other => panic!("the socket ended without a close frame: {other:?}"),
        }
    };
    assert!(last_text.contains(r#""type":"shutdown""#), "{last_text}");
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));

    // The gateway exits by itself, well before a drain of 1 s plus the old 15 s.
    let mut gw = gw;
    let exited = wait_for(
        || matches!(gw.child.try_wait(), Ok(Some(_))),
        Duration::from_secs(20),
    )
    .await;
    assert!(exited, "the gateway did not exit after its drain");
    let code = gw.child.try_wait().ok().flatten().and_then(|s| s.code());
    assert_eq!(code, Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(14),
        "{:?}",
        signalled.elapsed()
    );
    drop(gw);

    // After a restart the session is not `error`, holds what was said, and goes on.
    let gw = External::start(data.path(), &mock, &[]);
    let info: Value = client
        .get(format!("{}/api/sessions/{id}", gw.url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_ne!(info["status"], "error", "{info}");
    let history: Value = client
        .get(format!("{}/api/sessions/{id}/history", gw.url))
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    let text = history.to_string();
    assert!(text.contains("tell a long story"), "{text}");
    let first_words: String = said
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        text.contains(&first_words),
        "the partial answer is in the history: {text}"
    );
    let (status, next) = say(&client, &gw.url, &id, json!("and then? [[text:the end]]")).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["text"], "the end");
    let (status, _) = post_json(
        &client,
        &format!("{}/v1/chat/completions", gw.url),
        &json!({"model": "sonnet", "messages": [{"role": "user", "content": "ready again [[text:yes]]"}]}),
    )
    .await;
    assert_eq!(status, 200);
}
