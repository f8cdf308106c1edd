//! The gateway's own metrics, in Prometheus text format at `GET /metrics`.
//!
//! - `ccgw_gateway_overhead_seconds` (histogram): per completed turn, the time the request
//!   spent in the gateway minus the time it spent waiting on the CLI. "Waiting on the CLI" is
//!   every await on the CLI's answers: `initialize`, `set_model` and history replay of a new
//!   process, and the turn itself from its user line until the CLI's `result` line. Spawning a
//!   process (fork/exec) and waiting for a free process slot count as the gateway's.
//! - `ccgw_requests_total{endpoint,status}` (counter): every HTTP response, by route template.
//! - `ccgw_time_to_first_token_seconds` (histogram): per turn, from its user line reaching the
//!   CLI to the first token (text, thinking or a tool call), measured on the live feed.
//! - `ccgw_live_processes`, `ccgw_queue_depth`, `ccgw_warm_processes` (gauges) and
//!   `ccgw_process_spawns_total`, `ccgw_cold_spawns_total`, `ccgw_warm_hits_total`,
//!   `ccgw_resumes_total`, `ccgw_evictions_total` (counters):
//!   read from the process pool when `/metrics` is scraped, so they cost nothing on the
//!   request path.
//!
//! The CLI time of a request accumulates in a [`CliWait`] cell (`domain::cli_wait`). An adapter
//! opens one per request with [`TurnTimer`] and runs the domain call inside `with_cli_wait`; the
//! domain marks its waits and hands the same cell back in its `TurnHandle`.
//! The recorder is global (one per process) and has no listener of its own.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use crate::domain::activity::TTFT;
pub use crate::domain::cli_wait::CliWait;
use crate::http::AppState;

pub const OVERHEAD: &str = "ccgw_gateway_overhead_seconds";
pub const REQUESTS: &str = "ccgw_requests_total";
pub const LIVE_PROCESSES: &str = "ccgw_live_processes";
pub const QUEUE_DEPTH: &str = "ccgw_queue_depth";
pub const PROCESS_SPAWNS: &str = "ccgw_process_spawns_total";
pub const WARM_PROCESSES: &str = "ccgw_warm_processes";
pub const COLD_SPAWNS: &str = "ccgw_cold_spawns_total";
pub const WARM_HITS: &str = "ccgw_warm_hits_total";
pub const RESUMES: &str = "ccgw_resumes_total";
pub const EVICTIONS: &str = "ccgw_evictions_total";

/// Bucket bounds of the overhead histogram, in seconds: 25 µs to 10 s.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Bucket bounds of the time-to-first-token histogram, in seconds: 5 ms to 60 s.
const TTFT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the global recorder (once per process; later calls return the same handle).
/// `None` when another recorder was installed first: metrics are then not exported.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(OVERHEAD.into()), OVERHEAD_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(TTFT.into()), TTFT_BUCKETS))
                .map_err(|e| tracing::warn!(error = %e, "metrics buckets refused"))
                .ok()?;
            let handle = builder
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()?;
            describe();
            // Without a listener of its own the exporter needs its upkeep run for it: it
            // drains histogram samples, which would otherwise grow until the next scrape.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("ccgw-metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "metrics upkeep thread not started");
            }
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    ::metrics::describe_histogram!(
        OVERHEAD,
        ::metrics::Unit::Seconds,
        "Per completed turn: time in the gateway minus time waiting on the Claude Code CLI"
    );
    ::metrics::describe_counter!(REQUESTS, "HTTP responses by route and status");
    ::metrics::describe_histogram!(
        TTFT,
        ::metrics::Unit::Seconds,
        "Per turn: from the user line reaching the CLI to its first token"
    );
    ::metrics::describe_gauge!(LIVE_PROCESSES, "Live Claude Code CLI processes");
    ::metrics::describe_gauge!(QUEUE_DEPTH, "Requests waiting for a free process slot");
    ::metrics::describe_counter!(PROCESS_SPAWNS, "Claude Code CLI processes started");
    ::metrics::describe_gauge!(WARM_PROCESSES, "Idle pre-started CLI processes");
    ::metrics::describe_counter!(
        COLD_SPAWNS,
        "CLI processes started while a request waited for them"
    );
    ::metrics::describe_counter!(
        WARM_HITS,
        "New conversations served by a pre-started process"
    );
    ::metrics::describe_counter!(
        RESUMES,
        "Cold spawns that resumed a conversation whose process was gone"
    );
    ::metrics::describe_counter!(
        EVICTIONS,
        "Idle conversation processes stopped to make room for another"
    );
}

/// `GET /metrics`.
pub async fn render(State(app): State<AppState>) -> Response {
    let Some(handle) = install() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not available in this process\n",
        )
            .into_response();
    };
    publish_pool_gauges(&app.conversations.pool);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
        .into_response()
}

/// Copy the process pool's numbers into the recorder (when `/metrics` or the stats read it).
pub fn publish_pool_gauges(pool: &crate::claude::pool::ProcessPool) {
    ::metrics::gauge!(LIVE_PROCESSES).set(pool.live_count() as f64);
    ::metrics::gauge!(QUEUE_DEPTH).set(pool.queue_depth() as f64);
    ::metrics::counter!(PROCESS_SPAWNS).absolute(pool.spawn_count());
    ::metrics::gauge!(WARM_PROCESSES).set(pool.warm_count() as f64);
    ::metrics::counter!(COLD_SPAWNS).absolute(pool.cold_spawn_count());
    ::metrics::counter!(WARM_HITS).absolute(pool.warm_hit_count());
    ::metrics::counter!(RESUMES).absolute(pool.resume_count());
    ::metrics::counter!(EVICTIONS).absolute(pool.eviction_count());
}

/// Middleware: count every response by route template (not raw path: bounded labels).
pub async fn count_requests(req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    let status = resp.status();
    ::metrics::counter!(REQUESTS, "endpoint" => endpoint, "status" => status_label(status))
        .increment(1);
    resp
}

fn status_label(s: StatusCode) -> String {
    s.as_str().to_string()
}

/// One request's clock: started when the adapter's handler starts, finished when the
/// response's last byte is handed to the server.
#[derive(Debug, Clone)]
pub struct TurnTimer {
    started: Instant,
    cli_wait: CliWait,
}

impl TurnTimer {
    pub fn start() -> TurnTimer {
        TurnTimer {
            started: Instant::now(),
            cli_wait: CliWait::default(),
        }
    }

    /// The cell to run the domain call with (see [`with_cli_wait`]).
    pub fn cli_wait(&self) -> CliWait {
        self.cli_wait.clone()
    }

    /// Time waiting on the CLI so far.
    pub fn cli_time(&self) -> Duration {
        self.cli_wait.get()
    }

    /// Total time so far minus the CLI's share.
    pub fn overhead(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.cli_wait.get())
    }

    /// The turn completed: record its overhead.
    pub fn finish(&self) {
        ::metrics::histogram!(OVERHEAD).record(self.overhead().as_secs_f64());
    }

    /// A whole (non-streamed) response is ready: record the overhead and say it in a
    /// `Server-Timing` header; name the conversation that served it.
    pub fn stamp(&self, resp: &mut axum::response::Response, conversation_id: &str) {
        if let Ok(v) = axum::http::HeaderValue::from_str(&self.server_timing()) {
            resp.headers_mut().insert("server-timing", v);
        }
        self.finish();
        stamp_conversation(resp, conversation_id);
    }

    /// A `Server-Timing` header value: the CLI's share (`cli`) and the gateway's overhead so
    /// far (`gw`), in milliseconds.
    pub fn server_timing(&self) -> String {
        format!(
            "cli;dur={:.3}, gw;dur={:.3}",
            self.cli_time().as_secs_f64() * 1000.0,
            self.overhead().as_secs_f64() * 1000.0
        )
    }
}

/// The `x-ccgw-conversation-id` header: which conversation (or session) served a response.
pub fn stamp_conversation(resp: &mut axum::response::Response, conversation_id: &str) {
    if let Ok(v) = axum::http::HeaderValue::from_str(conversation_id) {
        resp.headers_mut().insert("x-ccgw-conversation-id", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::cli_wait::{add_cli_wait, with_cli_wait};

    #[tokio::test]
    async fn overhead_is_total_minus_cli_time_and_never_negative() {
        let timer = TurnTimer::start();
        with_cli_wait(timer.cli_wait(), async {
            add_cli_wait(Duration::from_millis(3))
        })
        .await;
        assert!(timer.cli_time() >= Duration::from_millis(3));
        let st = timer.server_timing();
        assert!(
            st.starts_with("cli;dur=") && st.contains(", gw;dur="),
            "{st}"
        );
        let t = TurnTimer::start();
        t.cli_wait().add(Duration::from_secs(60));
        assert_eq!(t.overhead(), Duration::ZERO);
    }
}
