//! Draining on shutdown: the phases a stopping gateway goes through, and the count of turns
//! still running.
//!
//! `Serving` → `Draining` (readiness is false and no new turn starts; running ones may
//! finish) → `Interrupting` (every running turn interrupts its CLI and ends with
//! `stop_reason: "shutdown"`, recorded, its session resumable) → `Closed` (watchers' streams
//! end with a `shutdown` event). The server decides when to move on; turns and watchers only
//! follow.
//!
//! Must not: stop processes (the pool does) or know about HTTP.

use std::time::Duration;

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Serving,
    Draining,
    Interrupting,
    Closed,
}

pub struct Drain {
    phase: watch::Sender<Phase>,
    running: watch::Sender<usize>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            phase: watch::Sender::new(Phase::Serving),
            running: watch::Sender::new(0),
        }
    }
}

impl Drain {
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// New turns may start.
    pub fn accepting(&self) -> bool {
        self.phase() == Phase::Serving
    }

    /// Move on to `to` (never back).
    pub fn advance(&self, to: Phase) {
        self.phase.send_if_modified(|p| {
            let later = to > *p;
            if later {
                *p = to;
            }
            later
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    /// Turns running now.
    pub fn running(&self) -> usize {
        *self.running.borrow()
    }

    /// Count a running turn until the guard is dropped.
    pub fn turn(&self) -> TurnGuard<'_> {
        self.running.send_modify(|n| *n += 1);
        TurnGuard(self)
    }

    /// Wait until no turn runs, at most `limit`. False when some still do.
    pub async fn until_idle(&self, limit: Duration) -> bool {
        let mut rx = self.running.subscribe();
        let idle = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0))
            .await
            .is_ok();
        idle
    }
}

/// Wait until the phase is `at` or later.
pub async fn reached(rx: &mut watch::Receiver<Phase>, at: Phase) {
    // The sender lives as long as the gateway; should it go, so does everything.
    let _ = rx.wait_for(|p| *p >= at).await;
}

pub struct TurnGuard<'a>(&'a Drain);

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        self.0.running.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn phases_only_move_forward_and_idle_waits_for_the_last_turn() {
        let d = Drain::default();
        assert!(d.accepting());
        d.advance(Phase::Interrupting);
        d.advance(Phase::Draining);
        assert_eq!(d.phase(), Phase::Interrupting);
        assert!(!d.accepting());

        let g = d.turn();
        assert_eq!(d.running(), 1);
        assert!(!d.until_idle(Duration::from_millis(20)).await);
        drop(g);
        assert!(d.until_idle(Duration::from_millis(20)).await);

        let mut rx = d.subscribe();
        d.advance(Phase::Closed);
        tokio::time::timeout(Duration::from_secs(1), reached(&mut rx, Phase::Closed))
            .await
            .expect("closed is seen");
    }
}
