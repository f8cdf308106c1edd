//! A session's watcher stream that can be resumed: what it missed after a sequence number,
//! read from the history, then the live events, with no gap and no duplicate; and a watcher
//! that fell behind the live broadcast catches up from the history instead of losing events.
//!
//! Must not: render a wire format (the adapters do) or assign sequence numbers (the outlet
//! does, when it commits an entry).

use std::sync::Arc;

use futures::Stream;
use tokio::sync::broadcast;

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
