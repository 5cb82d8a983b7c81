//! Which tenant serves which namespace: tenants by name, reached through the
//! namespace pattern (`^/(\w+)$` by default, the capture being the tenant) or bound
//! to a static namespace such as `/admin`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use regex::Regex;
use serde_json::json;

use super::actor::TenantHandle;
use super::limits::Limits;
use super::runtime::{Code, Runtime};
use crate::socketio::{ConnectError, SocketIo};

/// The tenants a server runs.
pub struct Tenants {
    runtime: Arc<Runtime>,
    limits: Limits,
    by_name: RwLock<HashMap<String, TenantHandle>>,
}

impl Tenants {
    /// No tenants yet; each added one runs under `limits`.
    pub fn new(runtime: Arc<Runtime>, limits: Limits) -> Arc<Tenants> {
        Arc::new(Tenants {
            runtime,
            limits,
            by_name: RwLock::default(),
        })
    }

    /// The shared runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Starts a tenant running `code`, reachable through the namespace pattern, and
    /// returns its handle. A tenant of the same name is replaced.
    pub fn insert(&self, name: &str, code: Arc<Code>) -> TenantHandle {
        let handle = self.start(name, code);
        if let Ok(mut tenants) = self.by_name.write() {
            tenants.insert(name.to_owned(), handle.clone());
        }
        handle
    }

    /// Starts a tenant that no pattern reaches, for [`Tenants::serve_static`].
    pub fn start(&self, name: &str, code: Arc<Code>) -> TenantHandle {
        TenantHandle::spawn(name, self.runtime.clone(), code, self.limits.clone())
    }

    /// The tenant of that name reachable through the pattern.
    pub fn get(&self, name: &str) -> Option<TenantHandle> {
        self.by_name.read().ok()?.get(name).cloned()
    }

    /// The names of the tenants reachable through the pattern.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .by_name
            .read()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Serves every namespace `pattern` matches with the tenant its first capture (or,
    /// without one, the name after the `/`) names. A namespace whose tenant does not
    /// exist is refused with `connect_error` `unknown tenant`.
    pub fn serve_pattern(self: &Arc<Self>, io: &SocketIo, pattern: Regex) {
        let parent = io.dynamic(pattern.clone());
        parent.cleanup_empty_children(true);
        let pattern = Arc::new(pattern);
        let (tenants, names) = (self.clone(), pattern.clone());
        parent.use_middleware(move |socket| {
            let tenants = tenants.clone();
            let name = tenant_name(&names, socket.nsp().name());
            async move {
                let Some(tenant) = tenants.get(&name) else {
                    return Err(ConnectError::with_data(
                        "unknown tenant",
                        json!({ "namespace": socket.nsp().name(), "tenant": name }),
                    ));
                };
                tenant.admit(socket).await
            }
        });
        let tenants = self.clone();
        parent.on_connection(move |socket| {
            if let Some(tenant) = tenants.get(&tenant_name(&pattern, socket.nsp().name())) {
                tenant.connected(socket);
            }
        });
    }

    /// Serves the static namespace `namespace` with `tenant`.
    pub fn serve_static(&self, io: &SocketIo, namespace: &str, tenant: TenantHandle) {
        let nsp = io.of(namespace);
        let admitting = tenant.clone();
        nsp.use_middleware(move |socket| {
            let tenant = admitting.clone();
            async move { tenant.admit(socket).await }
        });
        nsp.on_connection(move |socket| tenant.connected(socket));
    }
}

/// The tenant a namespace belongs to: the pattern's first capture, else the name
/// without its leading `/`.
pub fn tenant_name(pattern: &Regex, namespace: &str) -> String {
    pattern
        .captures(namespace)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| namespace.trim_start_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capture_names_the_tenant() {
        let pattern = Regex::new(r"^/(\w+)$").expect("a valid pattern");
        assert_eq!(tenant_name(&pattern, "/acme"), "acme");
        let prefixed = Regex::new(r"^/ws-(\w+)$").expect("a valid pattern");
        assert_eq!(tenant_name(&prefixed, "/ws-globex"), "globex");
        let bare = Regex::new(r"^/\w+$").expect("a valid pattern");
        assert_eq!(tenant_name(&bare, "/t1"), "t1");
    }
}
