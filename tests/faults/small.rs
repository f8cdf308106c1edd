//! The small ones: keys in two headers, `/config` in a session.

use std::time::Duration;

use serde_json::json;

use crate::common::*;
use crate::support::*;

const KEY: &str = "faults-key-123456";

#[tokio::test]
async fn a_bad_x_api_key_does_not_override_a_good_bearer() {
    let app = spawn_app_with(|c| c.api_keys = vec![KEY.into()]).await;
    for x_api_key in ["", "wrong-key-000000"] {
        let resp = app
            .client
            .get(format!("{}/v1/models", app.url))
            .header("authorization", format!("Bearer {KEY}"))
            .header("x-api-key", x_api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "x-api-key {x_api_key:?}");
    }
    // Two wrong keys are still wrong, and one good x-api-key still passes.
    let resp = app
        .client
        .get(format!("{}/v1/models", app.url))
        .header("authorization", "Bearer nope-nope-nope")
        .header("x-api-key", "wrong-key-000000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = app
        .client
        .get(format!("{}/v1/models", app.url))
        .header("authorization", "Bearer nope-nope-nope")
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    app.stop().await;
}

#[tokio::test]
async fn config_in_a_session_changes_nothing_else() {
    let app = spawn_defaults().await;
    let c = &app.client;
    let haiku = new_session(c, &app.url, json!({"model": "haiku"})).await;
    let other = new_session(c, &app.url, json!({"model": "haiku"})).await;
    let (status, _) = say(c, &app.url, &other, json!("warm up")).await;
    assert_eq!(status, 200);
    for command in ["/config model=opus", "/settings model=opus", "/config"] {
        let (status, body) = say(c, &app.url, &haiku, json!(command)).await;
        assert_eq!(status, 400, "{command}: {body}");
        assert_eq!(body["error"]["param"], "content", "{body}");
    }
    // Neither session changed model, and the shared settings were never written.
    for id in [&haiku, &other] {
        let (status, _) = say(c, &app.url, id, json!("which model?")).await;
        assert_eq!(status, 200);
        assert_eq!(
            app.last_model_request()["model"],
            "claude-haiku-4-5-20251001"
        );
    }
    assert!(!app
        .data
        .path()
        .join("claude")
        .join("settings.json")
        .exists());
    app.stop().await;
}

/// A WebSocket upgrade to a session, with extra request headers; the handshake's answer.
async fn ws_connect(
    url: &str,
    protocols: Option<&str>,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    u16,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(ok) => Ok(ok),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_browser_can_authenticate_a_websocket() {
    let app = spawn_app_with(|c| c.api_keys = vec![KEY.into()]).await;
    let c = &app.client;
    let bearer = format!("Bearer {KEY}");
    let s: serde_json::Value = c
        .post(format!("{}/api/sessions", app.url))
        .header("authorization", &bearer)
        .json(&json!({"model": "sonnet"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = s["id"].as_str().unwrap();
    let ws = format!(
        "{}/api/sessions/{id}/ws",
        app.url.replace("http://", "ws://")
    );
    // Without credentials, and with a key in the query string: refused.
    assert_eq!(ws_connect(&ws, None).await.err(), Some(401));
    assert_eq!(
        ws_connect(&format!("{ws}?key={KEY}"), None).await.err(),
        Some(401)
    );
    assert_eq!(
        ws_connect(&ws, Some("ccgw, ccgw.bearer.wrong-key-0000"))
            .await
            .err(),
        Some(401)
    );
    // The key as a subprotocol: accepted, and answered with `ccgw` (the key is not echoed).
    let (_socket, resp) = ws_connect(&ws, Some(&format!("ccgw, ccgw.bearer.{KEY}")))
        .await
        .expect("the subprotocol key is accepted");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "ccgw");
    // A ticket from an authenticated POST: good once.
    let t: serde_json::Value = c
        .post(format!("{}/api/ws-tickets", app.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(t["expires_in"].as_u64().unwrap() > 0);
    let with_ticket = format!("{ws}?ticket={}", t["ticket"].as_str().unwrap());
    assert!(ws_connect(&with_ticket, None).await.is_ok());
    assert_eq!(ws_connect(&with_ticket, None).await.err(), Some(401));
    // Tickets are only for authenticated callers.
    let anon = c
        .post(format!("{}/api/ws-tickets", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 401);
    app.stop().await;
}

/// One request can be followed through the log at the default level by its request id: a
/// refused one has its status line, and a turn's tool calls and its end carry the id (they
/// were logged at DEBUG, and outside the request's span).
#[tokio::test]
async fn a_request_can_be_followed_through_the_log_by_its_id() {
    let mock = ccgw::mock_upstream::MockUpstream::start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let key = "trace-key-123456";
    let gw = External::start(
        data.path(),
        &mock,
        &[("CCGW_BUILTIN_TOOLS", "Bash"), ("CCGW_API_KEYS", key)],
    );
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", gw.url);
    let body = json!({"model": "sonnet", "builtin_tools": ["Bash"],
        "messages": [user(r#"[[tool:Bash {"command":"echo traced"}]]"#)]});
    let refused = client
        .post(&url)
        .header("x-request-id", "trace-refused-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let ok = client
        .post(&url)
        .bearer_auth(key)
        .header("x-request-id", "trace-turn-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let messages = |id: &str| -> Vec<String> {
        gw.lines_of(id)
            .iter()
            .map(|l| l["message"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let wanted = [
        "tool call started",
        "tool call finished",
        "turn ended",
        "finished processing request",
    ];
    let all_there = || {
        let seen = messages("trace-turn-1");
        wanted.iter().all(|w| seen.iter().any(|m| m == w))
    };
    assert!(
        wait_for(all_there, Duration::from_secs(10)).await,
        "the turn's lines carry its request id: {:?}",
        messages("trace-turn-1")
    );
    let refused = gw.lines_of("trace-refused-1");
    assert!(
        refused
            .iter()
            .any(|l| l["message"] == "finished processing request"
                && l["status"].as_u64() == Some(401)),
        "the refused request's status line: {refused:?}"
    );
}

#[tokio::test]
async fn a_healthy_start_and_turn_log_no_warning() {
    // The defaults: the warm pool fills (two processes start), then one turn runs. An operator
    // must not see warnings for routine work: each CLI's runtime warms its connection to the
    // relay with a bare `HEAD /`, which was logged as a refused token.
    let mock = ccgw::mock_upstream::MockUpstream::start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let gw = External::start(data.path(), &mock, &[]);
    gw.wait_warm(2).await;
    let client = reqwest::Client::new();
    let (status, _) = post_json(
        &client,
        &format!("{}/v1/chat/completions", gw.url),
        &json!({"model": "sonnet", "messages": [user("[[text:fine]]")]}),
    )
    .await;
    assert_eq!(status, 200);
    gw.wait_warm(2).await;
    let warnings: Vec<String> = gw
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(r#""level":"WARN""#) || l.contains(r#""level":"ERROR""#))
        .cloned()
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}
