//! End to end: Claude Code options reach the CLI, through `extra_body` fields on the OpenAI
//! endpoint and native fields on `/v1/messages` (real CLI, mock upstream logging every body).

mod common;

use common::*;
use serde_json::{json, Value};

/// A chat completion with extra top-level fields (what `extra_body` sends).
fn chat(model: &str, text: &str, extra: Value) -> Value {
    let mut body = json!({"model": model, "messages": [user(text)]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn messages(model: &str, text: &str, extra: Value) -> Value {
    let mut body = chat(model, text, extra);
    body["max_tokens"] = json!(4096);
    body
}

/// Send the same options through both endpoints; the model request each produced.
async fn both(app: &TestApp, model: &str, openai: Value, anthropic: Value) -> [Value; 2] {
    let (status, body) = app.chat(chat(model, "via openai", openai)).await;
    assert_eq!(status, 200, "{body}");
    let a = app.last_model_request();
    let (status, body) = app
        .anthropic(messages(model, "via anthropic", anthropic))
        .await;
    assert_eq!(status, 200, "{body}");
    [a, app.last_model_request()]
}

#[tokio::test]
async fn thinking_off_and_budget() {
    let app = spawn_app().await;
    let off = json!({"thinking": {"type": "disabled"}});
    for req in both(&app, "sonnet", off.clone(), off).await {
        assert_eq!(req["thinking"], json!({"type": "disabled"}));
    }
    // A budget applies to models with a fixed thinking budget (haiku; sonnet is adaptive).
    let budget = json!({"thinking": {"type": "enabled", "budget_tokens": 2048}});
    for req in both(&app, "haiku", budget.clone(), budget).await {
        assert_eq!(
            req["thinking"],
            json!({"type": "enabled", "budget_tokens": 2048})
        );
    }
    // OpenAI's own reasoning_effort "none" turns thinking off too.
    let (status, _) = app
        .chat(chat("sonnet", "none", json!({"reasoning_effort": "none"})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.last_model_request()["thinking"],
        json!({"type": "disabled"})
    );
    app.stop().await;
}

#[tokio::test]
async fn effort_and_reasoning_effort() {
    let app = spawn_app().await;
    for req in both(
        &app,
        "sonnet",
        json!({"effort": "low"}),
        json!({"effort": "low"}),
    )
    .await
    {
        assert_eq!(req["output_config"]["effort"], "low");
    }
    let [openai, anthropic] = both(
        &app,
        "sonnet",
        json!({"reasoning_effort": "minimal"}),
        json!({"output_config": {"effort": "medium"}}),
    )
    .await;
    assert_eq!(openai["output_config"]["effort"], "low");
    assert_eq!(anthropic["output_config"]["effort"], "medium");
    app.stop().await;
}

/// Plan mode shows in the conversation the CLI sends: a system message that says so.
fn in_plan_mode(req: &Value) -> bool {
    req["messages"].to_string().contains("Plan mode is active")
}

#[tokio::test]
async fn permission_mode() {
    let app = spawn_app().await;
    let plan = json!({"permission_mode": "plan"});
    for req in both(&app, "sonnet", plan.clone(), plan).await {
        assert!(in_plan_mode(&req), "{}", req["messages"]);
    }
    let (_, _) = app.chat(chat("sonnet", "plain", json!({}))).await;
    assert!(!in_plan_mode(&app.last_model_request()));
    let (status, body) = app
        .anthropic(messages(
            "sonnet",
            "x",
            json!({"permission_mode": "bypassPermissions"}),
        ))
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("permission_mode: "));
    app.stop().await;
}

#[tokio::test]
async fn builtin_tools_within_the_policy() {
    let app = spawn_app_with(|c| c.builtin_tools = vec!["Read".into()]).await;
    let read = json!({"builtin_tools": ["Read"]});
    for req in both(&app, "sonnet", read.clone(), read).await {
        let names: Vec<&str> = req["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(names, vec!["Read"]);
    }
    let (status, body) = app
        .anthropic(messages("sonnet", "x", json!({"builtin_tools": ["Bash"]})))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("builtin_tools: "));
    app.stop().await;
}

const READ_TOOL: &str = r#"[[text:reading]] [[tool:Read {"file_path":"/etc/hostname"}]]"#;

#[tokio::test]
async fn max_turns_ends_the_turn_after_that_many_model_calls() {
    let app = spawn_app_with(|c| c.builtin_tools = vec!["Read".into()]).await;
    // Without a limit the CLI runs the tool and calls the model again.
    let (status, body) = app
        .anthropic(messages(
            "sonnet",
            READ_TOOL,
            json!({"builtin_tools": ["Read"]}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.model_requests().len(), 2);
    app.mock.clear();
    let (status, body) = app
        .anthropic(messages(
            "sonnet",
            READ_TOOL,
            json!({"builtin_tools": ["Read"], "max_turns": 1}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.model_requests().len(), 1, "one model call only");
    assert_eq!(body["content"][0]["text"], "reading");
    app.mock.clear();
    let (status, body) = app
        .chat(chat(
            "sonnet",
            READ_TOOL,
            json!({"builtin_tools": ["Read"], "max_turns": 1}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.model_requests().len(), 1, "one model call only");
    app.stop().await;
}

#[tokio::test]
async fn agent_runs_the_main_thread_as_a_built_in_agent() {
    let app = spawn_app().await;
    let agent = json!({"agent": "general-purpose"});
    let (status, body) = app
        .chat(chat("sonnet", "agent via openai", agent.clone()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "agent via openai");
    let (status, body) = app
        .anthropic(messages("sonnet", "agent via anthropic", agent))
        .await;
    assert_eq!(status, 200, "{body}");
    // Both conversations' processes are still live, launched with the agent.
    let launched = app.cli_cmdlines();
    assert_eq!(
        launched
            .iter()
            .filter(|c| c.contains("--agent=general-purpose"))
            .count(),
        2,
        "{launched:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn changing_options_mid_conversation_relaunches_the_process() {
    let app = spawn_app().await;
    let (_, r1) = app.anthropic(messages("sonnet", "one", json!({}))).await;
    assert_eq!(app.last_model_request()["output_config"]["effort"], "high");
    let body = json!({"model": "sonnet", "max_tokens": 4096, "effort": "low", "messages": [
        user("one"), {"role": "assistant", "content": r1["content"]}, user("two [[report:history]]")]});
    let (status, r2) = app.anthropic(body).await;
    assert_eq!(status, 200, "{r2}");
    assert_eq!(app.last_model_request()["output_config"]["effort"], "low");
    // The new process still has the whole conversation.
    let shown = r2["content"][0]["text"].as_str().unwrap();
    assert!(shown.contains("one") && shown.contains("two"), "{shown}");
    assert_eq!(app.spawned(), 2);
    app.stop().await;
}
