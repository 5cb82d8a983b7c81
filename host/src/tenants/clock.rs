//! CPU time of the call in progress: the time spent inside `poll` of the call's
//! future, which is where the guest runs. Waiting in the runtime's queue does not
//! count, so a busy host does not push a tenant past its deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The clock of one tenant's calls, shared by the metered future and the epoch callback.
#[derive(Debug, Default)]
pub(crate) struct CallClock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    spent: Duration,
    polled_since: Option<Instant>,
}

impl CallClock {
    /// Starts a new call at zero.
    pub(crate) fn reset(&self) {
        *self.state.lock() = ClockState::default();
    }

    /// CPU time the current call has used so far.
    pub(crate) fn spent(&self) -> Duration {
        let state = self.state.lock();
        state.spent + state.polled_since.map_or(Duration::ZERO, |t| t.elapsed())
    }

    fn enter(&self) {
        self.state.lock().polled_since = Some(Instant::now());
    }

    fn leave(&self) {
        let mut state = self.state.lock();
        if let Some(since) = state.polled_since.take() {
            state.spent += since.elapsed();
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
