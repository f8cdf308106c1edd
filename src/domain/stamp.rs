//! The envelope every event of a native session travels in: its place in the session's
//! history (`seq`), its turn and its time. The outlet stamps an event once, when it commits the
//! event's history entry, so the live event and the stored entry carry the same numbers.
//!
//! Must not: render wire formats (the adapters do) or touch the store.

use crate::claude::Event;

/// One event with its envelope.
#[derive(Debug, Clone)]
pub struct Stamped {
    pub event: Event,
    /// The session's sequence number. When `stored`, the number of this event's own history
    /// entry; otherwise (a delta, a step, `init`: what the history keeps only as part of a
    /// later entry, or not at all) the number of the last entry committed before it, so it
    /// sorts after that entry and before the next.
    pub seq: u64,
    pub stored: bool,
    /// The turn the event belongs to (`direct` for a direct tool call outside any turn).
    pub turn_id: Option<String>,
    /// When it happened, Unix milliseconds (a stored event's is its entry's `created_at`).
    pub at_millis: i64,
}

impl Stamped {
    /// An event with no place in any history (a compatible-API conversation's, a test's).
    pub fn bare(event: Event) -> Stamped {
        Stamped {
            event,
            seq: 0,
            stored: false,
            turn_id: None,
            at_millis: crate::store::now_millis(),
        }
    }

    /// Whether a watcher that already has every entry up to `last` must skip this live event:
    /// a stored one it has; an unstored one (a delta) that came before entry `last` is part
    /// of an entry it has (a text block is stored before any later entry).
    pub fn seen_by(&self, last: u64) -> bool {
        if self.stored {
            self.seq <= last
        } else {
            self.seq < last
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64, stored: bool) -> Stamped {
        Stamped {
            seq,
            stored,
            ..Stamped::bare(Event::TextDelta { text: "x".into() })
        }
    }

    #[test]
    fn a_watcher_skips_what_its_history_already_held() {
        // History sent up to 5: entries 1..=5 and deltas made before 5 was committed are old.
        assert!(at(5, true).seen_by(5));
        assert!(at(4, false).seen_by(5));
        // A delta after entry 5 (its text is not stored yet) and entry 6 are new.
        assert!(!at(5, false).seen_by(5));
        assert!(!at(6, true).seen_by(5));
    }
}
