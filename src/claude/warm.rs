//! The warm pool's sizing: how many pre-started processes each key (provider, `--model`)
//! should have, from the new conversations that asked for one recently, and which idle ones are
//! surplus. The pool (`pool.rs`) starts and stops them; this module only counts and chooses.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::args::LaunchSpec;
use super::control::ControlHandler;

/// What a warm process was started for: its provider and `--model`.
pub type WarmKey = super::args::CliModel;

/// How long a warm process beyond its key's target is kept before it is stopped: the extra
/// processes a burst of new conversations called for then serve the next burst, instead of
/// being stopped as soon as the burst ends and started again for the next one.
pub const SURPLUS_GRACE: Duration = Duration::from_secs(30);

/// Makes the launch spec (fresh workspace and session id) and handler of one warm process.
pub type WarmFactory = Box<dyn Fn(&WarmKey) -> (LaunchSpec, Arc<ControlHandler>) + Send + Sync>;

pub(super) struct Warm {
    /// Processes kept ready per key at least, and at most (a reload may change all three).
    pub(super) size: AtomicUsize,
    pub(super) max: AtomicUsize,
    pub(super) keys: std::sync::RwLock<Vec<WarmKey>>,
    pub(super) ttl: Duration,
    pub(super) factory: WarmFactory,
    /// When new conversations asked for a warm process (hits and misses), per key, over the
    /// last [`DEMAND_WINDOW`].
    pub(super) demand: Mutex<HashMap<WarmKey, std::collections::VecDeque<Instant>>>,
}

/// How far back the warm pool looks at new conversations to size itself: about the time a
/// replacement takes to start, so it holds what arrives while one is starting.
pub const DEMAND_WINDOW: Duration = Duration::from_secs(2);

impl Warm {
    /// How many warm processes `key` should have: one more than the new conversations that
    /// asked for one within the window, between the configured floor and ceiling.
    pub(super) fn target(&self, key: &WarmKey) -> usize {
        let floor = self.size.load(Ordering::Relaxed);
        if floor == 0 {
            return 0;
        }
        let ceiling = self.max.load(Ordering::Relaxed).max(floor);
        let now = Instant::now();
        let mut demand = lock_map(&self.demand);
        let recent = demand.get_mut(key).map_or(0, |times| {
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) > DEMAND_WINDOW)
            {
                times.pop_front();
            }
            times.len()
        });
        (recent + 1).clamp(floor, ceiling)
    }

    pub(super) fn note_demand(&self, key: &WarmKey) {
        let mut demand = lock_map(&self.demand);
        let times = demand.entry(key.clone()).or_default();
        times.push_back(Instant::now());
        // Bounded whatever the rate: only the window's worth is ever read.
        if times.len() > 1024 {
            times.pop_front();
        }
    }
    /// Which idle warm processes `(key, idle since, id)` to stop: those of a key no longer
    /// warm, and, per key, those beyond its target that have waited longer than `grace`. The
    /// oldest are kept: they have finished starting, while the youngest may still be loading.
    pub(super) fn surplus(
        &self,
        mut idle: Vec<(WarmKey, Instant, u64)>,
        now: Instant,
        grace: Duration,
    ) -> Vec<u64> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        idle.sort_by_key(|(_, since, _)| *since);
        let mut targets: HashMap<WarmKey, usize> = HashMap::new();
        let mut kept: HashMap<WarmKey, usize> = HashMap::new();
        idle.into_iter()
            .filter_map(|(key, since, id)| {
                if !keys.contains(&key) {
                    return Some(id);
                }
                let target = *targets
                    .entry(key.clone())
                    .or_insert_with(|| self.target(&key));
                let n = kept.entry(key).or_default();
                if *n < target || now.duration_since(since) <= grace {
                    *n += 1;
                    None
                } else {
                    Some(id)
                }
            })
            .collect()
    }
}

pub(super) fn lock_map<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warm(size: usize, max: usize) -> Warm {
        Warm {
            size: AtomicUsize::new(size),
            max: AtomicUsize::new(max),
            keys: std::sync::RwLock::new(vec![WarmKey::default()]),
            ttl: Duration::from_secs(60),
            factory: Box::new(|_| unreachable!("nothing is started here")),
            demand: Mutex::default(),
        }
    }

    #[test]
    fn the_warm_target_follows_recent_demand_within_its_bounds() {
        let w = warm(2, 4);
        let key = WarmKey::default();
        assert_eq!(w.target(&key), 2, "the floor when nobody asked");
        w.note_demand(&key);
        assert_eq!(
            w.target(&key),
            2,
            "one ask: one more than it, still the floor"
        );
        w.note_demand(&key);
        assert_eq!(w.target(&key), 3);
        for _ in 0..10 {
            w.note_demand(&key);
        }
        assert_eq!(w.target(&key), 4, "the ceiling");
        let opus = WarmKey {
            provider: None,
            model: Some("opus".into()),
        };
        assert_eq!(w.target(&opus), 2, "per key");
        // A ceiling below the floor is the floor; a floor of zero is off.
        assert_eq!(warm(3, 1).target(&key), 3);
        let off = warm(0, 4);
        off.note_demand(&key);
        assert_eq!(off.target(&key), 0);
    }

    #[test]
    fn old_demand_is_forgotten() {
        let w = warm(1, 4);
        let key = WarmKey::default();
        let long_ago = Instant::now() - DEMAND_WINDOW - Duration::from_millis(10);
        lock_map(&w.demand).insert(key.clone(), [long_ago; 3].into_iter().collect());
        assert_eq!(w.target(&key), 1);
        assert!(lock_map(&w.demand)[&key].is_empty());
    }

    #[test]
    fn the_oldest_warm_processes_are_kept_and_young_surplus_waits_out_its_grace() {
        let w = warm(2, 4);
        let key = WarmKey::default();
        let now = Instant::now();
        let ago = |s: u64| now - Duration::from_secs(s);
        // Five idle warm processes, oldest first by id; the target is the floor, 2.
        let idle = vec![
            (key.clone(), ago(100), 1),
            (key.clone(), ago(90), 2),
            (key.clone(), ago(60), 3),
            (key.clone(), ago(5), 4),
            (key.clone(), ago(1), 5),
        ];
        let mut stop = w.surplus(idle.clone(), now, SURPLUS_GRACE);
        stop.sort();
        assert_eq!(
            stop,
            vec![3],
            "1 and 2 kept (oldest, ready); 4 and 5 within the grace"
        );
        let mut stop = w.surplus(idle, now, Duration::ZERO);
        stop.sort();
        assert_eq!(
            stop,
            vec![3, 4, 5],
            "a reload trims at once, the youngest first"
        );
    }

    #[test]
    fn a_key_no_longer_warm_loses_all_its_processes() {
        let w = warm(2, 4);
        let gone = WarmKey {
            provider: None,
            model: Some("opus".into()),
        };
        let now = Instant::now();
        let stop = w.surplus(vec![(gone, now, 7)], now, SURPLUS_GRACE);
        assert_eq!(stop, vec![7]);
    }
}
