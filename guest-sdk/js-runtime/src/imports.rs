//! The contract's imports as native modules, under the names the SDK imports them by.
use rquickjs::loader::ModuleLoader;
use rquickjs::module::{Declarations, Exports, ModuleDef};
use rquickjs::{Array, Ctx, Function, Object, TypedArray};

use crate::convert::{args_from_js, returned, target_from_js, throw_message};
use crate::nsbox::tenant::types::Level;
use crate::nsbox::tenant::{cluster, host, sockets, timers};
use crate::storage;

/// Every module the SDK may import.
pub const NAMES: [&str; 11] = [
    "nsbox:tenant/host@0.2.3",
    "nsbox:tenant/timers@0.2.3",
    "nsbox:tenant/sockets@0.2.3",
    "nsbox:tenant/cluster@0.2.3",
    "nsbox:tenant/storage@0.2.3",
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:keyvalue/atomics@0.2.0-draft",
    "wasi:keyvalue/batch@0.2.0-draft",
    "wasi:config/store@0.2.0-rc.1",
    "wasi:random/random@0.2.0",
    "nsbox:js-runtime",
];

pub fn loader(loader: ModuleLoader) -> ModuleLoader {
    loader
        .with_module(NAMES[0], HostModule)
        .with_module(NAMES[1], TimersModule)
        .with_module(NAMES[2], SocketsModule)
        .with_module(NAMES[3], ClusterModule)
        .with_module(NAMES[4], storage::StorageModule)
        .with_module(NAMES[5], storage::StoreModule)
        .with_module(NAMES[6], storage::AtomicsModule)
        .with_module(NAMES[7], storage::BatchModule)
        .with_module(NAMES[8], ConfigModule)
        .with_module(NAMES[9], RandomModule)
        .with_module(NAMES[10], RuntimeModule)
}

/// A module whose exports are the given functions.
macro_rules! native_module {
    ($name:ident { $($export:literal => $func:expr),* $(,)? }) => {
        pub struct $name;
        impl ModuleDef for $name {
            fn declare<'js>(decl: &Declarations<'js>) -> rquickjs::Result<()> {
                $(decl.declare($export)?;)*
                Ok(())
            }
            fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> rquickjs::Result<()> {
                $(exports.export($export, Function::new(ctx.clone(), $func)?)?;)*
                Ok(())
            }
        }
    };
}
pub(crate) use native_module;

fn level(name: &str) -> Level {
    match name {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "warn" => Level::Warn,
        "error" => Level::Error,
        _ => Level::Info,
    }
}

native_module!(HostModule {
    "emit" => |ctx: Ctx<'_>, to: f64, event: String, args: Object<'_>| {
        returned(&ctx, host::emit(to as u64, &event, &args_from_js(&args)?))
    },
    "emitVolatile" => |ctx: Ctx<'_>, to: f64, event: String, args: Object<'_>| {
        returned(&ctx, host::emit_volatile(to as u64, &event, &args_from_js(&args)?))
    },
    "broadcast" => |ctx: Ctx<'_>, target: Object<'_>, event: String, args: Object<'_>| {
        returned(&ctx, host::broadcast(&target_from_js(&target)?, &event, &args_from_js(&args)?))
    },
    "broadcastVolatile" => |ctx: Ctx<'_>, target: Object<'_>, event: String, args: Object<'_>| {
        returned(&ctx, host::broadcast_volatile(&target_from_js(&target)?, &event, &args_from_js(&args)?))
    },
    "broadcastWithAck" => |ctx: Ctx<'_>, target: Object<'_>, event: String, args: Object<'_>, ms: u32| {
        let request = host::broadcast_with_ack(&target_from_js(&target)?, &event, &args_from_js(&args)?, ms);
        returned(&ctx, request.map(|request| request as f64))
    },
    "emitWithAck" => |to: f64, event: String, args: Object<'_>, ms: u32| -> rquickjs::Result<f64> {
        Ok(host::emit_with_ack(to as u64, &event, &args_from_js(&args)?, ms) as f64)
    },
    "answer" => |ctx: Ctx<'_>, ack: f64, args: Object<'_>| returned(&ctx, host::answer(ack as u64, &args_from_js(&args)?)),
    "join" => |ctx: Ctx<'_>, socket: f64, room: String| returned(&ctx, host::join(socket as u64, &room)),
    "leave" => |socket: f64, room: String| host::leave(socket as u64, &room),
    "rooms" => |socket: f64| host::rooms(socket as u64),
    "disconnect" => |socket: f64| host::disconnect(socket as u64),
    "log" => |name: String, message: String| host::log(level(&name), &message),
});

native_module!(TimersModule {
    "set" => |ctx: Ctx<'_>, ms: u32, repeat: bool| returned(&ctx, timers::set(ms, repeat).map(|timer| timer as f64)),
    "cancel" => |timer: f64| timers::cancel(timer as u64),
});

fn fetch_sockets<'js>(ctx: Ctx<'js>, target: Object<'js>) -> rquickjs::Result<Array<'js>> {
    let found = sockets::fetch(&target_from_js(&target)?);
    let array = Array::new(ctx.clone())?;
    for (i, info) in found.into_iter().enumerate() {
        let object = Object::new(ctx.clone())?;
        object.set("socket", info.socket as f64)?;
        object.set("id", info.id)?;
        object.set("rooms", info.rooms)?;
        array.set(i, object)?;
    }
    Ok(array)
}

native_module!(SocketsModule {
    "fetch" => fetch_sockets,
    "join" => |target: Object<'_>, room: String| -> rquickjs::Result<u32> { Ok(sockets::join(&target_from_js(&target)?, &room)) },
    "leave" => |target: Object<'_>, room: String| -> rquickjs::Result<u32> { Ok(sockets::leave(&target_from_js(&target)?, &room)) },
    "disconnect" => |target: Object<'_>| -> rquickjs::Result<u32> { Ok(sockets::disconnect(&target_from_js(&target)?)) },
});

native_module!(ClusterModule {
    "emit" => |ctx: Ctx<'_>, event: String, args: Object<'_>| returned(&ctx, cluster::emit(&event, &args_from_js(&args)?)),
    "fetchSockets" => |target: Object<'_>, ms: u32| -> rquickjs::Result<f64> {
        Ok(cluster::fetch_sockets(&target_from_js(&target)?, ms) as f64)
    },
});

native_module!(ConfigModule {
    "get" => |ctx: Ctx<'_>, name: String| -> rquickjs::Result<Option<String>> {
        crate::wasi::config::store::get(&name).or_else(|_| throw_message(&ctx, "the configuration failed"))
    },
    "getAll" => |ctx: Ctx<'_>| -> rquickjs::Result<Vec<Vec<String>>> {
        match crate::wasi::config::store::get_all() {
            Ok(pairs) => Ok(pairs.into_iter().map(|(name, value)| vec![name, value]).collect()),
            Err(_) => throw_message(&ctx, "the configuration failed"),
        }
    },
});

/// `len` random bytes from WASI (preview 1's `random_get`, which the adapter takes
/// from wasi:random).
fn random_bytes<'js>(ctx: Ctx<'js>, len: f64) -> rquickjs::Result<TypedArray<'js, u8>> {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        fn random_get(buf: *mut u8, len: usize) -> u16;
    }
    let mut bytes = vec![0u8; len as usize];
    // SAFETY: the buffer is valid for its length.
    if unsafe { random_get(bytes.as_mut_ptr(), bytes.len()) } != 0 {
        return throw_message(&ctx, "no randomness from the host");
    }
    TypedArray::<u8>::new(ctx, bytes)
}

native_module!(RandomModule { "getRandomBytes" => random_bytes });

// The runtime's own: what the SDK tells it, and the native JSON writer.
native_module!(RuntimeModule {
    "routesChanged" => crate::events::routes_changed,
    "jobsQueued" => crate::events::jobs_queued,
    "plainJson" => crate::json::plain_json,
});
