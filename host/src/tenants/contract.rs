//! The versions of the `nsbox:tenant` contract a component may be built for, and one
//! face for the actor whichever it is: the current one (0.2, its exports in the
//! `handlers` interface; since 0.2.1 `cluster-handlers`, since 0.2.2
//! `broadcast-handlers` and since 0.2.3 `recovery-handlers` when the component exports
//! them) and 0.1.0 (its exports at the top level of the world), served unchanged so that
//! stored uploads survive a host upgrade. Their types are the same (`bindings::v0_1`
//! uses 0.2's); 0.1.0's host functions are 0.2's.

use wasmtime::component::{ComponentExportIndex, InstancePre, TypedFunc};
use wasmtime::Store;

use super::bindings::nsbox::tenant::cluster::RemoteSocket;
use super::bindings::nsbox::tenant::types::{
    AckFailure, Args, Handshake, Level, Rejection, Target,
};
use super::bindings::{v0_1, Tenant, TenantPre};
use super::state::TenantState;

/// A contract version, as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `nsbox:tenant@0.2.3`: 0.2.2 and connection state recovery.
    V0_2_3,
    /// `nsbox:tenant@0.2.2`: 0.2.1 and broadcasts with acknowledgements.
    V0_2_2,
    /// `nsbox:tenant@0.2.1`: 0.2.0 and the cluster.
    V0_2_1,
    /// `nsbox:tenant@0.2.0`.
    V0_2,
    /// `nsbox:tenant@0.1.0`.
    V0_1,
}

impl Contract {
    /// The version, e.g. `0.2.0`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Contract::V0_2_3 => "0.2.3",
            Contract::V0_2_2 => "0.2.2",
            Contract::V0_2_1 => "0.2.1",
            Contract::V0_2 => "0.2.0",
            Contract::V0_1 => "0.1.0",
        }
    }
}

/// The interfaces of the exports a component may add (found at any later 0.2
/// version: wasmtime looks exports up as semver-compatible).
const CLUSTER_HANDLERS: &str = "nsbox:tenant/cluster-handlers@0.2.1";
const BROADCAST_HANDLERS: &str = "nsbox:tenant/broadcast-handlers@0.2.2";
const RECOVERY_HANDLERS: &str = "nsbox:tenant/recovery-handlers@0.2.3";

/// `recovery-handlers.on-recovered`, typed.
type OnRecovered = TypedFunc<(u64,), ()>;

/// `broadcast-handlers.on-broadcast-replies`, typed.
type OnBroadcastReplies = TypedFunc<(u64, Args, bool), ()>;

/// `cluster-handlers.on-server-event`, typed.
type OnServerEvent = TypedFunc<(String, Args), ()>;
/// `cluster-handlers.on-sockets-fetched`, typed.
type OnSocketsFetched = TypedFunc<(u64, Vec<RemoteSocket>, bool), ()>;

/// Where a component's optional exports are, those it has.
#[derive(Clone, Copy)]
pub(crate) struct Optional {
    on_server_event: Option<ComponentExportIndex>,
    on_sockets_fetched: Option<ComponentExportIndex>,
    on_broadcast_replies: Option<ComponentExportIndex>,
    on_recovered: Option<ComponentExportIndex>,
}

/// The optional exports, typed, of one instance.
pub(crate) struct OptionalFuncs {
    on_server_event: Option<OnServerEvent>,
    on_sockets_fetched: Option<OnSocketsFetched>,
    on_broadcast_replies: Option<OnBroadcastReplies>,
    on_recovered: Option<OnRecovered>,
}

/// A component linked and ready to instantiate, for the contract it was built for.
pub(crate) enum Pre {
    /// 0.2 (which minor version), and where its optional exports are.
    V0_2(TenantPre<TenantState>, Contract, Optional),
    V0_1(v0_1::TenantPre<TenantState>),
}

impl Pre {
    /// The component's exports checked against each contract, newest first; the
    /// newest contract's error when none fits.
    pub(crate) fn new(instance: InstancePre<TenantState>) -> wasmtime::Result<Pre> {
        let component = instance.component();
        let func = |interface, name| {
            let interface = component.get_export_index(None, interface)?;
            component.get_export_index(Some(&interface), name)
        };
        let optional = Optional {
            on_server_event: func(CLUSTER_HANDLERS, "on-server-event"),
            on_sockets_fetched: func(CLUSTER_HANDLERS, "on-sockets-fetched"),
            on_broadcast_replies: func(BROADCAST_HANDLERS, "on-broadcast-replies"),
            on_recovered: func(RECOVERY_HANDLERS, "on-recovered"),
        };
        // Built for the newest minor version it names anything of ours at.
        let engine = instance.engine();
        let kind = component.component_type();
        let names: Vec<String> = kind
            .imports(engine)
            .chain(kind.exports(engine))
            .map(|(name, _)| name.to_owned())
            .filter(|name| name.starts_with("nsbox:tenant/"))
            .collect();
        let names_version = |version| names.iter().any(|name| name.ends_with(version));
        let contract = if names_version("@0.2.3") {
            Contract::V0_2_3
        } else if names_version("@0.2.2") {
            Contract::V0_2_2
        } else if names_version("@0.2.1") {
            Contract::V0_2_1
        } else {
            Contract::V0_2
        };
        match TenantPre::new(instance.clone()) {
            Ok(pre) => Ok(Pre::V0_2(pre, contract, optional)),
            Err(error) => v0_1::TenantPre::new(instance)
                .map(Pre::V0_1)
                .map_err(|_| error),
        }
    }

    pub(crate) fn contract(&self) -> Contract {
        match self {
            Pre::V0_2(_, contract, _) => *contract,
            Pre::V0_1(_) => Contract::V0_1,
        }
    }

    /// The optional exports the component has, by name.
    #[cfg(test)]
    pub(crate) fn optional_exports(&self) -> Vec<&'static str> {
        let Pre::V0_2(_, _, optional) = self else {
            return Vec::new();
        };
        [
            ("on-server-event", optional.on_server_event.is_some()),
            ("on-sockets-fetched", optional.on_sockets_fetched.is_some()),
            (
                "on-broadcast-replies",
                optional.on_broadcast_replies.is_some(),
            ),
            ("on-recovered", optional.on_recovered.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, found)| found.then_some(name))
        .collect()
    }

    pub(crate) async fn instantiate_async(
        &self,
        store: &mut Store<TenantState>,
    ) -> wasmtime::Result<Exports> {
        Ok(match self {
            Pre::V0_2(pre, _, optional) => {
                let instance = pre.instance_pre().instantiate_async(&mut *store).await?;
                let tenant = Tenant::new(&mut *store, &instance)?;
                let funcs = OptionalFuncs {
                    on_server_event: match &optional.on_server_event {
                        Some(index) => Some(instance.get_typed_func(&mut *store, index)?),
                        None => None,
                    },
                    on_sockets_fetched: match &optional.on_sockets_fetched {
                        Some(index) => Some(instance.get_typed_func(&mut *store, index)?),
                        None => None,
                    },
                    on_broadcast_replies: match &optional.on_broadcast_replies {
                        Some(index) => Some(instance.get_typed_func(&mut *store, index)?),
                        None => None,
                    },
                    on_recovered: match &optional.on_recovered {
                        Some(index) => Some(instance.get_typed_func(&mut *store, index)?),
                        None => None,
                    },
                };
                Exports::V0_2(tenant, funcs)
            }
            Pre::V0_1(pre) => Exports::V0_1(pre.instantiate_async(store).await?),
        })
    }
}

/// An instance's exports, whichever contract it was built for.
pub(crate) enum Exports {
    V0_2(Tenant, OptionalFuncs),
    V0_1(v0_1::Tenant),
}

impl Exports {
    /// A fresh instance started (0.1.0 has no such export: nothing to call).
    pub(crate) async fn call_on_start(
        &self,
        store: &mut Store<TenantState>,
    ) -> wasmtime::Result<()> {
        match self {
            Exports::V0_2(tenant, _) => tenant.nsbox_tenant_handlers().call_on_start(store).await,
            Exports::V0_1(_) => Ok(()),
        }
    }

    /// A timer is due (0.1.0 cannot set one).
    pub(crate) async fn call_on_timer(
        &self,
        store: &mut Store<TenantState>,
        timer: u64,
    ) -> wasmtime::Result<()> {
        match self {
            Exports::V0_2(tenant, _) => {
                let handlers = tenant.nsbox_tenant_handlers();
                handlers.call_on_timer(store, timer).await
            }
            Exports::V0_1(_) => Ok(()),
        }
    }

    pub(crate) async fn call_middleware(
        &self,
        store: &mut Store<TenantState>,
        socket: u64,
        handshake: &Handshake,
    ) -> wasmtime::Result<Result<(), Rejection>> {
        match self {
            Exports::V0_2(tenant, _) => {
                let handlers = tenant.nsbox_tenant_handlers();
                handlers.call_middleware(store, socket, handshake).await
            }
            Exports::V0_1(tenant) => tenant.call_middleware(store, socket, handshake).await,
        }
    }

    pub(crate) async fn call_on_connection(
        &self,
        store: &mut Store<TenantState>,
        socket: u64,
    ) -> wasmtime::Result<()> {
        match self {
            Exports::V0_2(tenant, _) => {
                let handlers = tenant.nsbox_tenant_handlers();
                handlers.call_on_connection(store, socket).await
            }
            Exports::V0_1(tenant) => tenant.call_on_connection(store, socket).await,
        }
    }

    pub(crate) async fn call_on_event(
        &self,
        store: &mut Store<TenantState>,
        socket: u64,
        event: &str,
        args: &Args,
        ack: Option<u64>,
    ) -> wasmtime::Result<()> {
        match self {
            Exports::V0_2(tenant, _) => {
                let handlers = tenant.nsbox_tenant_handlers();
                handlers
                    .call_on_event(store, socket, event, args, ack)
                    .await
            }
            Exports::V0_1(tenant) => tenant.call_on_event(store, socket, event, args, ack).await,
        }
    }

    pub(crate) async fn call_on_disconnect(
        &self,
        store: &mut Store<TenantState>,
        socket: u64,
        reason: &str,
    ) -> wasmtime::Result<()> {
        match self {
            Exports::V0_2(tenant, _) => {
                let handlers = tenant.nsbox_tenant_handlers();
                handlers.call_on_disconnect(store, socket, reason).await
            }
            Exports::V0_1(tenant) => tenant.call_on_disconnect(store, socket, reason).await,
        }
    }

    /// Another node's instance sent an event (nothing to call when the component does
    /// not export `cluster-handlers`).
    pub(crate) async fn call_on_server_event(
        &self,
        store: &mut Store<TenantState>,
        event: String,
        args: Args,
    ) -> wasmtime::Result<()> {
        match self {
            Exports::V0_2(_, funcs) => match &funcs.on_server_event {
                Some(on_server_event) => on_server_event.call_async(store, (event, args)).await,
                None => Ok(()),
            },
            Exports::V0_1(_) => Ok(()),
        }
    }

    /// What the other servers answered to the instance's `cluster.fetch-sockets`
    /// (nothing to call when the component does not export `on-sockets-fetched`).
    pub(crate) async fn call_on_sockets_fetched(
        &self,
        store: &mut Store<TenantState>,
        request: u64,
        sockets: &[RemoteSocket],
        complete: bool,
    ) -> wasmtime::Result<()> {
        match self {
            Exports::V0_2(_, funcs) => match &funcs.on_sockets_fetched {
                Some(on_fetched) => {
                    let args = (request, sockets.to_vec(), complete);
                    on_fetched.call_async(store, args).await
                }
                None => Ok(()),
            },
            Exports::V0_1(_) => Ok(()),
        }
    }

    /// What the sockets answered to the instance's `host.broadcast-with-ack` (nothing
    /// to call when the component does not export `broadcast-handlers`).
    pub(crate) async fn call_on_broadcast_replies(
        &self,
        store: &mut Store<TenantState>,
        request: u64,
        replies: Args,
        complete: bool,
    ) -> wasmtime::Result<()> {
        match self {
            Exports::V0_2(_, funcs) => match &funcs.on_broadcast_replies {
                Some(on_replies) => {
                    on_replies
                        .call_async(store, (request, replies, complete))
                        .await
                }
                None => Ok(()),
            },
            Exports::V0_1(_) => Ok(()),
        }
    }

    /// Connection state recovery gave `socket` back to its client (nothing to call
    /// when the component does not export `recovery-handlers`).
    pub(crate) async fn call_on_recovered(
        &self,
        store: &mut Store<TenantState>,
        socket: u64,
    ) -> wasmtime::Result<()> {
        match self {
            Exports::V0_2(_, funcs) => match &funcs.on_recovered {
                Some(on_recovered) => on_recovered.call_async(store, (socket,)).await,
                None => Ok(()),
            },
            Exports::V0_1(_) => Ok(()),
        }
    }

    pub(crate) async fn call_on_ack_reply(
        &self,
        store: &mut Store<TenantState>,
        request: u64,
        reply: Result<&Args, AckFailure>,
    ) -> wasmtime::Result<()> {
        match self {
            Exports::V0_2(tenant, _) => {
                let handlers = tenant.nsbox_tenant_handlers();
                handlers.call_on_ack_reply(store, request, reply).await
            }
            Exports::V0_1(tenant) => tenant.call_on_ack_reply(store, request, reply).await,
        }
    }
}

impl v0_1::nsbox::tenant::host::Host for TenantState {
    // 0.1.0 returns nothing: a refusal is logged, as it always was.
    fn emit(&mut self, to: u64, event: String, args: Args) -> wasmtime::Result<()> {
        let sent = super::bindings::nsbox::tenant::host::Host::emit(self, to, event, args)?;
        self.refused("emit", sent);
        Ok(())
    }

    fn broadcast(&mut self, target: Target, event: String, args: Args) -> wasmtime::Result<()> {
        let sent =
            super::bindings::nsbox::tenant::host::Host::broadcast(self, target, event, args)?;
        self.refused("broadcast", sent);
        Ok(())
    }

    fn emit_with_ack(
        &mut self,
        to: u64,
        event: String,
        args: Args,
        timeout_ms: u32,
    ) -> wasmtime::Result<u64> {
        super::bindings::nsbox::tenant::host::Host::emit_with_ack(self, to, event, args, timeout_ms)
    }

    fn answer(&mut self, ack: u64, args: Args) -> wasmtime::Result<Result<(), String>> {
        super::bindings::nsbox::tenant::host::Host::answer(self, ack, args)
    }

    fn join(&mut self, socket: u64, room: String) -> wasmtime::Result<()> {
        // A refused join drops the socket and is logged there.
        let _refused = super::bindings::nsbox::tenant::host::Host::join(self, socket, room)?;
        Ok(())
    }

    fn leave(&mut self, socket: u64, room: String) -> wasmtime::Result<()> {
        super::bindings::nsbox::tenant::host::Host::leave(self, socket, room)
    }

    fn rooms(&mut self, socket: u64) -> wasmtime::Result<Vec<String>> {
        super::bindings::nsbox::tenant::host::Host::rooms(self, socket)
    }

    fn disconnect(&mut self, socket: u64) -> wasmtime::Result<()> {
        super::bindings::nsbox::tenant::host::Host::disconnect(self, socket)
    }

    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        super::bindings::nsbox::tenant::host::Host::log(self, level, message)
    }
}
