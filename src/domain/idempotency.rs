//! `Idempotency-Key`: a request retried with the same key within `idempotency_window_secs`
//! gets the first one's response again instead of a second turn.
//!
//! Keys are per owner (the API key that sent them) and per path. A request is fingerprinted by
//! its body: the same key with a different body is refused. While the first request still
//! runs, a duplicate is told so (the caller answers `409` with `retry-after`, which the SDKs
//! retry), and gets the replay once the first is done. Only a successful response is kept: a
//! retry after a failure (a `429`, a `503`) runs again, as a retry should. Bounded in memory
//! (entries and bytes, oldest out first); knows nothing of HTTP beyond status, headers, bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// At most this many kept responses...
const MAX_ENTRIES: usize = 10_000;
/// ... holding at most this many bytes of bodies.
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// A kept response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What a request with an `Idempotency-Key` should do.
#[derive(Debug)]
pub enum Begin {
    /// The first with this key: run it, then [`Pending::finish`] with its response.
    New(Pending),
    /// A retry: send this response again.
    Replay(Arc<Stored>),
    /// The first is still running.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

#[derive(Debug)]
enum Entry {
    Running {
        fingerprint: [u8; 32],
    },
    Done {
        fingerprint: [u8; 32],
        at: Instant,
        response: Arc<Stored>,
    },
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Kept responses, oldest first (for the bounds).
    order: VecDeque<String>,
    bytes: usize,
}

/// The kept responses. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Replays {
    inner: Arc<Mutex<Inner>>,
    window: Duration,
}

impl Replays {
    pub fn new(window: Duration) -> Self {
        Replays {
            inner: Arc::default(),
            window,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each change is a few map operations; a poisoned lock still holds consistent maps.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Look a request up by its owner, path and key; `fingerprint` is its body's digest.
    pub fn begin(&self, owner: &str, path: &str, key: &str, fingerprint: [u8; 32]) -> Begin {
        let id = format!("{owner}\u{0}{path}\u{0}{key}");
        let mut inner = self.lock();
        let expired = matches!(inner.entries.get(&id), Some(Entry::Done { at, .. }) if at.elapsed() >= self.window);
        if expired {
            remove(&mut inner, &id);
        }
        match inner.entries.get(&id) {
            Some(Entry::Running { fingerprint: f }) | Some(Entry::Done { fingerprint: f, .. })
                if *f != fingerprint =>
            {
                Begin::Mismatch
            }
            Some(Entry::Running { .. }) => Begin::InFlight,
            Some(Entry::Done { response, .. }) => Begin::Replay(response.clone()),
            None => {
                inner
                    .entries
                    .insert(id.clone(), Entry::Running { fingerprint });
                Begin::New(Pending {
                    replays: self.clone(),
                    id,
                    fingerprint,
                    done: false,
                })
            }
        }
    }
}

fn remove(inner: &mut Inner, id: &str) {
    if let Some(Entry::Done { response, .. }) = inner.entries.remove(id) {
        inner.bytes -= response.body.len();
        inner.order.retain(|o| o != id);
    }
}

/// The first request with a key, running. Dropped without [`Pending::finish`] (a failure, a
/// client that went away), the key is free again.
#[derive(Debug)]
pub struct Pending {
    replays: Replays,
    id: String,
    fingerprint: [u8; 32],
    done: bool,
}

impl Pending {
    /// Keep the response for retries (only a successful one: a failed request may be retried).
    pub fn finish(mut self, response: Stored) {
        self.done = true;
        let mut inner = self.replays.lock();
        if !(200..300).contains(&response.status) {
            inner.entries.remove(&self.id);
            return;
        }
        inner.bytes += response.body.len();
        inner.order.push_back(self.id.clone());
        inner.entries.insert(
            self.id.clone(),
            Entry::Done {
                fingerprint: self.fingerprint,
                at: Instant::now(),
                response: Arc::new(response),
            },
        );
        while inner.order.len() > MAX_ENTRIES || inner.bytes > MAX_BYTES {
            let Some(old) = inner.order.front().cloned() else {
                break;
            };
            remove(&mut inner, &old);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let mut inner = self.replays.lock();
            if matches!(inner.entries.get(&self.id), Some(Entry::Running { .. })) {
                inner.entries.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &'static str) -> Stored {
        Stored {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn the_first_response_is_replayed_to_retries_with_the_same_body() {
        let r = Replays::new(Duration::from_secs(60));
        let Begin::New(p) = r.begin("k", "/v1/messages", "a", [1; 32]) else {
            panic!("first")
        };
        assert!(matches!(
            r.begin("k", "/v1/messages", "a", [1; 32]),
            Begin::InFlight
        ));
        p.finish(ok("{}"));
        match r.begin("k", "/v1/messages", "a", [1; 32]) {
            Begin::Replay(s) => assert_eq!(s.body, "{}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.begin("k", "/v1/messages", "a", [2; 32]),
            Begin::Mismatch
        ));
        // Another owner, or another path, has keys of its own.
        assert!(matches!(
            r.begin("other", "/v1/messages", "a", [1; 32]),
            Begin::New(_)
        ));
        assert!(matches!(
            r.begin("k", "/v1/responses", "a", [1; 32]),
            Begin::New(_)
        ));
    }

    #[test]
    fn failures_and_abandoned_requests_free_the_key() {
        let r = Replays::new(Duration::from_secs(60));
        let Begin::New(p) = r.begin("k", "/p", "a", [1; 32]) else {
            panic!()
        };
        p.finish(Stored {
            status: 503,
            ..ok("")
        });
        let Begin::New(p) = r.begin("k", "/p", "a", [1; 32]) else {
            panic!("a failure is not kept")
        };
        drop(p);
        assert!(matches!(r.begin("k", "/p", "a", [1; 32]), Begin::New(_)));
    }

    #[test]
    fn kept_responses_expire_after_the_window() {
        let r = Replays::new(Duration::from_millis(0));
        let Begin::New(p) = r.begin("k", "/p", "a", [1; 32]) else {
            panic!()
        };
        p.finish(ok("x"));
        assert!(matches!(r.begin("k", "/p", "a", [1; 32]), Begin::New(_)));
        assert_eq!(r.lock().bytes, 0);
    }
}
