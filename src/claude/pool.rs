//! The live-process budget: at most `max_live` CLI processes exist at once.
//!
//! A process is either busy (running a turn) or idle (kept for its conversation's next turn).
//! When the budget is full, a new process takes the place of the least recently used idle one;
//! when every process is busy, the caller waits in a queue up to `queue_timeout` and then gets
//! [`ClaudeError::AtCapacity`]. Evicted conversations resume from their transcript later, so
//! eviction loses nothing. This module decides who lives; it does not know conversations.
//!
//! The warm pool: processes started ahead of time with a default launch spec print nothing
//! until their first input, so a new conversation that takes one skips the CLI's ~0.6 s start.
//! Warm processes fill only spare room in the budget and are the first to be evicted.
//!
//! Every count is kept by a guard, so a caller that is dropped at any await (a client that
//! went away) gives everything back: a place in the queue ([`Queued`]), a slot promised to a
//! spawn under way ([`Reservation`]), and a busy process ([`Lease`]), which is retired unless
//! it is handed on to a running turn.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::args::LaunchSpec;
use super::control::ControlHandler;
use super::process::CliProcess;
use super::warm::{lock_map, Warm, SURPLUS_GRACE};
use super::ClaudeError;

struct Slot {
    process: Arc<CliProcess>,
    /// `None` while busy.
    idle_since: Option<Instant>,
    /// Pre-started and not yet given to anyone: for this provider and `--model`.
    warm: Option<WarmKey>,
}

pub use super::warm::{WarmFactory, WarmKey};

/// A busy process, held by whoever sets up or runs a turn in it. Dropped without being handed
/// on (its holder was cancelled mid-set-up), it is retired: what state it was left in is
/// unknown, so it never serves anyone again.
pub struct Lease {
    pool: Arc<ProcessPool>,
    process: Arc<CliProcess>,
    armed: bool,
}

impl Lease {
    /// The turn that now runs in the process owns it; it ends with `release` or `retire`.
    pub fn hand_on(mut self) -> Arc<CliProcess> {
        self.armed = false;
        self.process.clone()
    }

    /// Give the process up at once.
    pub fn retire(mut self) {
        self.armed = false;
        self.pool.retire(&self.process);
    }
}

impl std::ops::Deref for Lease {
    type Target = Arc<CliProcess>;

    fn deref(&self) -> &Arc<CliProcess> {
        &self.process
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.armed {
            tracing::debug!(
                pid = self.process.pid(),
                "a turn's set-up was abandoned; its process is retired"
            );
            self.pool.retire(&self.process);
        }
    }
}

/// A slot promised to a spawn under way; given back if the spawn never lands in it.
struct Reservation {
    pool: Arc<ProcessPool>,
    /// For a warm process of this key.
    warm: Option<WarmKey>,
    armed: bool,
}

impl Reservation {
    /// The spawned process takes the promised slot (in one step, so the budget never
    /// counts it twice or not at all).
    fn fill(mut self, process: Arc<CliProcess>) {
        self.armed = false;
        let mut inner = self.pool.lock();
        inner.give_back(self.warm.as_ref());
        inner.live.insert(
            process.id,
            Slot {
                process,
                idle_since: self.warm.is_some().then(Instant::now),
                warm: self.warm.clone(),
            },
        );
        drop(inner);
        self.pool.changed.notify_waiters();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.armed {
            self.pool.lock().give_back(self.warm.as_ref());
            self.pool.changed.notify_waiters();
        }
    }
}

/// A caller waiting in the queue for a slot; counted in `queue_depth` while it exists.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn join(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::Relaxed);
        Queued(waiting)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Inner {
    live: HashMap<u64, Slot>,
    /// Slots promised to spawns that are under way.
    reserved: usize,
    /// Of those, the ones for warm processes, by key.
    reserved_warm: Vec<WarmKey>,
}

impl Inner {
    /// Take the least recently used idle process out of the budget: warm ones first when
    /// `warm_too`, otherwise only those that hold a conversation.
    fn evict_lru(&mut self, warm_too: bool) -> Option<Slot> {
        let id = self
            .live
            .iter()
            .filter(|(_, s)| warm_too || s.warm.is_none())
            .filter_map(|(id, s)| s.idle_since.map(|t| (s.warm.is_none(), t, *id)))
            .min()
            .map(|(_, _, id)| id)?;
        self.live.remove(&id)
    }

    /// A reservation ends (filled or abandoned).
    fn give_back(&mut self, warm: Option<&WarmKey>) {
        self.reserved = self.reserved.saturating_sub(1);
        if let Some(key) = warm {
            if let Some(i) = self.reserved_warm.iter().position(|k| k == key) {
                self.reserved_warm.remove(i);
            }
        }
    }
}

pub struct ProcessPool {
    /// The budget (a reload may change it).
    max_live: AtomicUsize,
    queue_timeout: Duration,
    shutdown_grace: Duration,
    inner: Mutex<Inner>,
    /// Retired processes still stopping (a stopping CLI may still write its transcript).
    stopping: Arc<Mutex<HashMap<u64, Arc<CliProcess>>>>,
    /// Set by [`shutdown_all`](Self::shutdown_all): no new process may start after it.
    closed: std::sync::atomic::AtomicBool,
    changed: Notify,
    waiting: AtomicUsize,
    spawned: AtomicU64,
    cold_spawns: AtomicU64,
    warm_hits: AtomicU64,
    /// Idle conversation processes stopped to make room (their conversations resume later).
    evictions: AtomicU64,
    /// Cold spawns that resumed a conversation from its transcript.
    resumes: AtomicU64,
    warm: OnceLock<Warm>,
}

impl ProcessPool {
    pub fn new(max_live: usize, queue_timeout: Duration, shutdown_grace: Duration) -> Self {
        ProcessPool {
            max_live: AtomicUsize::new(max_live.max(1)),
            queue_timeout,
            shutdown_grace,
            inner: Mutex::default(),
            stopping: Arc::default(),
            closed: Default::default(),
            changed: Notify::new(),
            waiting: AtomicUsize::new(0),
            spawned: AtomicU64::new(0),
            cold_spawns: AtomicU64::new(0),
            warm_hits: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            warm: OnceLock::new(),
        }
    }

    /// Keep between `size` and `max` warm processes for each key (as the budget allows, see
    /// [`Warm::target`]), each replaced after `ttl`.
    pub fn enable_warm(
        self: &Arc<Self>,
        (size, max): (usize, usize),
        keys: Vec<WarmKey>,
        ttl: Duration,
        factory: WarmFactory,
    ) {
        // Set even when off, so that a reload can turn it on.
        let _ = self.warm.set(Warm {
            size: AtomicUsize::new(size),
            max: AtomicUsize::new(max),
            keys: std::sync::RwLock::new(keys),
            ttl,
            factory,
            demand: Mutex::default(),
        });
        self.refill();
    }

    /// New warm-pool settings (a reload): idle warm processes no longer wanted stop, missing
    /// ones start.
    pub fn set_warm(self: &Arc<Self>, (size, max): (usize, usize), keys: Vec<WarmKey>) {
        let Some(warm) = self.warm.get() else { return };
        warm.size.store(size, Ordering::Relaxed);
        warm.max.store(max, Ordering::Relaxed);
        *warm.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        // What a reload no longer wants stops at once.
        self.refill_with(Duration::ZERO);
    }

    /// Idle warm processes to stop now ([`Warm::surplus`]).
    fn surplus_warm(&self, warm: &Warm, grace: Duration) -> Vec<u64> {
        let idle = self
            .lock()
            .live
            .iter()
            .filter_map(|(id, s)| Some((s.warm.clone()?, s.idle_since?, *id)))
            .collect();
        warm.surplus(idle, Instant::now(), grace)
    }

    /// A new budget (a reload). Over it, idle processes stop (warm ones first, then the least
    /// recently used); busy ones finish their turns, and no new one starts until there is room.
    pub fn set_max_live(self: &Arc<Self>, max_live: usize) {
        let max_live = max_live.max(1);
        self.max_live.store(max_live, Ordering::Relaxed);
        let victims: Vec<u64> = {
            let inner = self.lock();
            let excess = (inner.live.len() + inner.reserved).saturating_sub(max_live);
            let mut idle: Vec<(bool, Instant, u64)> = inner
                .live
                .iter()
                .filter_map(|(id, s)| s.idle_since.map(|t| (s.warm.is_none(), t, *id)))
                .collect();
            idle.sort();
            idle.iter().take(excess).map(|(_, _, id)| *id).collect()
        };
        self.stop_and_refill(&victims);
    }

    /// Stop these live processes (chosen under an earlier lock: one taken meanwhile is left
    /// alone), then start the warm ones now missing.
    fn stop_and_refill(self: &Arc<Self>, ids: &[u64]) {
        let victims: Vec<Arc<CliProcess>> = {
            let mut inner = self.lock();
            ids.iter()
                .filter_map(|id| match inner.live.get(id) {
                    Some(s) if s.idle_since.is_some() => inner.live.remove(id),
                    _ => None,
                })
                .map(|s| s.process)
                .collect()
        };
        for p in victims {
            self.stop_in_background(p);
        }
        self.changed.notify_waiters();
        self.refill();
    }

    pub fn warm_count(&self) -> usize {
        self.lock()
            .live
            .values()
            .filter(|s| s.warm.is_some())
            .count()
    }

    /// Processes started on a request's path (not ahead of time).
    pub fn cold_spawn_count(&self) -> u64 {
        self.cold_spawns.load(Ordering::Relaxed)
    }

    /// Requests served by a warm process.
    pub fn warm_hit_count(&self) -> u64 {
        self.warm_hits.load(Ordering::Relaxed)
    }

    /// Idle conversation processes stopped to make room for another process.
    pub fn eviction_count(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Cold spawns that resumed a conversation from its transcript (its process was gone).
    pub fn resume_count(&self) -> u64 {
        self.resumes.load(Ordering::Relaxed)
    }

    /// Take a warm process started for `key` (it becomes busy), and start its replacement.
    /// Hit or miss, the ask counts towards the pool's size.
    pub fn take_warm(self: &Arc<Self>, key: &WarmKey) -> Option<Lease> {
        if let Some(warm) = self.warm.get() {
            warm.note_demand(key);
        }
        let taken = {
            let mut inner = self.lock();
            let id = inner
                .live
                .iter()
                .filter(|(_, s)| s.warm.as_ref() == Some(key) && s.process.is_alive())
                .min_by_key(|(_, s)| s.idle_since)
                .map(|(id, _)| *id);
            id.and_then(|id| inner.live.get_mut(&id)).map(|slot| {
                slot.warm = None;
                slot.idle_since = None;
                slot.process.clone()
            })
        };
        // A miss too: the demand it adds may call for more warm processes.
        self.refill();
        let taken = taken?;
        self.warm_hits.fetch_add(1, Ordering::Relaxed);
        Some(self.lease(taken))
    }

    fn lease(self: &Arc<Self>, process: Arc<CliProcess>) -> Lease {
        Lease {
            pool: self.clone(),
            process,
            armed: true,
        }
    }

    /// Bring each key's warm processes to its target ([`Warm::target`]): stop idle ones beyond
    /// it once they have waited [`SURPLUS_GRACE`] (the oldest are kept), and start missing ones,
    /// never while requests wait for a slot. Where the budget has
    /// no spare room, the least recently used idle conversation processes make it: that
    /// conversation resumes from its transcript when it next speaks, while a new conversation
    /// without a warm process would wait for a whole CLI start.
    pub fn refill(self: &Arc<Self>) {
        self.refill_with(SURPLUS_GRACE)
    }

    /// [`refill`](Self::refill), keeping warm processes beyond the target for `grace`.
    fn refill_with(self: &Arc<Self>, grace: Duration) {
        let Some(warm) = self.warm.get() else { return };
        if self.is_closed() {
            return;
        }
        let surplus = self.surplus_warm(warm, grace);
        if !surplus.is_empty() {
            let mut inner = self.lock();
            for id in surplus {
                // Unless it was taken meanwhile.
                if inner
                    .live
                    .get(&id)
                    .is_some_and(|s| s.warm.is_some() && s.idle_since.is_some())
                {
                    if let Some(slot) = inner.live.remove(&id) {
                        self.stop_in_background(slot.process);
                    }
                }
            }
        }
        let mut starts: Vec<(WarmKey, Reservation)> = Vec::new();
        let mut evicted: Vec<Arc<CliProcess>> = Vec::new();
        {
            let mut inner = self.lock();
            if self.waiting.load(Ordering::Relaxed) > 0 {
                return;
            }
            let keys = warm.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
            for key in &keys {
                let size = warm.target(key);
                let have = inner
                    .live
                    .values()
                    .filter(|s| s.warm.as_ref() == Some(key))
                    .count()
                    + inner.reserved_warm.iter().filter(|k| *k == key).count();
                let want = size.saturating_sub(have);
                let mut room = self
                    .max_live()
                    .saturating_sub(inner.live.len() + inner.reserved);
                while room < want {
                    let Some(slot) = inner.evict_lru(false) else {
                        break;
                    };
                    evicted.push(slot.process);
                    room += 1;
                }
                let n = want.min(room);
                for _ in 0..n {
                    inner.reserved += 1;
                    inner.reserved_warm.push(key.clone());
                    let reservation = Reservation {
                        pool: self.clone(),
                        warm: Some(key.clone()),
                        armed: true,
                    };
                    starts.push((key.clone(), reservation));
                }
            }
        }
        for p in evicted {
            tracing::info!(
                pid = p.pid(),
                "evicting least recently used idle claude process for the warm pool"
            );
            self.evictions.fetch_add(1, Ordering::Relaxed);
            self.stop_in_background(p);
        }
        for (key, reservation) in starts {
            let (spec, handler) = (warm.factory)(&key);
            let this = self.clone();
            tokio::spawn(async move {
                match CliProcess::spawn(&spec, handler).await {
                    Ok(p) => {
                        this.spawned.fetch_add(1, Ordering::Relaxed);
                        reservation.fill(Arc::new(p));
                    }
                    Err(e) => tracing::warn!(error = %e, "could not start a warm claude process"),
                }
                this.changed.notify_waiters();
            });
        }
    }

    pub fn live_count(&self) -> usize {
        self.lock().live.len()
    }

    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// How many processes this pool has started since it was created.
    pub fn spawn_count(&self) -> u64 {
        self.spawned.load(Ordering::Relaxed)
    }

    pub fn max_live(&self) -> usize {
        self.max_live.load(Ordering::Relaxed)
    }

    /// Pids of every live process (for health output and tests).
    pub fn pids(&self) -> Vec<u32> {
        self.lock().live.values().map(|s| s.process.pid()).collect()
    }

    /// Spawn a new process for a turn, waiting for room in the budget. It starts busy.
    pub async fn spawn(
        self: &Arc<Self>,
        spec: &LaunchSpec,
        handler: Arc<ControlHandler>,
    ) -> Result<Lease, ClaudeError> {
        let reservation = self.reserve().await?;
        let process = Arc::new(CliProcess::spawn(spec, handler).await?);
        self.spawned.fetch_add(1, Ordering::Relaxed);
        self.cold_spawns.fetch_add(1, Ordering::Relaxed);
        if matches!(spec.session, super::args::SessionMode::Resume { .. }) {
            self.resumes.fetch_add(1, Ordering::Relaxed);
        }
        reservation.fill(process.clone());
        Ok(self.lease(process))
    }

    /// Take an idle process for a new turn. `None` when it was evicted or has died.
    pub fn claim(self: &Arc<Self>, process: &Arc<CliProcess>) -> Option<Lease> {
        let mut inner = self.lock();
        match inner.live.get_mut(&process.id) {
            Some(slot)
                if slot.idle_since.is_some() && slot.warm.is_none() && process.is_alive() =>
            {
                slot.idle_since = None;
                drop(inner);
                Some(self.lease(process.clone()))
            }
            _ => None,
        }
    }

    /// The turn is over and the process is kept for its conversation.
    pub fn release(&self, process: &CliProcess) {
        if let Some(slot) = self.lock().live.get_mut(&process.id) {
            slot.idle_since = Some(Instant::now());
        }
        self.changed.notify_waiters();
    }

    /// Remove a process from the budget and stop it in the background.
    pub fn retire(&self, process: &Arc<CliProcess>) {
        self.lock().live.remove(&process.id);
        self.changed.notify_waiters();
        self.stop_in_background(process.clone());
    }

    /// Stop idle processes unused for longer than `ttl` (warm ones after their own ttl); also
    /// forget dead ones.
    pub fn reap_idle(&self, ttl: Duration) -> usize {
        let now = Instant::now();
        let warm_ttl = self.warm.get().map(|w| w.ttl).unwrap_or(ttl);
        let victims: Vec<Arc<CliProcess>> = {
            let mut inner = self.lock();
            let ids: Vec<u64> = inner
                .live
                .iter()
                .filter(|(_, s)| {
                    let limit = if s.warm.is_some() { warm_ttl } else { ttl };
                    s.process.has_exited()
                        || s.idle_since.is_some_and(|t| now.duration_since(t) >= limit)
                })
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| inner.live.remove(id))
                .map(|s| s.process)
                .collect()
        };
        let n = victims.len();
        for p in victims {
            self.stop_in_background(p);
        }
        if n > 0 {
            self.changed.notify_waiters();
        }
        n
    }

    /// Stop every process (gateway shutdown), waiting until they are gone.
    /// Stop every process, and those still starting once they have started (a warm-pool
    /// refill or a turn's spawn may be under way): none is left behind. No new one starts.
    pub async fn shutdown_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let grace = self.shutdown_grace;
        // A spawn takes a few seconds at most; one that hangs is not waited for beyond this.
        let deadline = tokio::time::Instant::now() + grace + Duration::from_secs(30);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (all, starting) = {
                let mut inner = self.lock();
                let all: Vec<Arc<CliProcess>> =
                    inner.live.drain().map(|(_, s)| s.process).collect();
                (all, inner.reserved)
            };
            futures::future::join_all(all.iter().map(|p| p.shutdown(grace))).await;
            if starting == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(
                    starting,
                    "processes still starting when the gateway stopped"
                );
                break;
            }
        }
        // And those retired just before, still stopping in the background.
        let stopping: Vec<Arc<CliProcess>> = lock_map(&self.stopping).values().cloned().collect();
        futures::future::join_all(stopping.iter().map(|p| p.shutdown(grace))).await;
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    async fn reserve(self: &Arc<Self>) -> Result<Reservation, ClaudeError> {
        let deadline = tokio::time::Instant::now() + self.queue_timeout;
        let mut queued: Option<Queued> = None;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                // Stopping: no slot will come free for a new process.
                return Err(ClaudeError::AtCapacity {
                    max: self.max_live(),
                    retry_after: 1,
                });
            }
            if self.try_reserve() {
                return Ok(Reservation {
                    pool: self.clone(),
                    warm: None,
                    armed: true,
                });
            }
            if queued.is_none() {
                queued = Some(Queued::join(&self.waiting));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(ClaudeError::AtCapacity {
                    max: self.max_live(),
                    retry_after: 1,
                });
            }
        }
    }

    fn try_reserve(&self) -> bool {
        let victim = {
            let mut inner = self.lock();
            if self.is_closed() {
                return false;
            }
            if inner.live.len() + inner.reserved < self.max_live() {
                inner.reserved += 1;
                return true;
            }
            // Warm processes go first (they hold no conversation), then the least recently used.
            match inner.evict_lru(true) {
                Some(slot) => {
                    inner.reserved += 1;
                    slot
                }
                None => return false,
            }
        };
        tracing::info!(
            pid = victim.process.pid(),
            "evicting least recently used idle claude process"
        );
        if victim.warm.is_none() {
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        self.stop_in_background(victim.process);
        true
    }

    fn stop_in_background(&self, p: Arc<CliProcess>) {
        let grace = self.shutdown_grace;
        let stopping = self.stopping.clone();
        lock_map(&stopping).insert(p.id, p.clone());
        tokio::spawn(async move {
            p.shutdown(grace).await;
            lock_map(&stopping).remove(&p.id);
        });
    }

    /// Wait (up to `limit`) until every retired process that served `label` has exited: a
    /// stopping CLI may still append to the transcript that the next process resumes.
    pub async fn wait_stopped(&self, label: &str, limit: Duration) {
        let waiting: Vec<Arc<CliProcess>> = lock_map(&self.stopping)
            .values()
            .filter(|p| p.handler().label() == label)
            .cloned()
            .collect();
        for p in waiting {
            p.wait_exit(limit).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map inconsistent (no multi-step
        // updates), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_wait_gives_back_its_queue_place_and_reservation() {
        let pool = Arc::new(ProcessPool::new(
            1,
            Duration::from_secs(30),
            Duration::from_secs(1),
        ));
        let first = pool.reserve().await.unwrap();
        assert_eq!(pool.lock().reserved, 1);
        // The second waits in the queue, and its caller goes away.
        let waiting = tokio::time::timeout(Duration::from_millis(50), pool.reserve()).await;
        assert!(waiting.is_err());
        assert_eq!(pool.queue_depth(), 0);
        // An abandoned reservation frees its slot for the next caller.
        drop(first);
        assert_eq!(pool.lock().reserved, 0);
        let next = tokio::time::timeout(Duration::from_millis(50), pool.reserve()).await;
        assert!(next.is_ok_and(|r| r.is_ok()));
    }
}
