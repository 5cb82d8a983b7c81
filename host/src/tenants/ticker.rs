//! The epoch ticker: a thread that advances the engine's epoch while a tenant's code
//! may be running, which is what lets a call's CPU deadline interrupt it (see
//! `actor.rs`).
//!
//! It ticks every [`COARSE_TICK`] while the calls it interrupts are few, and every
//! [`FINE_TICK`] while some call keeps being interrupted (one that runs long, which
//! then yields to its thread's other tasks at every tick). Calls take microseconds:
//! a ticker that woke a thousand times a second took the core from them a thousand
//! times a second, for ticks no call needed (2-3% of a busy server's CPU here).
//! Once no call has run for [`REST_AFTER`] it sleeps until one starts: an idle server
//! would otherwise wake for nothing too.
//!
//! Calls are counted on a few shards, one per thread in turn, so that two threads
//! making calls do not pass one counter's cache line between them on every call.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances while some call keeps being interrupted by it.
const FINE_TICK: Duration = Duration::from_millis(1);

/// How often the epoch advances while calls run but the last tick interrupted none:
/// a call that runs long is interrupted at most this late, and from then on finely.
const COARSE_TICK: Duration = Duration::from_millis(5);

/// How long without a call in progress or begun before the ticker sleeps.
const REST_AFTER: Duration = Duration::from_millis(100);

/// How long the ticker sleeps at most with no call in progress: it looks whether its
/// engine is gone that often.
const IDLE_CHECK: Duration = Duration::from_secs(1);

const SHARDS: usize = 8;

/// The calls one shard's threads began and ended, on a cache line of their own.
#[derive(Default)]
#[repr(align(64))]
struct Shard {
    entered: AtomicU64,
    left: AtomicU64,
}

/// The calls in progress, and the ticker thread to wake when one starts.
#[derive(Default)]
pub(crate) struct Ticker {
    shards: [Shard; SHARDS],
    asleep: AtomicBool,
    /// The times a call was interrupted by a tick (its epoch deadline reached).
    interruptions: AtomicU64,
    thread: OnceLock<Thread>,
    /// Ticks so far.
    ticks: AtomicU64,
}

/// What the ticker saw of the calls: how many had begun, and for how long none has
/// been running or begun.
#[derive(Default)]
struct Quiet {
    entered: u64,
    time: Duration,
}

thread_local! {
    /// The shard this thread counts its calls on.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

impl Ticker {
    /// Starts the thread that ticks `engine`'s epoch; it ends when the engine does.
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Arc<Ticker>> {
        let ticker = Arc::new(Ticker::default());
        let weak = engine.weak();
        let ticking = ticker.clone();
        let thread = std::thread::Builder::new()
            .name("nsbox-epoch".into())
            .spawn(move || {
                let mut quiet = Quiet::default();
                let mut interruptions = 0;
                loop {
                    // Read before this tick: what the previous tick interrupted.
                    let pace = ticking.pace(&mut interruptions);
                    std::thread::sleep(pace);
                    let Some(engine) = weak.upgrade() else { return };
                    engine.increment_epoch();
                    drop(engine);
                    ticking.ticks.fetch_add(1, Ordering::Relaxed);
                    ticking.rest_when_quiet(&mut quiet, pace);
                }
            })?;
        let _ = ticker.thread.set(thread.thread().clone());
        Ok(ticker)
    }

    /// Counts a call in progress until the returned guard is dropped; wakes the ticker
    /// if it sleeps. Every entry into a tenant's code holds one.
    pub(crate) fn running(&self) -> Running<'_> {
        let shard = SHARD.with(|shard| *shard);
        self.shards[shard].entered.fetch_add(1, Ordering::SeqCst);
        // Read after the count is up: either the ticker, about to sleep, sees the
        // count, or this sees that it sleeps (both sides are sequentially consistent).
        if self.asleep.load(Ordering::SeqCst) {
            if let Some(thread) = self.thread.get() {
                thread.unpark();
            }
        }
        Running {
            ticker: self,
            shard,
        }
    }

    /// A call reached its epoch deadline: the ticker ticks finely while calls do.
    /// Called by the epoch callback, on the call's thread.
    pub(crate) fn interrupted(&self) {
        self.interruptions.fetch_add(1, Ordering::Relaxed);
    }

    /// The time to the next tick: fine if a call was interrupted since `seen` was
    /// read (which it then becomes), else coarse.
    fn pace(&self, seen: &mut u64) -> Duration {
        let now = self.interruptions.load(Ordering::Relaxed);
        let pace = if now == *seen { COARSE_TICK } else { FINE_TICK };
        *seen = now;
        pace
    }

    /// How many times the epoch has advanced.
    #[cfg(test)]
    fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// The calls begun so far, and whether none is in progress.
    fn calls(&self) -> (u64, bool) {
        // Those ended first: a shard's calls end after they begin, so what is read of
        // them is never more than what is then read begun.
        let left: u64 = (self.shards.iter())
            .map(|shard| shard.left.load(Ordering::SeqCst))
            .sum();
        let entered: u64 = (self.shards.iter())
            .map(|shard| shard.entered.load(Ordering::SeqCst))
            .sum();
        (entered, entered == left)
    }

    /// On the ticker's thread, after a tick `pace` after the one before: once no call
    /// has run for [`REST_AFTER`], sleeps until one begins (or [`IDLE_CHECK`] passes).
    fn rest_when_quiet(&self, quiet: &mut Quiet, pace: Duration) {
        let (entered, idle) = self.calls();
        if !idle || entered != quiet.entered {
            *quiet = Quiet {
                entered,
                time: Duration::ZERO,
            };
            return;
        }
        quiet.time += pace;
        if quiet.time < REST_AFTER {
            return;
        }
        self.asleep.store(true, Ordering::SeqCst);
        if self.calls() == (entered, true) {
            std::thread::park_timeout(IDLE_CHECK);
        }
        self.asleep.store(false, Ordering::SeqCst);
    }
}

/// A call in progress (see [`Ticker::running`]).
pub(crate) struct Running<'a> {
    ticker: &'a Ticker,
    shard: usize,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.ticker.shards[self.shard]
            .left
            .fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (a bounded number of short sleeps) until `done` holds.
    fn until(mut done: impl FnMut() -> bool) -> bool {
        for _ in 0..5_000 {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        done()
    }

    #[test]
    fn the_epoch_advances_while_a_call_runs_and_rests_otherwise() {
        let engine = Engine::default();
        let ticker = Ticker::start(&engine).expect("the thread starts");
        let rests = || until(|| ticker.asleep.load(Ordering::SeqCst));
        let ticks_on = |n: u64| {
            let before = ticker.ticks();
            until(|| ticker.ticks() >= before + n)
        };
        assert!(rests(), "asleep, idle");
        let call = ticker.running();
        assert!(ticks_on(5), "ticking for a call");
        drop(call);
        assert!(rests(), "asleep again");
        let resting = ticker.ticks();
        std::thread::sleep(Duration::from_millis(100));
        // At most the one look at the engine a second.
        let ticked = ticker.ticks() - resting;
        assert!(ticked <= 1, "{ticked} ticks at rest");
        // Two calls at once, from two threads: ticking until both are over.
        let (first, second) = (ticker.running(), ticker.running());
        let from_elsewhere = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let call = ticker.running();
                    drop(first);
                    let ticked = ticks_on(3);
                    drop(call);
                    ticked
                })
                .join()
        });
        let from_elsewhere = from_elsewhere.expect("the thread ran");
        assert!(from_elsewhere, "ticking for the other thread's call");
        assert!(ticks_on(3), "ticking for the call left");
        drop(second);
        assert!(rests(), "asleep at last");
    }

    #[test]
    fn the_epoch_ticks_coarsely_unless_the_calls_are_interrupted() {
        const TICKS: u64 = 20;
        let engine = Engine::default();
        let ticker = Ticker::start(&engine).expect("the thread starts");
        // How long the next ticks take, while the epoch callback is told (as a call
        // running long makes it) of an interruption between each or not.
        let ticking = |interrupting: bool| {
            let (before, started) = (ticker.ticks(), std::time::Instant::now());
            while ticker.ticks() < before + TICKS {
                assert!(started.elapsed() < Duration::from_secs(5), "ticking");
                if interrupting {
                    ticker.interrupted();
                }
                // Well within a fine tick, so that each tick sees an interruption.
                std::thread::sleep(Duration::from_micros(100));
            }
            started.elapsed()
        };
        let _call = ticker.running();
        let coarse = ticking(false);
        // The first tick may be due at once; every other is the coarse pace apart.
        let least = COARSE_TICK * (TICKS - 1) as u32;
        assert!(
            coarse >= least,
            "{TICKS} ticks in {coarse:?}, not {least:?}"
        );
        let fine = ticking(true);
        assert!(
            fine * 2 < coarse,
            "{TICKS} ticks in {fine:?}, not much faster"
        );
    }

    #[test]
    fn a_loop_that_starts_while_the_ticker_rests_is_still_stopped() {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).expect("an engine");
        let ticker = Ticker::start(&engine).expect("the thread starts");
        let spin = r#"(module (func (export "spin") (loop (br 0))))"#;
        let wasm = wat::parse_str(spin).expect("valid wat");
        let module = wasmtime::Module::new(&engine, wasm).expect("compiles");
        assert!(
            until(|| ticker.asleep.load(Ordering::SeqCst)),
            "asleep, idle"
        );
        let (done, stopped) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut store = wasmtime::Store::new(&engine, ());
                store.set_epoch_deadline(5);
                store.epoch_deadline_trap();
                let instance =
                    wasmtime::Instance::new(&mut store, &module, &[]).expect("instantiates");
                let spin =
                    (instance.get_typed_func::<(), ()>(&mut store, "spin")).expect("exported");
                let _running = ticker.running();
                let _ = done.send(spin.call(&mut store, ()).is_err());
            });
            // Well before the ticker would look again by itself.
            let trapped = stopped.recv_timeout(IDLE_CHECK / 2);
            if trapped.is_err() {
                // Stopped by hand, so that the test fails rather than hangs.
                for _ in 0..10 {
                    engine.increment_epoch();
                }
            }
            assert_eq!(trapped, Ok(true), "the loop was stopped");
        });
    }
}
