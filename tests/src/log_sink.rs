//! The host's log as a real subscriber formats it, counted instead of written: what a
//! tenant can make the host write is measured, not taken on trust.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

/// Bytes of formatted lines, by whether they mention a word.
#[derive(Clone, Default)]
pub struct LogSink {
    lines: Arc<Mutex<Vec<(usize, String)>>>,
}

/// Tenants' log lines (the `nsbox::tenants::log` target, every level) formatted by
/// `tracing_subscriber::fmt` as the binary's text log is, counted by [`LogSink`].
/// Installed once for the test process; later calls return the same sink.
pub fn capture_tenant_logs() -> LogSink {
    static SINK: OnceLock<LogSink> = OnceLock::new();
    SINK.get_or_init(|| {
        let sink = LogSink::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(sink.clone());
        let targets = Targets::new().with_target("nsbox::tenants::log", tracing::Level::TRACE);
        let subscriber = tracing_subscriber::registry().with(layer.with_filter(targets));
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            panic!("another global subscriber was installed first");
        }
        sink
    })
    .clone()
}

impl LogSink {
    /// Bytes of the lines so far that mention `word` (the first and last 200 bytes of
    /// each line are kept to look in, where the level and the fields are; a line's
    /// bytes are counted whole).
    pub fn bytes_mentioning(&self, word: &str) -> usize {
        self.lines
            .lock()
            .iter()
            .filter(|(_, head)| head.contains(word))
            .map(|(bytes, _)| bytes)
            .sum()
    }

    /// The longest line so far that mentions `word`, in bytes.
    pub fn longest_mentioning(&self, word: &str) -> usize {
        self.lines
            .lock()
            .iter()
            .filter(|(_, head)| head.contains(word))
            .map(|(bytes, _)| *bytes)
            .max()
            .unwrap_or(0)
    }
}

/// One formatted line on its way to the sink.
pub struct Line {
    text: Vec<u8>,
    sink: LogSink,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = &self.text;
        let ends = [
            &text[..text.len().min(200)],
            &text[text.len().saturating_sub(200)..],
        ];
        let kept = ends.map(String::from_utf8_lossy).join(" … ");
        self.sink.lines.lock().push((text.len(), kept));
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            text: Vec::new(),
            sink: self.clone(),
        }
    }
}
