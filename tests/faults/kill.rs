//! Kills and restarts: `kill -9` of the gateway and of a CLI, and what a restart finds. The
//! gateway runs as a process of its own here (`ccgw serve`), so it can be killed for real.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use crate::support::*;

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .unwrap_or_default()
}

/// Whether the CLI process `pid` has a transcript (a conversation, not a warm process).
fn has_transcript(data: &std::path::Path, pid: u32) -> bool {
    let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else {
        return false;
    };
    let dir = ccgw::claude::transcript::project_dir(&data.join("claude"), &cwd);
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
}

fn chat_url(gw: &External) -> String {
    format!("{}/v1/chat/completions", gw.url)
}

#[tokio::test]
async fn no_descendant_of_a_cli_outlives_a_killed_gateway() {
    let mock = start_mock().await;
    let data = tempfile::tempdir().unwrap();
    let mut gw = External::start(data.path(), &mock, &[("CCGW_BUILTIN_TOOLS", "Bash")]);
    let url = chat_url(&gw);
    let turn = tokio::spawn(async move {
        let body = json!({"model": "sonnet", "builtin_tools": ["Bash"],
            "messages": [user(r#"[[tool:Bash {"command":"sleep 47"}]]"#)]});
        let _ = reqwest::Client::new().post(url).json(&body).send().await;
    });
    // The Bash tool's `sleep` runs in the conversation's workspace.
    let sleeping = || {
        processes_under(data.path())
            .into_iter()
            .any(|p| cmdline(p).starts_with("sleep 47"))
    };
    assert!(
        wait_for(sleeping, Duration::from_secs(30)).await,
        "the Bash tool never ran"
    );
    gw.kill9();
    let gone = wait_for(
        || processes_under(data.path()).is_empty(),
        Duration::from_secs(10),
    )
    .await;
    assert!(
        gone,
        "left behind by a killed gateway: {:?}",
        processes_under(data.path())
            .into_iter()
            .map(cmdline)
            .collect::<Vec<_>>()
    );
    turn.abort();
    // A restart sweeps the workspaces nobody holds: the killed turn's, the warm processes'.
    assert_eq!(
        workspace_dirs(data.path()).len(),
        3,
        "the turn's and two warm ones"
    );
    let gw = External::start(data.path(), &mock, &[("CCGW_BUILTIN_TOOLS", "Bash")]);
    gw.wait_warm(2).await;
    assert_eq!(
        workspace_dirs(data.path()).len(),
        2,
        "only the new warm processes' workspaces are left"
    );
}

/// Live supervisors started by the gateway `gateway` (they run in `/`, not in a workspace).
fn supervisors_of(gateway: u32) -> Vec<u32> {
    let needle = format!("supervise --parent {gateway} ");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| cmdline(*pid).contains(&needle) && pid_alive(*pid))
        .collect()
}

#[tokio::test]
async fn nothing_outlives_a_gateway_killed_during_a_burst_of_new_conversations() {
    // The supervisors are started with nothing between fork and exec (`posix_spawn`), and
    // ask for their death signal themselves: a kill while they are being started must still
    // take every one of them, and every CLI, with it. Under the defaults (warm pool on).
    let mock = start_mock().await;
    let data = tempfile::tempdir().unwrap();
    let mut gw = External::start(data.path(), &mock, &[]);
    let gateway = gw.pid();
    let client = reqwest::Client::new();
    let burst: Vec<_> = (0..12)
        .map(|n| {
            let (client, url) = (client.clone(), chat_url(&gw));
            tokio::spawn(async move {
                let body = json!({"model": "sonnet", "stream": true,
                    "messages": [user(&format!("[[slow:500]] burst {n}"))]});
                let _ = client.post(url).json(&body).send().await;
            })
        })
        .collect();
    // Kill it while the burst's processes are being started: more than the warm pool's two
    // supervisors exist, and fewer than the budget's eight.
    let starting = wait_for(
        || supervisors_of(gateway).len() > 2,
        Duration::from_secs(30),
    )
    .await;
    assert!(starting, "the burst never started a process");
    gw.kill9();
    let gone = wait_for(
        || processes_under(data.path()).is_empty() && supervisors_of(gateway).is_empty(),
        Duration::from_secs(10),
    )
    .await;
    assert!(
        gone,
        "left behind by a gateway killed mid-burst: {:?}",
        processes_under(data.path())
            .into_iter()
            .chain(supervisors_of(gateway))
            .map(cmdline)
            .collect::<Vec<_>>()
    );
    for t in burst {
        t.abort();
    }
}

#[tokio::test]
async fn after_a_kill_mid_turn_the_follow_up_holds_only_what_the_client_saw() {
    let mock = start_mock().await;
    let data = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut gw = External::start(data.path(), &mock, &[]);
    let (status, r1) = post_json(
        &client,
        &chat_url(&gw),
        &json!({"model": "sonnet", "messages": [user("first question")]}),
    )
    .await;
    assert_eq!(status, 200, "{r1}");
    let a1 = reply_text(&r1);
    // The second turn hangs upstream; the gateway dies under it.
    let url = chat_url(&gw);
    let history = json!([user("first question"), assistant(&a1)]);
    let mut aborted = history.clone();
    aborted
        .as_array_mut()
        .unwrap()
        .push(user("aborted turn [[hang]]"));
    let hung = tokio::spawn(async move {
        let _ = reqwest::Client::new()
            .post(url)
            .json(&json!({"model": "sonnet", "messages": aborted}))
            .send()
            .await;
    });
    let upstream_saw_it = || {
        mock.messages_requests()
            .iter()
            .any(|r| r.body.to_string().contains("aborted turn"))
    };
    assert!(wait_for(upstream_saw_it, Duration::from_secs(20)).await);
    gw.kill9();
    hung.abort();
    let gw = External::start(data.path(), &mock, &[]);
    let mut next = history.clone();
    next.as_array_mut()
        .unwrap()
        .push(user("third [[report:history]]"));
    let (status, r3) = post_json(
        &client,
        &chat_url(&gw),
        &json!({"model": "sonnet", "messages": next}),
    )
    .await;
    assert_eq!(status, 200, "{r3}");
    let got = model_messages(&mock.messages_requests().last().unwrap().body);
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        vec!["first question", a1.as_str(), "third [[report:history]]"],
        "the model must see exactly the client's history"
    );
}

#[tokio::test]
async fn a_follow_up_right_after_a_kill_is_answered() {
    let mock = start_mock().await;
    let client = reqwest::Client::new();
    for (round, delay_ms) in [0u64, 10, 30, 60].into_iter().enumerate() {
        let data = tempfile::tempdir().unwrap();
        let mut gw = External::start(data.path(), &mock, &[]);
        let q = format!("round {round}");
        let (status, r1) = post_json(
            &client,
            &chat_url(&gw),
            &json!({"model": "sonnet", "messages": [user(&q)]}),
        )
        .await;
        assert_eq!(status, 200, "{r1}");
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        gw.kill9();
        let gw = External::start(data.path(), &mock, &[]);
        let (status, r2) = post_json(
            &client,
            &chat_url(&gw),
            &json!({"model": "sonnet", "messages": [user(&q), assistant(&reply_text(&r1)),
                user("again [[report:history]]")]}),
        )
        .await;
        assert_eq!(
            status, 200,
            "round {round} (killed {delay_ms} ms after the answer): {r2}"
        );
        let got = model_messages(&mock.messages_requests().last().unwrap().body);
        let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            vec![q.as_str(), q.as_str(), "again [[report:history]]"]
        );
    }
}

#[tokio::test]
async fn what_a_client_was_told_survives_a_kill_right_after() {
    let mock = start_mock().await;
    let client = reqwest::Client::new();
    let data = tempfile::tempdir().unwrap();
    let mut gw = External::start(data.path(), &mock, &[]);
    let id = new_session(&client, &gw.url, json!({"model": "sonnet"})).await;
    for round in 0..3 {
        let text = format!("remember {round}");
        let (status, r) = say(&client, &gw.url, &id, json!(text)).await;
        assert_eq!(status, 200, "{r}");
        gw.kill9();
        gw = External::start(data.path(), &mock, &[]);
        let h: Value = client
            .get(format!("{}/api/sessions/{id}/history", gw.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kinds: Vec<(String, String)> = h["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap_or("").to_string(),
                    e["payload"]["text"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert!(
            kinds.contains(&("assistant".into(), text.clone())),
            "round {round}: the answer is in the history: {kinds:?}"
        );
        assert_eq!(
            kinds.iter().filter(|(k, _)| k == "result").count(),
            round + 1,
            "round {round}: one result per answered turn: {kinds:?}"
        );
    }
    // And the conversation itself goes on, with every turn.
    let (status, r) = say(&client, &gw.url, &id, json!("[[report:history]]")).await;
    assert_eq!(status, 200, "{r}");
    for round in 0..3 {
        assert!(
            r["text"]
                .as_str()
                .unwrap()
                .contains(&format!("remember {round}")),
            "{r}"
        );
    }
}

#[tokio::test]
async fn what_a_compatible_api_client_was_told_survives_a_kill_right_after() {
    let mock = start_mock().await;
    let client = reqwest::Client::new();
    let data = tempfile::tempdir().unwrap();
    let mut gw = External::start(data.path(), &mock, &[]);
    for round in 0..3 {
        let q = format!("tell me {round} [[text:answer {round}]]");
        let resp = client
            .post(chat_url(&gw))
            .json(&json!({"model": "sonnet", "messages": [user(&q)]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let id = resp.headers()["x-ccgw-conversation-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(reply_text(&body), format!("answer {round}"));
        // At once: nothing in flight gets a moment to be written.
        gw.kill9();
        gw = External::start(data.path(), &mock, &[]);
        let h: Value = client
            .get(format!("{}/admin/api/conversations/{id}/events", gw.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entries: Vec<(String, String)> = h["data"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap_or("").to_string(),
                    e["payload"]["text"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let kinds: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            ["user", "assistant", "step_end", "result"],
            "round {round}: the turn is in the history: {entries:?}"
        );
        assert_eq!(entries[1].1, format!("answer {round}"));
    }
}

#[tokio::test]
async fn a_killed_cli_ends_its_turn_cleanly_and_the_session_goes_on() {
    let app = spawn_defaults().await;
    let c = &app.client;
    let id = new_session(c, &app.url, json!({"model": "sonnet"})).await;
    let (status, _) = say(c, &app.url, &id, json!("before the crash")).await;
    assert_eq!(status, 200);
    let (url, client, sid) = (app.url.clone(), c.clone(), id.clone());
    let hung = tokio::spawn(async move { say(&client, &url, &sid, json!("crash [[hang]]")).await });
    let upstream_saw_it = || {
        app.model_requests()
            .iter()
            .any(|r| r.body.to_string().contains("crash [[hang]]"))
    };
    assert!(wait_for(upstream_saw_it, Duration::from_secs(20)).await);
    // Kill the session's CLI as a crash would: the one that has written a transcript. Look
    // for it a while: under load the listing of /proc can catch it between states.
    let session_process = || {
        processes_under(app.data.path())
            .into_iter()
            .find(|p| has_transcript(app.data.path(), *p))
    };
    assert!(
        wait_for(|| session_process().is_some(), Duration::from_secs(10)).await,
        "the session's process is under the data dir: {:?}",
        processes_under(app.data.path())
            .into_iter()
            .map(|p| (p, std::fs::read_link(format!("/proc/{p}/cwd")).ok()))
            .collect::<Vec<_>>()
    );
    let pid = session_process().expect("the session's process");
    // SAFETY: test code, signalling a process of this test.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let (status, body) = hung.await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "cli_error");
    let (status, r) = say(c, &app.url, &id, json!("after [[report:history]]")).await;
    assert_eq!(status, 200, "{r}");
    let text = r["text"].as_str().unwrap();
    assert!(text.contains("before the crash"), "{text}");
    assert!(
        !text.contains("crash [[hang]]"),
        "the crashed turn is gone: {text}"
    );
    assert_at_rest_with(&app, 1, "after the crash").await;
    app.stop().await;
}

/// A built-in tool call whose turn ended because its client went away is in the tool-call
/// records too (there were 6 rows for 7 calls), with the outcome `interrupted`.
#[tokio::test]
async fn a_tool_call_cut_off_by_a_disconnect_is_recorded() {
    let app = spawn_defaults_with(|c| c.builtin_tools = vec!["Bash".into()]).await;
    let first = json!({"model": "sonnet", "builtin_tools": ["Bash"],
        "messages": [user(r#"[[tool:Bash {"command":"echo done-first"}]]"#)]});
    let (status, body) = app.chat(first).await;
    assert_eq!(status, 200, "{body}");
    let said = reply_text(&body);
    // The follow-up runs a long Bash call, and its client goes away while it runs.
    let url = format!("{}/v1/chat/completions", app.url);
    let follow_up = json!({"model": "sonnet", "builtin_tools": ["Bash"], "messages": [
        user(r#"[[tool:Bash {"command":"echo done-first"}]]"#), assistant(&said),
        user(r#"[[tool:Bash {"command":"sleep 39"}]]"#)]});
    let turn = tokio::spawn(async move {
        let _ = reqwest::Client::new()
            .post(url)
            .json(&follow_up)
            .send()
            .await;
    });
    let sleeping = || {
        processes_under(app.data.path())
            .into_iter()
            .any(|p| cmdline(p).starts_with("sleep 39"))
    };
    assert!(
        wait_for(sleeping, Duration::from_secs(30)).await,
        "the Bash tool never ran"
    );
    turn.abort();
    assert!(
        wait_for(|| !sleeping(), Duration::from_secs(20)).await,
        "the cut-off turn stopped its tool"
    );
    let store = app.server().state.conversations.store.clone();
    let filter = ccgw::store::SessionFilter {
        source: Some(ccgw::store::source::OPENAI.into()),
        ..Default::default()
    };
    let mut calls = Vec::new();
    for _ in 0..100 {
        let page = store.list_sessions(&filter).await.unwrap();
        assert_eq!(page.items.len(), 1, "one conversation");
        calls = store.list_tool_calls(&page.items[0].id).await.unwrap();
        if calls.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outcomes: Vec<(String, Option<String>)> = calls
        .iter()
        .map(|c| (c.tool.clone(), c.outcome.clone()))
        .collect();
    assert_eq!(calls.len(), 2, "{outcomes:?}");
    assert!(
        outcomes.contains(&("Bash".into(), Some("interrupted".into()))),
        "{outcomes:?}"
    );
    assert_at_rest(&app, "after the cut-off turn").await;
    app.stop().await;
}
