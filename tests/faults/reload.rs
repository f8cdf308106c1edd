//! Reloading without a restart: SIGHUP (which used to kill the gateway) and a changed config
//! file put new keys, models, CORS origins, warm-pool sizes and the process budget into force,
//! while a stream opened before goes on to its end; the log names what changed and what needs a
//! restart.

use std::path::Path;
use std::time::Duration;

use ccgw::mock_upstream::MockUpstream;
use serde_json::{json, Value};

use super::common::sse_data;
use super::support::External;

const FIRST: &str = "first-key-123456";
const SECOND: &str = "second-key-123456";

fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn status_with(client: &reqwest::Client, url: &str, key: &str) -> u16 {
    let r = client.get(url).bearer_auth(key).send().await.unwrap();
    r.status().as_u16()
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never: {what}");
}

fn reload_lines(gw: &External) -> Vec<Value> {
    gw.logs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "configuration reloaded")
        .collect()
}

async fn preflight_allows(client: &reqwest::Client, base: &str, origin: &str) -> bool {
    let r = client
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/models"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    r.headers()
        .get("access-control-allow-origin")
        .is_some_and(|v| v == origin)
}

#[tokio::test]
async fn sighup_and_a_changed_file_reload_settings_and_keep_connections() {
    let mock = MockUpstream::start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ccgw.toml");
    write_config(
        &conf,
        &format!("api_keys = [\"{FIRST}\"]\nwarm_pool_size = 1\n"),
    );
    let data = dir.path().join("data");
    let gw = External::start(&data, &mock, &[("CCGW_CONFIG", conf.to_str().unwrap())]);
    let client = reqwest::Client::new();
    let base = gw.url.clone();
    let health = |client: reqwest::Client, base: String| async move {
        let r = client
            .get(format!("{base}/health"))
            .bearer_auth(SECOND)
            .send()
            .await;
        r.unwrap().json::<Value>().await.unwrap()
    };
    let warm = |n: u64| {
        let (client, base) = (client.clone(), base.clone());
        async move { health(client, base).await["warm_processes"].as_u64() == Some(n) }
    };

    // A slow stream, opened with the first key before the reload.
    let mut stream = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(FIRST)
        .json(&json!({"model": "sonnet", "stream": true,
            "messages": [{"role": "user", "content": "[[slow:150]][[words:30]]"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let first_chunk = stream.chunk().await.unwrap().expect("a first chunk");

    // New keys, a model, an origin, a bigger warm pool and budget; and a setting that needs a
    // restart.
    write_config(
        &conf,
        &format!(
            "api_keys = [\"{SECOND}\"]\ncors_origins = [\"https://app.example\"]\n\
             warm_pool_size = 2\nmax_live_processes = 9\nturn_timeout_secs = 999\n\
             [models]\nfast = \"haiku\"\n"
        ),
    );
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(gw.pid() as i32, libc::SIGHUP);
    }
    until("the second key works", async || {
        status_with(&client, &format!("{base}/v1/models"), SECOND).await == 200
    })
    .await;
    assert_eq!(
        status_with(&client, &format!("{base}/v1/models"), FIRST).await,
        401
    );
    let models: Value = client
        .get(format!("{base}/v1/models"))
        .bearer_auth(SECOND)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "fast"),
        "{models}"
    );
    assert!(preflight_allows(&client, &base, "https://app.example").await);
    assert!(!preflight_allows(&client, &base, "https://other.example").await);
    until("two warm processes", async || warm(2).await).await;
    let h = health(client.clone(), base.clone()).await;
    assert_eq!(h["max_live_processes"], 9, "{h}");

    // The stream opened before the reload goes on to its end.
    let mut body = String::from_utf8_lossy(&first_chunk).into_owned();
    while let Some(chunk) = stream.chunk().await.unwrap() {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events = sse_data(&body);
    assert_eq!(events.last(), Some(&json!("[DONE]")), "{body}");
    let words: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(words.split_whitespace().count(), 30, "{words}");

    // The gateway lives on (SIGHUP used to kill it), and says what the reload did. (Should the
    // file watcher have seen the new file first, the SIGHUP reload found nothing left to do.)
    assert!(reload_lines(&gw).iter().any(|l| l["trigger"] == "SIGHUP"));
    let line = reload_lines(&gw)
        .into_iter()
        .find(|l| l["applied"] != "")
        .expect("a reload line");
    for name in [
        "api_keys",
        "models",
        "cors_origins",
        "warm_pool_size",
        "max_live_processes",
    ] {
        assert!(line["applied"].as_str().unwrap().contains(name), "{line}");
    }
    assert_eq!(line["needs_restart"], "turn_timeout_secs", "{line}");
    assert!(
        !line.to_string().contains(SECOND),
        "no secret in the log: {line}"
    );

    // Editing the file alone is enough: the warm pool shrinks and the origin goes.
    write_config(
        &conf,
        &format!("api_keys = [\"{SECOND}\"]\nwarm_pool_size = 1\nturn_timeout_secs = 999\n[models]\nfast = \"haiku\"\n"),
    );
    until("the origin is no longer allowed", async || {
        !preflight_allows(&client, &base, "https://app.example").await
    })
    .await;
    until("one warm process", async || warm(1).await).await;
    let line = reload_lines(&gw).pop().unwrap();
    assert_eq!(line["trigger"], "the config file changed", "{line}");

    // A config that does not load changes nothing, and says why.
    write_config(&conf, "warm_pool_size = \"many\"\n");
    until("the refusal is logged", async || {
        gw.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("configuration not reloaded"))
    })
    .await;
    assert_eq!(
        status_with(&client, &format!("{base}/v1/models"), SECOND).await,
        200
    );
}
