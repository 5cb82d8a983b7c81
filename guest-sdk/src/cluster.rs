//! The tenant's instances on the cluster's other nodes (`nsbox serve --redis`), as
//! socket.io's `serverSideEmit`: what one instance sends, the others receive in
//! [`App::on_server_event`](crate::App::on_server_event). On one node nobody hears it.
//! The sockets of the other servers are
//! [`Broadcast::fetch_sockets_elsewhere`](crate::Broadcast::fetch_sockets_elsewhere)'s.
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

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use crate::args::IntoArgs;
use crate::bindings::nsbox::tenant::cluster as host;
use crate::bindings::nsbox::tenant::types::Target;

/// A socket of another server, as [`Broadcast::fetch_sockets_elsewhere`](crate::Broadcast::fetch_sockets_elsewhere) found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSocket {
    /// Its Socket.IO id.
    pub id: String,
    /// The rooms it is in, its own included.
    pub rooms: Vec<String>,
}

type FetchReply = Box<dyn FnOnce(Vec<ClusterSocket>, bool)>;

thread_local! {
    static FETCHES: RefCell<HashMap<u64, FetchReply>> = RefCell::new(HashMap::new());
}

pub(crate) fn fetch_sockets(target: &Target, timeout: Duration, reply: FetchReply) {
    let millis = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let request = host::fetch_sockets(target, millis);
    FETCHES.with(|fetches| fetches.borrow_mut().insert(request, reply));
}

/// The answer to a fetch, to the reply that waits for it.
pub(crate) fn fetched(request: u64, sockets: Vec<host::RemoteSocket>, complete: bool) {
    let reply = FETCHES.with(|fetches| fetches.borrow_mut().remove(&request));
    if let Some(reply) = reply {
        let sockets = sockets
            .into_iter()
            .map(|s| ClusterSocket {
                id: s.id,
                rooms: s.rooms,
            })
            .collect();
        reply(sockets, complete);
    }
}

/// Sends `event` with `args` to the tenant's instances on the other nodes (and to the
/// Node socket.io servers serving its namespace on the same Redis); not to this one.
pub fn emit(event: &str, args: impl IntoArgs) {
    let _ = try_emit(event, args);
}

/// [`emit`], or why the host refused the arguments (larger than a message may be).
pub fn try_emit(event: &str, args: impl IntoArgs) -> Result<(), String> {
    host::emit(event, &args.into_args().into_wit())
}
