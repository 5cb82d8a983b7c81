//! Which tenant serves which namespace: tenants by name, reached through the
//! namespace pattern (`^/(\w+)$` by default, the capture being the tenant) or bound
//! to a static namespace such as `/admin`.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use regex::Regex;
use serde_json::json;

use super::configuration::TenantConfig;
use super::handle::{Shared, TenantHandle};
use super::kind::Refusal;
use super::limits::Limits;
use super::policy::FaultSink;
use super::runtime::{Code, Runtime};
use super::slot::TenantSlot;
use crate::kv::Backend;
use crate::socketio::{Namespace, SocketIo};

/// The tenants a server runs.
pub struct Tenants {
    runtime: Arc<Runtime>,
    /// The limits of a tenant the configuration says nothing particular about.
    defaults: Limits,
    /// Tenants the configuration gives limits of their own.
    configured: RwLock<HashMap<String, Limits>>,
    /// Configuration the configuration file gives tenants.
    configured_config: RwLock<HashMap<String, TenantConfig>>,
    /// The configuration tenants read: the file's, and the admin API's over it.
    config: RwLock<HashMap<String, Arc<TenantConfig>>>,
    /// Where every tenant's keys are.
    storage: Arc<dyn Backend>,
    slots: RwLock<HashMap<String, Arc<TenantSlot>>>,
    /// The namespace pattern the tenants without a static namespace are reached by.
    pattern: RwLock<Option<Arc<Regex>>>,
    /// Where the instances started from now on tell their faults.
    faults: RwLock<Option<FaultSink>>,
}

impl Tenants {
    /// No tenants yet; each runs under `defaults` unless given limits of its own, and
    /// keeps its keys in `storage`.
    pub fn new(runtime: Arc<Runtime>, defaults: Limits, storage: Arc<dyn Backend>) -> Arc<Tenants> {
        Arc::new(Tenants {
            runtime,
            defaults,
            configured: RwLock::default(),
            configured_config: RwLock::default(),
            config: RwLock::default(),
            storage,
            slots: RwLock::default(),
            pattern: RwLock::default(),
            faults: RwLock::default(),
        })
    }

    /// The shared runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Gives tenant `name` limits of its own in the configuration (before it runs).
    pub fn configure_limits(&self, name: &str, limits: Limits) {
        self.configured.write().insert(name.to_owned(), limits);
    }

    /// Gives tenant `name` the configuration file's configuration (before it runs).
    pub fn configure(&self, name: &str, config: TenantConfig) {
        self.config
            .write()
            .insert(name.to_owned(), Arc::new(config.clone()));
        self.configured_config
            .write()
            .insert(name.to_owned(), config);
    }

    /// The configuration tenant `name` reads.
    pub fn config(&self, name: &str) -> Arc<TenantConfig> {
        self.config.read().get(name).cloned().unwrap_or_default()
    }

    /// Sets what the admin API gives tenant `name` over the configuration file's, for
    /// the instances started from now on.
    pub fn keep_config(&self, name: &str, api: &TenantConfig) {
        let file = self.configured_config.read().get(name).cloned();
        let merged = Arc::new(file.unwrap_or_default().overlaid(api));
        self.config.write().insert(name.to_owned(), merged);
    }

    /// Tells `sink` every fault that counts toward quarantine, of the versions started
    /// from now on (in a cluster, where every node's faults are counted together).
    pub fn report_faults(&self, sink: FaultSink) {
        *self.faults.write() = Some(sink);
    }

    /// Where every tenant's keys are.
    pub fn storage(&self) -> &Arc<dyn Backend> {
        &self.storage
    }

    /// The limits the configuration gives tenant `name`: its own, else the defaults.
    /// The admin API's overrides go on top of these.
    pub fn configured_limits(&self, name: &str) -> Limits {
        self.configured
            .read()
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.defaults.clone())
    }

    /// A tenant's limits: the configuration's, then the admin API's `overrides` on top.
    /// An override that no longer applies (a limit renamed since) is logged and left out.
    pub fn limits_with_overrides(
        &self,
        name: &str,
        overrides: &serde_json::Map<String, serde_json::Value>,
    ) -> Limits {
        let configured = self.configured_limits(name);
        configured.overlaid(overrides).unwrap_or_else(|error| {
            tracing::error!(tenant = %name, %error, "stored limit overrides ignored");
            configured
        })
    }

    /// Serves tenant `name` with `code` (its `version`, 0 when it has none) under
    /// `limits`. A tenant of that name hands its sockets over to the new version;
    /// otherwise the tenant is new, reached through the pattern. Returns once the new
    /// version serves.
    pub async fn deploy(
        &self,
        name: &str,
        version: u64,
        code: Arc<Code>,
        limits: Limits,
    ) -> Arc<TenantSlot> {
        let handle = self.spawn(name, version, code, limits);
        if let Some(slot) = self.get(name) {
            slot.replace(handle).await;
            return slot;
        }
        self.add(handle, None)
    }

    /// Runs a live tenant's current version again under other limits: a fresh instance
    /// (reading the tenant's configuration as it now is), its sockets carried over as on
    /// a redeploy. Returns whether the tenant was live.
    pub async fn set_limits(&self, name: &str, limits: Limits) -> bool {
        let Some(slot) = self.get(name) else {
            return false;
        };
        let current = slot.current();
        let handle = self.spawn(name, current.version(), current.code().clone(), limits);
        slot.replace(handle).await;
        true
    }

    /// Adds a tenant bound to a static namespace under its configured limits; serve it
    /// with [`Tenants::serve_static`].
    pub fn add_static(&self, name: &str, code: Arc<Code>, namespace: &str) -> Arc<TenantSlot> {
        let handle = self.spawn(name, 0, code, self.configured_limits(name));
        self.add(handle, Some(namespace.to_owned()))
    }

    fn spawn(&self, name: &str, version: u64, code: Arc<Code>, limits: Limits) -> TenantHandle {
        // A tenant's counters and recent lines outlive its versions.
        let (stats, journal) = self
            .get(name)
            .map(|slot| {
                let current = slot.current();
                (current.stats().clone(), current.journal().clone())
            })
            .unwrap_or_default();
        let shared = Shared {
            stats,
            journal,
            storage: self.storage.clone(),
            config: self.config(name),
            faults: self.faults.read().clone(),
        };
        super::actor::spawn(name, version, self.runtime.clone(), code, limits, shared)
    }

    fn add(&self, handle: TenantHandle, namespace: Option<String>) -> Arc<TenantSlot> {
        let slot = TenantSlot::new(handle, namespace);
        self.slots
            .write()
            .insert(slot.name().to_owned(), slot.clone());
        slot
    }

    /// Removes a tenant: its sockets are told and disconnected, new ones refused.
    /// Returns whether there was one.
    pub async fn remove(&self, name: &str) -> bool {
        let slot = self.slots.write().remove(name);
        let file = self.configured_config.read().get(name).cloned();
        match file {
            Some(file) => self.config.write().insert(name.to_owned(), Arc::new(file)),
            None => self.config.write().remove(name),
        };
        match slot {
            Some(slot) => {
                slot.retire().await;
                true
            }
            None => false,
        }
    }

    /// The tenant of that name.
    pub fn get(&self, name: &str) -> Option<Arc<TenantSlot>> {
        self.slots.read().get(name).cloned()
    }

    /// The tenant the pattern reaches under that name (not one bound to a static namespace).
    fn by_pattern(&self, name: &str) -> Option<Arc<TenantSlot>> {
        self.get(name).filter(|slot| slot.namespace().is_none())
    }

    /// The names of all tenants, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.slots.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// A page of the tenants `keep` selects by name, sorted by `key` (ties by name) or,
    /// without one, by name; `descending` turns the key's order (or the names'):
    /// `limit` names from `offset`, and how many were selected. Only the page's names
    /// are copied, under one read of the registry: a list of 100,000 tenants costs a
    /// filter and a sort of references.
    pub fn page(
        &self,
        keep: impl Fn(&str) -> bool,
        key: Option<&dyn Fn(&TenantSlot) -> u64>,
        descending: bool,
        (offset, limit): (usize, usize),
    ) -> (Vec<String>, usize) {
        let slots = self.slots.read();
        let mut chosen: Vec<(u64, &str)> = slots
            .iter()
            .filter(|(name, _)| keep(name))
            .map(|(name, slot)| (key.map_or(0, |key| key(slot)), name.as_str()))
            .collect();
        chosen.sort_unstable_by(|a, b| {
            let by_key = match descending && key.is_some() {
                true => b.0.cmp(&a.0),
                false => a.0.cmp(&b.0),
            };
            let by_name = match descending && key.is_none() {
                true => b.1.cmp(a.1),
                false => a.1.cmp(b.1),
            };
            by_key.then(by_name)
        });
        let total = chosen.len();
        let page = chosen
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(_, name)| (*name).to_owned())
            .collect();
        (page, total)
    }

    /// Serves every namespace `pattern` matches with the tenant its first capture (or,
    /// without one, the name after the `/`) names. A namespace whose tenant does not
    /// exist is refused with `connect_error` `unknown tenant`.
    pub fn serve_pattern(self: &Arc<Self>, io: &SocketIo, pattern: Regex) {
        let parent = io.dynamic(pattern.clone());
        parent.cleanup_empty_children(true);
        *self.pattern.write() = Some(Arc::new(pattern));
        let tenants = self.clone();
        parent.use_middleware(move |socket| {
            let name = tenant_of(socket.nsp());
            let slot = tenants.by_pattern(name).ok_or_else(|| {
                Refusal::UnknownTenant
                    .with_data(json!({ "namespace": socket.nsp().name(), "tenant": name }))
            });
            async move { slot?.admit(socket).await }
        });
        let tenants = self.clone();
        parent.on_server_event(move |namespace, event, args| {
            if let Some(slot) = tenants.by_pattern(tenant_of(namespace)) {
                slot.server_event(event, args);
            }
        });
        let tenants = self.clone();
        parent.on_cluster_join(move |socket, room| {
            if let Some(slot) = tenants.by_pattern(tenant_of(socket.nsp())) {
                slot.cluster_join(socket, room);
            }
        });
        let tenants = self.clone();
        parent.recover_sessions(move |namespace| {
            let slot = tenants.by_pattern(tenant_of(namespace))?;
            slot.current().limits().recovery()
        });
        let tenants = self.clone();
        parent.on_recovered(move |socket| {
            if let Some(slot) = tenants.by_pattern(tenant_of(socket.nsp())) {
                slot.recovered(socket);
            }
        });
        let tenants = self.clone();
        parent.on_connection(move |socket| {
            if let Some(slot) = tenants.by_pattern(tenant_of(socket.nsp())) {
                slot.connected(socket);
            }
        });
    }

    /// The namespace that reaches tenant `name`: its static one, else `/NAME` when the
    /// pattern maps that to it (as the default `^/(\w+)$` does). A pattern of another
    /// shape has no single namespace to show (see [`Tenants::pattern`]).
    pub fn namespace_of(&self, name: &str) -> Option<String> {
        let slot = self.get(name)?;
        if let Some(namespace) = slot.namespace() {
            return Some(namespace.to_owned());
        }
        let pattern = self.pattern()?;
        let candidate = format!("/{name}");
        (pattern.is_match(&candidate) && tenant_name(&pattern, &candidate) == name)
            .then_some(candidate)
    }

    /// The tenant that namespace `namespace` reaches, if any: the one bound to it as
    /// its static namespace, else the one the pattern names.
    pub fn tenant_serving(&self, namespace: &str) -> Option<String> {
        let slots = self.slots.read();
        if let Some(slot) = slots
            .values()
            .find(|slot| slot.namespace() == Some(namespace))
        {
            return Some(slot.name().to_owned());
        }
        drop(slots);
        let pattern = self.pattern()?;
        if !pattern.is_match(namespace) {
            return None;
        }
        let name = tenant_name(&pattern, namespace);
        self.by_pattern(name).map(|slot| slot.name().to_owned())
    }

    /// The namespace pattern, once served.
    pub fn pattern(&self) -> Option<Arc<Regex>> {
        self.pattern.read().clone()
    }

    /// Serves the tenant's static namespace.
    pub fn serve_static(&self, io: &SocketIo, slot: Arc<TenantSlot>) {
        let Some(namespace) = slot.namespace() else {
            return;
        };
        let nsp = io.of(namespace);
        let admitting = slot.clone();
        nsp.use_middleware(move |socket| {
            let slot = admitting.clone();
            async move { slot.admit(socket).await }
        });
        let (hearing, joining) = (slot.clone(), slot.clone());
        nsp.handlers()
            .on_server_event(move |_, event, args| hearing.server_event(event, args));
        let (policy, recovering) = (slot.clone(), slot.clone());
        nsp.handlers()
            .recover_sessions(move |_| policy.current().limits().recovery());
        nsp.handlers()
            .on_recovered(move |socket| recovering.recovered(socket));
        nsp.handlers()
            .on_cluster_join(move |socket, room| joining.cluster_join(socket, room));
        nsp.on_connection(move |socket| slot.connected(socket));
    }
}

/// The tenant a namespace belongs to: the pattern's first capture, else the name
/// without its leading `/`.
pub fn tenant_name<'a>(pattern: &Regex, namespace: &'a str) -> &'a str {
    let captured = pattern.captures(namespace).and_then(|c| c.get(1));
    named(captured.map(|m| m.as_str()), namespace)
}

/// [`tenant_name`] of a child of the pattern's dynamic namespace, from what the pattern
/// captured when the child was made: no regular expression per socket.
fn tenant_of(namespace: &Namespace) -> &str {
    named(namespace.captured(), namespace.name())
}

/// The tenant's name: what the pattern captured, else the namespace without its `/`.
fn named<'a>(captured: Option<&'a str>, namespace: &'a str) -> &'a str {
    captured.unwrap_or_else(|| namespace.trim_start_matches('/'))
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

    #[cfg(feature = "builtin-tenants")]
    #[tokio::test]
    async fn a_tenant_shows_its_namespace_only_when_the_pattern_gives_one() {
        let runtime = Runtime::new().expect("the engine starts");
        let echo = super::super::builtin::component("echo").expect("built in");
        let code = runtime
            .compile_off_thread(echo, None)
            .await
            .expect("compiles");
        for (pattern, namespace) in [
            (r"^/(\w+)$", Some("/acme")),
            (r"^/(\w+)-v\d$", None),
            (r"^/ws/(\w+)$", None),
        ] {
            let tenants = Tenants::new(runtime.clone(), Limits::default(), crate::kv::memory());
            tenants
                .deploy("acme", 0, code.clone(), Limits::default())
                .await;
            assert_eq!(tenants.namespace_of("acme"), None, "no pattern served yet");
            let io = SocketIo::new(crate::config::SocketIoConfig::default());
            tenants.serve_pattern(&io, Regex::new(pattern).expect("a valid pattern"));
            assert_eq!(
                tenants.namespace_of("acme").as_deref(),
                namespace,
                "{pattern}"
            );
            assert_eq!(
                tenants.pattern().map(|p| p.as_str().to_owned()).as_deref(),
                Some(pattern)
            );
            assert_eq!(tenants.namespace_of("nobody"), None);
        }
    }
}
