//! Per-key limits: requests per minute, tokens per minute, turns at once, and a budget in USD
//! per UTC day or month; and the price table that gives a turn a cost when the upstream
//! reported none.
//!
//! Owns the counters, all in memory: admitting a request costs a few map lookups under short
//! locks, never a database round trip. The spend is loaded once from the usage table at start
//! ([`Limits::load_spend`]) and then kept up to date by every turn's end ([`Limits::record`]).
//! Requests per minute use `governor` (one GCRA limiter per key id, rebuilt when the key's rpm
//! changes); tokens per minute are a sliding window of the turns' reported usage, since tokens
//! are only known after a turn, so a key over its tpm is refused on its next request until the
//! window frees it.
//!
//! Must not: know HTTP (the middleware in `http::limits` turns [`LimitError`] and
//! [`RateHeaders`] into statuses and headers), read or write the store per request, or limit a
//! caller without a stored key (static admin keys and a gateway without keys are unlimited:
//! their [`KeyLimits`] are all `None`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::domain::tenants::KeyLimits;

/// The window requests and tokens per minute are counted over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// USD per million tokens of one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Reading the prompt cache; a tenth of `input` when unset.
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Writing the prompt cache; 1.25 times `input` when unset.
    #[serde(default)]
    pub cache_write: Option<f64>,
}

impl Price {
    const fn new(input: f64, output: f64) -> Price {
        Price {
            input,
            output,
            cache_read: None,
            cache_write: None,
        }
    }

    /// The cost in USD of these token counts.
    pub fn cost(&self, input: u64, output: u64, cache_read: u64, cache_write: u64) -> f64 {
        let per = |n: u64, usd: f64| n as f64 * usd / 1_000_000.0;
        per(input, self.input)
            + per(output, self.output)
            + per(cache_read, self.cache_read.unwrap_or(self.input * 0.1))
            + per(cache_write, self.cache_write.unwrap_or(self.input * 1.25))
    }
}

/// Built-in prices (USD per million tokens), matched by a part of the model's name, most
/// specific first. The config's `[prices."MODEL"]` come before these.
const BUILT_IN_PRICES: &[(&str, Price)] = &[
    ("opus-4-5", Price::new(5.0, 25.0)),
    ("opus-4.5", Price::new(5.0, 25.0)),
    ("opus", Price::new(15.0, 75.0)),
    ("sonnet", Price::new(3.0, 15.0)),
    ("haiku-4", Price::new(1.0, 5.0)),
    ("haiku", Price::new(0.8, 4.0)),
];

/// The price of `model`: the config's entry for it (exact name), else the built-in one whose
/// family the name contains; `None` for a model nobody priced.
pub fn price_of(prices: &BTreeMap<String, Price>, model: &str) -> Option<Price> {
    if let Some(p) = prices.get(model) {
        return Some(*p);
    }
    let lower = model.to_ascii_lowercase();
    BUILT_IN_PRICES
        .iter()
        .find(|(family, _)| lower.contains(family))
        .map(|(_, p)| *p)
}

/// What a response tells a client about its limits (OpenAI's `x-ratelimit-*` headers).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateHeaders {
    /// `(limit, remaining, reset)` of requests per minute, when the key has an rpm.
    pub requests: Option<(u64, u64, Duration)>,
    /// `(limit, remaining, reset)` of tokens per minute, when the key has a tpm.
    pub tokens: Option<(u64, u64, Duration)>,
}

/// Why a request is refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    #[error("Rate limit reached: this API key may make {limit} requests per minute; retry in {} s", secs(.retry_after))]
    Requests {
        limit: u32,
        retry_after: Duration,
        headers: RateHeaders,
    },
    #[error("Rate limit reached: this API key may use {limit} tokens per minute; retry in {} s", secs(.retry_after))]
    Tokens {
        limit: u64,
        retry_after: Duration,
        headers: RateHeaders,
    },
    #[error("Too many turns at once: this API key may run {limit} at a time")]
    Concurrency { limit: u32, headers: RateHeaders },
    #[error("This API key's budget of {budget} USD per {period} is spent ({spent:.6} USD); it renews in {} s", secs(.retry_after))]
    Budget {
        budget: f64,
        spent: f64,
        period: &'static str,
        retry_after: Duration,
        headers: RateHeaders,
    },
}

impl LimitError {
    /// How long the client should wait.
    pub fn retry_after(&self) -> Duration {
        match self {
            LimitError::Requests { retry_after, .. }
            | LimitError::Tokens { retry_after, .. }
            | LimitError::Budget { retry_after, .. } => *retry_after,
            LimitError::Concurrency { .. } => Duration::from_secs(1),
        }
    }

    pub fn headers(&self) -> RateHeaders {
        match self {
            LimitError::Requests { headers, .. }
            | LimitError::Tokens { headers, .. }
            | LimitError::Concurrency { headers, .. }
            | LimitError::Budget { headers, .. } => headers.clone(),
        }
    }
}

/// Whole seconds, rounded up (a client told 0 would retry at once).
pub fn secs(d: &Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

type Rpm = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// A running turn's slot; giving it back (dropping it) lets the key's next turn in.
#[derive(Debug)]
pub struct TurnSlot {
    running: Arc<Mutex<HashMap<String, u32>>>,
    owner: String,
}

impl Drop for TurnSlot {
    fn drop(&mut self) {
        let mut running = lock(&self.running);
        if let Some(n) = running.get_mut(&self.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.owner);
            }
        }
    }
}

/// An admitted request: its turn's slot (when the key caps concurrency) and its headers.
#[derive(Debug, Default)]
pub struct Admission {
    pub slot: Option<TurnSlot>,
    pub headers: RateHeaders,
}

/// A key's spend, per UTC day (unix ms of the day's start), for the current and last month.
type Spend = BTreeMap<i64, f64>;

/// Every key's counters.
pub struct Limits {
    prices: BTreeMap<String, Price>,
    clock: DefaultClock,
    rpm: Mutex<HashMap<String, (u32, Arc<Rpm>)>>,
    tokens: Mutex<HashMap<String, VecDeque<(Instant, u64)>>>,
    running: Arc<Mutex<HashMap<String, u32>>>,
    spend: Mutex<HashMap<String, Spend>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Limits {
    pub fn new(prices: BTreeMap<String, Price>) -> Limits {
        Limits {
            prices,
            clock: DefaultClock::default(),
            rpm: Mutex::default(),
            tokens: Mutex::default(),
            running: Arc::default(),
            spend: Mutex::default(),
        }
    }

    /// The cost of a turn the upstream reported no cost for, from the price table.
    /// `None` for a model nobody priced.
    pub fn price(
        &self,
        model: &str,
        input: u64,
        output: u64,
        read: u64,
        write: u64,
    ) -> Option<f64> {
        price_of(&self.prices, model).map(|p| p.cost(input, output, read, write))
    }

    /// Admit one request of `owner` under `limits`, or say which limit it is past. A request
    /// is counted against the rpm only once every other limit let it through.
    pub fn admit(&self, owner: &str, limits: &KeyLimits) -> Result<Admission, LimitError> {
        self.admit_at(owner, limits, Instant::now(), crate::store::now_millis())
    }

    fn admit_at(
        &self,
        owner: &str,
        limits: &KeyLimits,
        now: Instant,
        now_ms: i64,
    ) -> Result<Admission, LimitError> {
        if limits.rpm.is_none()
            && limits.tpm.is_none()
            && limits.max_concurrency.is_none()
            && limits.budget_usd.is_none()
        {
            return Ok(Admission::default());
        }
        let mut headers = RateHeaders::default();
        // Every request that gets this far counts against the rpm, refused or not: the
        // headers of any refusal are then exact.
        if let Some(rpm) = limits.rpm.and_then(NonZeroU32::new) {
            let limiter = self.limiter(owner, rpm);
            let per_request = WINDOW / rpm.get();
            match limiter.check() {
                Ok(snap) => {
                    let remaining = snap.remaining_burst_capacity();
                    let reset = per_request * (rpm.get() - remaining.min(rpm.get()));
                    headers.requests = Some((u64::from(rpm.get()), u64::from(remaining), reset));
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    headers.requests = Some((u64::from(rpm.get()), 0, wait));
                    if let Some(tpm) = limits.tpm {
                        let (used, reset) = self.tokens_in_window(owner, now, tpm);
                        headers.tokens = Some((tpm, tpm.saturating_sub(used), reset));
                    }
                    return Err(LimitError::Requests {
                        limit: rpm.get(),
                        retry_after: wait,
                        headers,
                    });
                }
            }
        }
        if let Some(tpm) = limits.tpm {
            let (used, reset) = self.tokens_in_window(owner, now, tpm);
            headers.tokens = Some((tpm, tpm.saturating_sub(used), reset));
            if used >= tpm {
                return Err(LimitError::Tokens {
                    limit: tpm,
                    retry_after: reset,
                    headers,
                });
            }
        }
        if let Some(budget) = limits.budget_usd {
            let period = period_of(limits);
            let (start, end) = period_bounds(period, now_ms);
            let spent: f64 = lock(&self.spend)
                .get(owner)
                .map(|s| s.range(start..).map(|(_, c)| c).sum())
                .unwrap_or(0.0);
            if spent >= budget {
                return Err(LimitError::Budget {
                    budget,
                    spent,
                    period,
                    retry_after: Duration::from_millis((end - now_ms).max(0) as u64),
                    headers,
                });
            }
        }
        let slot = match limits.max_concurrency {
            Some(max) => {
                let mut running = lock(&self.running);
                let n = running.entry(owner.to_string()).or_insert(0);
                if *n >= max {
                    return Err(LimitError::Concurrency {
                        limit: max,
                        headers,
                    });
                }
                *n += 1;
                Some(TurnSlot {
                    running: self.running.clone(),
                    owner: owner.to_string(),
                })
            }
            None => None,
        };
        Ok(Admission { slot, headers })
    }

    fn limiter(&self, owner: &str, rpm: NonZeroU32) -> Arc<Rpm> {
        let mut map = lock(&self.rpm);
        match map.get(owner) {
            Some((n, l)) if *n == rpm.get() => l.clone(),
            _ => {
                // A changed rpm starts afresh: the old limiter's state is for another quota.
                let l = Arc::new(
                    RateLimiter::direct_with_clock(Quota::per_minute(rpm), self.clock.clone())
                        .with_middleware::<StateInformationMiddleware>(),
                );
                map.insert(owner.to_string(), (rpm.get(), l.clone()));
                l
            }
        }
    }

    /// Tokens counted in the last minute, and how long until the window drops below `tpm`
    /// (or, when it is below, until it is empty).
    fn tokens_in_window(&self, owner: &str, now: Instant, tpm: u64) -> (u64, Duration) {
        let mut map = lock(&self.tokens);
        let Some(q) = map.get_mut(owner) else {
            return (0, Duration::ZERO);
        };
        while q
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
        {
            q.pop_front();
        }
        let used: u64 = q.iter().map(|(_, n)| n).sum();
        let mut left = used;
        let mut reset = Duration::ZERO;
        for (t, n) in q.iter() {
            reset = (*t + WINDOW).saturating_duration_since(now);
            left -= n;
            if used >= tpm && left < tpm {
                break;
            }
        }
        if q.is_empty() {
            map.remove(owner);
        }
        (used, reset)
    }

    /// Count a finished turn: its tokens (input plus output) against the key's tpm, its cost
    /// against its budget.
    pub fn record(&self, owner: &str, tokens: u64, cost_usd: f64, at_ms: i64) {
        self.record_at(owner, tokens, cost_usd, Instant::now(), at_ms);
    }

    fn record_at(&self, owner: &str, tokens: u64, cost_usd: f64, now: Instant, at_ms: i64) {
        if tokens > 0 {
            lock(&self.tokens)
                .entry(owner.to_string())
                .or_default()
                .push_back((now, tokens));
        }
        if cost_usd > 0.0 {
            let mut spend = lock(&self.spend);
            let s = spend.entry(owner.to_string()).or_default();
            *s.entry(day_start(at_ms)).or_insert(0.0) += cost_usd;
            // Only this month and the last matter to any budget.
            let keep = period_bounds("month", at_ms).0 - 31 * DAY_MS;
            s.retain(|day, _| *day >= keep);
        }
    }

    /// The spend the store knows of: `(owner, day start in unix ms, USD)` per key and day.
    pub fn load_spend(&self, rows: impl IntoIterator<Item = (String, i64, f64)>) {
        let mut spend = lock(&self.spend);
        for (owner, day, cost) in rows {
            *spend
                .entry(owner)
                .or_default()
                .entry(day_start(day))
                .or_insert(0.0) += cost;
        }
    }

    /// What `owner` has spent in the current period of `limits` (USD).
    pub fn spent(&self, owner: &str, limits: &KeyLimits) -> f64 {
        let (start, _) = period_bounds(period_of(limits), crate::store::now_millis());
        lock(&self.spend)
            .get(owner)
            .map(|s| s.range(start..).map(|(_, c)| c).sum())
            .unwrap_or(0.0)
    }

    /// Turns `owner` runs now under a concurrency cap.
    pub fn running(&self, owner: &str) -> u32 {
        lock(&self.running).get(owner).copied().unwrap_or(0)
    }
}

const DAY_MS: i64 = 86_400_000;

fn day_start(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

fn period_of(limits: &KeyLimits) -> &'static str {
    match limits.budget_period.as_deref() {
        Some("day") => "day",
        _ => "month",
    }
}

/// The UTC day or month `now_ms` falls in, as `[start, end)` unix ms.
pub fn period_bounds(period: &str, now_ms: i64) -> (i64, i64) {
    let day = day_start(now_ms);
    if period == "day" {
        return (day, day + DAY_MS);
    }
    let date = time::OffsetDateTime::from_unix_timestamp(day / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    let first = date.replace_day(1).unwrap_or(date);
    let next = if first.month() == time::Month::December {
        time::Date::from_calendar_date(first.year() + 1, time::Month::January, 1)
    } else {
        time::Date::from_calendar_date(first.year(), first.month().next(), 1)
    }
    .unwrap_or(first);
    let ms = |d: time::Date| d.midnight().assume_utc().unix_timestamp() * 1000;
    (ms(first), ms(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(f: impl FnOnce(&mut KeyLimits)) -> KeyLimits {
        let mut l = KeyLimits::default();
        f(&mut l);
        l
    }

    #[test]
    fn no_limits_admit_everything_without_headers() {
        let l = Limits::new(BTreeMap::new());
        for _ in 0..1000 {
            let a = l.admit("k", &KeyLimits::default()).unwrap();
            assert!(a.slot.is_none());
            assert_eq!(a.headers, RateHeaders::default());
        }
    }

    #[test]
    fn rpm_refuses_past_the_burst_and_other_keys_are_apart() {
        let l = Limits::new(BTreeMap::new());
        let lim = keyed(|l| l.rpm = Some(3));
        for left in [2, 1, 0] {
            let a = l.admit("a", &lim).unwrap();
            assert_eq!(a.headers.requests.unwrap().1, left);
        }
        let e = l.admit("a", &lim).unwrap_err();
        assert!(matches!(e, LimitError::Requests { limit: 3, .. }), "{e}");
        assert!(e.retry_after() > Duration::ZERO && e.retry_after() <= WINDOW / 3);
        assert!(l.admit("b", &lim).is_ok());
    }

    #[test]
    fn tpm_refuses_once_the_window_holds_more_and_frees_with_time() {
        let l = Limits::new(BTreeMap::new());
        let lim = keyed(|l| l.tpm = Some(100));
        let t0 = Instant::now();
        assert!(l.admit_at("a", &lim, t0, 0).is_ok());
        l.record_at("a", 60, 0.0, t0, 0);
        let a = l.admit_at("a", &lim, t0, 0).unwrap();
        assert_eq!(a.headers.tokens.unwrap().1, 40);
        l.record_at("a", 50, 0.0, t0 + Duration::from_secs(10), 0);
        let e = l
            .admit_at("a", &lim, t0 + Duration::from_secs(20), 0)
            .unwrap_err();
        // The first 60 leave the window at t0 + 60 s, and 50 < 100 then.
        assert_eq!(e.retry_after(), Duration::from_secs(40));
        assert!(l
            .admit_at("a", &lim, t0 + Duration::from_secs(61), 0)
            .is_ok());
    }

    #[test]
    fn concurrency_slots_come_back_when_dropped() {
        let l = Limits::new(BTreeMap::new());
        let lim = keyed(|l| l.max_concurrency = Some(1));
        let first = l.admit("a", &lim).unwrap();
        assert_eq!(l.running("a"), 1);
        assert!(matches!(
            l.admit("a", &lim).unwrap_err(),
            LimitError::Concurrency { limit: 1, .. }
        ));
        drop(first);
        assert_eq!(l.running("a"), 0);
        assert!(l.admit("a", &lim).is_ok());
    }

    #[test]
    fn a_request_refused_by_rpm_takes_no_slot() {
        let l = Limits::new(BTreeMap::new());
        let lim = keyed(|l| {
            l.max_concurrency = Some(5);
            l.rpm = Some(1);
        });
        let _a = l.admit("a", &lim).unwrap();
        assert!(matches!(
            l.admit("a", &lim).unwrap_err(),
            LimitError::Requests { .. }
        ));
        assert_eq!(l.running("a"), 1);
    }

    #[test]
    fn budget_is_per_day_or_month_and_loads_from_the_store() {
        let l = Limits::new(BTreeMap::new());
        // 2026-03-15T12:00:00Z
        let now = 1_773_576_000_000;
        let day = keyed(|l| {
            l.budget_usd = Some(1.0);
            l.budget_period = Some("day".into());
        });
        let month = keyed(|l| l.budget_usd = Some(1.0));
        l.load_spend([("a".to_string(), now - 2 * DAY_MS, 0.7)]);
        let t = Instant::now();
        assert!(l.admit_at("a", &day, t, now).is_ok());
        assert!(l.admit_at("a", &month, t, now).is_ok());
        l.record_at("a", 0, 0.4, t, now);
        assert!(l.admit_at("a", &day, t, now).is_ok());
        match l.admit_at("a", &month, t, now).unwrap_err() {
            LimitError::Budget {
                spent, retry_after, ..
            } => {
                assert!((spent - 1.1).abs() < 1e-9);
                // Renews 2026-04-01T00:00:00Z.
                assert_eq!(
                    retry_after,
                    Duration::from_millis(1_775_001_600_000 - now as u64)
                );
            }
            e => panic!("{e}"),
        }
        assert!(l.admit_at("b", &month, t, now).is_ok());
    }

    #[test]
    fn periods_are_utc_days_and_months() {
        // 2026-12-31T23:00:00Z
        let (s, e) = period_bounds("month", 1_798_758_000_000);
        assert_eq!(s, 1_796_083_200_000); // 2026-12-01
        assert_eq!(e, 1_798_761_600_000); // 2027-01-01
        let (s, e) = period_bounds("day", 1_798_758_000_000);
        assert_eq!((s, e), (1_798_675_200_000, 1_798_761_600_000));
    }

    #[test]
    fn prices_come_from_the_config_then_the_families() {
        let mut t = BTreeMap::new();
        t.insert("my-model".to_string(), Price::new(2.0, 4.0));
        assert_eq!(price_of(&t, "my-model"), Some(Price::new(2.0, 4.0)));
        assert_eq!(price_of(&t, "claude-sonnet-4-5").unwrap().input, 3.0);
        assert_eq!(price_of(&t, "claude-opus-4-5-20251101").unwrap().input, 5.0);
        assert_eq!(price_of(&t, "claude-opus-4-1").unwrap().output, 75.0);
        assert_eq!(price_of(&t, "claude-haiku-4-5").unwrap().input, 1.0);
        assert_eq!(price_of(&t, "gpt-4"), None);
        let p = Price::new(3.0, 15.0);
        let c = p.cost(1_000_000, 1_000_000, 1_000_000, 1_000_000);
        assert!((c - (3.0 + 15.0 + 0.3 + 3.75)).abs() < 1e-9);
        assert_eq!(Limits::new(t).price("gpt-4", 1, 1, 1, 1), None);
    }
}
