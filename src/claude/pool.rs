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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::args::LaunchSpec;
use super::control::ControlHandler;
use super::process::CliProcess;
use super::ClaudeError;

struct Slot {
    process: Arc<CliProcess>,
    /// `None` while busy.
    idle_since: Option<Instant>,
    /// Pre-started and not yet given to anyone: for this `--model` (`None`: the default).
    warm: Option<WarmKey>,
}

/// What a warm process was started for: its `--model`.
pub type WarmKey = Option<String>;

/// Makes the launch spec (fresh workspace and session id) and handler of one warm process.
pub type WarmFactory = Box<dyn Fn(&WarmKey) -> (LaunchSpec, Arc<ControlHandler>) + Send + Sync>;

struct Warm {
    /// Processes kept ready per key.
    size: usize,
    keys: Vec<WarmKey>,
    ttl: Duration,
    factory: WarmFactory,
}

#[derive(Default)]
struct Inner {
    live: HashMap<u64, Slot>,
    /// Slots promised to spawns that are under way.
    reserved: usize,
    /// Of those, the ones for warm processes, by key.
    reserved_warm: Vec<WarmKey>,
}

pub struct ProcessPool {
    max_live: usize,
    queue_timeout: Duration,
    shutdown_grace: Duration,
    inner: Mutex<Inner>,
    changed: Notify,
    waiting: AtomicUsize,
    spawned: AtomicU64,
    cold_spawns: AtomicU64,
    warm_hits: AtomicU64,
    warm: OnceLock<Warm>,
}

impl ProcessPool {
    pub fn new(max_live: usize, queue_timeout: Duration, shutdown_grace: Duration) -> Self {
        ProcessPool {
            max_live: max_live.max(1),
            queue_timeout,
            shutdown_grace,
            inner: Mutex::default(),
            changed: Notify::new(),
            waiting: AtomicUsize::new(0),
            spawned: AtomicU64::new(0),
            cold_spawns: AtomicU64::new(0),
            warm_hits: AtomicU64::new(0),
            warm: OnceLock::new(),
        }
    }

    /// Keep `size` warm processes for each key (as room allows), each replaced after `ttl`.
    pub fn enable_warm(
        self: &Arc<Self>,
        size: usize,
        keys: Vec<WarmKey>,
        ttl: Duration,
        factory: WarmFactory,
    ) {
        if size > 0
            && !keys.is_empty()
            && self
                .warm
                .set(Warm {
                    size,
                    keys,
                    ttl,
                    factory,
                })
                .is_ok()
        {
            self.refill();
        }
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

    /// Take a warm process started for `key` (it becomes busy), and start its replacement.
    pub fn take_warm(self: &Arc<Self>, key: &WarmKey) -> Option<Arc<CliProcess>> {
        let taken = {
            let mut inner = self.lock();
            let id = inner
                .live
                .iter()
                .filter(|(_, s)| s.warm.as_ref() == Some(key) && s.process.is_alive())
                .min_by_key(|(_, s)| s.idle_since)
                .map(|(id, _)| *id)?;
            let slot = inner.live.get_mut(&id)?;
            slot.warm = None;
            slot.idle_since = None;
            slot.process.clone()
        };
        self.warm_hits.fetch_add(1, Ordering::Relaxed);
        self.refill();
        Some(taken)
    }

    /// Start warm processes until there are `size`, using only spare room in the budget and
    /// never while requests wait for a slot.
    pub fn refill(self: &Arc<Self>) {
        let Some(warm) = self.warm.get() else { return };
        let mut starts: Vec<WarmKey> = Vec::new();
        {
            let mut inner = self.lock();
            if self.waiting.load(Ordering::Relaxed) > 0 {
                return;
            }
            for key in &warm.keys {
                let have = inner
                    .live
                    .values()
                    .filter(|s| s.warm.as_ref() == Some(key))
                    .count()
                    + inner.reserved_warm.iter().filter(|k| *k == key).count();
                let room = self
                    .max_live
                    .saturating_sub(inner.live.len() + inner.reserved);
                let n = warm.size.saturating_sub(have).min(room);
                for _ in 0..n {
                    inner.reserved += 1;
                    inner.reserved_warm.push(key.clone());
                    starts.push(key.clone());
                }
            }
        }
        for key in starts {
            let (spec, handler) = (warm.factory)(&key);
            let this = self.clone();
            tokio::spawn(async move {
                let result = CliProcess::spawn(&spec, handler).await;
                let mut inner = this.lock();
                inner.reserved -= 1;
                if let Some(i) = inner.reserved_warm.iter().position(|k| *k == key) {
                    inner.reserved_warm.remove(i);
                }
                match result {
                    Ok(p) => {
                        this.spawned.fetch_add(1, Ordering::Relaxed);
                        inner.live.insert(
                            p.id,
                            Slot {
                                process: Arc::new(p),
                                idle_since: Some(Instant::now()),
                                warm: Some(key),
                            },
                        );
                    }
                    Err(e) => tracing::warn!(error = %e, "could not start a warm claude process"),
                }
                drop(inner);
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
        self.max_live
    }

    /// Pids of every live process (for health output and tests).
    pub fn pids(&self) -> Vec<u32> {
        self.lock().live.values().map(|s| s.process.pid()).collect()
    }

    /// Spawn a new process for a turn, waiting for room in the budget. It starts busy.
    pub async fn spawn(
        &self,
        spec: &LaunchSpec,
        handler: Arc<ControlHandler>,
    ) -> Result<Arc<CliProcess>, ClaudeError> {
        self.reserve().await?;
        let result = CliProcess::spawn(spec, handler).await.map(Arc::new);
        let mut inner = self.lock();
        inner.reserved -= 1;
        match result {
            Ok(p) => {
                self.spawned.fetch_add(1, Ordering::Relaxed);
                self.cold_spawns.fetch_add(1, Ordering::Relaxed);
                inner.live.insert(
                    p.id,
                    Slot {
                        process: p.clone(),
                        idle_since: None,
                        warm: None,
                    },
                );
                Ok(p)
            }
            Err(e) => {
                drop(inner);
                self.changed.notify_waiters();
                Err(e)
            }
        }
    }

    /// Take an idle process for a new turn. False when it was evicted or has died.
    pub fn claim(&self, process: &CliProcess) -> bool {
        let mut inner = self.lock();
        match inner.live.get_mut(&process.id) {
            Some(slot)
                if slot.idle_since.is_some() && slot.warm.is_none() && process.is_alive() =>
            {
                slot.idle_since = None;
                true
            }
            _ => false,
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
    pub async fn shutdown_all(&self) {
        let all: Vec<Arc<CliProcess>> = self.lock().live.drain().map(|(_, s)| s.process).collect();
        let grace = self.shutdown_grace;
        futures::future::join_all(all.iter().map(|p| p.shutdown(grace))).await;
    }

    async fn reserve(&self) -> Result<(), ClaudeError> {
        let deadline = tokio::time::Instant::now() + self.queue_timeout;
        let mut queued = false;
        let result = loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.try_reserve() {
                break Ok(());
            }
            if !queued {
                queued = true;
                self.waiting.fetch_add(1, Ordering::Relaxed);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break Err(ClaudeError::AtCapacity {
                    max: self.max_live,
                    retry_after: 1,
                });
            }
        };
        if queued {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        result
    }

    fn try_reserve(&self) -> bool {
        let victim = {
            let mut inner = self.lock();
            if inner.live.len() + inner.reserved < self.max_live {
                inner.reserved += 1;
                return true;
            }
            // Warm processes go first (they hold no conversation), then the least recently used.
            let lru = inner
                .live
                .iter()
                .filter_map(|(id, s)| s.idle_since.map(|t| (s.warm.is_none(), t, *id)))
                .min()
                .map(|(_, _, id)| id);
            match lru.and_then(|id| inner.live.remove(&id)) {
                Some(slot) => {
                    inner.reserved += 1;
                    slot.process
                }
                None => return false,
            }
        };
        tracing::info!(
            pid = victim.pid(),
            "evicting least recently used idle claude process"
        );
        self.stop_in_background(victim);
        true
    }

    fn stop_in_background(&self, p: Arc<CliProcess>) {
        let grace = self.shutdown_grace;
        tokio::spawn(async move { p.shutdown(grace).await });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map inconsistent (no multi-step
        // updates), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
