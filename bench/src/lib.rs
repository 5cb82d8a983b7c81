//! The benchmark: a Socket.IO load generator speaking Engine.IO v4 over WebSocket
//! ([`client`]), its scenarios ([`scenario`]), the peers it compares ([`servers`], and
//! the ceiling, a bare WebSocket echo: [`raw_echo`])
//! and the report it writes ([`report`]). `cargo run --release -p nsbox-bench` runs it
//! (see `bench/README.md`); the test suite runs a short smoke of the scenarios.

pub mod admin;
pub mod client;
pub mod cluster;
pub mod guests;
pub mod hostile;
pub mod idle;
pub mod metrics;
pub mod raw_echo;
pub mod report;
pub mod scenario;
pub mod servers;
pub mod state;
pub mod tenants;
