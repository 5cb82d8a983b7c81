//! How a tenant is treated after faults and how much CPU it may use per second:
//! restart backoff, quarantine, and the per-second CPU budget.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::limits::Limits;

/// A fault that counts toward quarantine, told to whoever keeps the count for the
/// tenant's other instances (the cluster's nodes).
#[derive(Debug, Clone)]
pub struct FaultReport {
    /// The tenant.
    pub tenant: String,
    /// The version that faulted.
    pub version: u64,
    /// What happened.
    pub error: String,
    /// How long a fault counts (the tenant's `fault_window`).
    pub window: Duration,
    /// Faults in the window that quarantine it (its `quarantine_after_faults`).
    pub quarantine_after: usize,
}

/// Where faults are told.
pub type FaultSink = std::sync::Arc<dyn Fn(FaultReport) + Send + Sync>;

/// What a fault leads to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterFault {
    /// A fresh instance may start at once.
    Restart,
    /// A fresh instance may start at this moment, not before.
    BackOff(Instant),
    /// No more instances until a new version: this many faults in the window.
    Quarantine(usize),
}

/// The restart policy: the first fault in the window restarts at once, each further
/// one doubles a wait from 100 ms (up to the limit), and `quarantine_after_faults` of
/// them quarantine the tenant until a new version is uploaded.
pub(crate) struct RestartPolicy {
    window: Duration,
    quarantine_after: usize,
    max_backoff: Duration,
    faults: VecDeque<Instant>,
}

impl RestartPolicy {
    pub(crate) fn new(limits: &Limits) -> RestartPolicy {
        RestartPolicy {
            window: limits.fault_window,
            quarantine_after: limits.quarantine_after_faults,
            max_backoff: limits.max_restart_backoff,
            faults: VecDeque::new(),
        }
    }

    /// Faults within the window.
    pub(crate) fn recent(&self) -> usize {
        self.faults.len()
    }

    /// Records a fault at `now` and says what follows.
    pub(crate) fn fault_at(&mut self, now: Instant) -> AfterFault {
        self.faults.push_back(now);
        while self
            .faults
            .front()
            .is_some_and(|at| now.duration_since(*at) > self.window)
        {
            self.faults.pop_front();
        }
        let recent = self.faults.len();
        if recent >= self.quarantine_after {
            return AfterFault::Quarantine(recent);
        }
        if recent < 2 {
            return AfterFault::Restart;
        }
        let doubling = u32::try_from(recent - 2).unwrap_or(u32::MAX).min(16);
        let wait = (Duration::from_millis(100) * 2u32.pow(doubling)).min(self.max_backoff);
        AfterFault::BackOff(now + wait)
    }
}

/// CPU a tenant may use per one-second window, over all its calls.
pub(crate) struct CpuBudget {
    per_second: Duration,
    /// When the current window began: at the first call after the last one ended (none
    /// before the first call, so an actor made long before its first call has a full
    /// window then, not the tail of one).
    window_start: Option<Instant>,
    used: Duration,
}

impl CpuBudget {
    pub(crate) fn new(limits: &Limits) -> CpuBudget {
        CpuBudget {
            per_second: limits.cpu_per_second,
            window_start: None,
            used: Duration::ZERO,
        }
    }

    /// Charges a call's CPU time.
    pub(crate) fn spend(&mut self, cpu: Duration) {
        self.used += cpu;
    }

    /// When the next call may start: `None` for now, or the start of the next window
    /// when this one's budget is spent. A new window begins when this one has passed.
    pub(crate) fn next_call_at(&mut self, now: Instant) -> Option<Instant> {
        let next = self
            .window_start
            .map(|start| start + Duration::from_secs(1))
            .filter(|next| now < *next);
        let Some(next) = next else {
            self.window_start = Some(now);
            self.used = Duration::ZERO;
            return None;
        };
        (self.used >= self.per_second).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_quarantines_and_old_faults_expire() {
        let mut policy = RestartPolicy::new(&Limits::default());
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(policy.fault_at(t0), AfterFault::Restart);
        assert_eq!(policy.fault_at(t0), AfterFault::BackOff(t0 + ms(100)));
        assert_eq!(policy.fault_at(t0), AfterFault::BackOff(t0 + ms(200)));
        assert_eq!(policy.fault_at(t0), AfterFault::BackOff(t0 + ms(400)));
        assert_eq!(policy.fault_at(t0), AfterFault::Quarantine(5));
        let mut fresh = RestartPolicy::new(&Limits::default());
        for _ in 0..4 {
            fresh.fault_at(t0);
        }
        // A minute later the old faults no longer count.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(fresh.fault_at(later), AfterFault::Restart);
        assert_eq!(fresh.recent(), 1);
    }

    #[test]
    fn the_cpu_budget_refills_each_second() {
        let limits = Limits {
            cpu_per_second: Duration::from_millis(100),
            ..Limits::default()
        };
        let mut budget = CpuBudget::new(&limits);
        // The first window begins at the first call, however long after the budget was made.
        let t0 = Instant::now() + Duration::from_secs(5);
        assert_eq!(budget.next_call_at(t0), None);
        budget.spend(Duration::from_millis(60));
        assert_eq!(budget.next_call_at(t0), None);
        budget.spend(Duration::from_millis(60));
        assert_eq!(budget.next_call_at(t0), Some(t0 + Duration::from_secs(1)));
        assert_eq!(budget.next_call_at(t0 + Duration::from_secs(1)), None);
    }
}
