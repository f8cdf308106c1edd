//! End to end: OpenAI chat completions through the real CLI against the mock upstream.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

#[tokio::test]
async fn non_streamed_reply_and_real_usage() {
    let app = spawn_app().await;
    let (status, body) = app
        .chat(json!({"model": "sonnet", "messages": [user("hello gateway [[usage:11,7]]")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "sonnet");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "hello gateway");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 11);
    assert_eq!(body["usage"]["completion_tokens"], 7);
    assert_eq!(body["usage"]["total_tokens"], 18);
    // The CLI was asked for the alias's model.
    assert_eq!(app.last_model_request()["model"], "claude-sonnet-5");
    app.stop().await;
}

#[tokio::test]
async fn streamed_reply_is_token_level_with_usage_chunk() {
    let app = spawn_app().await;
    let (status, chunks) = app
        .chat_stream(
            json!({"model": "sonnet", "stream_options": {"include_usage": true},
            "messages": [user("[[words:12]]")]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    let content_chunks = chunks
        .iter()
        .filter(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert!(
        content_chunks >= 12,
        "expected token-level deltas, got {content_chunks}"
    );
    let expected: Vec<String> = (1..=12).map(|i| format!("w{i}")).collect();
    assert_eq!(streamed_content(&chunks), expected.join(" "));
    assert_eq!(chunks.last().unwrap(), &Value::String("[DONE]".into()));
    let finish = &chunks[chunks.len() - 3];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage_chunk = &chunks[chunks.len() - 2];
    assert_eq!(usage_chunk["choices"].as_array().unwrap().len(), 0);
    let reported = app.model_requests().last().unwrap().usage.clone().unwrap();
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"],
        reported["output_tokens"]
    );
    assert_eq!(
        usage_chunk["usage"]["prompt_tokens"],
        reported["input_tokens"]
    );
    // Every chunk shares one id.
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["id"] == chunks[0]["id"]));
    app.stop().await;
}

#[tokio::test]
async fn three_turn_conversation_continues_in_the_same_process() {
    let app = spawn_app().await;
    let sys = json!({"role": "system", "content": "You are TEST-SYSTEM."});
    let (_, r1) = app
        .chat(json!({"model": "sonnet", "messages": [sys, user("alpha")]}))
        .await;
    let a1 = r1["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, r2) = app
        .chat(json!({"model": "sonnet", "messages": [sys, user("alpha"), assistant(&a1), user("beta")]}))
        .await;
    let a2 = r2["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(a2, "beta");
    let (status, r3) = app
        .chat(json!({"model": "sonnet", "messages": [sys, user("alpha"), assistant(&a1), user("beta"), assistant(&a2), user("gamma [[report:history]]")]}))
        .await;
    assert_eq!(status, 200, "{r3}");
    // The model received every earlier turn, in order.
    let got = model_messages(&app.last_model_request());
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        vec!["alpha", "alpha", "beta", "beta", "gamma [[report:history]]"]
    );
    let roles: Vec<&str> = got.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        roles,
        vec!["user", "assistant", "user", "assistant", "user"]
    );
    assert!(app.last_model_request()["system"]
        .to_string()
        .contains("You are TEST-SYSTEM."));
    // One process served all three turns.
    assert_eq!(app.spawned(), 1);
    app.stop().await;
}

#[tokio::test]
async fn unknown_history_is_replayed_as_real_messages() {
    let app = spawn_app().await;
    let (status, body) = app
        .chat(json!({"model": "sonnet", "messages": [
            user("q1"), assistant("a1"), user("q2"), assistant("a2"), user("q3")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let got = model_messages(&app.last_model_request());
    assert_eq!(
        got,
        vec![
            ("user".to_string(), "q1".to_string()),
            ("assistant".into(), "a1".into()),
            ("user".into(), "q2".into()),
            ("assistant".into(), "a2".into()),
            ("user".into(), "q3".into()),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn image_reaches_the_model_as_an_image_block() {
    let app = spawn_app().await;
    let (status, body) = app
        .chat(json!({"model": "sonnet", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_1X1}")}}
        ]}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let req = app.last_model_request();
    let last = req["messages"].as_array().unwrap().last().unwrap().clone();
    let image = last["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "image")
        .expect("an image block reached the model")
        .clone();
    assert_eq!(image["source"]["type"], "base64");
    assert_eq!(image["source"]["media_type"], "image/png");
    assert_eq!(image["source"]["data"], PNG_1X1);
    app.stop().await;
}

#[tokio::test]
async fn the_model_receives_no_built_in_tools() {
    let app = spawn_app().await;
    let (status, _) = app
        .chat(json!({"model": "sonnet", "messages": [user("hi")]}))
        .await;
    assert_eq!(status, 200);
    let req = app.last_model_request();
    assert_eq!(req["tools"], json!([]), "tools offered: {}", req["tools"]);
    app.stop().await;
}

#[tokio::test]
async fn thinking_is_reasoning_content() {
    let app = spawn_app().await;
    let (_, body) = app
        .chat(json!({"model": "sonnet", "messages": [user("[[think:deep thought]] answer")]}))
        .await;
    assert_eq!(
        body["choices"][0]["message"]["reasoning_content"],
        "deep thought"
    );
    assert_eq!(body["choices"][0]["message"]["content"], "answer");
    let (_, chunks) = app
        .chat_stream(json!({"model": "sonnet", "messages": [user("[[think:more thought]] again")]}))
        .await;
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/reasoning_content")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(reasoning, "more thought");
    app.stop().await;
}

#[tokio::test]
async fn stop_sequences_cut_the_reply() {
    let app = spawn_app().await;
    let (_, body) = app
        .chat(json!({"model": "sonnet", "stop": ["STOP"], "messages": [user("[[text:keep this STOP not this]]")]}))
        .await;
    assert_eq!(body["choices"][0]["message"]["content"], "keep this ");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let (_, chunks) = app
        .chat_stream(json!({"model": "sonnet", "stop": "##", "messages": [user("[[text:one two ## three]]")]}))
        .await;
    assert_eq!(streamed_content(&chunks), "one two ");
    app.stop().await;
}

#[tokio::test]
async fn max_tokens_reaches_the_model() {
    let app = spawn_app().await;
    let (status, _) = app
        .chat(json!({"model": "sonnet", "max_tokens": 123, "messages": [user("short")]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.last_model_request()["max_tokens"], 123);
    app.stop().await;
}

#[tokio::test]
async fn upstream_errors_map_to_openai_errors() {
    let app = spawn_app().await;
    for (directive, status, code) in [
        ("[[fail:529]]", 503, "upstream_overloaded"),
        ("[[fail:429]]", 429, "rate_limit_exceeded"),
        ("[[fail:401]]", 401, "upstream_authentication_failed"),
        ("[[fail:500]]", 502, "upstream_error"),
    ] {
        let resp = app
            .post(
                "/v1/chat/completions",
                &json!({"model": "sonnet", "messages": [user(directive)]}),
            )
            .await;
        assert_eq!(resp.status().as_u16(), status, "{directive}");
        if status == 429 || status == 503 {
            assert!(
                resp.headers().get("retry-after").is_some(),
                "{directive} has retry-after"
            );
        }
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{directive}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 5);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_stream_that_fails_before_any_output_keeps_its_status() {
    let app = spawn_app().await;
    let resp = app
        .post(
            "/v1/chat/completions",
            &json!({"model": "sonnet", "stream": true, "messages": [user("[[fail:529]]")]}),
        )
        .await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_overloaded", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn error_after_streaming_began_is_an_sse_error_event() {
    // The upstream starts its message, then goes silent past the idle timeout.
    let app = spawn_app_with(|c| c.idle_timeout_secs = 1).await;
    let (status, chunks) = app
        .chat_stream(json!({"model": "sonnet", "messages": [user("[[words:2]] [[slow:3000]]")]}))
        .await;
    assert_eq!(status, 200);
    let last = chunks.last().unwrap();
    assert_eq!(last["error"]["code"], "timeout", "{chunks:?}");
    assert!(!chunks.contains(&Value::String("[DONE]".into())));
    app.stop().await;
}

#[tokio::test]
async fn unknown_model_is_404() {
    let app = spawn_app().await;
    let (status, body) = app
        .chat(json!({"model": "gpt-4o", "messages": [user("x")]}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "model_not_found");
    let resp = app
        .client
        .get(format!("{}/v1/models/gpt-4o", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    app.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_field() {
    let app = spawn_app().await;
    let raw = app
        .client
        .post(format!("{}/v1/chat/completions", app.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    for (req, param) in [
        (json!({"messages": [user("x")]}), "model"),
        (json!({"model": "sonnet"}), "messages"),
        (json!({"model": "sonnet", "messages": "hi"}), "messages"),
        (
            json!({"model": "sonnet", "messages": [{"role": "robot", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "sonnet", "messages": [{"role": "user", "content": [{"type": "video"}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"model": "sonnet", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%"}}]}]}),
            "messages[0].content[0].image_url.url",
        ),
        (
            json!({"model": "sonnet", "n": 2, "messages": [user("x")]}),
            "n",
        ),
        (
            json!({"model": "sonnet", "max_tokens": "many", "messages": [user("x")]}),
            "max_tokens",
        ),
        (
            json!({"model": "sonnet", "messages": [user("x"), assistant("y")]}),
            "messages[1].role",
        ),
    ] {
        let (status, body) = app.chat(req.clone()).await;
        assert_eq!(status, 400, "{req}");
        assert_eq!(body["error"]["param"], param, "{req} -> {body}");
    }
    // Nothing reached the model.
    assert!(app.model_requests().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn parameters_the_cli_cannot_honour_are_accepted() {
    let app = spawn_app().await;
    let (status, body) = app
        .chat(json!({"model": "sonnet", "temperature": 0.1, "top_p": 0.5, "seed": 7,
            "presence_penalty": 0.2, "user": "u-1", "metadata": {"k": "v"}, "messages": [user("fine")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "fine");
    // temperature and top_p do reach the model; thinking goes off, as the API requires.
    let req = app.last_model_request();
    assert_eq!(req["temperature"], 0.1);
    assert_eq!(req["top_p"], 0.5);
    assert_eq!(req["thinking"]["type"], "disabled");
    assert!(req.get("seed").is_none());
    app.stop().await;
}

#[tokio::test]
async fn client_abort_interrupts_and_leaves_no_process() {
    let app = spawn_app().await;
    let mut resp = app
        .post(
            "/v1/chat/completions",
            &json!({"model": "sonnet", "stream": true,
            "messages": [user("[[slow:200]] [[words:100]]")]}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    // Wait for real content, so the CLI is mid-turn.
    let mut seen = String::new();
    while !seen.contains("w1") {
        let chunk = resp.chunk().await.unwrap().expect("stream still open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(app.live(), 1);
    assert_eq!(processes_under(app.data.path()).len(), 1);
    drop(resp);
    let gone = wait_for(
        || processes_under(app.data.path()).is_empty(),
        Duration::from_secs(15),
    )
    .await;
    assert!(gone, "a claude process outlived its aborted client");
    assert_eq!(app.live(), 0);
    app.stop().await;
}

#[tokio::test]
async fn capacity_queue_then_429_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.max_live_processes = 1;
        c.queue_timeout_secs = 1;
    })
    .await;
    let busy = {
        let app_url = app.url.clone();
        let client = app.client.clone();
        tokio::spawn(async move {
            client
                .post(format!("{app_url}/v1/chat/completions"))
                .json(&json!({"model": "sonnet", "messages": [user("[[slow:150]] [[words:20]]")]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    assert!(wait_for(|| app.live() == 1, Duration::from_secs(10)).await);
    let resp = app
        .post(
            "/v1/chat/completions",
            &json!({"model": "sonnet", "messages": [user("next")]}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "gateway_at_capacity");
    assert_eq!(busy.await.unwrap(), 200);
    // Once the slot is idle, a new conversation takes it (evicting the idle process).
    let (status, _) = app
        .chat(json!({"model": "sonnet", "messages": [user("after")]}))
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn idle_timeout_is_504_and_frees_the_process() {
    let app = spawn_app_with(|c| c.idle_timeout_secs = 2).await;
    let (status, body) = app
        .chat(json!({"model": "sonnet", "messages": [user("[[hang]]")]}))
        .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "timeout");
    assert!(
        wait_for(
            || processes_under(app.data.path()).is_empty(),
            Duration::from_secs(15)
        )
        .await
    );
    app.stop().await;
}

#[tokio::test]
async fn api_keys_guard_the_api_but_not_health() {
    let app = spawn_app_with(|c| c.api_keys = vec!["key-for-tests-1".into()]).await;
    let body = json!({"model": "sonnet", "messages": [user("x")]});
    let url = format!("{}/v1/chat/completions", app.url);
    let none = app.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    let wrong = app
        .client
        .post(&url)
        .bearer_auth("nope-nope-nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let bearer = app
        .client
        .post(&url)
        .bearer_auth("key-for-tests-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status().as_u16(), 200);
    let xkey = app
        .client
        .get(format!("{}/v1/models", app.url))
        .header("x-api-key", "key-for-tests-1")
        .send()
        .await
        .unwrap();
    assert_eq!(xkey.status().as_u16(), 200);
    let health = app
        .client
        .get(format!("{}/health", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    app.stop().await;
}

#[tokio::test]
async fn models_and_health_endpoints() {
    let app = spawn_app().await;
    let list: Value = app.get_json("/v1/models").await;
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in ["sonnet", "opus", "haiku", "default", "claude-sonnet-5"] {
        assert!(ids.contains(&id), "{id} listed");
    }
    let one: Value = app.get_json("/v1/models/haiku").await;
    assert_eq!(one["id"], "haiku");
    assert_eq!(one["object"], "model");
    for path in ["/health", "/v1/health"] {
        let h: Value = app.get_json(path).await;
        assert_eq!(h["status"], "ok");
        assert_eq!(h["cli_version"], "2.1.197");
        assert_eq!(h["live_processes"], 0);
        assert_eq!(h["queue_depth"], 0);
    }
    app.stop().await;
}

#[tokio::test]
async fn model_switch_mid_conversation_keeps_the_history_clean() {
    let app = spawn_app().await;
    let (_, r1) = app
        .chat(json!({"model": "sonnet", "messages": [user("one")]}))
        .await;
    let a1 = r1["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = app
        .chat(json!({"model": "haiku", "messages": [user("one"), assistant(&a1), user("two")]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.last_model_request()["model"],
        "claude-haiku-4-5-20251001"
    );
    // A new process resumes the session with the new model, so nothing but the conversation
    // reaches the model (`set_model` would add a `/model` transcript to the message).
    assert_eq!(app.spawned(), 2);
    let got = model_messages(&app.last_model_request());
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, vec!["one", "one", "two"]);
    app.stop().await;
}

#[tokio::test]
async fn slash_text_is_text_not_a_command() {
    let app = spawn_app().await;
    let (status, body) = app
        .chat(json!({"model": "sonnet", "messages": [user("/cost of living")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    // The model was asked (a slash command never reaches it) and saw the text.
    assert_eq!(app.model_requests().len(), 1);
    assert_eq!(body["choices"][0]["message"]["content"], "/cost of living");
    app.stop().await;
}

#[tokio::test]
async fn a_branch_from_an_earlier_point_never_alters_the_original() {
    let app = spawn_app().await;
    let (_, r1) = app
        .chat(json!({"model": "sonnet", "messages": [user("root")]}))
        .await;
    let a1 = r1["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, r2) = app
        .chat(json!({"model": "sonnet", "messages": [user("root"), assistant(&a1), user("main line")]}))
        .await;
    let a2 = r2["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    // A branch: the same first exchange, then something else.
    let (status, rb) = app
        .chat(json!({"model": "sonnet", "messages": [user("root"), assistant(&a1), user("side branch [[report:history]]")]}))
        .await;
    assert_eq!(status, 200, "{rb}");
    let branch_view = rb["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        !branch_view.contains("main line"),
        "the branch does not see the main line: {branch_view}"
    );
    // The original goes on from where it was, without the branch.
    let (status, r3) = app
        .chat(json!({"model": "sonnet", "messages": [user("root"), assistant(&a1), user("main line"), assistant(&a2), user("continue [[report:history]]")]}))
        .await;
    assert_eq!(status, 200, "{r3}");
    let got = model_messages(&app.last_model_request());
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            "root",
            "root",
            "main line",
            "main line",
            "continue [[report:history]]"
        ]
    );
    assert_eq!(
        app.spawned(),
        2,
        "the original continued in its own process; the branch got its own"
    );
    app.stop().await;
}
