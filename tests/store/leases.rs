//! Session leases (several instances on one store): acquire, renew, release and expiry, and
//! concurrent acquires of which exactly one wins.

use std::sync::Arc;

use super::Fixture;

pub(crate) async fn a_lease_is_held_once_and_its_epoch_counts_acquires(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.acquire_lease("s1", "a", 60_000).await.unwrap(), Some(1));
    // Held: neither another holder nor the same one (a lease is held once at a time).
    assert_eq!(s.acquire_lease("s1", "b", 60_000).await.unwrap(), None);
    assert_eq!(s.acquire_lease("s1", "a", 60_000).await.unwrap(), None);
    // Other sessions are independent.
    assert_eq!(s.acquire_lease("s2", "b", 60_000).await.unwrap(), Some(1));
    // Released: anyone takes it, and the epoch counts every acquire.
    s.release_lease("s1", "a", 1).await.unwrap();
    assert_eq!(s.acquire_lease("s1", "b", 60_000).await.unwrap(), Some(2));
    s.release_lease("s1", "b", 2).await.unwrap();
    assert_eq!(s.acquire_lease("s1", "a", 60_000).await.unwrap(), Some(3));
    // A stale release (an old hold's) leaves the current hold alone.
    s.release_lease("s1", "b", 2).await.unwrap();
    s.release_lease("s1", "a", 1).await.unwrap();
    assert_eq!(s.acquire_lease("s1", "b", 60_000).await.unwrap(), None);
}

pub(crate) async fn an_expired_lease_is_taken_over_and_the_old_hold_cannot_renew(f: Fixture) {
    let s = &f.store;
    // A holder that died: its lease ran out (a zero time to live expires at once).
    assert_eq!(s.acquire_lease("s1", "a", 0).await.unwrap(), Some(1));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(s.acquire_lease("s1", "b", 60_000).await.unwrap(), Some(2));
    // The dead holder's heartbeat finds it lost; the new one's renews.
    assert!(!s.renew_lease("s1", "a", 1, 60_000).await.unwrap());
    assert!(s.renew_lease("s1", "b", 2, 60_000).await.unwrap());
    assert_eq!(s.acquire_lease("s1", "a", 60_000).await.unwrap(), None);
    // A renewal keeps a short lease alive past its first expiry.
    assert_eq!(s.acquire_lease("s3", "a", 300).await.unwrap(), Some(1));
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        assert!(s.renew_lease("s3", "a", 1, 300).await.unwrap());
    }
    assert_eq!(s.acquire_lease("s3", "b", 300).await.unwrap(), None);
}

pub(crate) async fn concurrent_acquires_have_exactly_one_winner(f: Fixture) {
    let store = f.store.clone();
    for round in 0..5 {
        let id = format!("race-{round}");
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, id): (Arc<dyn ccgw::store::Store>, String) =
                    (store.clone(), id.clone());
                tokio::spawn(
                    async move { store.acquire_lease(&id, &format!("h{i}"), 60_000).await },
                )
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            if t.await.unwrap().unwrap().is_some() {
                won += 1;
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one holder");
    }
}
