//! The tenant's configuration and secrets, as the operator set them (the host's
//! configuration file, or the admin API's `PUT /v1/tenants/NAME/config`), read through
//! `wasi:config`. A change reaches the next fresh instance.
//!
//! ```no_run
//! use nsbox_guest::{config, App, Reject};
//!
//! fn setup(app: &mut App) {
//!     app.use_middleware(|_socket, handshake| {
//!         let expected = config::get("join_key");
//!         let given = handshake.auth.get("key").and_then(|k| k.as_str());
//!         if expected.is_some() && expected.as_deref() != given {
//!             return Err(Reject::new("unauthorized"));
//!         }
//!         Ok(())
//!     });
//! }
//! # nsbox_guest::export!(setup);
//! ```

use crate::bindings::wasi::config::store;

/// The value of `name`, if the tenant has one.
pub fn get(name: &str) -> Option<String> {
    store::get(name).ok().flatten()
}

/// Every name and value the tenant has, secrets included.
pub fn all() -> Vec<(String, String)> {
    store::get_all().unwrap_or_default()
}
