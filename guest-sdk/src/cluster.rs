//! The tenant's instances on the cluster's other nodes (`nsbox serve --redis`), as
//! socket.io's `serverSideEmit`: what one instance sends, the others receive in
//! [`App::on_server_event`](crate::App::on_server_event). On one node nobody hears it.
//!
//! ```no_run
//! use nsbox_guest::{cluster, App};
//!
//! fn setup(app: &mut App) {
//!     // Tell the other nodes when someone here says "reload".
//!     app.on("reload", |_, args, _| cluster::emit("reload", args));
//!     app.on_server_event(|event, args| {
//!         // ... e.g. forget a cached value
//!         let _ = (event, args);
//!     });
//! }
//! # nsbox_guest::export!(setup);
//! ```

use crate::args::IntoArgs;
use crate::bindings::nsbox::tenant::cluster as host;

/// Sends `event` with `args` to the tenant's instances on the other nodes (and to the
/// Node socket.io servers serving its namespace on the same Redis); not to this one.
pub fn emit(event: &str, args: impl IntoArgs) {
    let _ = try_emit(event, args);
}

/// [`emit`], or why the host refused the arguments (larger than a message may be).
pub fn try_emit(event: &str, args: impl IntoArgs) -> Result<(), String> {
    host::emit(event, &args.into_args().into_wit())
}
