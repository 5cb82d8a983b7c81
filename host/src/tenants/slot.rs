//! A tenant as its sockets see it: a slot holding the version that serves it now.
//! Sockets talk to the slot, so a new version takes over without touching them.

use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::{oneshot, Mutex};

use super::handle::TenantHandle;
use crate::socketio::{ConnectError, Payload, Socket};

/// One tenant: its name, where it is served, and its current version.
pub struct TenantSlot {
    name: String,
    namespace: Option<String>,
    /// Shared, so that finding it per event costs one reference count.
    current: RwLock<Arc<TenantHandle>>,
    /// One change of version at a time.
    changing: Mutex<()>,
}

impl TenantSlot {
    /// A tenant served by `handle`; `namespace` if it is bound to a static namespace
    /// rather than reached through the pattern.
    pub fn new(handle: TenantHandle, namespace: Option<String>) -> Arc<TenantSlot> {
        Arc::new(TenantSlot {
            name: handle.name().to_owned(),
            namespace,
            current: RwLock::new(Arc::new(handle)),
            changing: Mutex::new(()),
        })
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The static namespace it is bound to, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The version serving now.
    pub fn current(&self) -> Arc<TenantHandle> {
        self.current.read().clone()
    }

    fn install(&self, handle: TenantHandle) {
        let handle = Arc::new(handle);
        *self.current.write() = handle;
    }

    /// Runs the tenant's middleware for `socket`; if it passes, the socket's events and
    /// departure go to whichever version serves the tenant when they happen.
    pub async fn admit(self: &Arc<Self>, socket: Arc<Socket>) -> Result<(), ConnectError> {
        let current = self.current();
        let verdict = current.middleware(socket.clone()).await;
        let counter = match verdict {
            Ok(()) => &current.stats().connects_accepted,
            Err(_) => &current.stats().connects_refused,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        verdict?;
        let slot = self.clone();
        // One bucket per socket, kept in its handler: a flood is stopped here, before
        // it costs the guest anything.
        let bucket = parking_lot::Mutex::new(current.socket_bucket());
        socket.on_fallback(move |socket, event, args, ack| {
            let current = slot.current();
            let arrived = std::time::Instant::now();
            if bucket.lock().allow_at(arrived) {
                current.event(socket, event, args, ack, arrived)
            } else {
                current.rate_limited(socket)
            }
        });
        let slot = self.clone();
        socket.on_disconnect(move |socket, reason| slot.current().disconnected(socket, reason));
        Ok(())
    }

    /// Another server asks `socket` to join `room`: the live version decides, under
    /// the room limits.
    pub fn cluster_join(&self, socket: &Arc<Socket>, room: String) {
        self.current().cluster_join(socket, room);
    }

    /// An event the tenant's instance on another node sent, to the live version.
    pub fn server_event(&self, event: &str, args: Payload) {
        self.current().server_event(event, args);
    }

    /// A socket was given back to its client by connection state recovery.
    pub fn recovered(&self, socket: &Arc<Socket>) {
        self.current().recovered(socket);
    }

    /// The socket the middleware admitted was accepted.
    pub fn connected(&self, socket: &Arc<Socket>) {
        self.current().connected(socket);
    }

    /// Makes `next` the serving version. The current one hands its sockets over first
    /// (the new version runs its middleware and `on-connection` for each, and the client
    /// gets `nsbox:redeployed`); returns once `next` serves.
    pub async fn replace(self: &Arc<Self>, next: TenantHandle) {
        self.change(Some(next)).await;
    }

    /// Retires the serving version without a successor: its sockets are told and
    /// disconnected, and new ones are refused.
    pub async fn retire(self: &Arc<Self>) {
        self.change(None).await;
    }

    async fn change(self: &Arc<Self>, next: Option<TenantHandle>) {
        let _one_at_a_time = self.changing.lock().await;
        let (done, installed) = oneshot::channel();
        let slot = self.clone();
        let successor = next.clone();
        self.current().retire(
            next,
            Box::new(move || {
                if let Some(successor) = successor {
                    slot.install(successor);
                }
                let _ = done.send(());
            }),
        );
        let _ = installed.await;
    }
}
