//! Socket.IO v5 on top of Engine.IO: namespaces (static and dynamic), middleware,
//! sockets, rooms, broadcasts and acks. Knows nothing of Wasm: the tenant layer
//! uses this API as a native Rust app would.

mod client;
pub mod cluster;
mod link;
pub mod msgpack;
pub mod namespace;
pub mod packet;
pub(crate) mod scan;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use regex::Regex;

use crate::config::SocketIoConfig;
use crate::engineio::{Connection, Engine, EngineHandler, Session};
use namespace::observer::{Observer, ObserverSlot};
pub use namespace::{
    AckError, AckSender, BroadcastOperator, BroadcastReplies, DisconnectReason, FallbackHandler,
    Handlers, Handshake, Namespace, ParentNamespace, RecoveryConfig, Socket,
};
pub use packet::{ConnectError, Payload, PayloadError};

/// Finds the namespace a CONNECT names: static namespaces first, then dynamic
/// parents in the order they were added.
pub(crate) struct Resolver {
    pub(crate) config: SocketIoConfig,
    statics: RwLock<HashMap<String, Arc<Namespace>>>,
    parents: RwLock<Vec<Arc<ParentNamespace>>>,
    /// The cluster namespaces created from now on join, if any.
    transport: OnceLock<Arc<dyn cluster::Transport>>,
    /// Whoever watches every namespace, if anyone.
    observer: ObserverSlot,
}

impl Resolver {
    /// The namespace for `name`, marked as having a connection pending.
    pub(crate) fn resolve(&self, name: &str) -> Option<Arc<Namespace>> {
        if let Some(nsp) = self.statics.read().get(name).cloned() {
            nsp.begin_connect();
            return Some(nsp);
        }
        let parents = self.parents.read().clone();
        parents
            .iter()
            .find_map(|parent| parent.child_for_connect(name))
    }
}

/// The Engine.IO handler: one [`client::Client`] per session.
struct Handler(Arc<Resolver>);

impl EngineHandler for Handler {
    fn on_open(&self, session: &Arc<Session>) -> Arc<dyn Connection> {
        client::Client::new(session, self.0.clone())
    }
}

/// A Socket.IO server: its namespaces and the Engine.IO endpoint that carries them.
#[derive(Clone)]
pub struct SocketIo {
    resolver: Arc<Resolver>,
    engine: Arc<Engine>,
}

impl SocketIo {
    /// A server with these settings and no namespaces yet (not even `/`).
    pub fn new(config: SocketIoConfig) -> SocketIo {
        let resolver = Arc::new(Resolver {
            config: config.clone(),
            statics: RwLock::default(),
            parents: RwLock::default(),
            transport: OnceLock::new(),
            observer: ObserverSlot::default(),
        });
        let engine = Engine::new(config.engine, Arc::new(Handler(resolver.clone())));
        SocketIo { resolver, engine }
    }

    /// The Engine.IO endpoint to mount on the HTTP server.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Shares the namespaces created from now on with the other servers `transport`
    /// reaches (call it before adding namespaces). Returns false, changing nothing, if
    /// the server already had a transport.
    pub fn join_cluster(&self, transport: Arc<dyn cluster::Transport>) -> bool {
        self.resolver.transport.set(transport).is_ok()
    }

    fn transport(&self) -> Option<Arc<dyn cluster::Transport>> {
        self.resolver.transport.get().cloned()
    }

    /// Whether the server shares its namespaces with others (see [`SocketIo::join_cluster`]).
    pub fn in_cluster(&self) -> bool {
        self.resolver.transport.get().is_some()
    }

    /// The static namespace `name`, created if it does not exist yet.
    pub fn of(&self, name: &str) -> Arc<Namespace> {
        let mut statics = self.resolver.statics.write();
        statics
            .entry(name.to_owned())
            .or_insert_with(|| {
                Namespace::new(
                    name.to_owned(),
                    None,
                    self.transport(),
                    self.resolver.observer.clone(),
                )
            })
            .clone()
    }

    /// A dynamic namespace: every name matching `pattern` gets a child on first use.
    pub fn dynamic(&self, pattern: Regex) -> Arc<ParentNamespace> {
        let parent =
            ParentNamespace::new(pattern, self.transport(), self.resolver.observer.clone());
        self.resolver.parents.write().push(parent.clone());
        parent
    }

    /// How many sockets are connected, over every namespace (dynamic children included).
    pub fn socket_count(&self) -> usize {
        let statics: usize = self
            .resolver
            .statics
            .read()
            .values()
            .map(|nsp| nsp.socket_count())
            .sum();
        let children: usize = self
            .resolver
            .parents
            .read()
            .iter()
            .flat_map(|parent| parent.children())
            .map(|c| c.socket_count())
            .sum();

        statics + children
    }

    /// Lets `observer` hear every namespace's sockets, rooms and events from now on.
    /// Returns false, changing nothing, if the server already had one.
    pub fn observe(&self, observer: Arc<dyn Observer>) -> bool {
        self.resolver.observer.set(observer).is_ok()
    }

    /// Every namespace with sockets or waiting for some: the static ones and the
    /// dynamic children.
    pub fn namespaces(&self) -> Vec<Arc<Namespace>> {
        let mut all: Vec<Arc<Namespace>> = self.resolver.statics.read().values().cloned().collect();
        all.extend(
            self.resolver
                .parents
                .read()
                .iter()
                .flat_map(|parent| parent.children()),
        );
        all
    }

    /// Closes every connection; sockets leave with `server shutting down`.
    pub fn close(&self) {
        self.engine.close_all();
    }
}
