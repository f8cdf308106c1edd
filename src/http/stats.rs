//! The dashboard's numbers: `GET /admin/api/stats`, computed from the same numbers as
//! `/metrics` (its rendered text is read back every [`SAMPLE_EVERY`]), plus an in-memory time
//! series of the last hour.
//!
//! Each sample covers one interval: request rate (API routes only; the console's own polling is
//! left out), errors by status, gateway overhead and time to first token as p50/p95/p99 (from
//! the histograms' bucket counts in that interval), live, warm and queued processes, process
//! starts and the gateway's resident memory. Top models and keys come from the live feed's
//! totals (`domain::activity`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::domain::activity::{Totals, TTFT};
use crate::domain::conversations::Conversations;
use crate::http::metrics::{self, OVERHEAD, REQUESTS};
use crate::http::AppState;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// One hour of samples.
pub const KEEP: usize = 3600 / 2;

/// p50, p95 and p99, in milliseconds (`None` when nothing was measured in the interval).
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Quantiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Sample {
    /// End of the interval, unix milliseconds.
    pub t: i64,
    pub requests_per_s: f64,
    /// Responses with status ≥ 400 in the interval, by status.
    pub errors: BTreeMap<String, u64>,
    pub overhead_ms: Quantiles,
    pub ttft_ms: Quantiles,
    pub live_processes: usize,
    pub warm_processes: usize,
    pub queue_depth: usize,
    /// Processes started in the interval.
    pub process_starts: u64,
    pub rss_bytes: u64,
}

/// Cumulative counters read from one rendering of `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Raw {
    /// API requests by status.
    requests: BTreeMap<String, u64>,
    overhead: Vec<(f64, u64)>,
    ttft: Vec<(f64, u64)>,
    spawns: u64,
}

#[derive(Default)]
pub struct Stats {
    series: Mutex<VecDeque<Sample>>,
    prev: Mutex<Option<(i64, Raw)>>,
}

/// A series' labels, as written.
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// One line of the Prometheus text format: name, labels, value.
fn parse_line(line: &str) -> Option<(&str, Labels<'_>, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((n, rest)) => {
            let body = rest.strip_suffix('}')?;
            let labels = body
                .split("\",")
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.trim(), v.trim().trim_matches('"')))
                })
                .collect();
            (n, labels)
        }
        None => (series, vec![]),
    };
    Some((name, labels, value))
}

fn label<'a>(labels: &[(&'a str, &'a str)], k: &str) -> Option<&'a str> {
    labels.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
}

/// Routes whose traffic counts as the gateway's work (not the console, metrics or health).
fn is_api(endpoint: &str) -> bool {
    endpoint.starts_with("/v1/") || endpoint.starts_with("/api/")
}

fn read_raw(text: &str) -> Raw {
    let mut raw = Raw::default();
    let overhead_bucket = format!("{OVERHEAD}_bucket");
    let ttft_bucket = format!("{TTFT}_bucket");
    for (name, labels, value) in text.lines().filter_map(parse_line) {
        if name == REQUESTS {
            if label(&labels, "endpoint").is_some_and(is_api) {
                let status = label(&labels, "status").unwrap_or("?").to_string();
                *raw.requests.entry(status).or_default() += value as u64;
            }
        } else if name == overhead_bucket || name == ttft_bucket {
            let le = match label(&labels, "le") {
                Some("+Inf") => f64::INFINITY,
                Some(v) => v.parse().unwrap_or(f64::INFINITY),
                None => continue,
            };
            let into = if name == overhead_bucket {
                &mut raw.overhead
            } else {
                &mut raw.ttft
            };
            into.push((le, value as u64));
        } else if name == metrics::PROCESS_SPAWNS {
            raw.spawns = value as u64;
        }
    }
    raw.overhead.sort_by(|a, b| a.0.total_cmp(&b.0));
    raw.ttft.sort_by(|a, b| a.0.total_cmp(&b.0));
    raw
}

/// Cumulative bucket counts in an interval: `now - before`, bucket by bucket.
fn bucket_delta(now: &[(f64, u64)], before: &[(f64, u64)]) -> Vec<(f64, u64)> {
    now.iter()
        .map(|(le, n)| {
            let was = before
                .iter()
                .find(|(b, _)| b == le)
                .map(|(_, c)| *c)
                .unwrap_or(0);
            (*le, n.saturating_sub(was))
        })
        .collect()
}

/// A quantile from cumulative buckets (seconds), linearly within its bucket, in milliseconds.
fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(le, cum) in buckets {
        if cum as f64 >= rank {
            if le.is_infinite() {
                return Some(lower.0 * 1000.0);
            }
            let inside = (cum - lower.1) as f64;
            let frac = if inside > 0.0 {
                (rank - lower.1 as f64) / inside
            } else {
                1.0
            };
            return Some((lower.0 + (le - lower.0) * frac) * 1000.0);
        }
        lower = (le, cum);
    }
    Some(lower.0 * 1000.0)
}

fn quantiles(buckets: &[(f64, u64)]) -> Quantiles {
    Quantiles {
        p50: quantile(buckets, 0.50),
        p95: quantile(buckets, 0.95),
        p99: quantile(buckets, 0.99),
    }
}

fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

impl Stats {
    /// Take one sample (the interval since the previous one).
    pub fn sample(&self, conversations: &Conversations) {
        let Some(handle) = metrics::install() else {
            return;
        };
        metrics::publish_pool_gauges(&conversations.pool);
        let raw = read_raw(&handle.render());
        let now = crate::store::now_millis();
        let mut prev = self.prev.lock().unwrap_or_else(|e| e.into_inner());
        let (then, before) = prev.clone().unwrap_or((now, Raw::default()));
        let secs = ((now - then) as f64 / 1000.0).max(0.001);
        let delta = |k: &String, v: &u64| v.saturating_sub(*before.requests.get(k).unwrap_or(&0));
        let requests: u64 = raw.requests.iter().map(|(k, v)| delta(k, v)).sum();
        let errors = raw
            .requests
            .iter()
            .filter(|(k, _)| k.parse::<u16>().is_ok_and(|s| s >= 400))
            .map(|(k, v)| (k.clone(), delta(k, v)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let pool = &conversations.pool;
        let sample = Sample {
            t: now,
            requests_per_s: if prev.is_some() {
                requests as f64 / secs
            } else {
                0.0
            },
            errors,
            overhead_ms: quantiles(&bucket_delta(&raw.overhead, &before.overhead)),
            ttft_ms: quantiles(&bucket_delta(&raw.ttft, &before.ttft)),
            live_processes: pool.live_count(),
            warm_processes: pool.warm_count(),
            queue_depth: pool.queue_depth(),
            process_starts: raw.spawns.saturating_sub(before.spawns),
            rss_bytes: rss_bytes(),
        };
        *prev = Some((now, raw));
        drop(prev);
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.push_back(sample);
        while series.len() > KEEP {
            series.pop_front();
        }
    }

    /// Samples after `since` (unix milliseconds).
    pub fn since(&self, since: i64) -> Vec<Sample> {
        self.series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| s.t > since)
            .cloned()
            .collect()
    }
}

/// Sample every [`SAMPLE_EVERY`] for as long as the gateway's service lives.
pub fn spawn_sampler(
    stats: Arc<Stats>,
    conversations: Weak<Conversations>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            let Some(c) = conversations.upgrade() else {
                break;
            };
            stats.sample(&c);
        }
    })
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Only samples after this time (unix milliseconds).
    pub since: Option<i64>,
}

fn top(map: HashMap<String, Totals>) -> Vec<Top> {
    let mut all: Vec<_> = map.into_iter().collect();
    all.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(&b.0)));
    all.into_iter()
        .take(10)
        .map(|(name, totals)| Top { name, totals })
        .collect()
}

/// One of the top models or keys: its name and totals.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Top {
    pub name: String,
    #[serde(flatten)]
    pub totals: Totals,
}

/// The dashboard's numbers: now, and the time series since `since`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatsView {
    /// Server time, unix milliseconds.
    pub now: i64,
    pub sample_every_ms: u64,
    pub uptime_secs: u64,
    pub version: &'static str,
    pub cli_version: String,
    pub demo: bool,
    pub live_processes: usize,
    pub max_live_processes: usize,
    pub warm_processes: usize,
    pub queue_depth: usize,
    pub process_starts: u64,
    pub warm_hits: u64,
    pub rss_bytes: u64,
    pub top_models: Vec<Top>,
    pub top_keys: Vec<Top>,
    pub series: Vec<Sample>,
}

/// `GET /admin/api/stats`.
#[utoipa::path(
    get, path = "/admin/api/stats", tag = "admin", operation_id = "stats",
    params(StatsQuery),
    responses((status = 200, description = "The dashboard's numbers", body = StatsView))
)]
pub async fn stats(State(app): State<AppState>, Query(q): Query<StatsQuery>) -> Json<StatsView> {
    let c = &app.conversations;
    let (by_model, by_key) = c.activity.totals();
    Json(StatsView {
        now: crate::store::now_millis(),
        sample_every_ms: SAMPLE_EVERY.as_millis() as u64,
        uptime_secs: app.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION"),
        cli_version: c.cli_version().to_string(),
        demo: app.cfg.demo,
        live_processes: c.pool.live_count(),
        max_live_processes: c.pool.max_live(),
        warm_processes: c.pool.warm_count(),
        queue_depth: c.pool.queue_depth(),
        process_starts: c.pool.spawn_count(),
        warm_hits: c.pool.warm_hit_count(),
        rss_bytes: rss_bytes(),
        top_models: top(by_model),
        top_keys: top(by_key),
        series: app.stats.since(q.since.unwrap_or(0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_prometheus_text_it_needs() {
        let text = "# TYPE x counter\n\
            ccgw_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 5\n\
            ccgw_requests_total{endpoint=\"/v1/messages\",status=\"429\"} 2\n\
            ccgw_requests_total{endpoint=\"/admin/api/stats\",status=\"200\"} 50\n\
            ccgw_gateway_overhead_seconds_bucket{le=\"0.001\"} 3\n\
            ccgw_gateway_overhead_seconds_bucket{le=\"+Inf\"} 4\n\
            ccgw_process_spawns_total 7\n";
        let raw = read_raw(text);
        assert_eq!(
            raw.requests["200"], 5,
            "the console's own requests are left out"
        );
        assert_eq!(raw.requests["429"], 2);
        assert_eq!(raw.overhead, vec![(0.001, 3), (f64::INFINITY, 4)]);
        assert_eq!(raw.spawns, 7);
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        // 100 observations: 50 up to 1 ms, 40 in (1, 2] ms, 10 in (2, 10] ms.
        let b = vec![(0.001, 50), (0.002, 90), (0.01, 100), (f64::INFINITY, 100)];
        let q = quantiles(&b);
        assert!((q.p50.unwrap() - 1.0).abs() < 1e-9);
        assert!((q.p95.unwrap() - 6.0).abs() < 1e-9);
        assert!(q.p99.unwrap() > 9.0 && q.p99.unwrap() <= 10.0);
        assert_eq!(quantile(&[(0.001, 0)], 0.5), None);
        let d = bucket_delta(&b, &[(0.001, 50), (0.002, 50), (0.01, 50)]);
        assert_eq!(d[0], (0.001, 0));
        assert_eq!(d[1], (0.002, 40));
    }
}
