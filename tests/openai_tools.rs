//! End to end: client function calling bridged into Claude Code (real CLI, mock upstream).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
    ])
}

const WEATHER: &str = r#"[[tool:get_weather {"city":"Paris"}]]"#;
const BOTH: &str = r#"[[text:checking]] [[tool:get_weather {"city":"Paris"}]] [[tool:get_time]]"#;

fn tool_msg(id: &str, content: &str) -> Value {
    json!({"role": "tool", "tool_call_id": id, "content": content})
}

fn calls(body: &Value) -> Vec<Value> {
    body["choices"][0]["message"]["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn one_call_round_trip_in_the_same_process() {
    let app = spawn_app().await;
    let first = user(WEATHER);
    let (status, r1) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "messages": [first]}))
        .await;
    assert_eq!(status, 200, "{r1}");
    assert_eq!(r1["choices"][0]["finish_reason"], "tool_calls");
    let c = calls(&r1);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["type"], "function");
    assert_eq!(c[0]["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(c[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    // The model saw the client's tools under their MCP names, and nothing else.
    let tools_seen = app.last_model_request()["tools"]
        .as_array()
        .unwrap()
        .clone();
    let mut offered: Vec<String> = tools_seen
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    offered.sort();
    assert_eq!(
        offered,
        vec!["mcp__client__get_time", "mcp__client__get_weather"]
    );
    let weather = tools_seen
        .iter()
        .find(|t| t["name"] == "mcp__client__get_weather")
        .unwrap();
    let schema = &weather["input_schema"];
    assert_eq!(
        schema["required"],
        json!(["city"]),
        "the JSON Schema passed unchanged"
    );

    let id = c[0]["id"].as_str().unwrap();
    let (status, r2) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "messages": [
            first, r1["choices"][0]["message"].clone(), tool_msg(id, "sunny, 21C")]}))
        .await;
    assert_eq!(status, 200, "{r2}");
    assert_eq!(
        r2["choices"][0]["message"]["content"],
        "done | tool results: sunny, 21C"
    );
    assert_eq!(r2["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        app.spawned(),
        1,
        "the follow-up was served by the same process"
    );
    app.stop().await;
}

#[tokio::test]
async fn streamed_tool_calls_match_openai_chunks() {
    let app = spawn_app().await;
    let first = user(BOTH);
    let (status, chunks) = app
        .chat_stream(json!({"model": "sonnet", "tools": tools(), "messages": [first]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(streamed_content(&chunks), "checking");
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
        .collect();
    // Each call opens with index, id, type and name, then argument fragments follow.
    let opens: Vec<&&Value> = deltas.iter().filter(|d| d.get("id").is_some()).collect();
    assert_eq!(opens.len(), 2);
    assert_eq!(opens[0]["index"], 0);
    assert_eq!(opens[0]["type"], "function");
    assert_eq!(opens[0]["function"]["name"], "get_weather");
    assert_eq!(opens[1]["index"], 1);
    assert_eq!(opens[1]["function"]["name"], "get_time");
    let fragments: Vec<&str> = deltas
        .iter()
        .filter(|d| d["index"] == 0 && d.get("id").is_none())
        .map(|d| d["function"]["arguments"].as_str().unwrap())
        .collect();
    assert!(
        fragments.len() >= 2,
        "arguments arrive in fragments: {fragments:?}"
    );
    let args: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    let finish = chunks.iter().rev().find_map(|c| {
        c.pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)
    });
    assert_eq!(finish, Some("tool_calls"));
    assert_eq!(chunks.last().unwrap(), &Value::String("[DONE]".into()));

    // The follow-up, streamed too, with results in the other order.
    let ids: Vec<String> = opens
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    let assistant = json!({"role": "assistant", "content": "checking", "tool_calls": [
        {"id": ids[0], "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": ids[1], "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]});
    let (_, chunks2) = app
        .chat_stream(json!({"model": "sonnet", "tools": tools(), "messages": [
            first, assistant, tool_msg(&ids[1], "noon"), tool_msg(&ids[0], "sunny")]}))
        .await;
    assert_eq!(
        streamed_content(&chunks2),
        "done | tool results: sunny | noon"
    );
    assert_eq!(app.spawned(), 1);
    app.stop().await;
}

#[tokio::test]
async fn parallel_calls_come_back_together() {
    let app = spawn_app().await;
    let (_, r1) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "messages": [user(BOTH)]}))
        .await;
    let c = calls(&r1);
    assert_eq!(c.len(), 2);
    assert_eq!(r1["choices"][0]["message"]["content"], "checking");
    let names: Vec<&str> = c
        .iter()
        .map(|x| x["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["get_weather", "get_time"]);
    app.stop().await;
}

#[tokio::test]
async fn follow_up_after_the_process_died_rebuilds_the_conversation() {
    let app = spawn_app().await;
    let first = user(WEATHER);
    let (_, r1) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "messages": [first]}))
        .await;
    let id = calls(&r1)[0]["id"].as_str().unwrap().to_string();
    let pids = processes_under(app.data.path());
    assert_eq!(pids.len(), 1);
    // SAFETY: test code; kill the CLI process as a crash would.
    unsafe { libc_kill(pids[0]) };
    // Dead once /proc says so (a dying process drops its cwd link a moment before that).
    let pid = pids[0];
    assert!(wait_for(|| !pid_alive(pid), Duration::from_secs(10)).await);

    let (status, r2) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "messages": [
            first, r1["choices"][0]["message"].clone(), tool_msg(&id, "cloudy")]}))
        .await;
    assert_eq!(status, 200, "{r2}");
    assert_eq!(
        r2["choices"][0]["message"]["content"],
        "done | tool results: cloudy"
    );
    // The new process's model saw the call and its result.
    let req = app.last_model_request();
    let msgs = req["messages"].as_array().unwrap();
    let n = msgs.len();
    assert!(n >= 3, "{msgs:?}");
    let call = msgs[n - 2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .cloned()
        .unwrap();
    assert_eq!(msgs[n - 2]["role"], "assistant");
    assert_eq!(call["name"], "mcp__client__get_weather");
    assert_eq!(call["id"], id.as_str());
    let result = msgs[n - 1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_result")
        .cloned()
        .unwrap();
    assert_eq!(msgs[n - 1]["role"], "user");
    assert_eq!(result["tool_use_id"], id.as_str());
    assert!(
        msgs[n - 3]["content"].to_string().contains("get_weather"),
        "the original prompt came first"
    );
    assert_eq!(app.spawned(), 2);
    app.stop().await;
}

unsafe fn libc_kill(pid: u32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    kill(pid as i32, 9);
}

#[tokio::test]
async fn tool_choice_none_offers_no_tools() {
    let app = spawn_app().await;
    let (status, r) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "tool_choice": "none", "messages": [user(WEATHER)]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.last_model_request()["tools"], json!([]));
    assert_eq!(
        r["choices"][0]["message"]["content"],
        "no tool named get_weather"
    );
    assert!(calls(&r).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn named_tool_choice_offers_only_that_tool() {
    let app = spawn_app().await;
    let (_, r) = app
        .chat(json!({"model": "sonnet", "tools": tools(),
            "tool_choice": {"type": "function", "function": {"name": "get_time"}}, "messages": [user("[[tool:get_time]]")]}))
        .await;
    assert_eq!(calls(&r)[0]["function"]["name"], "get_time");
    let req = app.last_model_request();
    let names: Vec<&str> = req["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["mcp__client__get_time"]);
    assert!(req["system"]
        .to_string()
        .contains("You must call the tool mcp__client__get_time"));
    app.stop().await;
}

#[tokio::test]
async fn parallel_tool_calls_false_returns_one_call() {
    let app = spawn_app().await;
    let first = user(BOTH);
    let (_, r1) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "parallel_tool_calls": false, "messages": [first]}))
        .await;
    let c = calls(&r1);
    assert_eq!(c.len(), 1, "{r1}");
    let id = c[0]["id"].as_str().unwrap();
    let (status, r2) = app
        .chat(
            json!({"model": "sonnet", "tools": tools(), "parallel_tool_calls": false, "messages": [
            first, r1["choices"][0]["message"].clone(), tool_msg(id, "sunny")]}),
        )
        .await;
    assert_eq!(status, 200, "{r2}");
    let text = r2["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        text.starts_with("done | tool results: sunny | Parallel tool calls are disabled"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_tool_definitions_are_400_naming_the_tool() {
    let app = spawn_app().await;
    let bad = json!([{"type": "function", "function": {"name": "broken", "parameters": {"type": "array"}}}]);
    let (status, body) = app
        .chat(json!({"model": "sonnet", "tools": bad, "messages": [user("x")]}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "tools[0].function.parameters");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'broken'"));
    let (status, body) = app
        .chat(json!({"model": "sonnet", "tools": [{"type": "function", "function": {"name": "a b"}}], "messages": [user("x")]}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "tools[0].function.name");
    assert!(app.model_requests().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn missing_and_unknown_results_are_400_naming_the_id() {
    let app = spawn_app().await;
    let first = user(BOTH);
    let (_, r1) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "messages": [first]}))
        .await;
    let c = calls(&r1);
    let (id0, id1) = (c[0]["id"].as_str().unwrap(), c[1]["id"].as_str().unwrap());
    let assistant = r1["choices"][0]["message"].clone();
    let (status, body) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "messages": [first, assistant, tool_msg(id0, "x")]}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains(id1),
        "{body}"
    );
    let (status, body) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "messages": [
            first, assistant, tool_msg(id0, "x"), tool_msg(id1, "y"), tool_msg("call_nope", "z")]}))
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("call_nope"));
    assert_eq!(body["error"]["param"], "messages[4].tool_call_id");
    // The paused turn is untouched and still completes with the right results.
    let (status, r2) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "messages": [first, assistant, tool_msg(id0, "x"), tool_msg(id1, "y")]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        r2["choices"][0]["message"]["content"],
        "done | tool results: x | y"
    );
    assert_eq!(app.spawned(), 1);
    app.stop().await;
}

#[tokio::test]
async fn unanswered_calls_expire_and_free_the_process() {
    let app = spawn_app_with(|c| c.tool_call_timeout_secs = 1).await;
    let (_, r1) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "messages": [user(WEATHER)]}))
        .await;
    assert_eq!(calls(&r1).len(), 1);
    assert_eq!(app.live(), 1);
    let freed = wait_for(
        || processes_under(app.data.path()).is_empty() && app.live() == 0,
        Duration::from_secs(20),
    )
    .await;
    assert!(freed, "an expired tool call must free its process");
    app.stop().await;
}

#[tokio::test]
async fn built_in_tools_only_within_policy_and_never_as_tool_calls() {
    // No policy: requesting a built-in tool is refused, and the model sees none.
    let app = spawn_app().await;
    let (status, body) = app
        .chat(json!({"model": "sonnet", "builtin_tools": ["Bash"], "messages": [user("x")]}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "builtin_tools");
    app.stop().await;

    let app = spawn_app_with(|c| c.builtin_tools = vec!["Bash".into()]).await;
    // Allowed by policy, but not asked for: still off.
    let (_, _) = app
        .chat(json!({"model": "sonnet", "tools": tools(), "messages": [user("hi")]}))
        .await;
    let names: Vec<String> = app.last_model_request()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("mcp__client__")),
        "{names:?}"
    );
    // Asked for within policy: the CLI runs it itself; the client never sees it as a tool call.
    let (status, r) = app
        .chat(
            json!({"model": "sonnet", "tools": tools(), "builtin_tools": ["Bash"],
            "messages": [user(r#"[[tool:Bash {"command":"echo from-bash"}]]"#)]}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert!(calls(&r).is_empty());
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        r["choices"][0]["message"]["content"],
        "done | tool results: from-bash"
    );
    app.stop().await;
}
