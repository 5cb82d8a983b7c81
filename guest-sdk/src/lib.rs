//! Write an nsbox tenant in Rust: the namespace logic of one workspace, run by the
//! nsbox host as a sandboxed WebAssembly component, spoken to by the official
//! `socket.io-client`.
//!
//! A tenant registers middleware and handlers in a setup function and exports it
//! with [`export!`]. It reads like socket.io:
//!
//! ```no_run
//! use nsbox_guest::{App, Args, Reject};
//! use serde_json::json;
//!
//! fn setup(app: &mut App) {
//!     // Middleware runs in order; the first rejection is the client's `connect_error`.
//!     app.use_middleware(|socket, handshake| {
//!         match handshake.auth.get("name").and_then(|n| n.as_str()) {
//!             Some(name) => {
//!                 socket.set("name", name);
//!                 Ok(())
//!             }
//!             None => Err(Reject::new("unauthorized").with_data(json!({"reason": "no name"}))),
//!         }
//!     });
//!     app.on_connection(|socket| {
//!         let name: String = socket.get("name").unwrap_or_default();
//!         socket.nsp().emit("joined", json!({ "name": name }));
//!     });
//!     // `socket.emit("echo", ..., reply)` on the client gets these arguments back.
//!     app.on("echo", |_socket, args, ack| {
//!         if let Some(ack) = ack {
//!             let _ = ack.send(args);
//!         }
//!     });
//!     app.on("shout", |socket, args, _ack| {
//!         let room: String = args.get(0).unwrap_or_default();
//!         socket.to(&room).emit("shout", args.skip(1));
//!     });
//!     app.on("join", |socket, args, _ack| {
//!         if let Some(room) = args.get::<String>(0) {
//!             socket.join(&room);
//!         }
//!     });
//! }
//!
//! nsbox_guest::export!(setup);
//! # fn main() {}
//! ```
//!
//! Build it as a `cdylib` for `wasm32-wasip2`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! nsbox-guest = { path = "../nsbox/guest-sdk" }
//! serde_json = "1"
//! ```
//!
//! `cargo build --release --target wasm32-wasip2` then gives
//! `target/wasm32-wasip2/release/<name>.wasm`, the component the host serves.
//!
//! The host calls the tenant one event at a time, so the instance can keep state in
//! ordinary variables (a `thread_local!` or a `static` with a `RefCell`); what must
//! outlive the instance (evicted when idle, replaced on a fault or a new version) goes
//! to [`storage`]. [`timers`] call the tenant without client traffic, [`config`] reads
//! what the operator configured. A call that
//! panics, runs past its CPU deadline or exhausts its memory restarts the instance and
//! disconnects the tenant's sockets (they receive `nsbox:error` first); the WIT file
//! `wit/tenant.wit` says exactly what the host promises.

// The generated bindings name this crate by its absolute path, from inside it too.
extern crate self as nsbox_guest;

pub mod args;
pub mod bindings;
pub mod cluster;
pub mod config;
mod registry;
mod socket;
pub mod storage;
pub mod timers;

pub use args::{Args, ArgsError, IntoArgs};
pub use registry::App;
pub use socket::{
    log, Ack, AckFailure, Broadcast, Handshake, Namespace, Reject, RemoteSocket, Socket,
};

/// Re-exported so tenants need not depend on it themselves.
pub use serde_json;

/// What the [`export!`] macro expands to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::registry::{Exports, Setup};
    pub use wit_bindgen;
}

/// Exports the tenant whose middleware and handlers `setup` registers:
/// `nsbox_guest::export!(setup);` with `fn setup(app: &mut nsbox_guest::App)`.
#[macro_export]
macro_rules! export {
    ($setup:path) => {
        #[doc(hidden)]
        pub struct __NsboxSetup;

        impl $crate::__private::Setup for __NsboxSetup {
            fn setup(app: &mut $crate::App) {
                $setup(app)
            }
        }

        #[doc(hidden)]
        type __NsboxExports = $crate::__private::Exports<__NsboxSetup>;

        $crate::bindings::__export_tenant_world!(__NsboxExports with_types_in $crate::bindings);
    };
}
