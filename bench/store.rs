//! `store`: a few store operations on SQLite and on Postgres, side by side on this machine: make
//! a session, append a turn's history (three entries, about 2 kB, in one call), list the
//! session's events, and record a compatible-API turn's end as the gateway does before it
//! answers (`record_turn`: the row, the history key, the usage and the history, together). Rounds on the two stores are interleaved, so both see the same machine.
//! SQLite is a file in a temporary dir with the default durability (`normal`); Postgres is a
//! throwaway server on loopback (`store::scratch`, Debian's binaries) with its own durable
//! defaults (fsync on, synchronous_commit on), or the one `CCGW_TEST_POSTGRES_URL` names. Prints
//! p50 and p99 per operation and the ratios postgres / sqlite. A cargo example; never part of
//! the gateway.
//!
//! usage: cargo run --release --example store [-- ROUNDS]

#[path = "turn.rs"]
mod turn;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccgw::store::{
    now_millis, scratch::ScratchPostgres, source, status, DatabaseUrl, Durability, Session, Store,
    TurnEnd, TurnRecord, TurnRow, UsageRecord,
};

/// A store's name, the store, and each round's timings.
type Run = (&'static str, Arc<dyn Store>, Vec<[Duration; 4]>);

const OPS: [&str; 4] = [
    "create session",
    "append a turn (3 events)",
    "list events",
    "record a turn's end",
];

/// A follow-up turn's records, as a compatible API writes them before it answers.
fn turn_end(session: &Session, n: usize) -> TurnRecord {
    TurnRecord {
        session_id: session.id.clone(),
        row: TurnRow::End(TurnEnd {
            status: status::IDLE.into(),
            cli_session_id: session.cli_session_id.clone(),
            workspace: session.workspace.clone(),
            transcript_leaf: Some(format!("leaf-{n}")),
            turn_mark: Some(format!("mark-{n}")),
        }),
        history_key: Some(Some(format!("{}-{n}", session.id))),
        usage: Some(UsageRecord {
            id: format!("{}-{n}", session.id),
            session_id: session.id.clone(),
            turn_id: "turn-2".into(),
            model: "sonnet".into(),
            input_tokens: 12,
            output_tokens: 300,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            cost_usd: None,
            duration_ms: 10,
            created_at: now_millis(),
            owner: String::new(),
            end_user: None,
            outcome: "completed".into(),
        }),
        tool_calls: Vec::new(),
        turn_id: "turn-2".into(),
        events: turn::entries(n).to_vec(),
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// One round: the three operations, each timed.
async fn round(store: &dyn Store, n: usize) -> [Duration; 4] {
    let entries = turn::entries(n);
    let session = Session::new("/w", "sonnet", source::NATIVE);
    let t = Instant::now();
    store.create_session(&session).await.expect("create");
    let create = t.elapsed();
    let t = Instant::now();
    store
        .append_events(&session.id, "turn-1", &entries)
        .await
        .expect("append");
    let append = t.elapsed();
    let t = Instant::now();
    let events = store.list_events(&session.id, 0, 100).await.expect("list");
    let list = t.elapsed();
    assert_eq!(events.len(), 3);
    let t = Instant::now();
    store
        .record_turn(&turn_end(&session, n))
        .await
        .expect("record a turn");
    let record = t.elapsed();
    [create, append, list, record]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = DatabaseUrl::Sqlite(dir.path().join("ccgw.db"));
    let pg = ScratchPostgres::start(false).unwrap_or_else(|e| panic!("{e}"));
    let postgres = DatabaseUrl::Postgres(pg.create_database().await.expect("database"));
    let mut runs: Vec<Run> = Vec::new();
    for (name, url) in [("sqlite", &sqlite), ("postgres", &postgres)] {
        let store = ccgw::store::open(url, Durability::Normal)
            .await
            .expect("store");
        runs.push((name, store, Vec::with_capacity(rounds)));
    }
    // A few rounds first, so both pools are warm.
    for n in 0..20 {
        for (_, store, _) in &runs {
            round(store.as_ref(), n).await;
        }
    }
    for n in 0..rounds {
        for (_, store, times) in runs.iter_mut() {
            times.push(round(store.as_ref(), n).await);
        }
    }
    let mut figures = Vec::new();
    for (name, _, times) in &runs {
        let mut per_op = Vec::new();
        for (i, op) in OPS.iter().enumerate() {
            let mut t: Vec<Duration> = times.iter().map(|r| r[i]).collect();
            t.sort();
            let (p50, p99) = (pct(&t, 0.5), pct(&t, 0.99));
            println!("{name:>8}: {op:<26} p50 {p50:.3} ms, p99 {p99:.3} ms ({rounds} rounds)");
            per_op.push((p50, p99));
        }
        figures.push(per_op);
    }
    for (i, op) in OPS.iter().enumerate() {
        println!(
            "postgres / sqlite, {op:<26}: p50 {:.2}x, p99 {:.2}x",
            figures[1][i].0 / figures[0][i].0,
            figures[1][i].1 / figures[0][i].1
        );
    }
}
