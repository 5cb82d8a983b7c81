//! The fast path of an event: when it has no binary and reaches one listener alone (the
//! SDK's `eventRoutes.route` says which), the runtime parses the arguments, makes the
//! ack function and calls the listener itself, instead of the SDK's `onEvent` doing the
//! same in interpreted JavaScript. What the listener sees is the same either way.
use std::cell::Cell;

use rquickjs::function::{Args as CallArgs, Rest};
use rquickjs::{Array, Ctx, Function, Object, Persistent, Value};

use crate::nsbox::tenant::host;
use crate::nsbox::tenant::types::{Args, Level};

/// The SDK's side of the fast path, and what the ack function needs to tell plain JSON.
pub struct Routes {
    route: Persistent<Function<'static>>,
    answer: Persistent<Function<'static>>,
    run_jobs: Persistent<Function<'static>>,
    fault: Persistent<Function<'static>>,
    array_prototype: Persistent<Object<'static>>,
    object_prototype: Persistent<Object<'static>>,
}

impl Routes {
    /// From the bundle's `eventRoutes` export.
    pub fn new<'js>(ctx: &Ctx<'js>, routes: &Object<'js>) -> rquickjs::Result<Self> {
        let function = |name: &str| -> rquickjs::Result<Persistent<Function<'static>>> {
            Ok(Persistent::save(ctx, routes.get::<_, Function>(name)?))
        };
        let prototype = |constructor: &str| -> rquickjs::Result<Persistent<Object<'static>>> {
            let constructor: Object = ctx.globals().get(constructor)?;
            Ok(Persistent::save(
                ctx,
                constructor.get::<_, Object>("prototype")?,
            ))
        };
        Ok(Routes {
            route: function("route")?,
            answer: function("answer")?,
            run_jobs: function("runJobs")?,
            fault: function("fault")?,
            array_prototype: prototype("Array")?,
            object_prototype: prototype("Object")?,
        })
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
    event: String,
    args: Args,
    ack: Option<u64>,
) -> rquickjs::Result<Delivered> {
    if !args.attachments.is_empty() {
        return Ok(Delivered::Declined(args));
    }
    let route = routes.route.clone().restore(ctx)?;
    let found: Value = route.call((socket as f64, event.as_str()))?;
    let Some(pair) = found.as_array() else {
        return Ok(Delivered::Declined(args));
    };
    let (this, listener): (Value, Function) = (pair.get(0)?, pair.get(1)?);
    let Ok(values) = ctx.json_parse(args.json.as_bytes()) else {
        // The host checks the JSON; should it not be, the SDK's path says why.
        ctx.catch();
        return Ok(Delivered::Declined(args));
    };
    let count = values.as_array().map_or(1, Array::len);
    let mut call = CallArgs::new(ctx.clone(), count + usize::from(ack.is_some()));
    call.this(this)?;
    match values.as_array() {
        Some(array) => call.push_args(
            array
                .iter::<Value>()
                .collect::<rquickjs::Result<Vec<_>>>()?,
        )?,
        None => call.push_arg(values)?,
    }
    if let Some(ack) = ack {
        call.push_arg(ack_function(ctx, routes, event.clone(), ack)?)?;
    }
    if listener.call_arg::<Value>(call).is_err() {
        let error = ctx.catch();
        let fault = routes.fault.clone().restore(ctx)?;
        let _: rquickjs::Result<Value> = fault.call((event, error));
        ctx.catch();
        return Ok(Delivered::Fault);
    }
    let run_jobs = routes.run_jobs.clone().restore(ctx)?;
    if run_jobs.call::<_, Value>(()).is_err() {
        let error = ctx.catch();
        let fault = routes.fault.clone().restore(ctx)?;
        let _: rquickjs::Result<Value> = fault.call((event, error));
        ctx.catch();
        return Ok(Delivered::Fault);
    }
    Ok(Delivered::Done)
}

/// The ack function a listener gets: answers once, later calls do nothing. An answer
/// that is plain JSON is encoded and sent here; anything else (binary, or what only
/// `JSON.stringify` can tell) goes to the SDK's `answer`, as its own ack function does.
fn ack_function<'js>(
    ctx: &Ctx<'js>,
    routes: &Routes,
    event: String,
    ack: u64,
) -> rquickjs::Result<Function<'js>> {
    let answered = Cell::new(false);
    let answer = routes.answer.clone();
    let prototypes = (
        routes.array_prototype.clone(),
        routes.object_prototype.clone(),
    );
    Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>, values: Rest<Value<'js>>| -> rquickjs::Result<()> {
            if answered.replace(true) {
                return Ok(());
            }
            let array = Array::new(ctx.clone())?;
            let (array_prototype, object_prototype) = (
                prototypes.0.clone().restore(&ctx)?,
                prototypes.1.clone().restore(&ctx)?,
            );
            let mut plain = true;
            for (i, value) in values.0.into_iter().enumerate() {
                plain = plain && is_plain(&value, &array_prototype, &object_prototype, 0);
                array.set(i, value)?;
            }
            if plain {
                if let Ok(json) = ctx.json_stringify(array.clone()) {
                    let json = json
                        .map(|json| json.to_string())
                        .transpose()?
                        .unwrap_or_default();
                    if let Err(message) = host::answer(
                        ack,
                        &Args {
                            json,
                            attachments: Vec::new(),
                        },
                    ) {
                        host::log(
                            Level::Warn,
                            &format!("the ack of \"{event}\" was refused: {message}"),
                        );
                    }
                    return Ok(());
                }
                ctx.catch();
            }
            answer
                .clone()
                .restore(&ctx)?
                .call::<_, Value>((event.as_str(), ack as f64, array))?;
            Ok(())
        },
    )
}

/// Whether `value` is JSON without binary for certain: a primitive, or an array or a
/// plain object of such values. `false` leaves it to the SDK's encoding.
fn is_plain<'js>(
    value: &Value<'js>,
    array_prototype: &Object<'js>,
    object_prototype: &Object<'js>,
    depth: u32,
) -> bool {
    let Some(object) = value.as_object() else {
        return true;
    };
    if value.is_function() {
        return true;
    }
    if depth > 200 {
        return false;
    }
    match object.get_prototype() {
        Some(prototype) if prototype == *array_prototype => {
            object.as_array().is_some_and(|array| {
                array.iter::<Value>().all(|item| {
                    item.is_ok_and(|item| {
                        is_plain(&item, array_prototype, object_prototype, depth + 1)
                    })
                })
            })
        }
        Some(prototype) if prototype == *object_prototype => {
            object.props::<rquickjs::Atom, Value>().all(|entry| {
                entry.is_ok_and(|(_, item)| {
                    is_plain(&item, array_prototype, object_prototype, depth + 1)
                })
            })
        }
        _ => false,
    }
}
