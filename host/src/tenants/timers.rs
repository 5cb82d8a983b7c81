//! The timers of one instance: when each is due, and which repeat. They live in the
//! instance's store, so they end with it and never fire into another.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Pending timers, by when they are due.
#[derive(Default)]
pub(crate) struct Timers {
    due: BTreeSet<(Instant, u64)>,
    pending: HashMap<u64, Pending>,
}

struct Pending {
    at: Instant,
    every: Option<Duration>,
}

impl Timers {
    /// Arms timer `id` to fire `delay` after `now`, and then every `delay` if `repeat`.
    pub(crate) fn set(&mut self, id: u64, delay: Duration, repeat: bool, now: Instant) {
        let at = now + delay;
        self.due.insert((at, id));
        let every = repeat.then_some(delay);
        self.pending.insert(id, Pending { at, every });
    }

    /// Disarms a timer; true if it was pending.
    pub(crate) fn cancel(&mut self, id: u64) -> bool {
        match self.pending.remove(&id) {
            Some(pending) => self.due.remove(&(pending.at, id)),
            None => false,
        }
    }

    /// How many are pending.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// When the next one is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// The timers due at `now`, in the order they were due; repeating ones are armed
    /// again a period after they were due, or a period after `now` if that is not
    /// later than `now` (an instance that fell behind gets one firing, not a burst).
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<u64> {
        let mut fired = Vec::new();
        while let Some(&(at, id)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.pop_first();
            fired.push(id);
            let Some(pending) = self.pending.get_mut(&id) else {
                continue;
            };
            match pending.every {
                Some(every) => {
                    let next = if at + every > now {
                        at + every
                    } else {
                        now + every
                    };
                    pending.at = next;
                    self.due.insert((next, id));
                }
                None => {
                    self.pending.remove(&id);
                }
            }
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_order_once_or_every_period_and_cancel() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut timers = Timers::default();
        timers.set(1, ms(30), false, start);
        timers.set(2, ms(10), true, start);
        timers.set(3, ms(20), false, start);
        assert_eq!(timers.next_due(), Some(start + ms(10)));
        assert_eq!(timers.take_due(start + ms(5)), Vec::<u64>::new());
        assert_eq!(timers.take_due(start + ms(15)), vec![2]);
        // The repeating one is due again a period after it was due.
        assert_eq!(timers.next_due(), Some(start + ms(20)));
        assert_eq!(timers.take_due(start + ms(20)), vec![2, 3]);
        assert_eq!(timers.take_due(start + ms(30)), vec![1, 2]);
        assert_eq!(timers.len(), 1);
        // Far behind: one firing, the next a period from now.
        assert_eq!(timers.take_due(start + ms(1000)), vec![2]);
        assert_eq!(timers.next_due(), Some(start + ms(1010)));
        assert!(timers.cancel(2));
        assert!(!timers.cancel(2));
        assert_eq!(timers.next_due(), None);
        assert_eq!(timers.len(), 0);
    }
}
