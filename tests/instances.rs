//! Several instances serving the same sessions (docs/instances.md): two `ccgw serve` processes
//! on loopback share one scratch Postgres and one data dir, with the real CLI and the mock
//! upstream, under the defaults (warm pool on) but for a short lease time to live where a
//! test waits for a lease to expire.
//!
//! - a native session made on A continues on B, then on A again (A's idle process is stale
//!   and A resumes from the transcript, seeing B's turn);
//! - A is killed with -9 in the middle of a turn, and the session continues on B once the
//!   lease expires;
//! - a compatible conversation started on A continues on B and back on A, as one
//!   conversation (one id), not a replay;
//! - two instances race for one session: the loser waits for the lease or gets a clean 409
//!   with `retry-after`, and the history and the model's conversation hold whole turns;
//! - a turn whose lease is taken over (a stalled holder) stops, and saves nothing over the
//!   new holder's record;
//! - a draining instance (SIGTERM) releases its leases: another one takes the session over at
//!   once, not after the lease's time to live.
//!
//! The tests run one at a time: each starts two gateways and their warm pools.

mod common;
#[allow(dead_code)]
#[path = "faults/support.rs"]
mod support;

use std::time::{Duration, Instant};

use ccgw::mock_upstream::MockUpstream;
use common::*;
use serde_json::{json, Value};
use support::{new_session, post_json, say, External};

/// Two gateways at once per test is what this machine takes.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Two instances on one data dir and one Postgres database.
struct Pair {
    url: String,
    a: External,
    b: External,
    mock: MockUpstream,
    data: tempfile::TempDir,
    client: reqwest::Client,
}

async fn pair(a_env: &[(&str, &str)], b_env: &[(&str, &str)]) -> Pair {
    let mock = start_mock().await;
    let data = tempfile::tempdir().expect("temp dir");
    let url = postgres_database().await;
    let with_db = |extra: &[(&str, &str)]| {
        let mut env: Vec<(String, String)> = vec![("CCGW_DATABASE_URL".into(), url.clone())];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let start = |env: Vec<(String, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        External::start(data.path(), &mock, &env)
    };
    let a = start(with_db(a_env));
    // Both on one data dir: with Postgres the second one starts.
    let b = start(with_db(b_env));
    a.wait_warm(2).await;
    b.wait_warm(2).await;
    Pair {
        url,
        a,
        b,
        mock,
        data,
        client: reqwest::Client::new(),
    }
}

impl Pair {
    /// Stop both, and check that no CLI process is left under the data dir.
    async fn finish(self) {
        let Pair { a, b, data, .. } = self;
        drop(a);
        drop(b);
        let gone = wait_for(
            || processes_under(data.path()).is_empty(),
            Duration::from_secs(20),
        )
        .await;
        assert!(gone, "left behind: {:?}", processes_under(data.path()));
    }

    async fn history(&self, on: &External, id: &str) -> Vec<(String, String)> {
        let r = self
            .client
            .get(format!("{}/api/sessions/{id}/history", on.url))
            .send()
            .await
            .expect("history");
        assert_eq!(r.status(), 200);
        let h: Value = r.json().await.expect("history json");
        h["data"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["kind"] == "user" || e["kind"] == "assistant")
            .map(|e| {
                let text = match e["kind"].as_str() {
                    Some("user") => e["payload"]["content"][0]["text"]
                        .as_str()
                        .or(e["payload"]["content"].as_str()),
                    _ => e["payload"]["text"].as_str(),
                };
                (
                    e["kind"].as_str().unwrap_or_default().to_string(),
                    text.unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

/// The user messages of a history, in order.
fn user_lines(h: &[(String, String)]) -> Vec<String> {
    h.iter()
        .filter(|(k, _)| k == "user")
        .map(|(_, t)| t.clone())
        .collect()
}

fn logged(gw: &External, needle: &str) -> bool {
    gw.logs.lock().unwrap().iter().any(|l| l.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_a_continues_on_b_and_back_on_a() {
    let _one = ONE_AT_A_TIME.lock().await;
    let p = pair(&[], &[]).await;
    let id = new_session(&p.client, &p.a.url, json!({"model": "sonnet"})).await;
    let (status, r) = say(&p.client, &p.a.url, &id, json!("remember alpha")).await;
    assert_eq!(status, 200, "{r}");

    // On B: the model's conversation holds A's turn.
    let (status, r) = say(&p.client, &p.b.url, &id, json!("beta [[report:history]]")).await;
    assert_eq!(status, 200, "{r}");
    let text = r["text"].as_str().unwrap_or_default();
    assert!(text.contains("remember alpha"), "B continued A's turn: {r}");

    // Back on A, whose idle process was left from its own turn: it must see B's turn.
    let (status, r) = say(&p.client, &p.a.url, &id, json!("gamma [[report:history]]")).await;
    assert_eq!(status, 200, "{r}");
    let text = r["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("remember alpha") && text.contains("beta"),
        "A's second turn sees B's turn: {r}"
    );
    assert!(
        logged(&p.a, "another instance ran this session since"),
        "A stopped its stale process"
    );
    let h = p.history(&p.b, &id).await;
    assert_eq!(
        user_lines(&h),
        [
            "remember alpha",
            "beta [[report:history]]",
            "gamma [[report:history]]"
        ],
        "{h:?}"
    );
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_9_mid_turn_the_session_continues_on_b() {
    let _one = ONE_AT_A_TIME.lock().await;
    let ttl = [("CCGW_LEASE_TTL_SECS", "2")];
    let mut p = pair(&ttl, &ttl).await;
    let id = new_session(&p.client, &p.a.url, json!({"model": "sonnet"})).await;
    let (status, r) = say(&p.client, &p.a.url, &id, json!("remember alpha")).await;
    assert_eq!(status, 200, "{r}");

    // A turn that takes a while on A; A dies in the middle of it, holding the lease.
    let (client, url, sid) = (p.client.clone(), p.a.url.clone(), id.clone());
    let turn = tokio::spawn(async move {
        // Its connection breaks when A dies: no answer is expected.
        let _ = client
            .post(format!("{url}/api/sessions/{sid}/messages"))
            .json(&json!({"content": "doomed [[words:30]] [[slow:1000]]"}))
            .send()
            .await;
    });
    let upstream_saw_it = || {
        p.mock
            .messages_requests()
            .iter()
            .any(|r| r.body.to_string().contains("doomed"))
    };
    assert!(wait_for(upstream_saw_it, Duration::from_secs(30)).await);
    p.a.kill9();
    let _ = turn.await;

    let asked = Instant::now();
    let (status, r) = say(&p.client, &p.b.url, &id, json!("beta [[report:history]]")).await;
    let waited = asked.elapsed();
    assert_eq!(status, 200, "{r}");
    let text = r["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("remember alpha"),
        "B resumed the session: {r}"
    );
    assert!(
        !text.contains("doomed"),
        "the killed turn never ended, so it is not in the conversation: {r}"
    );
    assert!(
        waited < Duration::from_secs(15),
        "B took the session over once the lease expired (waited {waited:?})"
    );
    eprintln!("takeover after kill -9: the message on B waited {waited:?}");
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compatible_conversation_started_on_a_continues_on_b_and_back_on_a() {
    let _one = ONE_AT_A_TIME.lock().await;
    let p = pair(&[], &[]).await;
    let chat = |gw: &External, messages: Value| {
        let (client, url) = (p.client.clone(), format!("{}/v1/chat/completions", gw.url));
        async move {
            let resp = client
                .post(url)
                .json(&json!({"model": "sonnet", "messages": messages}))
                .send()
                .await
                .expect("sent");
            let status = resp.status().as_u16();
            let id = resp
                .headers()
                .get("x-ccgw-conversation-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 200, "{body}");
            (id, body)
        }
    };
    let u1 = user("remember alpha");
    let (id_a, r1) = chat(&p.a, json!([u1])).await;
    let a1 = assistant(&reply_text(&r1));
    let u2 = user("beta [[report:history]]");
    let (id_b, r2) = chat(&p.b, json!([u1, a1, u2])).await;
    assert_eq!(
        id_b, id_a,
        "B continued A's conversation, not a replay of it"
    );
    assert!(reply_text(&r2).contains("remember alpha"), "{r2}");
    let a2 = assistant(&reply_text(&r2));
    let u3 = user("gamma [[report:history]]");
    let (id_a2, r3) = chat(&p.a, json!([u1, a1, u2, a2, u3])).await;
    assert_eq!(id_a2, id_a, "and A continued it after B");
    let text = reply_text(&r3);
    assert!(
        text.contains("remember alpha") && text.contains("beta"),
        "{r3}"
    );

    // The Responses API: a reply made on A, continued on B by `previous_response_id` (the
    // stored reply and the history key are in the shared store).
    let respond = |gw: &External, body: Value| {
        let (client, url) = (p.client.clone(), format!("{}/v1/responses", gw.url));
        async move {
            let (status, r) = post_json(&client, &url, &body).await;
            assert_eq!(status, 200, "{r}");
            let text: String = r["output"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|o| o["type"] == "message")
                .flat_map(|o| o["content"].as_array().into_iter().flatten())
                .filter_map(|c| c["text"].as_str())
                .collect();
            (r["id"].as_str().unwrap_or_default().to_string(), text)
        }
    };
    let (first_id, _) = respond(&p.a, json!({"model": "sonnet", "input": "remember delta"})).await;
    let (_, second) = respond(
        &p.b,
        json!({"model": "sonnet", "previous_response_id": first_id, "input": "epsilon [[report:history]]"}),
    )
    .await;
    assert!(second.contains("remember delta"), "{second}");

    // The Anthropic Messages API, started on B and continued on A.
    let anthropic = |gw: &External, messages: Value| {
        let (client, url) = (p.client.clone(), format!("{}/v1/messages", gw.url));
        async move {
            let body = json!({"model": "sonnet", "max_tokens": 256, "messages": messages});
            let (status, r) = post_json(&client, &url, &body).await;
            assert_eq!(status, 200, "{r}");
            r["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b["text"].as_str())
                .collect::<String>()
        }
    };
    let m1 = user("remember zeta");
    let t1 = anthropic(&p.b, json!([m1])).await;
    let t2 = anthropic(
        &p.a,
        json!([m1, {"role": "assistant", "content": t1}, user("eta [[report:history]]")]),
    )
    .await;
    assert!(t2.contains("remember zeta"), "{t2}");
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_instance_releases_its_leases_at_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    // The default lease time to live (15 s): B must not have to wait for it to expire.
    let p = pair(&[("CCGW_DRAIN_TIMEOUT_SECS", "1")], &[]).await;
    let id = new_session(&p.client, &p.a.url, json!({"model": "sonnet"})).await;
    let (status, r) = say(&p.client, &p.a.url, &id, json!("remember alpha")).await;
    assert_eq!(status, 200, "{r}");
    let (client, url, sid) = (p.client.clone(), p.a.url.clone(), id.clone());
    let turn = tokio::spawn(async move {
        say(
            &client,
            &url,
            &sid,
            json!("drained [[words:60]] [[slow:500]]"),
        )
        .await
    });
    let upstream_saw_it = || {
        p.mock
            .messages_requests()
            .iter()
            .any(|r| r.body.to_string().contains("drained"))
    };
    assert!(wait_for(upstream_saw_it, Duration::from_secs(30)).await);
    // SIGTERM: A drains (its turn is interrupted after 1 s) and stops.
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(p.a.pid() as i32, libc::SIGTERM);
    }
    let asked = Instant::now();
    let (status, r) = say(&p.client, &p.b.url, &id, json!("beta [[report:history]]")).await;
    let waited = asked.elapsed();
    assert_eq!(status, 200, "{r}");
    assert!(
        r["text"]
            .as_str()
            .unwrap_or_default()
            .contains("remember alpha"),
        "{r}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "B took the session as soon as A's drained turn ended, without waiting for the lease \
         to expire (waited {waited:?})"
    );
    eprintln!("takeover after SIGTERM: the message on B waited {waited:?}");
    let (status, _) = turn.await.unwrap();
    assert_eq!(status, 200, "the drained turn ended cleanly for its client");
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_for_a_session_wait_or_get_a_clean_409_and_never_interleave() {
    let _one = ONE_AT_A_TIME.lock().await;
    // B gives up on a held lease after 1 s; A waits (the default).
    let p = pair(&[], &[("CCGW_LEASE_WAIT_SECS", "1")]).await;
    let id = new_session(&p.client, &p.a.url, json!({"model": "sonnet"})).await;

    // A runs a slow turn; B's message meanwhile gets a 409 in the native error shape.
    let (client, url, sid) = (p.client.clone(), p.a.url.clone(), id.clone());
    let slow_a = tokio::spawn(async move {
        say(&client, &url, &sid, json!("one [[words:8]] [[slow:800]]")).await
    });
    let mock = &p.mock;
    let upstream_saw = |needle: &'static str| {
        move || {
            mock.messages_requests()
                .iter()
                .any(|r| r.body.to_string().contains(needle))
        }
    };
    assert!(wait_for(upstream_saw("one [[words"), Duration::from_secs(30)).await);
    let resp = p
        .client
        .post(format!("{}/api/sessions/{id}/messages", p.b.url))
        .json(&json!({"content": "refused"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 409);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "session_held", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("another instance"),
        "{body}"
    );
    // A compatible request attached to the session gets the same 409, in its own shape.
    let (status, body) = post_json(
        &p.client,
        &format!("{}/v1/chat/completions", p.b.url),
        &json!({"model": "sonnet", "session_id": id, "messages": [user("refused too")]}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "session_held", "{body}");
    let resp = p
        .client
        .post(format!("{}/v1/messages", p.b.url))
        .json(
            &json!({"model": "sonnet", "max_tokens": 64, "session_id": id,
            "messages": [user("refused as well")]}),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 409);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error", "the Anthropic shape: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("another instance"),
        "{body}"
    );
    // A request dropped while it waits for the lease leaves the session usable on B (its
    // next turn there, below, runs).
    let dropped = p
        .client
        .post(format!("{}/api/sessions/{id}/messages", p.b.url))
        .timeout(Duration::from_millis(300))
        .json(&json!({"content": "dropped while waiting"}))
        .send()
        .await;
    assert!(dropped.is_err(), "the client gave up first");
    let (status, r) = slow_a.await.unwrap();
    assert_eq!(status, 200, "{r}");

    // The other way round: B runs a slow turn; A's message waits for the lease, then runs.
    let (client, url, sid) = (p.client.clone(), p.b.url.clone(), id.clone());
    let slow_b = tokio::spawn(async move {
        say(&client, &url, &sid, json!("two [[words:5]] [[slow:800]]")).await
    });
    assert!(wait_for(upstream_saw("two [[words"), Duration::from_secs(30)).await);
    let (status, r) = say(&p.client, &p.a.url, &id, json!("three [[report:history]]")).await;
    assert_eq!(status, 200, "A waited and ran: {r}");
    let (status, rb) = slow_b.await.unwrap();
    assert_eq!(status, 200, "{rb}");
    let text = r["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("one [[words") && text.contains("two [[words"),
        "the model's conversation holds both earlier turns: {r}"
    );
    assert!(
        !text.contains("refused"),
        "no refused message reached it: {r}"
    );

    // The history: whole turns in order, each user line followed by its own reply.
    let h = p.history(&p.a, &id).await;
    assert_eq!(
        user_lines(&h),
        [
            "one [[words:8]] [[slow:800]]",
            "two [[words:5]] [[slow:800]]",
            "three [[report:history]]"
        ],
        "{h:?}"
    );
    let kinds: Vec<&str> = h
        .iter()
        .map(|(k, _)| k.as_str())
        .fold(Vec::new(), |mut v, k| {
            if v.last() != Some(&k) {
                v.push(k);
            }
            v
        });
    assert_eq!(
        kinds,
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant"
        ],
        "turns are not interleaved: {h:?}"
    );
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_whose_lease_is_taken_over_stops_and_saves_nothing() {
    use sqlx::Connection as _;
    let _one = ONE_AT_A_TIME.lock().await;
    // Renewed every second.
    let ttl = [("CCGW_LEASE_TTL_SECS", "3")];
    let p = pair(&ttl, &ttl).await;
    let id = new_session(&p.client, &p.a.url, json!({"model": "sonnet"})).await;
    let (status, r) = say(&p.client, &p.a.url, &id, json!("remember alpha")).await;
    assert_eq!(status, 200, "{r}");
    let (client, url, sid) = (p.client.clone(), p.a.url.clone(), id.clone());
    let turn = tokio::spawn(async move {
        say(
            &client,
            &url,
            &sid,
            json!("stolen [[words:40]] [[slow:500]]"),
        )
        .await
    });
    let upstream_saw_it = || {
        p.mock
            .messages_requests()
            .iter()
            .any(|r| r.body.to_string().contains("stolen"))
    };
    assert!(wait_for(upstream_saw_it, Duration::from_secs(30)).await);
    // What another instance does when A stalled past its lease: it takes the lease over.
    let mut db = sqlx::PgConnection::connect(&p.url).await.expect("connect");
    let taken = sqlx::query(
        "UPDATE session_leases SET holder = 'elsewhere', epoch = epoch + 1 WHERE session_id = $1",
    )
    .bind(&id)
    .execute(&mut db)
    .await
    .expect("take over");
    assert_eq!(
        taken.rows_affected(),
        1,
        "the running turn holds a lease row"
    );
    let stopped_at = Instant::now();
    let (status, r) = turn.await.unwrap();
    assert_ne!(status, 200, "the turn did not finish: {r}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(10),
        "stopped at its next heartbeat"
    );
    assert!(r.to_string().contains("lease"), "says why: {r}");
    // Nothing written over the new holder's record: the session is not left in `error`.
    let status: String = sqlx::query_scalar("SELECT status FROM sessions WHERE id = $1")
        .bind(&id)
        .fetch_one(&mut db)
        .await
        .expect("status");
    assert_ne!(status, "error");
    assert!(logged(&p.a, "lease was lost"), "A logged why it stopped");
    p.finish().await;
}
