//! nsbox: a Socket.IO server whose tenant workspaces are dynamic namespaces.
//!
//! The layers, bottom up, each in its own module:
//! - [`engineio`]: Engine.IO v4 — handshake, long-polling and WebSocket
//!   transports, the upgrade between them, heartbeats. Its packet and payload
//!   codecs are pure functions.
//! - [`socketio`]: Socket.IO v5 — packets, namespaces (static, and dynamic by
//!   regular expression), middleware chains, sockets, rooms, broadcasts, acks.
//! - [`tenants`]: the wasmtime runtime, one actor per tenant, the host functions
//!   and the limits; tenants plug into [`socketio`] as middleware and handlers.
//! - [`server`]: the HTTP/1.1 front door that routes requests to endpoints; [`body`]
//!   reads request bodies within bounds; [`workers`], the threads it deals
//!   connections to (a single-threaded runtime each, for fairness under load).
//! - [`settings`] and [`app`]: the configuration file and the assembly of a server from it.
//!
//! The protocol layers know nothing of WebAssembly; tenants plug into
//! [`socketio`] through the same API a native app uses.
//!
//! Locks: the synchronous ones are `parking_lot`'s and are never poisoned. A panic
//! while one is held is a bug, and it must not take other connections or tenants down
//! with it: the data is left as it was and every other user carries on. Locks are held
//! only for short, non-blocking work, and never across an `.await`.
//!
//! ```no_run
//! use nsbox::{config::SocketIoConfig, server::Server, socketio::{Payload, SocketIo}};
//! # async fn run() -> std::io::Result<()> {
//! let io = SocketIo::new(SocketIoConfig::default());
//! io.of("/").on_connection(|socket| {
//!     socket.on("ping", |socket, args, ack| {
//!         if let Some(ack) = ack { ack.send(args) } else { socket.emit("pong", Payload::default()) }
//!     });
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! Server::new().mount(io.engine().clone()).serve(listener, std::future::pending()).await;
//! # Ok(()) }
//! ```

/// The unit tests allocate as the server does (`main.rs`), so that what the
/// measuring tests (`event_cost`, `connect_cost`) count is what the server spends.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: test_allocator::Counting = test_allocator::Counting;

#[cfg(test)]
#[allow(unsafe_code)] // a global allocator is an unsafe trait; this one only counts
mod test_allocator {
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::Cell;

    /// mimalloc, counting the allocations of each thread: a measuring test reports
    /// them beside its time, a figure that noise does not move.
    pub(crate) struct Counting;

    thread_local! {
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    /// The allocations (a reallocation is one) the calling thread has made.
    pub(crate) fn allocations() -> u64 {
        ALLOCATIONS.get()
    }

    fn counted() {
        ALLOCATIONS.set(ALLOCATIONS.get().wrapping_add(1));
    }

    // SAFETY: every call is passed on to mimalloc as it came.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            counted();
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            counted();
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            counted();
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        }
    }
}

pub mod admin;
pub mod admin_ui;
pub mod app;
pub mod body;
pub mod calendar;
pub mod client_dist;
pub mod cluster;
pub mod config;
pub mod demo_page;
pub mod durable;
pub mod engineio;
pub mod error;
pub mod kv;
pub mod server;
pub mod settings;
pub mod socketio;
pub mod store;
pub mod tenants;
pub mod workers;
