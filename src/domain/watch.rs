//! A session's watcher stream that can be resumed: what it missed after a sequence number,
//! read from the history, then the live events, with no gap and no duplicate; and a watcher
//! that fell behind the live broadcast catches up from the history instead of losing events.
//!
//! Must not: render a wire format (the adapters do) or assign sequence numbers (the outlet
//! does, when it commits an entry).

use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use tokio::sync::broadcast;

use super::drain::{reached, Phase};
use super::stamp::Stamped;
use crate::store::{Store, StoredEvent, MAX_EVENTS_PER_CALL};

/// One item of a watcher's stream.
#[derive(Debug, Clone)]
pub enum Watched {
    /// A live event.
    Live(Stamped),
    /// A history entry the watcher missed (after its `after`, or while it lagged).
    Stored(StoredEvent),
    /// Live events were lost and the history could not fill the gap (nothing known yet to
    /// resume after, or the store failed): how many.
    Lagged(u64),
    /// The gateway is shutting down; the stream ends after this.
    Shutdown,
}

/// The watcher's stream. `rx` must be subscribed before this is called, so that nothing
/// committed after the history was read can be missed; `after` is the last seq the watcher
/// has (`None`: live events only).
pub fn resume(
    store: Arc<dyn Store>,
    session: String,
    mut rx: broadcast::Receiver<Stamped>,
    after: Option<u64>,
) -> impl Stream<Item = Watched> {
    async_stream::stream! {
        let mut last = after;
        if let Some(from) = after {
            match missed(&*store, &session, from).await {
                Ok(rows) => {
                    for row in rows {
                        last = Some(row.seq as u64);
                        yield Watched::Stored(row);
                    }
                }
                Err(e) => tracing::warn!(session = %session, error = %e, "could not read history to resume"),
            }
        }
        loop {
            match rx.recv().await {
                Ok(s) => {
                    if last.is_some_and(|l| s.seen_by(l)) {
                        continue;
                    }
                    if s.stored {
                        last = Some(s.seq);
                    }
                    yield Watched::Live(s);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // Whatever the broadcast dropped that was stored is in the history.
                    let filled = match last {
                        Some(from) => missed(&*store, &session, from).await.ok(),
                        None => None,
                    };
                    match filled {
                        Some(rows) => {
                            for row in rows {
                                last = Some(row.seq as u64);
                                yield Watched::Stored(row);
                            }
                        }
                        None => yield Watched::Lagged(n),
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}

/// `inner` until the gateway closes (the last phase of its drain), then a [`Watched::Shutdown`]
/// and the end, so a watcher's connection ends cleanly instead of being cut.
pub fn until_closed(
    inner: impl Stream<Item = Watched> + Send + 'static,
    mut phase: tokio::sync::watch::Receiver<Phase>,
) -> impl Stream<Item = Watched> + Send + 'static {
    async_stream::stream! {
        let mut inner = Box::pin(inner);
        loop {
            tokio::select! {
                // What was sent before the close (a drained turn's `done`) goes out first.
                biased;
                item = inner.next() => match item {
                    Some(w) => yield w,
                    None => break,
                },
                _ = reached(&mut phase, Phase::Closed) => {
                    yield Watched::Shutdown;
                    break;
                }
            }
        }
    }
}

/// Every entry after `from`, page by page.
async fn missed(
    store: &dyn Store,
    session: &str,
    from: u64,
) -> Result<Vec<StoredEvent>, crate::store::StoreError> {
    let mut out = Vec::new();
    let mut after = i64::try_from(from).unwrap_or(i64::MAX);
    loop {
        let page = store
            .list_events(session, after, MAX_EVENTS_PER_CALL)
            .await?;
        let full = page.len() >= MAX_EVENTS_PER_CALL as usize;
        if let Some(l) = page.last() {
            after = l.seq;
        }
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use serde_json::json;

    use super::*;
    use crate::claude::Event;
    use crate::store::{source, Session, SqliteStore};

    async fn store_with(n: usize) -> (Arc<dyn Store>, String) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let s = Session::new("/tmp/ws", "sonnet", source::NATIVE);
        store.create_session(&s).await.unwrap();
        for i in 0..n {
            store
                .append_events(
                    &s.id,
                    "t",
                    &[("assistant", json!({"text": format!("e{i}")}))],
                )
                .await
                .unwrap();
        }
        (store, s.id)
    }

    fn live(seq: u64, stored: bool) -> Stamped {
        Stamped {
            seq,
            stored,
            ..Stamped::bare(Event::TextBlock {
                text: format!("e{}", seq - 1),
            })
        }
    }

    fn seq_of(w: &Watched) -> (u64, &'static str) {
        match w {
            Watched::Live(s) => (s.seq, if s.stored { "live" } else { "preview" }),
            Watched::Stored(e) => (e.seq as u64, "stored"),
            Watched::Shutdown => (0, "shutdown"),
            Watched::Lagged(_) => (0, "lagged"),
        }
    }

    #[tokio::test]
    async fn history_then_live_without_gap_or_duplicate() {
        let (store, id) = store_with(4).await;
        let (tx, rx) = broadcast::channel(16);
        // Entries 3 and 4 were committed and broadcast while the history was being read.
        tx.send(live(3, true)).unwrap();
        tx.send(live(4, true)).unwrap();
        tx.send(live(4, false)).unwrap();
        tx.send(live(5, true)).unwrap();
        drop(tx);
        let got: Vec<Watched> = resume(store, id, rx, Some(1)).collect().await;
        let got: Vec<_> = got.iter().map(seq_of).collect();
        assert_eq!(
            got,
            vec![
                (2, "stored"),
                (3, "stored"),
                (4, "stored"),
                (4, "preview"),
                (5, "live")
            ]
        );
    }

    #[tokio::test]
    async fn a_watcher_that_lagged_reads_what_it_lost_from_the_history() {
        let (store, id) = store_with(6).await;
        let (tx, rx) = broadcast::channel(2);
        let mut w = Box::pin(resume(store, id, rx, None));
        tx.send(live(1, true)).unwrap();
        assert_eq!(seq_of(&w.next().await.unwrap()), (1, "live"));
        // Five more while the watcher was not reading: the channel keeps the last two.
        for seq in 2..=6 {
            tx.send(live(seq, true)).unwrap();
        }
        drop(tx);
        let rest: Vec<Watched> = w.collect().await;
        let rest: Vec<_> = rest.iter().map(seq_of).collect();
        assert_eq!(
            rest,
            vec![
                (2, "stored"),
                (3, "stored"),
                (4, "stored"),
                (5, "stored"),
                (6, "stored")
            ]
        );
    }

    #[tokio::test]
    async fn a_watcher_with_nowhere_to_resume_from_is_told_it_lagged() {
        let (store, id) = store_with(0).await;
        let (tx, rx) = broadcast::channel(1);
        tx.send(live(1, false)).unwrap();
        tx.send(live(1, false)).unwrap();
        drop(tx);
        let got: Vec<Watched> = resume(store, id, rx, None).collect().await;
        assert!(matches!(got[0], Watched::Lagged(1)), "{got:?}");
    }
}
