//! Helpers of the fault suite: the defaults (warm pool on), the counts every case must return
//! to, and a gateway in a process of its own (to `kill -9` it and to measure its memory).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ccgw::config::Config;
use ccgw::mock_upstream::MockUpstream;
use serde_json::{json, Value};

use crate::common::*;

/// The gateway with its defaults: the warm pool on (`warm_pool_size = 2`, `sonnet`), a
/// temporary data dir, no keys. Waits until the pool is full.
pub async fn spawn_defaults() -> TestApp {
    spawn_defaults_with(|_| {}).await
}

pub async fn spawn_defaults_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let defaults = Config::default();
    let app = spawn_app_with(|c| {
        c.warm_pool_size = defaults.warm_pool_size;
        c.warm_models = defaults.warm_models.clone();
        tweak(c);
    })
    .await;
    let want = app.cfg.warm_pool_size.min(app.cfg.max_live_processes);
    assert!(
        wait_for(|| app.pool().warm_count() == want, Duration::from_secs(30)).await,
        "the warm pool fills"
    );
    app
}

/// What a gateway at rest looks like: only its warm processes live, nobody queued, and every
/// CLI process under the data dir is one the pool knows.
pub async fn assert_at_rest(app: &TestApp, why: &str) {
    assert_at_rest_with(app, 0, why).await
}

/// At rest, with `idle` conversation processes kept beside the warm ones. The warm pool holds
/// its floor, or up to its ceiling for a while after a run of new conversations (the pool's
/// surplus grace); every live process is one of those, and every CLI process under the data
/// dir is one the pool knows.
pub async fn assert_at_rest_with(app: &TestApp, idle: usize, why: &str) {
    let room = app.cfg.max_live_processes - idle;
    let floor = app.cfg.warm_pool_size.min(room);
    let ceiling = app.cfg.warm_pool_max.max(floor).min(room);
    let rest = || {
        let pool = app.pool();
        let warm = pool.warm_count();
        pool.queue_depth() == 0
            && (floor..=ceiling).contains(&warm)
            && pool.live_count() == warm + idle
            && processes_under(app.data.path()).len() == warm + idle
    };
    let ok = wait_for(rest, Duration::from_secs(20)).await;
    let pool = app.pool();
    assert!(
        ok,
        "{why}: not back at rest: live {} (warm {}), queued {}, processes {:?}",
        pool.live_count(),
        pool.warm_count(),
        pool.queue_depth(),
        processes_under(app.data.path())
    );
}

/// Resident memory of a process, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Directories under the data dir's `workspaces/`.
pub fn workspace_dirs(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("workspaces"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

/// A gateway running as its own process (`ccgw serve`), against a mock upstream of the test.
pub struct External {
    pub child: Child,
    pub url: String,
    /// Every line the gateway logged (JSON, at the default level).
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl External {
    /// The logged lines (parsed) that carry this request id, in any field or span.
    pub fn lines_of(&self, request_id: &str) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(request_id))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl External {
    pub fn start(data: &Path, mock: &MockUpstream, env: &[(&str, &str)]) -> External {
        Self::start_with_upstream(data, &mock.base_url(), env)
    }

    pub fn start_with_upstream(data: &Path, upstream: &str, env: &[(&str, &str)]) -> External {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccgw"));
        cmd.args(["serve", "--port", "0", "--data-dir"])
            .arg(data)
            .env("CCGW_LOG_FORMAT", "json")
            .env("CCGW_CLI_MAX_RETRIES", "0")
            .env("ANTHROPIC_BASE_URL", upstream)
            .env("ANTHROPIC_API_KEY", "sk-test")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("ccgw starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = logs.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                if !sent {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if v["message"] == "ccgw listening" {
                            let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_string());
                            sent = true;
                        }
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("ccgw says where it listens");
        External {
            child,
            url: format!("http://{addr}"),
            logs,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no clean-up code of the gateway runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn health(&self) -> Value {
        reqwest::get(format!("{}/health", self.url))
            .await
            .expect("health")
            .json()
            .await
            .expect("health json")
    }

    pub async fn wait_warm(&self, n: u64) {
        for _ in 0..300 {
            if self.health().await["warm_processes"].as_u64() == Some(n) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the external gateway's warm pool did not fill");
    }
}

impl Drop for External {
    fn drop(&mut self) {
        // SIGTERM: a clean stop, so nothing is left behind by the test itself.
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The mock upstream in a process of its own (`ccgw mock-upstream`), so that its work never
/// competes with the test's own timing.
pub struct ExternalMock {
    child: Child,
    pub url: String,
}

impl ExternalMock {
    pub fn start() -> ExternalMock {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ccgw"))
            .args(["mock-upstream", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the mock starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["message"] == "mock upstream listening" {
                        let _ = tx.send(v["url"].as_str().unwrap_or_default().to_string());
                    }
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the mock says where it listens");
        ExternalMock { child, url }
    }
}

impl Drop for ExternalMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POST JSON and read the status and JSON body.
pub async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let resp = client.post(url).json(body).send().await.expect("sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Create a native session and return its id.
pub async fn new_session(client: &reqwest::Client, base: &str, body: Value) -> String {
    let (status, s) = post_json(client, &format!("{base}/api/sessions"), &body).await;
    assert_eq!(status, 201, "{s}");
    s["id"].as_str().expect("id").to_string()
}

/// Send a native message; status and body.
pub async fn say(client: &reqwest::Client, base: &str, id: &str, content: Value) -> (u16, Value) {
    post_json(
        client,
        &format!("{base}/api/sessions/{id}/messages"),
        &json!({ "content": content }),
    )
    .await
}
