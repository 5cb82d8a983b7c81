//! One integration binary; a module per area.

mod bench_smoke;
mod js_client;
mod layout;
mod uploads;
