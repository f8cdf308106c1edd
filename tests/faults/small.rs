//! The small ones: keys in two headers, `/config` in a session.

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
