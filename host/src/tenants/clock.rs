//! CPU time of the call in progress: the CPU the thread used inside `poll` of the
//! call's future, which is where the guest runs. Neither waiting in the runtime's
//! queue nor being scheduled out by the kernel while inside `poll` counts, so a busy
//! host (other tenants, other processes) does not push a tenant past its deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;

/// The clock of one tenant's calls, shared by the metered future and the epoch callback.
#[derive(Debug, Default)]
pub(crate) struct CallClock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    spent: Duration,
    /// The thread's CPU time when the current `poll` began.
    polled_since: Option<Duration>,
    /// What the current call may spend.
    limit: Duration,
}

/// The CPU time the calling thread has used, as the kernel counts it. (Time inside a
/// `poll` measured by the wall clock would charge a call for every millisecond its
/// thread waited for a core: on a loaded machine a 50 µs call could pass a 50 ms
/// deadline, and a well-behaved tenant would be stopped for the host's contention.)
fn thread_cpu() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

impl CallClock {
    /// Starts a new call at zero, which may spend `limit`.
    pub(crate) fn start(&self, limit: Duration) {
        *self.state.lock() = ClockState {
            limit,
            ..ClockState::default()
        };
    }

    /// What the current call may spend.
    pub(crate) fn limit(&self) -> Duration {
        self.state.lock().limit
    }

    /// CPU time the current call has used so far. Inside a `poll` (the epoch callback)
    /// it is read on the thread that polls, which is the one whose CPU counts.
    pub(crate) fn spent(&self) -> Duration {
        let state = self.state.lock();
        state.spent
            + state
                .polled_since
                .map_or(Duration::ZERO, |since| thread_cpu().saturating_sub(since))
    }

    fn enter(&self) {
        self.state.lock().polled_since = Some(thread_cpu());
    }

    fn leave(&self) {
        let mut state = self.state.lock();
        if let Some(since) = state.polled_since.take() {
            state.spent += thread_cpu().saturating_sub(since);
        }
    }
}

/// A future whose time inside `poll` is charged to a [`CallClock`].
pub(crate) struct Metered<F> {
    inner: Pin<Box<F>>,
    clock: Arc<CallClock>,
}

impl<F> Metered<F> {
    pub(crate) fn new(inner: F, clock: Arc<CallClock>) -> Metered<F> {
        Metered {
            inner: Box::pin(inner),
            clock,
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.clock.enter();
        let result = self.inner.as_mut().poll(cx);
        self.clock.leave();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_is_charged_the_cpu_it_used_not_the_time_its_thread_was_away() {
        let clock = Arc::new(CallClock::default());
        clock.start(Duration::MAX);
        // Scheduled out inside poll (as the kernel does on a loaded machine): no CPU.
        Metered::new(
            async { std::thread::sleep(Duration::from_millis(40)) },
            clock.clone(),
        )
        .await;
        assert!(
            clock.spent() < Duration::from_millis(10),
            "{:?}",
            clock.spent()
        );
        clock.start(Duration::MAX);
        // Computing 40 ms of CPU (however long that takes on a busy machine): charged.
        Metered::new(
            async {
                let started = thread_cpu();
                let mut n = 0u64;
                while thread_cpu().saturating_sub(started) < Duration::from_millis(40) {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            },
            clock.clone(),
        )
        .await;
        assert!(
            clock.spent() >= Duration::from_millis(40),
            "{:?}",
            clock.spent()
        );
        assert!(
            clock.spent() < Duration::from_millis(200),
            "{:?}",
            clock.spent()
        );
    }
}
