//! The QuickJS runtime of a JavaScript tenant: built once for `wasm32-wasip1`, then
//! pre-initialised by Wizer with the tenant's bundle (the JS SDK and the tenant's module,
//! evaluated at build time) and made a component of the `nsbox:tenant` world by jco
//! (`guest-sdk/js`'s `nsbox-build`).
//!
//! The contract's imports are native modules under the names the SDK imports them by;
//! its exports call the SDK's `handlers`, `clusterHandlers`, `broadcastHandlers` and
//! `recoveryHandlers`, and an event that can take the fast path goes to its listener
//! directly (`events`). An exception that escapes the SDK is a fault: the call panics,
//! the instance traps and the host ends it (the SDK logged the exception first).
use std::cell::RefCell;

use rquickjs::loader::{BuiltinResolver, ModuleLoader};
use rquickjs::{CaughtError, Context, Ctx, Function, Module, Object, Persistent, Runtime};

wit_bindgen::generate!({ path: "../../wit", world: "tenant", generate_all });

mod convert;
mod events;
mod guest;
mod imports;
mod json;
mod storage;

/// The evaluated bundle: what every export calls into.
struct Js {
    _runtime: Runtime,
    context: Context,
    handlers: Persistent<Object<'static>>,
    cluster: Persistent<Object<'static>>,
    broadcast: Persistent<Object<'static>>,
    recovery: Persistent<Object<'static>>,
    on_event: Persistent<Function<'static>>,
    routes: events::Routes,
}

thread_local! {
    static JS: RefCell<Option<Js>> = const { RefCell::new(None) };
}

/// Runs `f` in the bundle's context.
fn with_js<R>(f: impl for<'js> FnOnce(&Ctx<'js>, &Js) -> R) -> R {
    JS.with(|cell| {
        let slot = cell.borrow();
        let js = slot.as_ref().expect("the bundle was evaluated by Wizer");
        js.context.with(|ctx| f(&ctx, js))
    })
}

/// Ends the build: the module threw at its top level (each line of the message starts
/// `nsbox-js-runtime:`, which is what nsbox-build shows).
fn refuse(error: CaughtError<'_>) -> ! {
    for line in format!("the module threw at its top level: {error}").lines() {
        eprintln!("nsbox-js-runtime: {line}");
    }
    std::process::exit(1)
}

/// Wizer's entry: evaluates the bundle read from stdin, whose state every instance
/// starts from.
#[export_name = "wizer.initialize"]
pub extern "C" fn initialize() {
    let mut source = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut source).expect("the bundle on stdin");
    let runtime = Runtime::new().expect("a QuickJS runtime");
    let mut resolver = BuiltinResolver::default();
    for name in imports::NAMES {
        resolver = resolver.with_module(name);
    }
    runtime.set_loader(resolver, imports::loader(ModuleLoader::default()));
    let context = Context::full(&runtime).expect("a QuickJS context");
    let js = context.with(|ctx| {
        json::remember_prototypes(&ctx).expect("the prototypes");
        let evaluated = Module::declare(ctx.clone(), "tenant", source).and_then(|m| m.eval());
        let (module, promise) = match evaluated {
            Ok(done) => done,
            Err(error) => refuse(CaughtError::from_error(&ctx, error)),
        };
        if let Err(error) = promise.finish::<()>() {
            refuse(CaughtError::from_error(&ctx, error));
        }
        let namespace = module.namespace().expect("the bundle's exports");
        let object = |name: &str| -> Persistent<Object<'static>> {
            let object: Object = namespace.get(name).expect(name);
            Persistent::save(&ctx, object)
        };
        let handlers: Object = namespace.get("handlers").expect("handlers");
        let on_event: Function = handlers.get("onEvent").expect("handlers.onEvent");
        let routes: Object = namespace.get("eventRoutes").expect("eventRoutes");
        let routes = events::Routes::new(&ctx, &routes).expect("eventRoutes' functions");
        Js {
            _runtime: runtime.clone(),
            context: context.clone(),
            handlers: object("handlers"),
            cluster: object("clusterHandlers"),
            broadcast: object("broadcastHandlers"),
            recovery: object("recoveryHandlers"),
            on_event: Persistent::save(&ctx, on_event),
            routes,
        }
    });
    JS.with(|cell| *cell.borrow_mut() = Some(js));
}

use guest::Tenant;
export!(Tenant);
