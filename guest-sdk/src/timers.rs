//! Timers: the tenant calls itself after a delay, once ([`set_timeout`]) or every
//! period ([`set_interval`]), whether or not any client says anything.
//!
//! Timers belong to the instance: a fault, a new version, new limits or an eviction
//! ends them with it. Re-arm what must outlive that in [`App::on_start`](crate::App::on_start).
//!
//! ```no_run
//! use std::time::Duration;
//! use nsbox_guest::{timers, App};
//!
//! fn setup(app: &mut App) {
//!     app.on("remind", |socket, _, _| {
//!         let socket = *socket;
//!         let _ = timers::set_timeout(Duration::from_secs(5), move || {
//!             socket.emit("reminder", ("five seconds",));
//!         });
//!     });
//! }
//! # nsbox_guest::export!(setup);
//! ```

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::bindings::nsbox::tenant::timers as host;

/// A pending timer, to cancel with [`clear_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timer(u64);

enum Callback {
    Once(Box<dyn FnOnce()>),
    Every(Box<dyn FnMut()>),
}

thread_local! {
    static CALLBACKS: RefCell<HashMap<u64, Callback>> = RefCell::new(HashMap::new());
    /// Repeating timers cleared while their own callback ran.
    static CLEARED_WHILE_RUNNING: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// Calls `f` once after `delay`. Fails, saying why, past the tenant's pending timers
/// or under its shortest delay (1,000 and 10 ms by default).
pub fn set_timeout(delay: Duration, f: impl FnOnce() + 'static) -> Result<Timer, String> {
    set(delay, false, Callback::Once(Box::new(f)))
}

/// Calls `f` every `period` until [`clear_timer`]. Fails as [`set_timeout`] does.
pub fn set_interval(period: Duration, f: impl FnMut() + 'static) -> Result<Timer, String> {
    set(period, true, Callback::Every(Box::new(f)))
}

/// Cancels a timer; true if it was pending. A timer may clear itself from its own
/// callback.
pub fn clear_timer(timer: Timer) -> bool {
    let had = CALLBACKS.with(|callbacks| callbacks.borrow_mut().remove(&timer.0).is_some());
    let pending = host::cancel(timer.0);
    if pending && !had {
        // Pending but without its callback: the callback is running, and must not be
        // put back when it returns.
        CLEARED_WHILE_RUNNING.with(|cleared| cleared.borrow_mut().insert(timer.0));
    }
    pending
}

fn set(delay: Duration, repeat: bool, callback: Callback) -> Result<Timer, String> {
    let millis = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
    let id = host::set(millis, repeat)?;
    CALLBACKS.with(|callbacks| callbacks.borrow_mut().insert(id, callback));
    Ok(Timer(id))
}

/// The host says timer `id` is due.
pub(crate) fn fire(id: u64) {
    // Taken out while it runs, so that it may set or clear timers itself.
    let Some(callback) = CALLBACKS.with(|callbacks| callbacks.borrow_mut().remove(&id)) else {
        return;
    };
    match callback {
        Callback::Once(f) => f(),
        Callback::Every(mut f) => {
            f();
            let cleared = CLEARED_WHILE_RUNNING.with(|cleared| cleared.borrow_mut().remove(&id));
            if !cleared {
                CALLBACKS.with(|callbacks| callbacks.borrow_mut().insert(id, Callback::Every(f)));
            }
        }
    }
}
