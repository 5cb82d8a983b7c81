//! CPU time of the call in progress: the CPU the thread used inside `poll` of the
//! call's future, which is where the guest runs. Neither waiting in the runtime's
//! queue nor being scheduled out by the kernel while inside `poll` counts (beyond a
//! [`SLACK`] per `poll`), so a busy host (other tenants, other processes) does not
//! push a tenant past its deadline. A call is never charged less than it used.
//! [`Metered`] also ends a call that takes longer than its wall-clock limit.

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
    /// When the current `poll` began, and the thread's CPU time then.
    polled_since: Option<(Instant, Duration)>,
    /// What the current call may spend.
    limit: Duration,
}

/// How much a `poll` may be charged beyond the CPU it used, so that the thread's CPU
/// clock, a system call, is seldom read: a `poll` shorter than this by the wall clock
/// is charged its wall time (the CPU it used is at most that), and a longer one
/// counts from a reading of the clock at most this old when it began (the thread's
/// CPU then was at least that). Calls take a few microseconds; under load the clock is
/// read about once per this much of the thread's time rather than twice per call.
const SLACK: Duration = Duration::from_micros(50);

thread_local! {
    /// This thread's last reading of its CPU clock, and when it was taken.
    static LAST_READING: std::cell::Cell<Option<(Instant, Duration)>> =
        const { std::cell::Cell::new(None) };
}

/// The thread's CPU time as of at most [`SLACK`] ago: the last reading if that recent.
fn recent_thread_cpu(now: Instant) -> Duration {
    match LAST_READING.get() {
        Some((at, cpu)) if now.saturating_duration_since(at) <= SLACK => cpu,
        _ => thread_cpu(),
    }
}

/// The CPU time the calling thread has used, as the kernel counts it. (Time inside a
/// `poll` measured by the wall clock would charge a call for every millisecond its
/// thread waited for a core: on a loaded machine a 50 µs call could pass a 50 ms
/// deadline, and a well-behaved tenant would be stopped for the host's contention.)
pub(super) fn thread_cpu() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let cpu = Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    );
    LAST_READING.set(Some((Instant::now(), cpu)));
    cpu
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
                .map_or(Duration::ZERO, |(_, cpu)| thread_cpu().saturating_sub(cpu))
    }

    /// Marks the start of a `poll` at `now`.
    fn enter(&self, now: Instant) {
        self.state.lock().polled_since = Some((now, recent_thread_cpu(now)));
    }

    fn leave(&self) {
        let mut state = self.state.lock();
        if let Some((at, cpu)) = state.polled_since.take() {
            let wall = at.elapsed();
            state.spent += if wall < SLACK {
                wall
            } else {
                thread_cpu().saturating_sub(cpu)
            };
        }
    }
}

pin_project_lite::pin_project! {
    /// A call's future whose time inside `poll` is charged to a [`CallClock`], and
    /// which ends with [`WallClockPassed`] once it has taken `wall_limit` by the wall
    /// clock. The timer is armed only when the call first waits: most calls finish
    /// in their first `poll`, and those cost no timer and no reading of the clock
    /// beyond the caller's, as the call starts, and the one as the `poll` ends.
    pub(crate) struct Metered<F> {
        #[pin]
        inner: F,
        clock: Arc<CallClock>,
        wall_limit: Duration,
        started: Instant,
        // When the first `poll` begins: the caller's reading, taken just before.
        first_poll: Option<Instant>,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

/// A call took longer than its wall-clock limit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct WallClockPassed;

impl<F> Metered<F> {
    /// Meters `inner`, a call that starts `now` (the caller's reading of the clock).
    pub(crate) fn new(
        inner: F,
        clock: Arc<CallClock>,
        wall_limit: Duration,
        now: Instant,
    ) -> Metered<F> {
        Metered {
            inner,
            clock,
            wall_limit,
            started: now,
            first_poll: Some(now),
            deadline: None,
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = Result<F::Output, WallClockPassed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.clock
            .enter(this.first_poll.take().unwrap_or_else(Instant::now));
        let result = this.inner.poll(cx);
        this.clock.leave();
        if let Poll::Ready(value) = result {
            return Poll::Ready(Ok(value));
        }
        if this.deadline.is_none() {
            // A limit past any clock's range is no limit.
            let Some(at) = this.started.checked_add(*this.wall_limit) else {
                return Poll::Pending;
            };
            *this.deadline = Some(Box::pin(tokio::time::sleep_until(at.into())));
        }
        let Some(deadline) = this.deadline.as_mut() else {
            return Poll::Pending;
        };
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(WallClockPassed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins until the thread has used `cpu` more.
    fn burn(cpu: Duration) {
        let started = thread_cpu();
        let mut n = 0u64;
        while thread_cpu().saturating_sub(started) < cpu {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    #[tokio::test]
    async fn each_poll_is_charged_at_least_its_cpu_and_at_most_the_slack_more() {
        let clock = Arc::new(CallClock::default());
        for work in [Duration::from_micros(5), Duration::from_micros(300)] {
            clock.start(Duration::MAX);
            let mut used = Duration::ZERO;
            for _ in 0..50 {
                // Other work of the thread between polls, as other tasks make.
                burn(Duration::from_micros(20));
                let inside = async {
                    let before = thread_cpu();
                    burn(work);
                    thread_cpu().saturating_sub(before)
                };
                used += Metered::new(inside, clock.clone(), Duration::MAX, Instant::now())
                    .await
                    .expect("no wall limit");
            }
            let spent = clock.spent();
            assert!(
                spent >= used,
                "{work:?} a poll: charged {spent:?} for {used:?}"
            );
            assert!(
                spent <= used + SLACK * 50,
                "{work:?} a poll: charged {spent:?} for {used:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_call_is_charged_the_cpu_it_used_not_the_time_its_thread_was_away() {
        let clock = Arc::new(CallClock::default());
        clock.start(Duration::MAX);
        // Scheduled out inside poll (as the kernel does on a loaded machine): no CPU.
        Metered::new(
            async { std::thread::sleep(Duration::from_millis(40)) },
            clock.clone(),
            Duration::MAX,
            Instant::now(),
        )
        .await
        .expect("no wall limit");
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
            Duration::MAX,
            Instant::now(),
        )
        .await
        .expect("no wall limit");
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

    #[tokio::test]
    async fn a_call_that_waits_past_its_wall_limit_ends_there() {
        let clock = Arc::new(CallClock::default());
        clock.start(Duration::MAX);
        let limit = Duration::from_millis(300);
        let waits_less = tokio::time::sleep(Duration::from_millis(10));
        assert_eq!(
            Metered::new(waits_less, clock.clone(), limit, Instant::now()).await,
            Ok(())
        );
        let waits_forever = std::future::pending::<()>();
        let started = Instant::now();
        assert_eq!(
            Metered::new(waits_forever, clock, limit, Instant::now()).await,
            Err(WallClockPassed)
        );
        let waited = started.elapsed();
        assert!(waited >= limit, "{waited:?}");
        assert!(waited < limit * 10, "{waited:?}");
    }
}
