//! What a tenant counts about itself, shared by its versions, read by the admin API
//! and the metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::kind::Kind;
use crate::kv::QuotaKind;

/// A tenant's counters.
#[derive(Debug, Default)]
pub struct TenantStats {
    /// Sockets the middleware let in.
    pub connects_accepted: AtomicU64,
    /// Sockets the middleware (or a fault) refused.
    pub connects_refused: AtomicU64,
    /// Events handed to the guest.
    pub events: AtomicU64,
    /// Bytes of the events received (name, JSON and attachments).
    pub bytes_in: AtomicU64,
    /// Events dropped because the tenant's queue was full or its events per second spent.
    pub dropped_events: AtomicU64,
    /// Messages the tenant sent, counting each recipient of a broadcast.
    pub events_out: AtomicU64,
    /// Bytes the tenant sent, counting each recipient of a broadcast.
    pub bytes_out: AtomicU64,
    /// Instances stopped by a fault (trap, deadline, memory).
    pub faults: AtomicU64,
    /// Instances started (the first one included; not attempts that failed, such as
    /// one refused for capacity).
    pub instantiations: AtomicU64,
    /// Instances started after a fault of this version stopped (or kept from starting)
    /// the one before: not the first, nor those after an eviction, a new version or
    /// a change of limits.
    pub restarts: AtomicU64,
    /// Instances stopped because the tenant had no sockets for `evict_idle_after_ms`.
    pub evictions: AtomicU64,
    /// Sockets given back to their clients by connection state recovery.
    pub recovered: AtomicU64,
    /// Instances that exist now (0 while evicted or never started; 1 while running;
    /// briefly 2 while a new version takes over).
    pub instances: AtomicU64,
    /// Sockets the tenant knows now (admitted and not yet gone).
    pub sockets: AtomicU64,
    /// Linear memory of the live instance, in bytes.
    pub memory_bytes: AtomicU64,
    /// Lines the tenant wrote to the host's log (its own and the host's about it).
    pub log_lines: AtomicU64,
    /// Lines dropped because the tenant wrote more per second than it may.
    pub log_dropped: AtomicU64,
    /// Server-to-client acks the tenant awaits now.
    pub pending_acks: AtomicU64,
    /// CPU time of each call into the guest.
    pub call_cpu: Histogram,
    /// Times a call waited because the tenant had spent its CPU for the second.
    pub throttled: AtomicU64,
    /// 1 while the tenant is quarantined after repeated faults, else 0.
    pub quarantined: AtomicU64,
    /// Set when an actor of the tenant first started (a command reached it) on this
    /// node: before that its counters are all zero, and `/metrics` leaves them out.
    pub reached: AtomicBool,
    /// How often each limit of [`Kind::LIMITS`] tripped.
    pub limit_trips: [AtomicU64; Kind::LIMITS.len()],
    /// Storage operations the tenant ran (each key of a batch counted).
    pub storage_ops: AtomicU64,
    /// Storage operations refused, by the quota of [`QuotaKind::ALL`] they would break.
    pub storage_refused: [AtomicU64; QuotaKind::ALL.len()],
}

impl TenantStats {
    /// Instances started again after a fault (see [`TenantStats::restarts`]'s field).
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Counts one trip of `limit` (one of [`Kind::LIMITS`]).
    pub(crate) fn tripped(&self, limit: Kind) {
        if let Some(i) = limit.limit_index() {
            self.limit_trips[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts `recipients` messages of `bytes` each going out.
    pub(crate) fn sent(&self, recipients: usize, bytes: usize) {
        self.events_out
            .fetch_add(recipients as u64, Ordering::Relaxed);
        self.bytes_out
            .fetch_add((recipients * bytes) as u64, Ordering::Relaxed);
    }
}

/// Upper bounds of the histogram's buckets, in seconds: 10 µs to 50 ms (the default
/// CPU deadline), then everything above.
pub const BUCKETS: [f64; 10] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.01, 0.05,
];

/// A Prometheus-style histogram of durations, lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Cumulative counts per bucket (as Prometheus wants them), the total count, and
    /// the sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut running = 0;
        let buckets = BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, count)| {
                running += count.load(Ordering::Relaxed);
                (*bound, running)
            })
            .collect();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (buckets, self.count.load(Ordering::Relaxed), sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(5));
        histogram.observe(Duration::from_micros(300));
        histogram.observe(Duration::from_secs(1));
        let (buckets, count, sum) = histogram.snapshot();
        assert_eq!(count, 3);
        assert_eq!(buckets[0], (0.000_01, 1));
        assert_eq!(buckets[4], (0.000_25, 1));
        assert_eq!(buckets[5], (0.000_5, 2));
        assert_eq!(
            buckets.last().map(|b| b.1),
            Some(2),
            "1 s is above every bound"
        );
        assert!((sum - 1.000_305).abs() < 1e-9);
    }
}
