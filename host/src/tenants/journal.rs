//! A tenant's recent log, for its author: what it wrote (`host.log`, stdout, stderr)
//! and what the host said about it (faults with the limit that tripped, restarts,
//! quarantine, new versions), in a ring bounded in lines and bytes, shared by the
//! tenant's versions, read and followed through the admin API. Lines arrive cut to
//! their limit and rate-limited (see `log`); here each is one line: newlines and other
//! control characters are escaped.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;

/// The lines the ring keeps at most; older ones make room.
pub const MAX_LINES: usize = 1000;
/// The bytes of messages the ring keeps at most.
pub const MAX_BYTES: usize = 256 << 10;

/// One line of a tenant's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// Its number: 1 for the tenant's first line, one more for each after.
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// Who wrote it: `guest` (`host.log`), `stdout`, `stderr` or `host`.
    pub source: &'static str,
    /// The text, on one line.
    pub message: String,
}

/// A tenant's recent lines.
#[derive(Default)]
pub struct Journal {
    ring: Mutex<Ring>,
    written: Notify,
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<Line>,
    bytes: usize,
    next: u64,
}

impl Journal {
    /// Appends a line (escaped onto one line), making room by dropping the oldest.
    pub(crate) fn push(&self, level: &'static str, source: &'static str, message: &str) {
        let message = one_line(message);
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        {
            let mut ring = self.ring.lock();
            ring.next += 1;
            ring.bytes += message.len();
            let seq = ring.next;
            ring.lines.push_back(Line {
                seq,
                time_ms,
                level,
                source,
                message,
            });
            while ring.lines.len() > MAX_LINES || ring.bytes > MAX_BYTES {
                let Some(old) = ring.lines.pop_front() else {
                    break;
                };
                ring.bytes -= old.message.len();
            }
        }
        self.written.notify_waiters();
    }

    /// The lines kept whose number is above `after`, oldest first.
    pub fn after(&self, after: u64) -> Vec<Line> {
        let ring = self.ring.lock();
        ring.lines
            .iter()
            .filter(|line| line.seq > after)
            .cloned()
            .collect()
    }

    /// Waits until a line numbered above `after` is kept, and returns those.
    pub async fn wait_after(&self, after: u64) -> Vec<Line> {
        loop {
            let written = self.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            let lines = self.after(after);
            if !lines.is_empty() {
                return lines;
            }
            written.await;
        }
    }
}

/// `text` on one line: newlines, tabs and other control characters escaped as `\n`,
/// `\t`, `\u{1b}`, so a tenant cannot forge lines (or colours) in anyone's terminal.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_escaped_onto_one_line() {
        assert_eq!(
            one_line("a\nb\tc\\d\u{1b}[31m"),
            "a\\nb\\tc\\\\d\\u{1b}[31m"
        );
        assert_eq!(one_line("héllo"), "héllo");
    }

    #[test]
    fn the_ring_keeps_the_newest_lines_within_its_bounds() {
        let journal = Journal::default();
        for i in 0..(MAX_LINES + 10) {
            journal.push("info", "guest", &format!("line {i}"));
        }
        let kept = journal.after(0);
        assert_eq!(kept.len(), MAX_LINES);
        assert_eq!(kept[0].seq, 11);
        assert_eq!(kept.last().map(|l| l.seq), Some((MAX_LINES + 10) as u64));
        assert_eq!(journal.after(kept[5].seq).len(), MAX_LINES - 6);
        // Bytes bound it too: 100 lines of 4 KiB are more than it keeps.
        let big = "x".repeat(4096);
        for _ in 0..100 {
            journal.push("info", "guest", &big);
        }
        let kept = journal.after(0);
        assert!(kept.iter().map(|l| l.message.len()).sum::<usize>() <= MAX_BYTES);
        assert_eq!(kept.len(), MAX_BYTES / 4096);
    }

    #[tokio::test]
    async fn a_follower_wakes_for_the_next_line() {
        let journal = std::sync::Arc::new(Journal::default());
        journal.push("info", "guest", "old");
        let follower = {
            let journal = journal.clone();
            tokio::spawn(async move { journal.wait_after(1).await })
        };
        tokio::task::yield_now().await;
        journal.push("warn", "host", "new");
        let lines = follower.await.expect("the follower");
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].seq, lines[0].message.as_str()), (2, "new"));
    }
}
