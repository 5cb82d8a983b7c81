//! The contract's exports: each calls the SDK's handler of the same name.
use rquickjs::function::IntoArgs;
use rquickjs::{Array, Ctx, Object, Persistent, Value};

use crate::convert::{args_to_js, handshake_to_js};
use crate::events::{self, Delivered};
use crate::exports::nsbox::tenant::{
    broadcast_handlers, cluster_handlers, handlers, recovery_handlers,
};
use crate::nsbox::tenant::cluster::RemoteSocket;
use crate::nsbox::tenant::types::{AckFailure, Args, Handshake, Rejection};
use crate::with_js;

pub struct Tenant;

/// Ends the call as a fault: the SDK logged the exception that escaped the tenant's code.
fn fault(what: &str) -> ! {
    panic!("{what} threw")
}

/// Calls `object[name](...args)`; what it threw is the error.
fn call<'js>(
    ctx: &Ctx<'js>,
    object: &Persistent<Object<'static>>,
    name: &str,
    args: impl IntoArgs<'js>,
) -> Result<Value<'js>, Value<'js>> {
    let called = object.clone().restore(ctx).and_then(|object| {
        let function: rquickjs::Function = object.get(name)?;
        function.call::<_, Value>(args)
    });
    called.map_err(|_| ctx.catch())
}

/// Calls a handler that returns nothing; an exception is a fault.
fn run<'js>(
    ctx: &Ctx<'js>,
    object: &Persistent<Object<'static>>,
    name: &str,
    args: impl IntoArgs<'js>,
) {
    if call(ctx, object, name, args).is_err() {
        fault(name);
    }
}

impl handlers::Guest for Tenant {
    fn on_start() {
        with_js(|ctx, js| run(ctx, &js.handlers, "onStart", ()))
    }

    fn on_timer(timer: u64) {
        with_js(|ctx, js| run(ctx, &js.handlers, "onTimer", (timer as f64,)))
    }

    fn middleware(socket: u64, handshake: Handshake) -> Result<(), Rejection> {
        with_js(|ctx, js| {
            let handshake = handshake_to_js(ctx, handshake).unwrap_or_else(|_| fault("middleware"));
            let thrown = match call(ctx, &js.handlers, "middleware", (socket as f64, handshake)) {
                Ok(_) => return Ok(()),
                Err(thrown) => thrown,
            };
            // The SDK throws a refusal as `{message, data}`; anything else is a fault.
            let Some(object) = thrown.as_object() else {
                fault("middleware")
            };
            let Ok(message) = object.get::<_, String>("message") else {
                fault("middleware")
            };
            let data: Option<String> = object.get("data").ok().flatten();
            Err(Rejection { message, data })
        })
    }

    fn on_connection(socket: u64) {
        with_js(|ctx, js| run(ctx, &js.handlers, "onConnection", (socket as f64,)))
    }

    fn on_event(socket: u64, event: String, args: Args, ack: Option<u64>) {
        with_js(|ctx, js| {
            let args = match events::deliver(ctx, &js.routes, socket, &event, args, ack) {
                Ok(Delivered::Done) => return,
                Ok(Delivered::Declined(args)) => args,
                Ok(Delivered::Fault) | Err(_) => fault("onEvent"),
            };
            let ack = match ack {
                Some(ack) => Value::new_number(ctx.clone(), ack as f64),
                None => Value::new_null(ctx.clone()),
            };
            let called = js.on_event.clone().restore(ctx).and_then(|on_event| {
                let args = args_to_js(ctx, args)?;
                on_event.call::<_, Value>((socket as f64, event, args, ack))
            });
            if called.is_err() {
                fault("onEvent");
            }
        })
    }

    fn on_disconnect(socket: u64, reason: String) {
        with_js(|ctx, js| run(ctx, &js.handlers, "onDisconnect", (socket as f64, reason)))
    }

    fn on_ack_reply(request: u64, reply: Result<Args, AckFailure>) {
        with_js(|ctx, js| {
            // A `result` as the bindings give it: `{tag: "ok" | "err", val}`.
            let tagged = (|| -> rquickjs::Result<Object<'_>> {
                let tagged = Object::new(ctx.clone())?;
                match reply {
                    Ok(args) => {
                        tagged.set("tag", "ok")?;
                        tagged.set("val", args_to_js(ctx, args)?)?;
                    }
                    Err(failure) => {
                        tagged.set("tag", "err")?;
                        let name = match failure {
                            AckFailure::Timeout => "timeout",
                            AckFailure::Disconnected => "disconnected",
                        };
                        tagged.set("val", name)?;
                    }
                }
                Ok(tagged)
            })()
            .unwrap_or_else(|_| fault("onAckReply"));
            run(ctx, &js.handlers, "onAckReply", (request as f64, tagged))
        })
    }
}

impl cluster_handlers::Guest for Tenant {
    fn on_server_event(event: String, args: Args) {
        with_js(|ctx, js| {
            let args = args_to_js(ctx, args).unwrap_or_else(|_| fault("onServerEvent"));
            run(ctx, &js.cluster, "onServerEvent", (event, args))
        })
    }

    fn on_sockets_fetched(request: u64, sockets: Vec<RemoteSocket>, complete: bool) {
        with_js(|ctx, js| {
            let array = (|| -> rquickjs::Result<Array<'_>> {
                let array = Array::new(ctx.clone())?;
                for (i, socket) in sockets.into_iter().enumerate() {
                    let object = Object::new(ctx.clone())?;
                    object.set("id", socket.id)?;
                    object.set("rooms", socket.rooms)?;
                    array.set(i, object)?;
                }
                Ok(array)
            })()
            .unwrap_or_else(|_| fault("onSocketsFetched"));
            run(
                ctx,
                &js.cluster,
                "onSocketsFetched",
                (request as f64, array, complete),
            )
        })
    }
}

impl broadcast_handlers::Guest for Tenant {
    fn on_broadcast_replies(request: u64, replies: Args, complete: bool) {
        with_js(|ctx, js| {
            let replies = args_to_js(ctx, replies).unwrap_or_else(|_| fault("onBroadcastReplies"));
            run(
                ctx,
                &js.broadcast,
                "onBroadcastReplies",
                (request as f64, replies, complete),
            )
        })
    }
}

impl recovery_handlers::Guest for Tenant {
    fn on_recovered(socket: u64) {
        with_js(|ctx, js| run(ctx, &js.recovery, "onRecovered", (socket as f64,)))
    }
}
