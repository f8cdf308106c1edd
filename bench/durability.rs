//! `durability`: what a durable commit costs per turn. The store runs in WAL mode; with
//! `store_durability = "normal"` (SQLite `synchronous=NORMAL`) a commit survives a crash of the
//! gateway, with `"full"` it also survives power loss, since every commit waits for the disk.
//! Each "turn" is what the gateway commits for one native turn before it tells the client:
//! the turn's history entries (the user message, the assistant message and the result, about
//! 2 kB) and the session's updated record. Turns on the two stores are interleaved, so both
//! see the same machine. Prints p50/p90/p99 per turn for each and the ratios. A cargo example;
//! never part of the gateway.
//!
//! usage: cargo run --release --example durability [-- TURNS]

#[path = "turn.rs"]
mod turn;

use std::time::{Duration, Instant};

use ccgw::store::{source, Durability, Session, SqliteStore, Store};

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn turn(store: &SqliteStore, session: &mut Session, n: usize) -> Duration {
    let entries = turn::entries(n);
    let t = Instant::now();
    store
        .append_events(&session.id, &format!("turn-{n}"), &entries)
        .await
        .expect("append");
    *session = store.update_session(session).await.expect("update");
    t.elapsed()
}

#[tokio::main]
async fn main() {
    let turns: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut runs = Vec::new();
    for (name, d) in [("normal", Durability::Normal), ("full", Durability::Full)] {
        let store = SqliteStore::open_with(&dir.path().join(format!("{name}.db")), d)
            .await
            .expect("store");
        let session = Session::new("/w", "sonnet", source::NATIVE);
        store.create_session(&session).await.expect("session");
        runs.push((name, store, session, Vec::with_capacity(turns)));
    }
    for n in 0..turns {
        for (_, store, session, times) in runs.iter_mut() {
            times.push(turn(store, session, n).await);
        }
    }
    let mut p50 = Vec::new();
    for (name, _, _, times) in runs.iter_mut() {
        times.sort();
        println!(
            "{name:>6}: per turn p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({turns} turns)",
            pct(times, 0.5),
            pct(times, 0.9),
            pct(times, 0.99),
            pct(times, 1.0),
        );
        p50.push((pct(times, 0.5), pct(times, 0.99)));
    }
    println!(
        "full / normal: p50 {:.2}x, p99 {:.2}x",
        p50[1].0 / p50[0].0,
        p50[1].1 / p50[0].1
    );
}
