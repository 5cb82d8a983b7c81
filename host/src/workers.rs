//! The threads that serve connections: one single-threaded runtime each, connections
//! dealt to them in turn.
//!
//! Why not tokio's multi-threaded runtime: its per-thread run queue holds 256 tasks,
//! and when a burst of readiness wakes more connections than that, the rest wait in a
//! global queue that a busy thread looks at once every 61 to 127 polls. Under load
//! the connections in the local queue go round and round while those in the global
//! queue starve: with 1,000 closed-loop clients on one core, a p50 of 2.4 ms and a p99
//! of 166 ms (and socketioxide, on the same runtime, 0.8 and 277 ms). A single-threaded
//! runtime runs its tasks first in, first out: the same run gave 9.2 and 11 ms, and
//! 1.18x the acks a second. (A long tenant call yields to its thread between ticks,
//! so a thread's other connections are not held behind it.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;

/// Where connections are served: the runtimes to deal them to.
#[derive(Clone, Default)]
pub struct Workers {
    handles: Arc<[Handle]>,
    next: Arc<AtomicUsize>,
}

impl Workers {
    /// Serves everything on the runtime of the caller (tests, embedding).
    pub fn current() -> Workers {
        Workers::default()
    }

    /// The caller's runtime and `count - 1` more threads of a single-threaded runtime
    /// each (at least the caller's). The threads run until the process ends.
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let mut handles = vec![Handle::current()];
        for index in 1..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            std::thread::Builder::new()
                .name(format!("nsbox-worker-{index}"))
                .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
        }
        Ok(Workers {
            handles: handles.into(),
            next: Arc::default(),
        })
    }

    /// How many threads serve connections (0: the caller's runtime, however many).
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// True when connections are served on the caller's runtime.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The tasks alive on each worker's runtime: how the load is dealt.
    pub fn tasks(&self) -> Vec<usize> {
        self.handles
            .iter()
            .map(|h| h.metrics().num_alive_tasks())
            .collect()
    }

    /// The runtime to serve the next connection on, in turn; `None` for the caller's.
    pub fn next(&self) -> Option<&Handle> {
        if self.handles.is_empty() {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles.get(index)
    }
}

/// The worker count when the configuration leaves it to the machine: one per core this
/// process may run on.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
