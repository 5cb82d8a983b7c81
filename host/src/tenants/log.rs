//! What a tenant writes to the host's log and to its own journal, bounded: each line
//! cut to a length, and lines per second limited (bursts of one second's worth), the
//! tenant's own `host.log`, stdout and stderr and the host's warnings about what the
//! tenant did alike. A tenant can make neither the log nor the thread writing it do
//! unbounded work. The host's lines about the tenant's life (faults, restarts, new
//! versions) are not rate-limited: they are few by construction.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::Level;

use super::journal::Journal;
use super::limits::Limits;
use super::rate::TokenBucket;
use super::stats::TenantStats;

/// How often dropped lines are reported, at most.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// One tenant's way to the log, shared by its instances (a restart does not refill it).
pub(crate) struct TenantLog {
    tenant: Arc<str>,
    max_line: usize,
    budget: Mutex<Budget>,
    stats: Arc<TenantStats>,
    journal: Arc<Journal>,
}

struct Budget {
    lines: TokenBucket,
    /// Lines dropped and not yet reported.
    dropped: u64,
    /// When drops were last reported: at most once a second, so that the reports do
    /// not double the lines of a tenant logging at its limit.
    reported: Option<Instant>,
}

/// Who wrote a line: the guest through `host.log`, its stdout or stderr, or the host
/// about the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Guest,
    Stdout,
    Stderr,
    Host,
}

impl Source {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Source::Guest => "guest",
            Source::Stdout => "stdout",
            Source::Stderr => "stderr",
            Source::Host => "host",
        }
    }
}

impl TenantLog {
    pub(crate) fn new(
        tenant: Arc<str>,
        limits: &Limits,
        stats: Arc<TenantStats>,
        journal: Arc<Journal>,
    ) -> TenantLog {
        TenantLog {
            journal,
            tenant,
            max_line: limits.max_log_line_bytes,
            budget: Mutex::new(Budget {
                lines: TokenBucket::new(limits.log_lines_per_second),
                dropped: 0,
                reported: None,
            }),
            stats,
        }
    }

    /// Writes `message` at `level` if the tenant's lines per second allow it (cut to
    /// the longest line); otherwise counts it as dropped. A line written after drops
    /// is preceded by how many, at most once a second.
    pub(crate) fn write(&self, level: Level, source: Source, message: &str) {
        let dropped = {
            let mut budget = self.budget.lock();
            if !budget.lines.allow() {
                budget.dropped += 1;
                self.stats.log_dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let now = Instant::now();
            let due = budget
                .reported
                .is_none_or(|at| now.saturating_duration_since(at) >= REPORT_EVERY);
            if budget.dropped > 0 && due {
                budget.reported = Some(now);
                std::mem::take(&mut budget.dropped)
            } else {
                0
            }
        };
        self.stats.log_lines.fetch_add(1, Ordering::Relaxed);
        let tenant = &*self.tenant;
        if dropped > 0 {
            let line = format!("{dropped} log lines dropped: more than log_lines_per_second");
            tracing::warn!(tenant, dropped, "{line}");
            self.journal.push("warn", "host", &line);
        }
        let (message, cut) = cut(message, self.max_line);
        self.journal
            .push(level_name(level), source.as_str(), message);
        let source = source.as_str();
        match level {
            Level::TRACE => tracing::trace!(tenant, source, cut, "{message}"),
            Level::DEBUG => tracing::debug!(tenant, source, cut, "{message}"),
            Level::INFO => tracing::info!(tenant, source, cut, "{message}"),
            Level::WARN => tracing::warn!(tenant, source, cut, "{message}"),
            _ => tracing::error!(tenant, source, cut, "{message}"),
        }
    }
}

impl TenantLog {
    /// A line of the host's about the tenant's life (a fault, a restart, quarantine, a
    /// new version): to the log and the journal, never dropped.
    pub(crate) fn event(&self, level: Level, message: &str) {
        let tenant = &*self.tenant;
        match level {
            Level::ERROR => tracing::error!(tenant, "{message}"),
            Level::WARN => tracing::warn!(tenant, "{message}"),
            _ => tracing::info!(tenant, "{message}"),
        }
        self.journal
            .push(level_name(level), Source::Host.as_str(), message);
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        _ => "error",
    }
}

/// `message` cut to at most `max` bytes at a character boundary, and how many bytes
/// were cut.
fn cut(message: &str, max: usize) -> (&str, usize) {
    if message.len() <= max {
        return (message, 0);
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    (&message[..end], message.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_at_a_character_boundary() {
        assert_eq!(cut("hello", 10), ("hello", 0));
        assert_eq!(cut("hello", 4), ("hell", 1));
        // "é" is two bytes: a cut inside it keeps the whole character out.
        assert_eq!(cut("aé", 2), ("a", 2));
        assert_eq!(cut("", 0), ("", 0));
    }

    #[test]
    fn lines_beyond_the_rate_are_dropped_and_counted() {
        let stats = Arc::new(TenantStats::default());
        let limits = Limits {
            log_lines_per_second: 5,
            ..Limits::default()
        };
        let journal = Arc::new(Journal::default());
        let log = TenantLog::new("t".into(), &limits, stats.clone(), journal.clone());
        for _ in 0..1000 {
            log.write(Level::INFO, Source::Guest, "spam");
        }
        assert_eq!(stats.log_lines.load(Ordering::Relaxed), 5);
        assert_eq!(stats.log_dropped.load(Ordering::Relaxed), 995);
        assert_eq!(journal.after(0).len(), 5);
    }
}
