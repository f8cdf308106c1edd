//! End to end: agents (`/api/agents`, a session's agent), with the real CLI and the mock
//! upstream, under the defaults (warm pool on).

mod common;

use common::*;
use serde_json::{json, Value};

async fn defaults() -> TestApp {
    spawn_defaults_app_with(|_| {}).await
}

fn system_of(body: &Value) -> String {
    body["system"].to_string()
}

#[tokio::test]
async fn custom_agents_are_created_listed_changed_and_deleted() {
    let mut app = defaults().await;
    let (status, list) = app.request("GET", "/api/agents", None, None).await;
    assert_eq!(status, 200, "{list}");
    let explore = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Explore")
        .cloned()
        .expect("the CLI's Explore agent is listed");
    assert_eq!(explore["source"], "builtin");
    assert!(explore.get("prompt").is_none());

    let rev = json!({"name": "code-rev", "description": "Reviews code", "prompt": "You are CODE-REV.", "tools": ["Read"], "model": "haiku"});
    let (status, made) = app.request("POST", "/api/agents", Some(&rev), None).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["source"], "custom");
    assert_eq!(made["prompt"], "You are CODE-REV.");
    assert_eq!(made["tools"], json!(["Read"]));
    let (status, dup) = app.request("POST", "/api/agents", Some(&rev), None).await;
    assert_eq!(status, 409, "{dup}");
    for (body, param) in [
        (
            json!({"name": "Bad Name", "description": "d", "prompt": "p"}),
            "name",
        ),
        (json!({"description": "d", "prompt": "p"}), "name"),
        (json!({"name": "x", "prompt": "p"}), "description"),
        (
            json!({"name": "x", "description": "d", "prompt": "p", "model": "gpt-9"}),
            "model",
        ),
        (
            json!({"name": "x", "description": "d", "prompt": "p", "tools": "Read"}),
            "tools",
        ),
    ] {
        let (status, err) = app.request("POST", "/api/agents", Some(&body), None).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["param"], param, "{body}: {err}");
    }
    // A built-in agent's name is taken too, and a built-in agent cannot be changed.
    let (status, _) = app
        .request(
            "POST",
            "/api/agents",
            Some(&json!({"name": "general-purpose", "description": "d", "prompt": "p"})),
            None,
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = app
        .request(
            "PUT",
            "/api/agents/Explore/config",
            Some(&json!({"prompt": "x"})),
            None,
        )
        .await;
    assert_eq!(status, 403);

    let (status, changed) = app
        .request(
            "PUT",
            "/api/agents/code-rev/config",
            Some(&json!({"prompt": "You are CODE-REV 2."})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["prompt"], "You are CODE-REV 2.");
    assert_eq!(changed["description"], "Reviews code", "the rest is kept");

    // Stored: a restart keeps it.
    app.restart().await;
    let (_, got) = app
        .request("GET", "/api/agents/code-rev/config", None, None)
        .await;
    assert_eq!(got["prompt"], "You are CODE-REV 2.", "{got}");
    let (status, _) = app
        .request("DELETE", "/api/agents/code-rev", None, None)
        .await;
    assert_eq!(status, 204);
    let (status, err) = app
        .request("GET", "/api/agents/code-rev/config", None, None)
        .await;
    assert_eq!(status, 404, "{err}");
    let (status, _) = app
        .request("DELETE", "/api/agents/code-rev", None, None)
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_sessions_agent_is_checked_and_changes_the_system_prompt() {
    let app = defaults().await;
    let (status, err) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"agent": "no-such-agent"})),
            None,
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "agent");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-agent"));

    // A built-in agent: its description reaches the model.
    let (status, s) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet", "agent": "Explore"})),
            None,
        )
        .await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap();
    let (status, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/messages"),
            Some(&json!({"content": "hi [[text:ok]]"})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let body = app.last_model_request();
    assert!(
        system_of(&body).contains("running as the Explore agent"),
        "{}",
        system_of(&body)
    );

    // A custom agent: its prompt is the system prompt.
    app.request(
        "POST",
        "/api/agents",
        Some(&json!({"name": "pirate", "description": "Talks like a pirate", "prompt": "You are PIRATE-AGENT."})),
        None,
    )
    .await;
    let (_, s2) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet", "agent": "pirate", "system_prompt": "SESSION-SP"})),
            None,
        )
        .await;
    let id2 = s2["id"].as_str().unwrap();
    app.request(
        "POST",
        &format!("/api/sessions/{id2}/messages"),
        Some(&json!({"content": "ahoy [[text:ok]]"})),
        None,
    )
    .await;
    let sys = system_of(&app.last_model_request());
    assert!(sys.contains("You are PIRATE-AGENT."), "{sys}");
    assert!(
        sys.contains("SESSION-SP"),
        "the session's own prompt is kept: {sys}"
    );
    app.stop().await;
}

#[tokio::test]
async fn custom_agents_reach_every_process_and_a_session_switches_agent() {
    let app = spawn_app_with(|c| {
        c.warm_pool_size = ccgw::config::Config::default().warm_pool_size;
        c.builtin_tools = vec!["Agent".into()];
    })
    .await;
    app.request(
        "POST",
        "/api/agents",
        Some(&json!({"name": "scout-xyz", "description": "Scouts ahead", "prompt": "You are SCOUT-AGENT."})),
        None,
    )
    .await;
    let (_, s) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet", "tools": ["Agent"]})),
            None,
        )
        .await;
    let id = s["id"].as_str().unwrap();
    let (status, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/messages"),
            Some(&json!({"content": "first message FIRST-MARK"})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let body = app.last_model_request();
    assert!(
        body["messages"].to_string().contains("scout-xyz"),
        "the Agent tool offers the custom agent"
    );
    assert!(!system_of(&body).contains("SCOUT-AGENT"));

    let (status, err) = app
        .request(
            "PUT",
            &format!("/api/sessions/{id}/agent"),
            Some(&json!({"agent": "nope"})),
            None,
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "agent");
    let (status, info) = app
        .request(
            "PUT",
            &format!("/api/sessions/{id}/agent"),
            Some(&json!({"agent": "scout-xyz"})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["agent"], "scout-xyz");
    let (status, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/messages"),
            Some(&json!({"content": "second [[report:history]]"})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert!(r["text"].as_str().unwrap().contains("FIRST-MARK"), "{r}");
    assert!(system_of(&app.last_model_request()).contains("You are SCOUT-AGENT."));
    assert!(
        app.cli_cmdlines()
            .iter()
            .any(|c| c.contains("--agent=scout-xyz")),
        "{:?}",
        app.cli_cmdlines()
    );
    app.stop().await;
}
