//! `loadgen`: the benchmarks' HTTP client for the gateway (a cargo example, built with
//! `cargo build --release --example loadgen`; driven by the scripts in `bench/`).
//!
//! - `rate`: an open-loop constant request rate of non-streamed chat completions that
//!   continue existing conversations (so every request reuses a live CLI process). Each
//!   request's overhead is its client-side latency minus the CLI's share the gateway reports
//!   in `Server-Timing: cli;dur=<ms>`.
//! - `hold`: N streamed chat completions of new conversations opened at once and held until
//!   the (slow) streams end; checks every one completes with all its chunks and `[DONE]`.
//!
//! Prints a human summary and, last, one line `RESULT <json>` for the scripts. Only talks to
//! the URL it is given, which the scripts keep on 127.0.0.1.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Parser)]
struct Cli {
    /// The gateway's base URL (http://127.0.0.1:PORT).
    #[arg(long)]
    url: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Constant request rate over live conversations.
    Rate {
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        duration_secs: f64,
        /// Conversations created before measuring; requests continue them round-robin.
        #[arg(long, default_value_t = 200)]
        conversations: usize,
        /// Unmeasured follow-up rounds over every conversation before measuring.
        #[arg(long, default_value_t = 1)]
        warmup_rounds: usize,
        /// Pause between the warm-up and the measurement.
        #[arg(long, default_value_t = 1.0)]
        settle_secs: f64,
        /// Write every sample (start offset, total and CLI milliseconds) to this CSV file.
        #[arg(long)]
        samples_csv: Option<std::path::PathBuf>,
    },
    /// Many concurrent streamed requests held open.
    Hold {
        #[arg(long, default_value_t = 1000)]
        concurrency: usize,
        /// Content chunks each stream must deliver (the fake's FAKE_CLAUDE_CHUNKS).
        #[arg(long, default_value_t = 0)]
        expect_chunks: usize,
        /// Give up on the whole run after this long.
        #[arg(long, default_value_t = 120.0)]
        timeout_secs: f64,
    },
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(|a, b| a.total_cmp(b));
    let mean = if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    };
    json!({
        "n": v.len(),
        "mean": mean,
        "p50": percentile(&v, 50.0),
        "p90": percentile(&v, 90.0),
        "p99": percentile(&v, 99.0),
        "p999": percentile(&v, 99.9),
        "max": v.last().copied().unwrap_or(f64::NAN),
    })
}

/// Milliseconds of the metric `name` in `Server-Timing: cli;dur=<ms>, gw;dur=<ms>`.
fn timing_ms(headers: &reqwest::header::HeaderMap, name: &str) -> Option<f64> {
    headers
        .get("server-timing")?
        .to_str()
        .ok()?
        .split(',')
        .find_map(|m| m.trim().strip_prefix(name)?.strip_prefix(";dur="))?
        .parse()
        .ok()
}

/// One conversation as the client holds it.
struct Conversation {
    /// Part of every message, so that no two conversations have the same history (the
    /// gateway would rightly treat them as one).
    id: usize,
    messages: Vec<Value>,
    turns: usize,
}

impl Conversation {
    fn request(&mut self, n: usize) -> Value {
        self.messages.push(
            json!({"role": "user", "content": format!("conversation {} question {n}", self.id)}),
        );
        json!({"model": "default", "messages": self.messages})
    }
}

struct Sample {
    /// When the request was sent, since the measurement began.
    at: Instant,
    total_ms: f64,
    /// The CLI's share and the gateway's own overhead, as the gateway measured them.
    cli_ms: f64,
    gw_ms: f64,
}

async fn turn(
    client: &reqwest::Client,
    url: &str,
    conv: &mut Conversation,
    n: usize,
) -> Result<Sample, String> {
    let body = conv.request(n);
    let started = Instant::now();
    let resp = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status();
    let cli = timing_ms(resp.headers(), "cli");
    let gw = timing_ms(resp.headers(), "gw");
    let bytes = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
    let total_ms = started.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() {
        conv.messages.pop();
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ));
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("json: {e}"))?;
    let reply = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    conv.messages
        .push(json!({"role": "assistant", "content": reply}));
    conv.turns += 1;
    Ok(Sample {
        at: started,
        total_ms,
        cli_ms: cli.ok_or("no server-timing header")?,
        gw_ms: gw.unwrap_or(f64::NAN),
    })
}

async fn rate_mode(
    url: &str,
    rate: f64,
    duration: Duration,
    conversations: usize,
    warmup_rounds: usize,
    settle: Duration,
    samples_csv: Option<&std::path::Path>,
) -> Value {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .expect("http client");
    let endpoint = format!("{url}/v1/chat/completions");

    // Create the conversations (each spawns a CLI process) and warm them up, 8 at a time.
    let t0 = Instant::now();
    let mut idle: VecDeque<Conversation> = VecDeque::new();
    let mut setup_errors = 0usize;
    let mut pending: Vec<Conversation> = (0..conversations)
        .map(|id| Conversation {
            id,
            messages: vec![],
            turns: 0,
        })
        .collect();
    for round in 0..=warmup_rounds {
        let mut next = Vec::new();
        while !pending.is_empty() {
            let batch: Vec<Conversation> = pending.drain(..pending.len().min(8)).collect();
            let results = futures::future::join_all(batch.into_iter().map(|mut c| {
                let client = client.clone();
                let endpoint = endpoint.clone();
                async move {
                    let r = turn(&client, &endpoint, &mut c, round).await;
                    (c, r)
                }
            }))
            .await;
            for (c, r) in results {
                match r {
                    Ok(_) => next.push(c),
                    Err(e) => {
                        setup_errors += 1;
                        eprintln!("loadgen: warm-up request failed: {e}");
                    }
                }
            }
        }
        pending = next;
    }
    idle.extend(pending);
    let ready = idle.len();
    eprintln!(
        "loadgen: {ready} conversations ready in {:.1} s ({setup_errors} failed)",
        t0.elapsed().as_secs_f64()
    );

    tokio::time::sleep(settle).await;
    let metrics_before = scrape_overhead(&client, url).await;
    let idle = Arc::new(Mutex::new(idle));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut skipped = 0usize;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut sent = 0usize;
    let mut tasks = Vec::new();
    while started.elapsed() < duration {
        interval.tick().await;
        let conv = idle.lock().ok().and_then(|mut q| q.pop_front());
        let Some(mut conv) = conv else {
            // Every conversation has a turn in flight: the gateway is not keeping up.
            skipped += 1;
            continue;
        };
        sent += 1;
        let n = sent;
        let (client, endpoint) = (client.clone(), endpoint.clone());
        let (idle, samples, errors) = (idle.clone(), samples.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            match turn(&client, &endpoint, &mut conv, n).await {
                Ok(s) => {
                    if let Ok(mut v) = samples.lock() {
                        v.push(s);
                    }
                    if let Ok(mut q) = idle.lock() {
                        q.push_back(conv);
                    }
                }
                Err(e) => {
                    if let Ok(mut v) = errors.lock() {
                        v.push(e);
                    }
                }
            }
        }));
    }
    let elapsed = started.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let metrics_after = scrape_overhead(&client, url).await;
    let samples = std::mem::take(&mut *samples.lock().expect("samples"));
    let errors = std::mem::take(&mut *errors.lock().expect("errors"));
    for e in errors.iter().take(5) {
        eprintln!("loadgen: request failed: {e}");
    }
    if let Some(path) = samples_csv {
        let mut csv = String::from("start_ms,total_ms,cli_ms,gw_ms\n");
        for s in &samples {
            let at = s.at.saturating_duration_since(started).as_secs_f64() * 1000.0;
            csv.push_str(&format!(
                "{at:.3},{:.3},{:.3},{:.3}\n",
                s.total_ms, s.cli_ms, s.gw_ms
            ));
        }
        if let Err(e) = std::fs::write(path, csv) {
            eprintln!("loadgen: writing {}: {e}", path.display());
        }
    }
    let total: Vec<f64> = samples.iter().map(|s| s.total_ms).collect();
    let cli: Vec<f64> = samples.iter().map(|s| s.cli_ms).collect();
    let overhead: Vec<f64> = samples
        .iter()
        .map(|s| (s.total_ms - s.cli_ms).max(0.0))
        .collect();
    let gw: Vec<f64> = samples.iter().map(|s| s.gw_ms).collect();
    // What the handler did not see: HTTP parsing and writing, loopback, the client itself.
    let outside: Vec<f64> = samples
        .iter()
        .map(|s| (s.total_ms - s.cli_ms - s.gw_ms).max(0.0))
        .collect();
    let max_history = idle
        .lock()
        .map(|q| q.iter().map(|c| c.messages.len()).max().unwrap_or(0))
        .unwrap_or(0);
    json!({
        "mode": "rate",
        "target_rate": rate,
        "achieved_rate": sent as f64 / elapsed,
        "duration_secs": elapsed,
        "conversations": ready,
        "setup_errors": setup_errors,
        "sent": sent,
        "ok": samples.len(),
        "errors": errors.len(),
        "skipped_no_idle_conversation": skipped,
        "max_history_messages": max_history,
        "total_ms": summary(total),
        "cli_ms": summary(cli),
        "overhead_ms": summary(overhead),
        "gateway_overhead_ms": summary(gw),
        "outside_handler_ms": summary(outside),
        "metrics_before": metrics_before,
        "metrics_after": metrics_after,
    })
}

/// The gateway's own overhead histogram lines from `/metrics`.
async fn scrape_overhead(client: &reqwest::Client, url: &str) -> Vec<String> {
    let text = match client.get(format!("{url}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => {
            eprintln!("loadgen: scraping /metrics failed: {e}");
            String::new()
        }
    };
    text.lines()
        .filter(|l| l.starts_with("ccgw_gateway_overhead_seconds"))
        .map(String::from)
        .collect()
}

struct StreamOutcome {
    chunks: usize,
    done: bool,
    ttfb_ms: f64,
    total_ms: f64,
}

async fn one_stream(
    client: reqwest::Client,
    endpoint: String,
    n: usize,
) -> Result<StreamOutcome, String> {
    use futures::StreamExt;
    let body = json!({"model": "default", "stream": true,
        "messages": [{"role": "user", "content": format!("held stream {n}")}]});
    let started = Instant::now();
    let resp = client
        .post(&endpoint)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(format!("status {status}: {}", &text[..text.len().min(200)]));
    }
    let ttfb_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut stream = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunks = 0usize;
    let mut done = false;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| format!("stream: {e}"))?;
        buf.extend_from_slice(&piece);
        while let Some(pos) = buf.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buf.drain(..pos + 2).collect();
            let frame = String::from_utf8_lossy(&frame);
            for line in frame.lines() {
                let Some(data) = line.strip_prefix("data: ") else {
                    continue;
                };
                if data == "[DONE]" {
                    done = true;
                } else if let Ok(v) = serde_json::from_str::<Value>(data) {
                    if v.get("error").is_some() {
                        return Err(format!("error event: {data}"));
                    }
                    if v["choices"][0]["delta"]["content"]
                        .as_str()
                        .is_some_and(|s| !s.is_empty())
                    {
                        chunks += 1;
                    }
                }
            }
        }
    }
    Ok(StreamOutcome {
        chunks,
        done,
        ttfb_ms,
        total_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

async fn hold_mode(url: &str, concurrency: usize, expect: usize, timeout: Duration) -> Value {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("http client");
    let endpoint = format!("{url}/v1/chat/completions");
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|n| tokio::spawn(one_stream(client.clone(), endpoint.clone(), n)))
        .collect();
    let all = futures::future::join_all(tasks);
    let results = match tokio::time::timeout(timeout, all).await {
        Ok(r) => r,
        Err(_) => {
            return json!({"mode": "hold", "error": "timed out", "concurrency": concurrency});
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let mut complete = 0usize;
    let mut incomplete = 0usize;
    let mut failed = Vec::new();
    let mut ttfb = Vec::new();
    let mut total = Vec::new();
    for r in results {
        match r {
            Ok(Ok(o)) => {
                if o.done && (expect == 0 || o.chunks == expect) {
                    complete += 1;
                } else {
                    incomplete += 1;
                    if incomplete <= 5 {
                        eprintln!(
                            "loadgen: incomplete stream: {} chunks, done={}",
                            o.chunks, o.done
                        );
                    }
                }
                ttfb.push(o.ttfb_ms);
                total.push(o.total_ms);
            }
            Ok(Err(e)) => failed.push(e),
            Err(e) => failed.push(format!("task: {e}")),
        }
    }
    for e in failed.iter().take(5) {
        eprintln!("loadgen: stream failed: {e}");
    }
    json!({
        "mode": "hold",
        "concurrency": concurrency,
        "expect_chunks": expect,
        "complete": complete,
        "incomplete": incomplete,
        "failed": failed.len(),
        "wall_secs": wall,
        "ttfb_ms": summary(ttfb),
        "total_ms": summary(total),
    })
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = cli.url.trim_end_matches('/').to_string();
    let result = rt.block_on(async {
        match cli.mode {
            Mode::Rate {
                rate,
                duration_secs,
                conversations,
                warmup_rounds,
                settle_secs,
                samples_csv,
            } => {
                rate_mode(
                    &url,
                    rate,
                    Duration::from_secs_f64(duration_secs),
                    conversations,
                    warmup_rounds,
                    Duration::from_secs_f64(settle_secs),
                    samples_csv.as_deref(),
                )
                .await
            }
            Mode::Hold {
                concurrency,
                expect_chunks,
                timeout_secs,
            } => {
                hold_mode(
                    &url,
                    concurrency,
                    expect_chunks,
                    Duration::from_secs_f64(timeout_secs),
                )
                .await
            }
        }
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&result).unwrap_or_default()
    );
    println!("RESULT {result}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.9), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn reads_server_timing() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "server-timing",
            "cli;dur=2.5, gw;dur=0.125".parse().unwrap(),
        );
        assert_eq!(timing_ms(&h, "cli"), Some(2.5));
        assert_eq!(timing_ms(&h, "gw"), Some(0.125));
        assert_eq!(timing_ms(&h, "db"), None);
    }
}
