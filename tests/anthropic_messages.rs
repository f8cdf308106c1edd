//! End to end: the Anthropic Messages API through the real CLI against the mock upstream.

mod common;

use common::*;
use serde_json::{json, Value};

const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

fn msg(text: &str) -> Value {
    json!({"model": "sonnet", "max_tokens": 1024, "messages": [user(text)]})
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

fn text_of(message: &Value) -> String {
    message["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

/// Text of every `text_delta`, and of every `thinking_delta`.
fn streamed(events: &[(String, Value)], kind: &str, field: &str) -> String {
    events
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["delta"]["type"] == kind)
        .filter_map(|(_, d)| d["delta"][field].as_str())
        .collect()
}

fn event<'a>(events: &'a [(String, Value)], name: &str) -> &'a Value {
    &events
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
        .1
}

#[tokio::test]
async fn non_streamed_message_with_real_usage() {
    let app = spawn_app().await;
    let (status, body) = app
        .anthropic(with(
            msg("hello anthropic [[usage:11,7]]"),
            "metadata",
            json!({"user_id": "u-42"}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "message");
    assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "sonnet");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "hello anthropic"}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["stop_sequence"], Value::Null);
    assert_eq!(body["usage"]["input_tokens"], 11);
    assert_eq!(body["usage"]["output_tokens"], 7);
    let req = app.last_model_request();
    assert_eq!(req["model"], "claude-sonnet-5");
    assert_eq!(req["max_tokens"], 1024, "max_tokens reached the model");
    app.stop().await;
}

#[tokio::test]
async fn streamed_events_come_in_anthropic_order() {
    let app = spawn_app().await;
    let (status, events) = app
        .anthropic_stream(msg("[[think:deep thought]] [[words:6]]"))
        .await;
    assert_eq!(status, 200);
    let n = names(&events);
    assert_eq!(
        &n[..4],
        &[
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta"
        ]
    );
    assert_eq!(
        &n[n.len() - 3..],
        &["content_block_stop", "message_delta", "message_stop"]
    );
    // Every block opens, takes deltas and closes before the next opens, with rising indexes.
    let mut open: Option<u64> = None;
    let mut starts = Vec::new();
    for (name, data) in &events {
        match name.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "a block opened inside another");
                let i = data["index"].as_u64().unwrap();
                assert_eq!(i, starts.len() as u64);
                starts.push(data["content_block"]["type"].as_str().unwrap().to_string());
                open = Some(i);
            }
            "content_block_delta" => assert_eq!(data["index"].as_u64(), open),
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open);
                open = None;
            }
            _ => {}
        }
    }
    assert_eq!(starts, vec!["thinking", "text"]);
    assert_eq!(
        streamed(&events, "thinking_delta", "thinking"),
        "deep thought"
    );
    let words: Vec<String> = (1..=6).map(|i| format!("w{i}")).collect();
    assert_eq!(streamed(&events, "text_delta", "text"), words.join(" "));
    assert!(
        events
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "text_delta")
            .count()
            >= 6,
        "the text was streamed in pieces"
    );
    let start = &event(&events, "message_start")["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["model"], "sonnet");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["role"], "assistant");
    let delta = event(&events, "message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["delta"]["stop_sequence"], Value::Null);
    let reported = app.model_requests().last().unwrap().usage.clone().unwrap();
    assert_eq!(delta["usage"]["output_tokens"], reported["output_tokens"]);
    assert_eq!(delta["usage"]["input_tokens"], reported["input_tokens"]);
    app.stop().await;
}

#[tokio::test]
async fn system_as_string_or_blocks() {
    let app = spawn_app().await;
    let (_, body) = app
        .anthropic(with(
            msg("[[report:system]]"),
            "system",
            json!("You are TEST-SYS."),
        ))
        .await;
    assert!(text_of(&body).contains("You are TEST-SYS."), "{body}");
    let (status, body) = app
        .anthropic(with(
            msg("[[report:system]]"),
            "system",
            json!([{"type": "text", "text": "Block ONE.", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "Block TWO."}]),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let shown = text_of(&body);
    assert!(
        shown.contains("Block ONE.") && shown.contains("Block TWO."),
        "{shown}"
    );
    app.stop().await;
}

#[tokio::test]
async fn multi_turn_continues_in_one_process_and_the_model_sees_every_turn() {
    let app = spawn_app().await;
    let system = json!("You are TEST-SYSTEM.");
    let first = json!({"model": "sonnet", "max_tokens": 1024, "system": system,
        "messages": [user("alpha [[think:pondering]]")]});
    let (_, r1) = app.anthropic(first.clone()).await;
    assert_eq!(r1["content"][0]["type"], "thinking");
    // The client sends the reply back as it came, thinking block included.
    let mut history = first["messages"].as_array().unwrap().clone();
    history.push(json!({"role": "assistant", "content": r1["content"]}));
    history.push(user("beta"));
    let (_, r2) = app
        .anthropic(
            json!({"model": "sonnet", "max_tokens": 1024, "system": system, "messages": history}),
        )
        .await;
    assert_eq!(text_of(&r2), "beta");
    history.push(json!({"role": "assistant", "content": r2["content"]}));
    history.push(user("gamma [[report:history]]"));
    let (status, r3) = app
        .anthropic(
            json!({"model": "sonnet", "max_tokens": 1024, "system": system, "messages": history}),
        )
        .await;
    assert_eq!(status, 200, "{r3}");
    let report: Value =
        serde_json::from_str(text_of(&r3).strip_prefix("history=").unwrap()).unwrap();
    let turns: Vec<(String, String)> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().into(),
                m["text"].as_str().unwrap().into(),
            )
        })
        .filter(|(_, t): &(String, String)| !t.is_empty())
        .collect();
    let texts: Vec<&str> = turns.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts.len(), 5, "{turns:?}");
    assert!(texts[0].ends_with("alpha [[think:pondering]]"), "{texts:?}");
    assert!(texts[1].contains("alpha"), "{texts:?}");
    assert_eq!(&texts[2..4], &["beta", "beta"]);
    assert_eq!(texts[4], "gamma [[report:history]]");
    assert_eq!(app.spawned(), 1, "one process served all three turns");
    app.stop().await;
}

#[tokio::test]
async fn unknown_history_is_replayed_as_real_messages() {
    let app = spawn_app().await;
    let (status, body) = app
        .anthropic(json!({"model": "sonnet", "max_tokens": 1024, "messages": [
            user("q1"),
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}, {"type": "text", "text": "a1"}]},
            user("q2"), {"role": "assistant", "content": "a2"}, user("q3")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let got = model_messages(&app.last_model_request());
    let expected: Vec<(String, String)> = [
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("assistant", "a2"),
        ("user", "q3"),
    ]
    .iter()
    .map(|(r, t)| (r.to_string(), t.to_string()))
    .collect();
    assert_eq!(got, expected);
    app.stop().await;
}

#[tokio::test]
async fn images_reach_the_model_as_image_blocks() {
    let app = spawn_app().await;
    let (status, body) = app
        .anthropic(json!({"model": "sonnet", "max_tokens": 1024, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
            {"type": "text", "text": "what are these [[report:images]]"}]}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let images: Value =
        serde_json::from_str(text_of(&body).strip_prefix("images=").unwrap()).unwrap();
    assert_eq!(
        images,
        json!([{"type": "base64", "media_type": "image/png", "data": PNG_1X1},
               {"type": "url", "url": "https://example.com/cat.png"}])
    );
    app.stop().await;
}

#[tokio::test]
async fn stop_sequences_cut_the_reply() {
    let app = spawn_app().await;
    let (_, body) = app
        .anthropic(with(
            msg("[[text:keep this STOP not this]]"),
            "stop_sequences",
            json!(["STOP", "NEVER"]),
        ))
        .await;
    assert_eq!(text_of(&body), "keep this ");
    assert_eq!(body["stop_reason"], "stop_sequence");
    assert_eq!(body["stop_sequence"], "STOP");
    let (_, events) = app
        .anthropic_stream(with(
            msg("[[text:one two ## three]]"),
            "stop_sequences",
            json!(["##"]),
        ))
        .await;
    assert_eq!(streamed(&events, "text_delta", "text"), "one two ");
    let delta = event(&events, "message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(delta["delta"]["stop_sequence"], "##");
    assert_eq!(names(&events).last(), Some(&"message_stop"));
    app.stop().await;
}

#[tokio::test]
async fn sampling_parameters_reach_the_model() {
    let app = spawn_app().await;
    let (status, _) = app
        .anthropic(
            json!({"model": "sonnet", "max_tokens": 321, "temperature": 0.2, "top_p": 0.8,
            "top_k": 7, "messages": [user("sampled")]}),
        )
        .await;
    assert_eq!(status, 200);
    let req = app.last_model_request();
    assert_eq!(req["max_tokens"], 321);
    assert_eq!(req["temperature"], 0.2);
    assert_eq!(req["top_p"], 0.8);
    assert_eq!(req["top_k"], 7);
    app.stop().await;
}

fn tools() -> Value {
    json!([
        {"name": "get_weather", "description": "Weather for a city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
    ])
}

const WEATHER: &str = r#"[[tool:get_weather {"city":"Paris"}]]"#;
const BOTH: &str = r#"[[text:checking]] [[tool:get_weather {"city":"Paris"}]] [[tool:get_time]]"#;

fn tool_result(id: &str, content: &str) -> Value {
    json!({"type": "tool_result", "tool_use_id": id, "content": content})
}

#[tokio::test]
async fn tool_loop_non_streamed_in_the_same_process() {
    let app = spawn_app().await;
    let first = user(WEATHER);
    let (status, r1) = app
        .anthropic(
            json!({"model": "sonnet", "max_tokens": 1024, "tools": tools(), "messages": [first]}),
        )
        .await;
    assert_eq!(status, 200, "{r1}");
    assert_eq!(r1["stop_reason"], "tool_use");
    let call = r1["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .expect("a tool_use block")
        .clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({"city": "Paris"}));
    let offered: Vec<String> = app.last_model_request()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        offered.contains(&"mcp__client__get_weather".to_string()),
        "{offered:?}"
    );

    let (status, r2) = app
        .anthropic(json!({"model": "sonnet", "max_tokens": 1024, "tools": tools(), "messages": [
            first,
            {"role": "assistant", "content": r1["content"]},
            {"role": "user", "content": [tool_result(call["id"].as_str().unwrap(), "sunny, 21C")]}]}))
        .await;
    assert_eq!(status, 200, "{r2}");
    assert_eq!(text_of(&r2), "done | tool results: sunny, 21C");
    assert_eq!(r2["stop_reason"], "end_turn");
    assert_eq!(
        app.spawned(),
        1,
        "the follow-up was served by the same process"
    );
    app.stop().await;
}

#[tokio::test]
async fn tool_loop_streamed_with_parallel_calls() {
    let app = spawn_app().await;
    let first = user(BOTH);
    let (status, events) = app
        .anthropic_stream(
            json!({"model": "sonnet", "max_tokens": 1024, "tools": tools(), "messages": [first]}),
        )
        .await;
    assert_eq!(status, 200);
    let starts: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d)
        .collect();
    let kinds: Vec<&str> = starts
        .iter()
        .map(|d| d["content_block"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["text", "tool_use", "tool_use"]);
    assert_eq!(streamed(&events, "text_delta", "text"), "checking");
    assert_eq!(starts[1]["index"], 1);
    assert_eq!(starts[1]["content_block"]["name"], "get_weather");
    assert_eq!(starts[1]["content_block"]["input"], json!({}));
    assert_eq!(starts[2]["content_block"]["name"], "get_time");
    let fragments: Vec<&str> = events
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["index"] == 1)
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert!(
        fragments.len() >= 2,
        "input arrives in fragments: {fragments:?}"
    );
    let input: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(input, json!({"city": "Paris"}));
    assert_eq!(
        event(&events, "message_delta")["delta"]["stop_reason"],
        "tool_use"
    );
    assert_eq!(names(&events).last(), Some(&"message_stop"));

    // The follow-up, streamed too, with results in the other order.
    let ids: Vec<&str> = starts[1..]
        .iter()
        .map(|d| d["content_block"]["id"].as_str().unwrap())
        .collect();
    let assistant = json!({"role": "assistant", "content": [
        {"type": "text", "text": "checking"},
        {"type": "tool_use", "id": ids[0], "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": ids[1], "name": "get_time", "input": {}}]});
    let (status, events2) = app
        .anthropic_stream(json!({"model": "sonnet", "max_tokens": 1024, "tools": tools(), "messages": [
            first, assistant,
            {"role": "user", "content": [tool_result(ids[1], "noon"), tool_result(ids[0], "sunny")]}]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        streamed(&events2, "text_delta", "text"),
        "done | tool results: sunny | noon"
    );
    assert_eq!(
        event(&events2, "message_delta")["delta"]["stop_reason"],
        "end_turn"
    );
    assert_eq!(app.spawned(), 1);
    app.stop().await;
}

#[tokio::test]
async fn disable_parallel_tool_use_shows_one_call() {
    let app = spawn_app().await;
    let (status, body) = app
        .anthropic(
            json!({"model": "sonnet", "max_tokens": 1024, "tools": tools(),
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "messages": [user(BOTH)]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let calls = body["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .count();
    assert_eq!(calls, 1, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn count_tokens_asks_the_upstream() {
    let app = spawn_app().await;
    let text = "x".repeat(400);
    let resp = app
        .post(
            "/v1/messages/count_tokens",
            &json!({"model": "sonnet", "system": "S", "tools": tools(), "messages": [user(&text)]}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    // The mock counts a quarter token per character of message text.
    assert_eq!(body, json!({"input_tokens": 100}));
    let logged = app
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/v1/messages/count_tokens"))
        .expect("the upstream was asked");
    assert_eq!(logged.body["model"], "claude-sonnet-5");
    assert_eq!(logged.body["system"], "S");
    assert_eq!(logged.body["tools"][0]["name"], "get_weather");
    assert!(
        logged.headers.contains_key("x-api-key"),
        "the upstream key was sent"
    );
    assert!(app.model_requests().is_empty(), "no model call, no CLI");

    let resp = app
        .post(
            "/v1/messages/count_tokens",
            &json!({"model": "gpt-4o", "messages": [user("x")]}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error");
    let resp = app
        .post("/v1/messages/count_tokens", &json!({"model": "sonnet"}))
        .await;
    assert_eq!(resp.status().as_u16(), 400);
    app.stop().await;
}

#[tokio::test]
async fn count_tokens_without_an_upstream_is_a_bad_gateway() {
    let app = spawn_app_with(|c| {
        c.cli_env = vec![
            ("ANTHROPIC_BASE_URL".into(), "http://127.0.0.1:9".into()),
            ("ANTHROPIC_API_KEY".into(), "sk-test".into()),
        ]
    })
    .await;
    let resp = app
        .post(
            "/v1/messages/count_tokens",
            &json!({"model": "sonnet", "messages": [user("x")]}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "api_error");
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_are_400_naming_the_field() {
    let app = spawn_app().await;
    let raw = app
        .client
        .post(format!("{}/v1/messages", app.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    for (req, field) in [
        (
            json!({"model": "sonnet", "messages": [user("x")]}),
            "max_tokens",
        ),
        (json!({"max_tokens": 10, "messages": [user("x")]}), "model"),
        (json!({"model": "sonnet", "max_tokens": 10}), "messages"),
        (
            json!({"model": "sonnet", "max_tokens": 10, "messages": [user("x"), {"role": "assistant", "content": "y"}, {"role": "user", "content": [{"type": "video"}]}]}),
            "messages.2.content.0.type",
        ),
        (
            json!({"model": "sonnet", "max_tokens": 10, "messages": [{"role": "robot", "content": "x"}]}),
            "messages.0.role",
        ),
        (
            json!({"model": "sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "%%%"}}]}]}),
            "messages.0.content.0.source.data",
        ),
        (
            json!({"model": "sonnet", "max_tokens": 10, "tools": [{"name": "f", "input_schema": {"type": "string"}}], "messages": [user("x")]}),
            "tools.0.input_schema",
        ),
        (
            json!({"model": "sonnet", "max_tokens": 10, "tool_choice": {"type": "tool", "name": "nope"}, "tools": tools(), "messages": [user("x")]}),
            "tool_choice.name",
        ),
        (
            json!({"model": "sonnet", "max_tokens": 10, "thinking": {"type": "enabled"}, "messages": [user("x")]}),
            "thinking.budget_tokens",
        ),
        (
            json!({"model": "sonnet", "max_tokens": 10, "messages": [user("x"),
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
                user("forgot the result")]}),
            "messages.1",
        ),
    ] {
        let (status, body) = app.anthropic(req.clone()).await;
        assert_eq!(status, 400, "{req}");
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{req} -> {message}"
        );
    }
    let (_, body) = app
        .anthropic(json!({"model": "sonnet", "max_tokens": 10, "tools": [{"name": "bad", "input_schema": 5}], "messages": [user("x")]}))
        .await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("'bad'"),
        "the tool is named: {body}"
    );
    assert!(app.model_requests().is_empty(), "nothing reached the model");
    app.stop().await;
}

#[tokio::test]
async fn unknown_model_is_a_404_not_found_error() {
    let app = spawn_app().await;
    let (status, body) = app
        .anthropic(json!({"model": "gpt-4o", "max_tokens": 10, "messages": [user("x")]}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gpt-4o"));
    let resp = app.post("/v1/messages/batches", &json!({})).await;
    assert_eq!(resp.status().as_u16(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error");
    app.stop().await;
}

#[tokio::test]
async fn upstream_errors_map_to_anthropic_errors() {
    let app = spawn_app().await;
    for (directive, status, kind) in [
        ("[[fail:529]]", 503, "overloaded_error"),
        ("[[fail:429]]", 429, "rate_limit_error"),
        ("[[fail:401]]", 401, "authentication_error"),
        ("[[fail:500]]", 502, "api_error"),
    ] {
        let resp = app.post("/v1/messages", &msg(directive)).await;
        assert_eq!(resp.status().as_u16(), status, "{directive}");
        if status == 429 || status == 503 {
            assert!(
                resp.headers().get("retry-after").is_some(),
                "{directive} has retry-after"
            );
        }
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["type"], "error", "{directive}: {body}");
        assert_eq!(body["error"]["type"], kind, "{directive}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 5);
    }
    // Streamed, a failure before any output still gets its status.
    let resp = app
        .post(
            "/v1/messages",
            &with(msg("[[fail:529]]"), "stream", json!(true)),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");
    app.stop().await;
}

#[tokio::test]
async fn error_after_streaming_began_is_an_error_event() {
    let app = spawn_app_with(|c| c.turn_timeout_secs = 2).await;
    let (status, events) = app.anthropic_stream(msg("[[slow:300]] [[words:40]]")).await;
    assert_eq!(status, 200);
    assert!(streamed(&events, "text_delta", "text").starts_with("w1"));
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "timeout_error");
    assert!(!names(&events).contains(&"message_stop"));
    app.stop().await;
}

#[tokio::test]
async fn api_keys_refusals_come_in_anthropic_shape() {
    let app = spawn_app_with(|c| c.api_keys = vec!["key-for-tests-1".into()]).await;
    let url = format!("{}/v1/messages", app.url);
    let none = app.client.post(&url).json(&msg("x")).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    let wrong = app
        .client
        .post(format!("{url}/count_tokens"))
        .header("x-api-key", "nope-nope-nope")
        .json(&json!({"model": "sonnet", "messages": [user("x")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    let ok = app
        .client
        .post(&url)
        .header("x-api-key", "key-for-tests-1")
        .json(&msg("fine"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    // The OpenAI endpoint keeps OpenAI's shape.
    let openai = app
        .client
        .post(format!("{}/v1/chat/completions", app.url))
        .json(&json!({"model": "sonnet", "messages": [user("x")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(openai.status().as_u16(), 401);
    let body: Value = openai.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    app.stop().await;
}
