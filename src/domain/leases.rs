//! Session leases: which instance may run a session's CLI right now, when several instances
//! share one store and one data dir (docs/instances.md).
//!
//! A turn holds its session's lease from before its process starts until its records are
//! written; a heartbeat renews it every third of its time to live. A holder that died stops
//! renewing, and the lease expires. Every acquire bumps the lease's epoch: an instance that
//! kept a session's idle process (or its record in memory) knows, at its next acquire, whether
//! anyone else ran a turn since its own last one (the epoch is not its last one plus one), and
//! then reads the session again and resumes from the transcript instead.
//!
//! On a store only one instance uses (SQLite, whose data dir is locked by one instance), the
//! leases are kept in memory with the same epochs, so a turn pays no store write for them.
//!
//! Owns the holder id of this instance and the heartbeat tasks. Must not: know what a session
//! is or touch processes (`conversations` and `sessions` fence their own state).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::conversation::TurnError;
use super::writes::WriteQueue;
use crate::store::Store;

/// This instance's leases.
pub(crate) struct Leases {
    store: Arc<dyn Store>,
    /// A random id per start: a restarted instance is another holder.
    holder: String,
    ttl: Duration,
    wait: Duration,
    /// Releases run behind the writes queued before them, so whoever takes the lease next
    /// reads every record the last turn wrote.
    writes: WriteQueue,
    /// `None` when instances share the store; otherwise the epochs, kept here.
    local: Option<std::sync::Mutex<HashMap<String, i64>>>,
}

/// The in-memory epochs are forgotten past this many sessions. A conversation then finds its
/// next epoch does not follow its last and reads its record again: slower, never wrong.
const LOCAL_EPOCHS_MAX: usize = 100_000;

/// A held lease. Dropping it stops the heartbeat and releases it (behind earlier writes).
pub(crate) struct Lease {
    pub(crate) session_id: String,
    pub(crate) epoch: i64,
    /// Cancelled when the hold is lost (taken over, or not renewed in time): the turn must
    /// stop, since another instance may start the session's CLI.
    lost: CancellationToken,
    /// `None` for an in-memory lease: nothing to renew or release.
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    store: Arc<dyn Store>,
    holder: String,
    writes: WriteQueue,
}

impl Leases {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        ttl: Duration,
        wait: Duration,
        writes: WriteQueue,
        shared: bool,
    ) -> Self {
        let holder = uuid::Uuid::new_v4().to_string();
        if shared {
            tracing::info!(holder = %holder, ttl_secs = ttl.as_secs(), "session leases held as this instance");
        }
        Leases {
            store,
            holder,
            ttl,
            wait,
            writes,
            local: (!shared).then(Default::default),
        }
    }

    /// An in-memory hold: the next epoch of `session_id`.
    fn hold_locally(
        &self,
        epochs: &std::sync::Mutex<HashMap<String, i64>>,
        session_id: &str,
    ) -> Lease {
        let mut epochs = epochs.lock().unwrap_or_else(|e| e.into_inner());
        if epochs.len() >= LOCAL_EPOCHS_MAX && !epochs.contains_key(session_id) {
            epochs.clear();
        }
        let epoch = epochs.entry(session_id.to_string()).or_default();
        *epoch += 1;
        Lease {
            session_id: session_id.to_string(),
            epoch: *epoch,
            lost: CancellationToken::new(),
            heartbeat: None,
            store: self.store.clone(),
            holder: self.holder.clone(),
            writes: self.writes.clone(),
        }
    }

    /// Take `session_id`'s lease, waiting up to `lease_wait_secs` while another hold is in
    /// force; then a `Held` error (a 409 with `retry-after`).
    pub(crate) async fn acquire(&self, session_id: &str) -> Result<Lease, TurnError> {
        if let Some(epochs) = &self.local {
            return Ok(self.hold_locally(epochs, session_id));
        }
        let deadline = Instant::now() + self.wait;
        let ttl_ms = self.ttl.as_millis() as i64;
        let poll = (self.ttl / 10).clamp(Duration::from_millis(50), Duration::from_millis(250));
        let mut waited = false;
        loop {
            match self
                .store
                .acquire_lease(session_id, &self.holder, ttl_ms)
                .await
            {
                Ok(Some(epoch)) => {
                    if waited {
                        tracing::info!(session = %session_id, epoch, "session lease taken after a wait");
                    }
                    return Ok(self.held(session_id, epoch));
                }
                Ok(None) => {}
                Err(e) => {
                    // A store that cannot say who holds the session: no turn may start.
                    tracing::warn!(session = %session_id, error = %e, "could not take a session's lease");
                }
            }
            if Instant::now() + poll > deadline {
                return Err(TurnError::Held {
                    message: format!(
                        "Session {session_id} is running a turn on another instance of this \
                         gateway; retry when it ends (or send the session's requests to one \
                         instance, see session affinity)"
                    ),
                    retry_after_secs: self.ttl.as_secs().clamp(1, 5),
                });
            }
            waited = true;
            tokio::time::sleep(poll).await;
        }
    }

    /// One attempt, no wait; `None` when held elsewhere or the store failed.
    pub(crate) async fn try_acquire(&self, session_id: &str) -> Option<Lease> {
        if let Some(epochs) = &self.local {
            return Some(self.hold_locally(epochs, session_id));
        }
        match self
            .store
            .acquire_lease(session_id, &self.holder, self.ttl.as_millis() as i64)
            .await
        {
            Ok(Some(epoch)) => Some(self.held(session_id, epoch)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(session = %session_id, error = %e, "could not take a session's lease");
                None
            }
        }
    }

    fn held(&self, session_id: &str, epoch: i64) -> Lease {
        let lost = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat(
            self.store.clone(),
            self.holder.clone(),
            session_id.to_string(),
            epoch,
            self.ttl,
            lost.clone(),
        ));
        Lease {
            session_id: session_id.to_string(),
            epoch,
            lost,
            heartbeat: Some(heartbeat),
            store: self.store.clone(),
            holder: self.holder.clone(),
            writes: self.writes.clone(),
        }
    }
}

impl Lease {
    /// Cancelled when the hold is lost.
    pub(crate) fn lost_token(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Whether `remembered` (the epoch of this instance's last hold of the session) is the
    /// one just before this hold: nobody else ran a turn in between. The first hold ever, at
    /// epoch one, follows nothing: nobody ran a turn yet, so what this instance made is
    /// current (a session it just created, forked or rewound).
    pub(crate) fn follows(&self, remembered: Option<i64>) -> bool {
        match remembered {
            Some(e) => e + 1 == self.epoch,
            None => self.epoch == 1,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(heartbeat) = self.heartbeat.take() else {
            return;
        };
        heartbeat.abort();
        let (store, holder, id, epoch) = (
            self.store.clone(),
            self.holder.clone(),
            std::mem::take(&mut self.session_id),
            self.epoch,
        );
        self.writes.push(async move {
            if let Err(e) = store.release_lease(&id, &holder, epoch).await {
                tracing::warn!(session = %id, error = %e, "could not release a session's lease; it expires");
            }
        });
    }
}

/// Renew every third of the time to live. The hold is lost when another holder has it, or
/// when two thirds of the time to live went by without a renewal (the store is unreachable):
/// stopping then ends the turn before the lease can expire under it.
async fn heartbeat(
    store: Arc<dyn Store>,
    holder: String,
    session_id: String,
    epoch: i64,
    ttl: Duration,
    lost: CancellationToken,
) {
    let every = ttl / 3;
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match store
            .renew_lease(&session_id, &holder, epoch, ttl.as_millis() as i64)
            .await
        {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => {
                tracing::warn!(session = %session_id, epoch, "another instance took this session's lease over");
                lost.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(session = %session_id, error = %e, "could not renew a session's lease");
                if renewed.elapsed() >= every * 2 {
                    lost.cancel();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    async fn two_instances(ttl_ms: u64, wait_ms: u64) -> (Leases, Leases, Arc<dyn Store>) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let make = || {
            Leases::new(
                store.clone(),
                Duration::from_millis(ttl_ms),
                Duration::from_millis(wait_ms),
                WriteQueue::start(),
                true,
            )
        };
        (make(), make(), store)
    }

    #[tokio::test]
    async fn a_held_lease_is_refused_after_the_wait_and_taken_once_released() {
        let (a, b, _) = two_instances(60_000, 300).await;
        let held = a.acquire("s").await.unwrap();
        assert_eq!(held.epoch, 1);
        let started = Instant::now();
        match b.acquire("s").await {
            Err(TurnError::Held {
                retry_after_secs, ..
            }) => assert!(retry_after_secs >= 1),
            other => panic!("expected Held, got {:?}", other.map(|l| l.epoch)),
        }
        assert!(started.elapsed() >= Duration::from_millis(200), "it waited");
        // Released on drop (behind the holder's writes); a waiting acquire then takes it.
        let waiting = tokio::spawn(async move { b.acquire("s").await.map(|l| l.epoch) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        assert_eq!(waiting.await.unwrap().unwrap(), 2);
    }

    #[tokio::test]
    async fn the_epoch_tells_whether_anyone_else_held_the_lease_since() {
        let (a, b, _) = two_instances(60_000, 1_000).await;
        let first = a.acquire("s").await.unwrap();
        assert!(
            first.follows(None),
            "a first hold ever: what this instance made is current"
        );
        let mine = Some(first.epoch);
        drop(first);
        a.writes.flush().await;
        let again = a.acquire("s").await.unwrap();
        assert!(again.follows(mine), "nobody else: still current");
        let mine = Some(again.epoch);
        drop(again);
        a.writes.flush().await;
        drop(b.acquire("s").await.unwrap());
        b.writes.flush().await;
        let after_b = a.acquire("s").await.unwrap();
        assert!(!after_b.follows(mine), "B held it in between: stale");
        assert!(!after_b.follows(None), "never held here: stale");
    }

    #[tokio::test]
    async fn the_heartbeat_keeps_a_lease_and_notices_a_takeover() {
        let (a, b, store) = two_instances(300, 0).await;
        let held = a.acquire("s").await.unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(b.try_acquire("s").await.is_none(), "renewed past its ttl");
        assert!(!held.lost_token().is_cancelled());
        // Taken over (as after a stall longer than the ttl): the holder learns it is lost.
        store
            .release_lease("s", &a.holder, held.epoch)
            .await
            .unwrap();
        let _taken = b.try_acquire("s").await.expect("free after the release");
        let lost = held.lost_token();
        assert!(
            tokio::time::timeout(Duration::from_secs(2), lost.cancelled())
                .await
                .is_ok(),
            "the heartbeat saw the takeover"
        );
    }

    #[tokio::test]
    async fn on_an_unshared_store_leases_stay_in_memory_with_the_same_epochs() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let local = Leases::new(
            store.clone(),
            Duration::from_secs(60),
            Duration::from_millis(300),
            WriteQueue::start(),
            false,
        );
        let first = local.acquire("s").await.unwrap();
        assert_eq!(first.epoch, 1);
        // Nothing was written: another holder takes the store's row at once.
        assert_eq!(
            store.acquire_lease("s", "other", 60_000).await.unwrap(),
            Some(1)
        );
        drop(first);
        let second = local.acquire("s").await.unwrap();
        assert!(second.follows(Some(1)), "epoch {}", second.epoch);
        assert_eq!(local.try_acquire("t").await.map(|l| l.epoch), Some(1));
    }
}
