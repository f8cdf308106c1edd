//! Test harness: the real server on port 0, the real CLI, the project's mock upstream.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use ccgw::config::Config;
use ccgw::mock_upstream::{LoggedRequest, MockUpstream};
use ccgw::server::RunningServer;
use serde_json::Value;

pub struct TestApp {
    pub cfg: Config,
    pub url: String,
    pub client: reqwest::Client,
    pub mock: MockUpstream,
    pub server: Option<RunningServer>,
    pub data: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Start the gateway against a fresh mock upstream; `tweak` adjusts the config first.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mock = MockUpstream::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("mock upstream starts");
    let data = tempfile::tempdir().expect("temp dir");
    let mut cfg = Config {
        port: 0,
        data_dir: data.path().to_path_buf(),
        cli_max_retries: 0,
        // Counts stay exact without pre-started processes; the warm-pool tests turn it on.
        warm_pool_size: 0,
        ..Config::default()
    };
    cfg.cli_env = vec![
        ("ANTHROPIC_BASE_URL".into(), mock.base_url()),
        ("ANTHROPIC_API_KEY".into(), "sk-test".into()),
    ];
    tweak(&mut cfg);
    let server = ccgw::server::start(cfg.clone())
        .await
        .expect("gateway starts");
    TestApp {
        cfg,
        url: server.url(),
        client: reqwest::Client::new(),
        mock,
        server: Some(server),
        data,
    }
}

/// The gateway with its own defaults (warm pool on, temporary workspaces, no keys); `tweak`
/// adjusts the config first.
pub async fn spawn_defaults_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(|c| {
        c.warm_pool_size = Config::default().warm_pool_size;
        tweak(c);
    })
    .await
}

/// A native session created with `body`; its id.
pub async fn create_session(app: &TestApp, body: serde_json::Value) -> String {
    let (status, s) = app
        .request("POST", "/api/sessions", Some(&body), None)
        .await;
    assert_eq!(status, 201, "{s}");
    s["id"].as_str().expect("session id").to_string()
}

/// One non-streamed native message, which must succeed; its reply.
pub async fn send_message(app: &TestApp, id: &str, text: &str) -> Value {
    let (status, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/messages"),
            Some(&serde_json::json!({"content": text})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    r
}

impl TestApp {
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("server running")
    }

    /// Processes given to conversations: started for a request, or taken from the warm pool.
    pub fn spawned(&self) -> u64 {
        let pool = &self.server().state.conversations.pool;
        pool.cold_spawn_count() + pool.warm_hit_count()
    }

    pub fn pool(&self) -> &ccgw::claude::pool::ProcessPool {
        &self.server().state.conversations.pool
    }

    pub fn live(&self) -> usize {
        self.server().state.conversations.pool.live_count()
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// GET a path and read its JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("a JSON body")
    }

    /// Any request, with an API key when given; returns status and JSON body (`Null` if none).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// POST /v1/chat/completions; returns status and JSON body.
    pub async fn chat(&self, body: Value) -> (u16, Value) {
        let resp = self.post("/v1/chat/completions", &body).await;
        let status = resp.status().as_u16();
        let json = resp.json().await.unwrap_or(Value::Null);
        (status, json)
    }

    /// A streamed chat completion: every `data:` payload, `[DONE]` as a JSON string.
    pub async fn chat_stream(&self, mut body: Value) -> (u16, Vec<Value>) {
        body["stream"] = Value::Bool(true);
        let resp = self.post("/v1/chat/completions", &body).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, sse_data(&text))
    }

    /// POST /v1/messages; returns status and JSON body.
    pub async fn anthropic(&self, body: Value) -> (u16, Value) {
        let resp = self.post("/v1/messages", &body).await;
        let status = resp.status().as_u16();
        let json = resp.json().await.unwrap_or(Value::Null);
        (status, json)
    }

    /// A streamed /v1/messages: every SSE event as (event name, data).
    pub async fn anthropic_stream(&self, mut body: Value) -> (u16, Vec<(String, Value)>) {
        body["stream"] = Value::Bool(true);
        let resp = self.post("/v1/messages", &body).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, sse_events(&text))
    }

    /// Command lines of the live CLI processes.
    pub fn cli_cmdlines(&self) -> Vec<String> {
        processes_under(self.data.path())
            .into_iter()
            .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .collect()
    }

    pub fn model_requests(&self) -> Vec<LoggedRequest> {
        self.mock.messages_requests()
    }

    pub fn last_model_request(&self) -> Value {
        self.model_requests()
            .last()
            .expect("the model was called")
            .body
            .clone()
    }

    /// Stop the gateway and start a new one on the same data dir and upstream.
    pub async fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        assert!(
            wait_for(
                || processes_under(self.data.path()).is_empty(),
                Duration::from_secs(10)
            )
            .await,
            "the first gateway left processes behind"
        );
        let server = ccgw::server::start(self.cfg.clone())
            .await
            .expect("gateway restarts");
        self.url = server.url();
        self.server = Some(server);
    }

    /// Stop the server and check that no CLI process it started is still alive.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        let left = wait_for(
            || processes_under(self.data.path()).is_empty(),
            Duration::from_secs(10),
        )
        .await;
        assert!(
            left,
            "CLI processes left behind: {:?}",
            processes_under(self.data.path())
        );
    }
}

/// Read SSE frames from a streaming response until `until` matches one (or the stream ends).
pub async fn read_sse(resp: &mut reqwest::Response, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(30), resp.chunk())
        .await
        .expect("sse timeout")
    {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find("\n\n") {
            let frame: String = buf.drain(..i + 2).collect();
            for v in sse_data(&frame) {
                let stop = until(&v);
                out.push(v);
                if stop {
                    return out;
                }
            }
        }
    }
    out
}

pub fn sse_data(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|frame| {
            let data: Vec<&str> = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect();
            if data.is_empty() {
                return None;
            }
            let joined = data.join("\n");
            Some(serde_json::from_str(&joined).unwrap_or(Value::String(joined)))
        })
        .collect()
}

/// Named SSE events: (event name, JSON data); comments and keep-alives are skipped.
pub fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let mut name = None;
            let mut data = Vec::new();
            for line in frame.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = Some(n.trim().to_string());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            let joined = data.join("\n");
            let value = serde_json::from_str(&joined).unwrap_or(Value::String(joined));
            Some((name?, value))
        })
        .collect()
}

/// Pids of live (non-zombie) processes whose working directory is under `dir`.
pub fn processes_under(dir: &Path) -> Vec<u32> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cwd: Option<PathBuf> = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
            cwd.is_some_and(|c| c.starts_with(&dir)) && pid_alive(*pid)
        })
        .collect()
}

pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; a zombie has exited.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

pub async fn wait_for(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn user(text: &str) -> Value {
    serde_json::json!({"role": "user", "content": text})
}

pub fn assistant(text: &str) -> Value {
    serde_json::json!({"role": "assistant", "content": text})
}

/// Concatenated `delta.content` of streamed chunks.
pub fn streamed_content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect()
}

/// The text of every message the model received, as (role, text) pairs.
pub fn model_messages(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .filter(|t| !t.contains("<system-reminder>"))
                    .collect::<Vec<_>>()
                    .join(""),
                _ => String::new(),
            };
            (m["role"].as_str().unwrap_or("").to_string(), text)
        })
        .collect()
}

/// The static admin key the governance tests configure (`api_keys`).
pub const ADMIN_KEY: &str = "admin-key-123456";

/// A user key made through `/admin/api/keys` with [`ADMIN_KEY`]: (id, secret). `extra` adds
/// fields to the request (limits, policy).
pub async fn user_key_with(app: &TestApp, name: &str, extra: Value) -> (String, String) {
    let mut body = serde_json::json!({"name": name, "role": "user"});
    for (k, v) in extra.as_object().expect("an object of key fields") {
        body[k] = v.clone();
    }
    let (status, k) = app
        .request("POST", "/admin/api/keys", Some(&body), Some(ADMIN_KEY))
        .await;
    assert_eq!(status, 201, "{k}");
    (
        k["id"].as_str().expect("id").to_string(),
        k["secret"].as_str().expect("secret").to_string(),
    )
}

/// [`user_key_with`] and nothing more.
pub async fn user_key(app: &TestApp, name: &str) -> (String, String) {
    user_key_with(app, name, serde_json::json!({})).await
}

/// The ids of a listing's `data`.
pub fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

/// A fresh database on this test binary's one Postgres server (started on first use on a free
/// loopback port, stopped when the binary exits; `CCGW_TEST_POSTGRES_URL` names an existing
/// one instead). Fails, never skips, when Postgres is missing: CI installs it.
pub async fn postgres_database() -> String {
    static SERVER: OnceLock<Result<ccgw::store::scratch::ScratchPostgres, String>> =
        OnceLock::new();
    let server = SERVER
        .get_or_init(|| ccgw::store::scratch::ScratchPostgres::start(true))
        .as_ref()
        .unwrap_or_else(|e| panic!("the Postgres tests need a Postgres server: {e}"));
    server
        .create_database()
        .await
        .unwrap_or_else(|e| panic!("the Postgres tests need a Postgres server: {e}"))
}

/// `ccgw keys ARGS` beside the app: its data dir and its store (`database_url`); whether it
/// succeeded, its stdout and its stderr.
pub fn ccgw_keys(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ccgw"))
        .arg("keys")
        .arg("--data-dir")
        .arg(app.data.path())
        .args(args)
        .env_remove("CCGW_CONFIG")
        .env("CCGW_DATABASE_URL", &app.cfg.database_url)
        .output()
        .expect("ccgw keys runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A chat completion, a restart of the gateway, then the same conversation continued: the
/// model must see the whole history (the CLI resumed the one conversation).
pub async fn chat_continues_across_a_restart(app: &mut TestApp) {
    let (_, r1) = app
        .chat(serde_json::json!({"model": "sonnet", "messages": [user("before restart")]}))
        .await;
    let a1 = r1["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    // The store records the conversation in the background.
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.restart().await;
    let (status, r2) = app
        .chat(serde_json::json!({"model": "sonnet", "messages": [user("before restart"), assistant(&a1), user("after restart [[report:history]]")]}))
        .await;
    assert_eq!(status, 200, "{r2}");
    let got = model_messages(&app.last_model_request());
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            "before restart",
            "before restart",
            "after restart [[report:history]]"
        ]
    );
}

/// A mock upstream of its own, on a free loopback port.
pub async fn start_mock() -> MockUpstream {
    MockUpstream::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("mock upstream starts")
}

/// The assistant text of a (non-streamed) chat completion.
pub fn reply_text(chat: &Value) -> String {
    chat["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
