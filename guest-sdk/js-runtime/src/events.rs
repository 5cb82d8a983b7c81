//! The fast path of an event: when it has no binary and reaches one listener alone (the
//! SDK's `eventRoutes.route` says which), the runtime parses the arguments, makes the
//! ack function and calls the listener itself, instead of the SDK's `onEvent` doing the
//! same in interpreted JavaScript. What the listener sees is the same either way.
//!
//! The route of a socket's event is kept until the SDK says that routes changed (a
//! listener, a socket middleware or an `onAny` added or removed, a socket gone), and
//! the SDK's promise jobs run only when it said it queued some (`routesChanged` and
//! `jobsQueued` of the native module `nsbox:js-runtime`).
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use rquickjs::function::{Args as CallArgs, Rest};
use rquickjs::{Array, Ctx, Function, Object, Persistent, Value};

use crate::json::PlainJson;
use crate::nsbox::tenant::host;
use crate::nsbox::tenant::types::{Args, Level};

thread_local! {
    /// Counts the SDK's `routesChanged()` calls: a cached route is good while it holds.
    static ROUTES_CHANGED: Cell<u64> = const { Cell::new(0) };
    /// Set by the SDK's `jobsQueued()`: there are promise jobs (or rejections) to see to.
    static JOBS_QUEUED: Cell<bool> = const { Cell::new(false) };
}

/// The SDK's `routesChanged()`.
pub fn routes_changed() {
    ROUTES_CHANGED.with(|changed| changed.set(changed.get() + 1));
}

/// The SDK's `jobsQueued()`.
pub fn jobs_queued() {
    JOBS_QUEUED.with(|queued| queued.set(true));
}

/// A socket's routes found so far: its object and the one listener of each event.
struct SocketRoutes {
    socket: Persistent<Object<'static>>,
    listeners: HashMap<String, Persistent<Function<'static>>>,
}

/// The routes found since routes last changed (`changes` is `ROUTES_CHANGED` then).
#[derive(Default)]
struct RouteCache {
    changes: u64,
    sockets: HashMap<u64, SocketRoutes>,
}

/// The SDK's side of the fast path, and what the ack function needs to tell plain JSON.
pub struct Routes {
    route: Persistent<Function<'static>>,
    answer: Persistent<Function<'static>>,
    run_jobs: Persistent<Function<'static>>,
    fault: Persistent<Function<'static>>,
    cache: RefCell<RouteCache>,
}

impl Routes {
    /// From the bundle's `eventRoutes` export.
    pub fn new<'js>(ctx: &Ctx<'js>, routes: &Object<'js>) -> rquickjs::Result<Self> {
        let function = |name: &str| -> rquickjs::Result<Persistent<Function<'static>>> {
            Ok(Persistent::save(ctx, routes.get::<_, Function>(name)?))
        };
        Ok(Routes {
            route: function("route")?,
            answer: function("answer")?,
            run_jobs: function("runJobs")?,
            fault: function("fault")?,
            cache: RefCell::default(),
        })
    }

    /// The socket object and the listener `event` reaches alone, if it does.
    fn route<'js>(
        &self,
        ctx: &Ctx<'js>,
        socket: u64,
        event: &str,
    ) -> rquickjs::Result<Option<(Object<'js>, Function<'js>)>> {
        let mut cache = self.cache.borrow_mut();
        let changes = ROUTES_CHANGED.with(Cell::get);
        if cache.changes != changes {
            cache.changes = changes;
            cache.sockets.clear();
        }
        if let Some(routes) = cache.sockets.get(&socket) {
            if let Some(listener) = routes.listeners.get(event) {
                return Ok(Some((
                    routes.socket.clone().restore(ctx)?,
                    listener.clone().restore(ctx)?,
                )));
            }
        }
        let route = self.route.clone().restore(ctx)?;
        let found: Value = route.call((socket as f64, event))?;
        let Some(pair) = found.as_array() else {
            return Ok(None);
        };
        let (this, listener): (Object, Function) = (pair.get(0)?, pair.get(1)?);
        // `route` may have changed routes (tenant code is free to): keep only what holds.
        if ROUTES_CHANGED.with(Cell::get) == changes {
            let routes = cache.sockets.entry(socket).or_insert_with(|| SocketRoutes {
                socket: Persistent::save(ctx, this.clone()),
                listeners: HashMap::new(),
            });
            routes
                .listeners
                .insert(event.to_owned(), Persistent::save(ctx, listener.clone()));
        }
        Ok(Some((this, listener)))
    }
}

/// What became of an event offered to the fast path.
pub enum Delivered {
    /// The listener ran and returned.
    Done,
    /// The listener threw; the SDK logged it as a fault.
    Fault,
    /// Not for the fast path: the SDK's `onEvent` takes it.
    Declined(Args),
}

/// Delivers `event` to its one listener if it can.
pub fn deliver<'js>(
    ctx: &Ctx<'js>,
    routes: &Routes,
    socket: u64,
    event: &str,
    args: Args,
    ack: Option<u64>,
) -> rquickjs::Result<Delivered> {
    if !args.attachments.is_empty() {
        return Ok(Delivered::Declined(args));
    }
    let Some((this, listener)) = routes.route(ctx, socket, event)? else {
        return Ok(Delivered::Declined(args));
    };
    let Ok(values) = ctx.json_parse(args.json.as_bytes()) else {
        // The host checks the JSON; should it not be, the SDK's path says why.
        ctx.catch();
        return Ok(Delivered::Declined(args));
    };
    let array = values.as_array();
    let count = array.map_or(1, Array::len);
    let mut call = CallArgs::new(ctx.clone(), count + usize::from(ack.is_some()));
    call.this(this)?;
    match array {
        Some(array) => {
            for value in array.iter::<Value>() {
                call.push_arg(value?)?;
            }
        }
        None => call.push_arg(values.clone())?,
    }
    if let Some(ack) = ack {
        call.push_arg(ack_function(ctx, routes, event.to_owned(), ack)?)?;
    }
    if listener.call_arg::<Value>(call).is_err() {
        return faulted(ctx, routes, event);
    }
    if JOBS_QUEUED.with(Cell::get) {
        let run_jobs = routes.run_jobs.clone().restore(ctx)?;
        if run_jobs.call::<_, Value>(()).is_err() {
            return faulted(ctx, routes, event);
        }
        JOBS_QUEUED.with(|queued| queued.set(false));
    }
    Ok(Delivered::Done)
}

/// The exception pending in `ctx` escaped the listener of `event` (or the promise jobs
/// it queued): the SDK logs it as it logs its own faults.
fn faulted(ctx: &Ctx<'_>, routes: &Routes, event: &str) -> rquickjs::Result<Delivered> {
    let error = ctx.catch();
    let fault = routes.fault.clone().restore(ctx)?;
    // It logs, then throws to end the call: that is the fault.
    let _: rquickjs::Result<Value> = fault.call((event, error));
    ctx.catch();
    Ok(Delivered::Fault)
}

/// The ack function a listener gets: answers once, later calls do nothing. An answer
/// that is plain JSON is encoded and sent here (`json`); anything else (binary, `toJSON`,
/// what only `JSON.stringify` can tell) goes to the SDK's `answer`, as its own ack
/// function does.
fn ack_function<'js>(
    ctx: &Ctx<'js>,
    routes: &Routes,
    event: String,
    ack: u64,
) -> rquickjs::Result<Function<'js>> {
    let answered = Cell::new(false);
    let answer = routes.answer.clone();
    Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>, values: Rest<Value<'js>>| -> rquickjs::Result<()> {
            if answered.replace(true) {
                return Ok(());
            }
            let plain = PlainJson::new(&ctx)?;
            if let Some(json) = plain.array(&values.0) {
                let args = Args {
                    json,
                    attachments: Vec::new(),
                };
                if let Err(message) = host::answer(ack, &args) {
                    let line = format!("the ack of \"{event}\" was refused: {message}");
                    host::log(Level::Warn, &line);
                }
                return Ok(());
            }
            let array = Array::new(ctx.clone())?;
            for (i, value) in values.0.into_iter().enumerate() {
                array.set(i, value)?;
            }
            answer
                .clone()
                .restore(&ctx)?
                .call::<_, Value>((event.as_str(), ack as f64, array))?;
            Ok(())
        },
    )
}
