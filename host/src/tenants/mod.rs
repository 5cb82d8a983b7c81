//! Tenants: each workspace's namespace logic is a WebAssembly component, run by
//! wasmtime behind the namespace API of the Socket.IO layer, exactly where a native
//! Rust handler would sit.
//!
//! - [`runtime`]: the engine, the linker (what a tenant is granted) and compilation;
//!   [`engine`]: the engine's configuration and instance pool; [`LoadError`]: why a
//!   component could not be loaded.
//! - [`compiler`], [`shape`]: untrusted components compiled in a child process under
//!   limits, their shape checked first.
//! - [`bindings`], `contract`: the `nsbox:tenant` worlds (0.2.0, and 0.1.0 still
//!   served) and one face for the actor whichever a component was built for.
//! - `command`: what an actor is asked to do, and how a dropped socket is told.
//! - `handle`: the way to a tenant's actor; rate limits and the queue bound.
//! - `actor`: one instance per tenant, its calls one at a time, its faults, hand-overs.
//! - `clock`, `policy`, `rate`, [`limits`](Limits), [`stats`]: CPU per call, restart
//!   backoff and quarantine, CPU per second, events per second, the limits, the counters.
//! - `state`: the store's data and the host functions a tenant imports: the `host`
//!   interface (send budgets, room and ack limits, handles), `wasi:config` over the
//!   tenant's [`configuration`] and secrets, and (`state::storage`) `wasi:keyvalue`
//!   and `nsbox:tenant/storage` over the host's [`crate::kv`] backend, under quotas.
//! - `log`, `output`, [`journal`]: what a tenant writes (`host.log`, stdout, stderr)
//!   and what the host says about it, cut and rate-limited, to the host's log and to
//!   the tenant's own recent lines (the admin API's `/logs`).
//! - [`registry`]: tenant names to components, and the binding to namespaces.
//! - `slot`: a tenant as its sockets see it, so a new version can take over.
//! - [`builtin`]: the example tenants embedded in the binary.

mod actor;
pub mod bindings;
pub mod builtin;
mod clock;
mod command;
pub mod compiler;
pub mod configuration;
mod contract;
pub mod engine;
mod fault;
mod handle;
pub mod journal;
mod kind;
mod limits;
mod load_error;
mod log;
mod output;
mod policy;
mod rate;
pub mod registry;
pub mod runtime;
pub mod shape;
mod slot;
mod state;
pub mod stats;
#[cfg(all(test, feature = "builtin-tenants"))]
mod tests;
mod ticker;
mod timers;

pub use command::{FAULT_EVENT, REDEPLOY_EVENT};
pub use configuration::TenantConfig;
pub use contract::Contract;
pub use fault::Fault;
pub use handle::TenantHandle;
pub use kind::{Kind, Refusal};
pub use limits::Limits;
pub use load_error::LoadError;
pub use policy::{FaultReport, FaultSink};
pub use registry::Tenants;
pub use runtime::{Code, Runtime, RuntimeOptions};
pub use slot::TenantSlot;
pub use stats::TenantStats;
