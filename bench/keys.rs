//! `keys`: what the key check and the per-key limits cost per request, in process, without
//! HTTP: `KeyRing::authenticate` (a SHA-256 and a map lookup) and `Limits::admit` (the rpm
//! limiter, the tpm window, the budget sum, a concurrency slot) for a stored user key with
//! rpm, tpm, max_concurrency and a budget set, against the same calls for a gateway without
//! limits (an unlimited caller's fast path). Interleaved in rounds, medians of the rounds.
//!
//! `cargo run --release --example keys -- 200000`; pasted into `bench/RESULTS.md` by hand, beside
//! `bench/keys.py` (the same over HTTP).

use std::sync::Arc;
use std::time::Instant;

use ccgw::domain::limits::Limits;
use ccgw::domain::tenants::{KeyLimits, KeyRing, NewKey, Role};
use ccgw::store::{SqliteStore, Store};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await?);
    let ring = KeyRing::load(store, &["bench-admin-key-0123456789".to_string()]).await?;
    let limits = KeyLimits {
        rpm: Some(u32::MAX),
        tpm: Some(u64::MAX),
        max_concurrency: Some(u32::MAX),
        budget_usd: Some(1e12),
        budget_period: Some("month".into()),
    };
    let issued = ring
        .create(NewKey {
            name: "bench".into(),
            role: Some(Role::User),
            limits: limits.clone(),
            ..Default::default()
        })
        .await?;
    let secret = issued.secret;
    let meter = Limits::new(Default::default());
    // A month of spend and a minute of tokens, as a busy key has.
    meter.load_spend((0..31).map(|d| {
        (
            issued.key.id.clone(),
            ccgw::store::now_millis() - d * 86_400_000,
            0.5,
        )
    }));
    for _ in 0..100 {
        meter.record(&issued.key.id, 1000, 0.01, ccgw::store::now_millis());
    }

    let rounds = 20;
    let per = n / rounds;
    let (mut auth_ns, mut admit_ns, mut free_ns) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..per {
            let c = ring.authenticate(std::hint::black_box(&secret));
            std::hint::black_box(c.is_ok());
        }
        auth_ns.push(t.elapsed().as_nanos() as f64 / per as f64);

        let caller = ring
            .authenticate(&secret)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let t = Instant::now();
        for _ in 0..per {
            let a = meter.admit(&caller.owner, caller.limits());
            std::hint::black_box(a.is_ok());
        }
        admit_ns.push(t.elapsed().as_nanos() as f64 / per as f64);

        let none = KeyLimits::default();
        let t = Instant::now();
        for _ in 0..per {
            let a = meter.admit("", std::hint::black_box(&none));
            std::hint::black_box(a.is_ok());
        }
        free_ns.push(t.elapsed().as_nanos() as f64 / per as f64);
    }
    let (auth, admit, free) = (median(auth_ns), median(admit_ns), median(free_ns));
    println!("calls per round: {per}, rounds: {rounds}");
    println!("KeyRing::authenticate (stored user key): {auth:.0} ns");
    println!("Limits::admit (rpm, tpm, concurrency, budget): {admit:.0} ns");
    println!("Limits::admit (no limits: static keys, no keys): {free:.1} ns");
    println!(
        "key check + limits per request: {:.2} µs",
        (auth + admit) / 1000.0
    );
    Ok(())
}
