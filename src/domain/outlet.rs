//! Where a turn's events go: to its requester through a bounded channel, to the console's
//! feed once delivered, and for a native session to its watchers; and every turn's history. A
//! requester that stops reading holds the turn back (and through it the CLI) for at most the
//! lag limit; then the turn ends with a clear error that the requester still gets, after
//! whatever was buffered. Memory per stream stays bounded either way.
//!
//! History is written here for every turn, and what ends a turn is committed before the
//! requester is told: a native session's entries go to the store as the turn goes; a
//! compatible-API conversation's wait for the turn's end (its record may be created only then,
//! by the turn's own writes) and hold what its client was given.
//!
//! A native session's event is stamped here (see [`Stamped`]), once, when its entry is
//! committed: the requester, the watchers and the history see the same `seq`, turn and time,
//! and the entry is in the store before anyone is told, so a watcher that reconnects after
//! `seq` N finds everything after N in the store or still to come live.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::feed::FeedTurn;
use super::history::Joiner;
use super::stamp::Stamped;
use super::writes::WriteQueue;
use crate::claude::process::TURN_BUFFER;
use crate::claude::{ClaudeError, Event};
use crate::store::{now_millis, Store, StoreError, TurnRecord, TurnRow};

/// One turn's history, written in order through the store queue.
pub(crate) struct History {
    recorder: Joiner,
    store: Arc<dyn Store>,
    writes: WriteQueue,
    session: String,
    turn: String,
    /// A compatible-API conversation's entries so far (written when the turn ends).
    held: Option<Held>,
}

/// A compatible-API turn's entries, and what its conversation's record is made of when the
/// turn is its first and failed (a clean turn creates the record itself).
struct Held {
    entries: Vec<(&'static str, Value)>,
    source: String,
    model: String,
    owner: String,
}

impl History {
    /// A native session's: written as the turn goes.
    pub(crate) fn native(
        store: Arc<dyn Store>,
        writes: WriteQueue,
        session: String,
        turn: String,
    ) -> History {
        History {
            recorder: Joiner::default(),
            store,
            writes,
            session,
            turn,
            held: None,
        }
    }

    /// A compatible-API conversation's: what its client was given, with retries and model
    /// steps, written when the turn ends.
    pub(crate) fn compatible(
        store: Arc<dyn Store>,
        writes: WriteQueue,
        conversation: String,
        turn: String,
        source: String,
        model: String,
        owner: String,
    ) -> History {
        History {
            recorder: Joiner::with_steps(),
            store,
            writes,
            session: conversation,
            turn,
            held: Some(Held {
                entries: Vec::new(),
                source,
                model,
                owner,
            }),
        }
    }

    fn is_native(&self) -> bool {
        self.held.is_none()
    }

    /// A compatible-API turn's: held until the turn ends.
    fn hold(&mut self, ev: &Event) {
        let entries = self.recorder.push(ev);
        if let Some(held) = &mut self.held {
            held.entries.extend(entries);
        }
    }

    /// A native session's: commit the entries this event completes, behind every earlier
    /// write, and return them with their numbers. Empty when there were none, or the write
    /// failed (the event then goes out unstored: a watcher still gets it live).
    async fn commit_entries(&mut self, ev: &Event) -> Vec<Committed> {
        let entries = self.recorder.push(ev);
        if entries.is_empty() {
            return Vec::new();
        }
        let (store, session, turn) = (self.store.clone(), self.session.clone(), self.turn.clone());
        let at = now_millis();
        let (tx, rx) = oneshot::channel();
        let written = entries.clone();
        self.writes.push(async move {
            let last = match store.append_events_at(&session, &turn, at, &written).await {
                Ok(last) => u64::try_from(last).ok(),
                // Deleted meanwhile: nothing to keep.
                Err(StoreError::NotFound(_)) => None,
                Err(e) => {
                    tracing::warn!(session = %session, error = %e, "could not record history");
                    None
                }
            };
            let _ = tx.send(last);
        });
        let Some(last) = rx.await.ok().flatten() else {
            return Vec::new();
        };
        let first = last + 1 - entries.len() as u64;
        entries
            .into_iter()
            .zip(first..)
            .map(|((kind, payload), seq)| Committed {
                seq,
                kind,
                payload,
                at,
            })
            .collect()
    }

    /// A compatible-API turn's entries so far, taken to be written with the turn's own
    /// records (one transaction); nothing is left to [`commit`](Self::commit).
    fn take_held(&mut self) -> Vec<(&'static str, Value)> {
        self.held.take().map(|h| h.entries).unwrap_or_default()
    }

    /// Write a compatible-API turn's entries behind the turn's own records, and wait until
    /// every write so far is done. Nothing to do for a native session (already queued).
    async fn commit(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        if held.entries.is_empty() {
            return;
        }
        let (store, id, turn) = (self.store.clone(), self.session.clone(), self.turn.clone());
        self.writes.push(async move {
            if let Err(e) = save_held(&*store, &id, &turn, held).await {
                tracing::warn!(conversation = %id, error = %e, "could not record history");
            }
        });
        self.writes.flush().await;
    }
}

/// A compatible-API turn's entries; a failed first turn gets a conversation record of its own,
/// so its timeline can still be opened.
async fn save_held(store: &dyn Store, id: &str, turn: &str, held: Held) -> Result<(), StoreError> {
    let failed = held.entries.iter().any(|(k, _)| *k == "error");
    let status = if failed {
        crate::store::status::ERROR
    } else {
        crate::store::status::CLOSED
    };
    let rec = crate::store::Session {
        id: id.to_string(),
        status: status.to_string(),
        owner: held.owner,
        ..crate::store::Session::new("", held.model, held.source)
    };
    store
        .record_turn(&TurnRecord {
            session_id: id.to_string(),
            row: TurnRow::CreateIfMissing(rec),
            turn_id: turn.to_string(),
            events: held.entries,
            ..TurnRecord::default()
        })
        .await
}

/// One history entry, committed.
struct Committed {
    seq: u64,
    kind: &'static str,
    payload: Value,
    at: i64,
}

/// Why events could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gone {
    /// The requester went away.
    Left,
    /// The requester stopped reading for longer than the lag limit.
    Lagged,
}

/// The sending half, owned by the task that drives the turn.
pub(crate) struct Outlet {
    out: Option<mpsc::Sender<Stamped>>,
    tail: Option<oneshot::Sender<Stamped>>,
    bus: Option<broadcast::Sender<Stamped>>,
    history: Option<History>,
    /// The number of the last entry this turn committed (what an unstored event is stamped
    /// with).
    last_seq: u64,
    /// The stamped form of the event [`Outlet::record`] committed last, for `deliver`.
    ready: Option<Vec<Stamped>>,
    /// The gateway-wide feed (the console's live view) sees every event the requester sees.
    feed: Option<FeedTurn>,
    lag: Duration,
    lagged: bool,
}

/// A turn's events for its adapter: until (and including) one `Done` or `Error`. Dropping it
/// ends the turn.
pub struct TurnEvents {
    rx: mpsc::Receiver<Stamped>,
    /// The last event, when the turn had to end while the requester was not reading.
    tail: Option<oneshot::Receiver<Stamped>>,
}

impl TurnEvents {
    pub async fn recv(&mut self) -> Option<Event> {
        self.recv_stamped().await.map(|s| s.event)
    }

    /// The next event with its envelope (a native session's `seq`, turn and time).
    pub async fn recv_stamped(&mut self) -> Option<Stamped> {
        if let Some(ev) = self.rx.recv().await {
            return Some(ev);
        }
        match self.tail.take() {
            Some(tail) => tail.await.ok(),
            None => None,
        }
    }
}

/// A connected pair; `bus` (native sessions' watchers) and `history` also get every event.
pub(crate) fn outlet(
    bus: Option<broadcast::Sender<Stamped>>,
    history: Option<History>,
    lag: Duration,
) -> (Outlet, TurnEvents) {
    let (tx, rx) = mpsc::channel(TURN_BUFFER);
    let (tail_tx, tail_rx) = oneshot::channel();
    (
        Outlet {
            out: Some(tx),
            tail: Some(tail_tx),
            bus,
            history,
            last_seq: 0,
            ready: None,
            feed: None,
            lag,
            lagged: false,
        },
        TurnEvents {
            rx,
            tail: Some(tail_rx),
        },
    )
}

impl Outlet {
    /// Also publish every delivered event to the gateway-wide feed.
    pub(crate) fn with_feed(mut self, feed: FeedTurn) -> Outlet {
        self.feed = Some(feed);
        self
    }

    /// Tell the feed only (what the requester's protocol has no event for). A compatible-API
    /// turn's history is what the feed was told: what its client was given.
    pub(crate) fn publish(&mut self, ev: &Event) {
        if let Some(h) = self.history.as_mut().filter(|h| !h.is_native()) {
            h.hold(ev);
        }
        if let Some(f) = &self.feed {
            f.publish(ev);
        }
    }

    /// The user message (or the client's tool results) that starts the turn, for the feed and
    /// a compatible-API turn's history (a native session announces its own).
    pub(crate) fn user_message(&mut self, prompt: &[Value]) {
        self.publish(&Event::UserMessage {
            content: Value::Array(prompt.to_vec()),
        });
    }

    fn turn_id(&self) -> Option<String> {
        self.history.as_ref().map(|h| h.turn.clone())
    }

    /// Commit the event's history entries (a native session's) and stamp it: first the whole
    /// text and thinking blocks it completed, each with its entry's number, then the event.
    async fn stamp(&mut self, ev: Event) -> Vec<Stamped> {
        let committed = match self.history.as_mut().filter(|h| h.is_native()) {
            Some(h) => h.commit_entries(&ev).await,
            None => Vec::new(),
        };
        let turn_id = self.turn_id();
        let mut out = Vec::with_capacity(committed.len() + 1);
        let mut own = None;
        for c in committed {
            self.last_seq = c.seq;
            let text = || c.payload["text"].as_str().unwrap_or_default().to_string();
            let block = match c.kind {
                "assistant" => Event::TextBlock { text: text() },
                "thinking" => Event::ThinkingBlock { text: text() },
                _ => {
                    own = Some((c.seq, c.at));
                    continue;
                }
            };
            out.push(Stamped {
                event: block,
                seq: c.seq,
                stored: true,
                turn_id: turn_id.clone(),
                at_millis: c.at,
            });
        }
        let (seq, at_millis) = own.unwrap_or((self.last_seq, now_millis()));
        out.push(Stamped {
            event: ev,
            seq,
            stored: own.is_some(),
            turn_id,
            at_millis,
        });
        out
    }

    /// Commit a native session's history entries for the event, to be delivered next with
    /// [`Outlet::deliver`] (the caller does what must happen in between).
    pub(crate) async fn record(&mut self, ev: &Event) {
        let stamped = self.stamp(ev.clone()).await;
        self.ready = Some(stamped);
    }

    fn broadcast(&self, stamped: &[Stamped]) {
        if let Some(b) = &self.bus {
            for s in stamped {
                let _ = b.send(s.clone());
            }
        }
    }

    /// Tell the watchers and the history, not the requester (what it sent itself).
    pub(crate) async fn announce(&mut self, ev: Event) {
        let stamped = self.stamp(ev).await;
        self.broadcast(&stamped);
    }

    /// Deliver one event, waiting at most the lag limit for room.
    pub(crate) async fn send(&mut self, ev: Event) -> Result<(), Gone> {
        let stamped = self.stamp(ev).await;
        self.broadcast(&stamped);
        for s in stamped {
            self.send_one(s).await?;
        }
        Ok(())
    }

    async fn send_one(&mut self, s: Stamped) -> Result<(), Gone> {
        let Some(out) = self.out.clone() else {
            return Err(Gone::Left);
        };
        match tokio::time::timeout(self.lag, out.reserve_owned()).await {
            Ok(Ok(permit)) => {
                // The feed sees what the requester was given, not what it never read (and not
                // the whole blocks, which it has as deltas).
                if !matches!(
                    s.event,
                    Event::TextBlock { .. } | Event::ThinkingBlock { .. }
                ) {
                    self.publish(&s.event);
                }
                permit.send(s);
                Ok(())
            }
            Ok(Err(_)) => Err(Gone::Left),
            Err(_) => {
                self.lagged = true;
                Err(Gone::Lagged)
            }
        }
    }

    /// A compatible-API turn's history entries, up to and with its `last` event, moved into its
    /// `record`: written in the same transaction as the turn's other records, they leave
    /// [`deliver`](Self::deliver) nothing to write. A native session's are written already.
    pub(crate) fn add_history(&mut self, last: &Event, record: &mut TurnRecord) {
        if let Some(h) = self.history.as_mut().filter(|h| !h.is_native()) {
            h.hold(last);
            record.turn_id = h.turn.clone();
            record.events = h.take_held();
        }
    }

    /// Record and deliver the turn's last event (see [`Outlet::deliver`]).
    pub(crate) async fn finish(&mut self, ev: Event) {
        self.record(&ev).await;
        self.deliver(ev).await;
    }

    /// Deliver the turn's last event, already recorded: in order when the requester reads,
    /// else after what it has not read yet. Nothing is sent after it.
    pub(crate) async fn deliver(&mut self, ev: Event) {
        self.publish(&ev);
        // What the requester is about to be told is in the store first.
        if let Some(h) = &mut self.history {
            h.commit().await;
        }
        let mut stamped = match self.ready.take() {
            Some(s) => s,
            None => vec![Stamped {
                seq: self.last_seq,
                turn_id: self.turn_id(),
                ..Stamped::bare(ev)
            }],
        };
        self.broadcast(&stamped);
        let Some(last) = stamped.pop() else { return };
        let Some(out) = self.out.take() else { return };
        let mut lagged = self.lagged;
        for block in stamped {
            if lagged {
                break;
            }
            match tokio::time::timeout(self.lag, out.reserve()).await {
                Ok(Ok(permit)) => permit.send(block),
                _ => lagged = true,
            }
        }
        let permit = if lagged {
            None
        } else {
            tokio::time::timeout(self.lag, out.reserve())
                .await
                .ok()
                .and_then(Result::ok)
        };
        match permit {
            Some(permit) => permit.send(last),
            None => {
                if let Some(tail) = self.tail.take() {
                    let _ = tail.send(last);
                }
            }
        }
    }

    /// Resolves when the requester went away.
    pub(crate) async fn closed(&self) {
        match &self.out {
            Some(out) => out.closed().await,
            None => std::future::pending().await,
        }
    }

    /// The error a turn ends with when its requester lagged.
    pub(crate) fn lag_error(&self) -> ClaudeError {
        ClaudeError::ClientLagged {
            secs: self.lag.as_secs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::outlet as pair;
    use super::*;
    use crate::claude::{StopReason, TurnSummary};

    fn text(i: usize) -> Event {
        Event::TextDelta {
            text: format!("t{i}"),
        }
    }

    #[tokio::test]
    async fn a_reader_that_stops_gets_what_was_buffered_then_the_error() {
        let (mut outlet, mut events) = pair(None, None, Duration::from_millis(50));
        let mut sent = 0;
        let gone = loop {
            match outlet.send(text(sent)).await {
                Ok(()) => sent += 1,
                Err(g) => break g,
            }
        };
        assert_eq!(gone, Gone::Lagged);
        assert_eq!(sent, TURN_BUFFER);
        let err = outlet.lag_error();
        outlet.finish(Event::Error(err)).await;
        drop(outlet);
        let mut got = Vec::new();
        while let Some(ev) = events.recv().await {
            got.push(ev);
        }
        assert_eq!(got.len(), TURN_BUFFER + 1);
        assert!(matches!(
            got.last(),
            Some(Event::Error(ClaudeError::ClientLagged { .. }))
        ));
    }

    #[tokio::test]
    async fn a_reading_client_gets_every_event_in_order_and_a_gone_one_is_noticed() {
        let (mut outlet, mut events) = pair(None, None, Duration::from_secs(5));
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while let Some(ev) = events.recv().await {
                if ev.is_terminal() {
                    return n;
                }
                n += 1;
            }
            n
        });
        for i in 0..TURN_BUFFER * 3 {
            outlet.send(text(i)).await.unwrap();
        }
        outlet
            .finish(Event::Done(TurnSummary {
                stop_reason: StopReason::EndTurn,
                usage: Default::default(),
                cost_usd: None,
                duration_ms: None,
                num_turns: None,
                session_id: String::new(),
                result_text: String::new(),
                leaf: None,
            }))
            .await;
        assert_eq!(reader.await.unwrap(), TURN_BUFFER * 3);

        let (mut outlet, events) = pair(None, None, Duration::from_secs(5));
        drop(events);
        assert_eq!(outlet.send(text(0)).await, Err(Gone::Left));
        outlet.closed().await;
    }
}
