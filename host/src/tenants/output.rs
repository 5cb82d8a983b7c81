//! A tenant's stdout and stderr: their lines go to its log and journal (see `log`),
//! cut and rate-limited like `host.log`; a panic message, which a Rust guest writes to
//! stderr before it traps, is how its author learns why. Nothing reaches the host's
//! own stdio.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tracing::Level;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::log::{Source, TenantLog};

/// How much one write may carry (what WASI streams usually allow).
const WRITE_PERMIT: usize = 64 << 10;

/// The stdout or the stderr of a tenant's instances.
pub(crate) struct GuestOutput {
    log: Arc<TenantLog>,
    source: Source,
    max_line: usize,
}

impl GuestOutput {
    pub(crate) fn new(log: Arc<TenantLog>, source: Source, max_line: usize) -> GuestOutput {
        GuestOutput {
            log,
            source,
            max_line,
        }
    }

    fn lines(&self) -> Lines {
        Lines {
            log: self.log.clone(),
            source: self.source,
            level: match self.source {
                Source::Stderr => Level::WARN,
                _ => Level::INFO,
            },
            partial: Vec::new(),
            max_line: self.max_line.max(1),
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.lines())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.lines())
    }
}

/// Bytes split into lines: each complete line is logged, a partial one kept until its
/// end, a flush or `max_line` bytes (then logged as it is).
struct Lines {
    log: Arc<TenantLog>,
    source: Source,
    level: Level,
    partial: Vec<u8>,
    max_line: usize,
}

impl Lines {
    fn take(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = self.max_line - self.partial.len();
            let (chunk, end) = match bytes.iter().position(|b| *b == b'\n') {
                Some(at) if at <= room => (&bytes[..at], at + 1),
                _ => {
                    let n = room.min(bytes.len());
                    (&bytes[..n], n)
                }
            };
            self.partial.extend_from_slice(chunk);
            let newline = end > chunk.len();
            bytes = &bytes[end..];
            if newline || self.partial.len() >= self.max_line {
                self.emit();
            }
        }
    }

    fn emit(&mut self) {
        if self.partial.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        self.log.write(self.level, self.source, &line);
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.emit();
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Lines {
    async fn ready(&mut self) {}
}

impl OutputStream for Lines {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.emit();
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for Lines {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let n = buf.len().min(WRITE_PERMIT);
        this.take(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().emit();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().emit();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::journal::Journal;
    use crate::tenants::limits::Limits;
    use crate::tenants::stats::TenantStats;

    #[test]
    fn output_becomes_lines_bounded_in_length() {
        let journal = Arc::new(Journal::default());
        let log = Arc::new(TenantLog::new(
            "t".into(),
            &Limits::default(),
            Arc::new(TenantStats::default()),
            journal.clone(),
        ));
        let output = GuestOutput::new(log, Source::Stderr, 8);
        let mut lines = output.lines();
        lines.take(b"one\ntw");
        lines.take(b"o\n0123456789abc");
        lines.take(b"\n");
        drop(lines);
        let messages: Vec<String> = journal.after(0).into_iter().map(|l| l.message).collect();
        assert_eq!(messages, ["one", "two", "01234567", "89abc"]);
        assert!(journal.after(0).iter().all(|l| l.source == "stderr"));
    }
}
