//! The server side of the Socket.IO Admin UI (what `@socket.io/admin-ui`'s `instrument`
//! does in Node): a namespace the UI joins with the official client, a login, the
//! server's statistics every 2 s, and in development mode every socket, room and event
//! as it happens, and the UI's commands (emit, join, leave, disconnect).
//!
//! Several tenants share the server: the operator's login (from `[admin_ui]`) sees
//! every namespace; a tenant's (its name, and one of its deploy tokens as the
//! password) sees only the namespaces that reach that tenant, and acts only on them.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::engineio::{Sid, Traffic};
use crate::settings::{AdminUiMode, AdminUiSettings};
use crate::socketio::cluster::RemoteSocket;
use crate::socketio::namespace::observer::Observer;
use crate::socketio::{
    BroadcastOperator, ConnectError, DisconnectReason, Namespace, Payload, Socket, SocketIo,
};
use crate::store::tokens::Access;
use crate::tenants::Tenants;

/// Checks a token the way the admin API does.
pub type TokenCheck = Arc<dyn Fn(&str) -> Option<Access> + Send + Sync>;

/// Why the Admin UI could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AdminUiError {
    /// The configured password is not a bcrypt hash.
    #[error("admin_ui.password_bcrypt: not a bcrypt hash ({0})")]
    Hash(String),
}

/// How often the statistics go out, as in Node, in seconds: each with the traffic of
/// every second since the last.
const STATS_EVERY: u64 = 2;
/// bcrypt checks running at once (each takes tens of milliseconds of a core): logins
/// beyond wait their turn rather than occupy every blocking thread.
const CONCURRENT_LOGINS: usize = 2;

/// What a login may see and touch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// Every namespace (the operator, or anyone when the login is off).
    All,
    /// The namespaces that reach this tenant.
    Tenant(String),
}

/// The Admin UI's server side, once instrumented.
pub struct AdminUi {
    me: Weak<AdminUi>,
    io: SocketIo,
    nsp: Arc<Namespace>,
    tenants: Arc<Tenants>,
    tokens: TokenCheck,
    settings: AdminUiSettings,
    server_id: String,
    hostname: String,
    started: Instant,
    /// Sessions handed out at login (the UI reconnects with one instead of the
    /// password), and what each may see.
    sessions: Mutex<HashMap<String, Scope>>,
    /// What each UI socket that passed the login may see, until it joins.
    admitted: Mutex<HashMap<Sid, Scope>>,
    /// The UI's sockets, and what each may see.
    viewers: RwLock<HashMap<Sid, (Arc<Socket>, Scope)>>,
    /// Which tenant each namespace reaches, as first found.
    owners: Mutex<HashMap<String, Option<String>>>,
    logins: Semaphore,
}

/// Sets up the Admin UI's namespace on `io` as `settings` say.
pub fn instrument(
    io: &SocketIo,
    tenants: Arc<Tenants>,
    tokens: TokenCheck,
    settings: AdminUiSettings,
) -> Result<Arc<AdminUi>, AdminUiError> {
    if let (true, Some(hash)) = (settings.auth, &settings.password_bcrypt) {
        bcrypt::HashParts::from_str(hash).map_err(|e| AdminUiError::Hash(e.to_string()))?;
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    let ui = Arc::new_cyclic(|me| AdminUi {
        me: me.clone(),
        io: io.clone(),
        nsp: io.of(&settings.namespace),
        tenants,
        tokens,
        // Each node of a cluster shows as a server of its own, even on one machine.
        server_id: settings
            .server_id
            .clone()
            .unwrap_or_else(|| match io.in_cluster() {
                true => format!("{hostname}#{}", std::process::id()),
                false => hostname.clone(),
            }),
        hostname,
        settings,
        started: Instant::now(),
        sessions: Mutex::default(),
        admitted: Mutex::default(),
        viewers: RwLock::default(),
        owners: Mutex::default(),
        logins: Semaphore::new(CONCURRENT_LOGINS),
    });
    let login = ui.clone();
    ui.nsp.use_middleware(move |socket| {
        let ui = login.clone();
        async move { ui.login(&socket).await }
    });
    let connected = Arc::downgrade(&ui);
    ui.nsp.on_connection(move |socket| {
        if let Some(ui) = connected.upgrade() {
            ui.viewer_joined(socket);
        }
    });
    io.observe(ui.clone());
    io.engine().counters().watch();
    tokio::spawn(stats(Arc::downgrade(&ui)));
    Ok(ui)
}

impl AdminUi {
    fn development(&self) -> bool {
        self.settings.mode == AdminUiMode::Development
    }

    /// The UI's middleware: a session from an earlier login, the operator's login, or
    /// a tenant's name and deploy token.
    async fn login(&self, socket: &Arc<Socket>) -> Result<(), ConnectError> {
        let scope = self.scope_of(socket).await;
        let Some(scope) = scope else {
            return Err(ConnectError::new("invalid credentials"));
        };
        if self.settings.auth {
            let session = random_id();
            self.sessions.lock().insert(session.clone(), scope.clone());
            // Before the CONNECT answer, as Node sends it; the client holds it until then.
            socket.emit("session", Payload::from_values(&[json!(session)]));
        }
        self.admitted.lock().insert(socket.id().clone(), scope);
        // Runs when it leaves, or goes before it has joined.
        let me = self.me.clone();
        socket.on_disconnect(move |socket, _| {
            if let Some(ui) = me.upgrade() {
                ui.admitted.lock().remove(socket.id());
                ui.viewers.write().remove(socket.id());
            }
        });
        Ok(())
    }

    async fn scope_of(&self, socket: &Arc<Socket>) -> Option<Scope> {
        if !self.settings.auth {
            return Some(Scope::All);
        }
        let auth = socket.handshake().auth();
        if let Some(Value::String(session)) = auth.get("sessionId") {
            if let Some(scope) = self.sessions.lock().get(session) {
                return Some(scope.clone());
            }
        }
        let (Some(Value::String(username)), Some(Value::String(password))) =
            (auth.get("username"), auth.get("password"))
        else {
            return None;
        };
        if let Some(Access::Tenant(tenant)) = (self.tokens)(password) {
            return (&tenant == username).then_some(Scope::Tenant(tenant));
        }
        let (Some(expected), Some(hash)) =
            (&self.settings.username, &self.settings.password_bcrypt)
        else {
            return None;
        };
        if username != expected {
            return None;
        }
        let _turn = self.logins.acquire().await.ok()?;
        let (password, hash) = (password.clone(), hash.clone());
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()?
            .unwrap_or(false);
        matches.then_some(Scope::All)
    }

    /// A UI socket joined: its configuration, every socket it may see, its commands.
    fn viewer_joined(&self, socket: &Arc<Socket>) {
        let Some(scope) = self.admitted.lock().remove(socket.id()) else {
            return;
        };
        self.viewers
            .write()
            .insert(socket.id().clone(), (socket.clone(), scope.clone()));
        // Where what it may see is sent, from this node and the others of a cluster.
        socket.join(room_of(&scope));
        let mut features: Vec<&str> = Vec::new();
        if !self.settings.readonly {
            features.extend([
                "EMIT",
                "JOIN",
                "LEAVE",
                "DISCONNECT",
                "MJOIN",
                "MLEAVE",
                "MDISCONNECT",
            ]);
        }
        features.push("AGGREGATED_EVENTS");
        if self.development() {
            features.push("ALL_EVENTS");
        }
        socket.emit(
            "config",
            Payload::from_values(&[json!({ "supportedFeatures": features })]),
        );
        if self.development() {
            let namespaces: Vec<Arc<Namespace>> = self
                .io
                .namespaces()
                .into_iter()
                .filter(|nsp| self.sees(&scope, nsp.name()))
                .collect();
            let viewer = socket.clone();
            tokio::spawn(async move {
                let sockets = every_socket(&namespaces).await;
                viewer.emit(
                    "all_sockets",
                    Payload::from_values(&[Value::Array(sockets)]),
                );
            });
        }
        if !self.settings.readonly {
            self.commands(socket, &scope);
        }
    }

    /// The UI's commands, each on the namespaces this viewer may touch.
    fn commands(&self, socket: &Arc<Socket>, scope: &Scope) {
        self.command(socket, "emit", scope, |nsp, values| {
            if let Some(event) = values.get(2).and_then(Value::as_str) {
                let rest = Payload::from_values(values.get(3..).unwrap_or_default());
                selected(nsp, values.get(1)).emit(event, rest);
            }
        });
        for (name, join) in [("join", true), ("leave", false)] {
            self.command(socket, name, scope, move |nsp, values| {
                let Some(room) = values.get(1).and_then(Value::as_str) else {
                    return;
                };
                let operator = selected(nsp, values.get(2));
                for socket in operator.sockets() {
                    match join {
                        // As a join from another server: the tenant decides, under its
                        // room limits.
                        true => nsp.join_from_cluster(&socket, room.to_owned()),
                        false => socket.leave(room),
                    }
                }
                match join {
                    true => operator.join_elsewhere(room),
                    false => operator.leave_elsewhere(room),
                }
            });
        }
        self.command(socket, "_disconnect", scope, |nsp, values| {
            let close = values.get(1).and_then(Value::as_bool).unwrap_or(false);
            let operator = selected(nsp, values.get(2));
            for socket in operator.sockets() {
                match close {
                    true => socket.close_connection(),
                    false => socket.disconnect(),
                }
            }
            operator.disconnect_elsewhere();
        });
    }

    /// One of the UI's commands, `name` with `(nsp, ...)`: `act` runs when the namespace
    /// exists and this viewer may touch it (never the UI's own).
    fn command(
        &self,
        socket: &Arc<Socket>,
        name: &str,
        scope: &Scope,
        act: impl Fn(&Arc<Namespace>, &[Value]) + Send + Sync + 'static,
    ) {
        let (me, scope) = (self.me.clone(), scope.clone());
        socket.on(name, move |_, args, _| {
            let (Some(ui), Ok(values)) = (me.upgrade(), args.values()) else {
                return;
            };
            let Some(name) = values.first().and_then(Value::as_str) else {
                return;
            };
            if !ui.sees(&scope, name) || name == ui.nsp.name() {
                return;
            }
            if let Some(nsp) = ui.existing(name) {
                act(&nsp, &values);
            }
        });
    }

    /// The namespace `name`, if it exists now (a command does not create one).
    fn existing(&self, name: &str) -> Option<Arc<Namespace>> {
        self.io
            .namespaces()
            .into_iter()
            .find(|nsp| nsp.name() == name)
    }

    /// Whether a viewer of `scope` may see namespace `nsp`.
    fn sees(&self, scope: &Scope, nsp: &str) -> bool {
        match scope {
            Scope::All => true,
            Scope::Tenant(tenant) => self.owner(nsp).as_deref() == Some(tenant.as_str()),
        }
    }

    fn owner(&self, nsp: &str) -> Option<String> {
        if let Some(owner) = self.owners.lock().get(nsp) {
            return owner.clone();
        }
        let owner = self.tenants.tenant_serving(nsp);
        self.owners.lock().insert(nsp.to_owned(), owner.clone());
        owner
    }

    /// Sends `event` to every viewer that may see namespace `nsp`, on every node: the
    /// operator's room, and the room of the tenant `nsp` reaches.
    fn tell(&self, nsp: &str, event: &str, args: impl Fn() -> Payload) {
        if !self.io.in_cluster() && self.viewers.read().is_empty() {
            return;
        }
        let mut viewers = self.nsp.broadcast_op().to(room_of(&Scope::All));
        if let Some(tenant) = self.owner(nsp) {
            viewers = viewers.to(room_of(&Scope::Tenant(tenant)));
        }
        viewers.emit(event, args());
    }

    /// The statistics one viewer gets, with the traffic since the last (the server's:
    /// a tenant's login gets none).
    fn stats_for(&self, scope: &Scope, traffic: &[Value]) -> Value {
        let traffic = match scope {
            Scope::All => traffic,
            Scope::Tenant(_) => &[],
        };
        let namespaces: Vec<Arc<Namespace>> = self
            .io
            .namespaces()
            .into_iter()
            .filter(|nsp| self.sees(scope, nsp.name()))
            .collect();
        let (clients, polling) = match scope {
            Scope::All => {
                let (polling, websocket) = self.io.engine().transport_counts();
                (polling + websocket, polling)
            }
            // A tenant's login counts its own sockets, not the server's connections.
            Scope::Tenant(_) => {
                let sockets: Vec<Arc<Socket>> =
                    namespaces.iter().flat_map(|nsp| nsp.sockets()).collect();
                let polling = sockets
                    .iter()
                    .filter(|s| s.transport() == "polling")
                    .count();
                (sockets.len(), polling)
            }
        };
        json!({
            "serverId": self.server_id,
            "hostname": self.hostname,
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "clientsCount": clients,
            "pollingClientsCount": polling,
            "aggregatedEvents": traffic,
            "namespaces": namespaces
                .iter()
                .map(|nsp| json!({ "name": nsp.name(), "socketsCount": nsp.socket_count() }))
                .collect::<Vec<_>>(),
        })
    }
}

/// Counts the traffic of every second, and sends every viewer its statistics every
/// 2 s, while the Admin UI lasts.
async fn stats(ui: Weak<AdminUi>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut last: Option<Traffic> = None;
    let mut traffic = Vec::new();
    for second in 0u64.. {
        every.tick().await;
        let Some(ui) = ui.upgrade() else { return };
        let now = ui.io.engine().counters().traffic();
        if let Some(last) = &last {
            traffic.extend(aggregated(last, &now, now_ms() / 1000 * 1000));
        }
        last = Some(now);
        if second % STATS_EVERY != 0 {
            continue;
        }
        // The operator's viewers, on every node, hear every node; a tenant's hear the
        // node they are connected to.
        let everything = ui.stats_for(&Scope::All, &traffic);
        ui.nsp
            .to(room_of(&Scope::All))
            .emit("server_stats", Payload::from_values(&[everything]));
        let viewers: Vec<(Arc<Socket>, Scope)> = ui.viewers.read().values().cloned().collect();
        for (viewer, scope) in viewers {
            if scope != Scope::All {
                let stats = ui.stats_for(&scope, &traffic);
                viewer.emit("server_stats", Payload::from_values(&[stats]));
            }
        }
        traffic.clear();
    }
}

/// What happened between two counts, as the UI's aggregated events of the second
/// `timestamp` (ms): `{timestamp, type, subType?, count}`, the types Node counts.
fn aggregated(before: &Traffic, after: &Traffic, timestamp: u64) -> Vec<Value> {
    let event = |kind: &str, reason: Option<&str>, count: u64| {
        let mut event = json!({ "timestamp": timestamp, "type": kind, "count": count });
        if let Some(reason) = reason {
            event["subType"] = json!(reason);
        }
        event
    };
    let mut events = Vec::new();
    for (kind, was, is) in [
        ("rawConnection", before.opened, after.opened),
        ("packetsIn", before.messages_in, after.messages_in),
        ("packetsOut", before.messages_out, after.messages_out),
        ("bytesIn", before.bytes_in, after.bytes_in),
        ("bytesOut", before.bytes_out, after.bytes_out),
    ] {
        if is > was {
            events.push(event(kind, None, is - was));
        }
    }
    for (reason, is) in &after.closed {
        let was = before
            .closed
            .iter()
            .find(|(r, _)| r == reason)
            .map_or(0, |(_, count)| *count);
        if *is > was {
            events.push(event("rawDisconnection", Some(reason.as_str()), is - was));
        }
    }
    events
}

impl Observer for AdminUi {
    fn socket_connected(&self, socket: &Arc<Socket>) {
        if self.development() {
            let nsp = socket.nsp().name();
            self.tell(nsp, "socket_connected", || {
                Payload::from_values(&[serialize(socket), now()])
            });
        }
    }

    fn socket_updated(&self, socket: &Arc<Socket>) {
        if self.development() {
            let nsp = socket.nsp().name();
            self.tell(nsp, "socket_updated", || {
                Payload::from_values(&[json!({
                    "id": &**socket.id(),
                    "nsp": nsp,
                    "transport": socket.transport(),
                })])
            });
        }
    }

    fn socket_disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        if self.development() {
            let nsp = socket.nsp().name();
            self.tell(nsp, "socket_disconnected", || {
                Payload::from_values(&[
                    json!(nsp),
                    json!(&**socket.id()),
                    json!(reason.as_str()),
                    now(),
                ])
            });
        }
    }

    fn room_joined(&self, nsp: &str, room: &str, sid: &Sid) {
        if self.development() {
            self.tell(nsp, "room_joined", || {
                Payload::from_values(&[json!(nsp), json!(room), json!(&**sid), now()])
            });
        }
    }

    fn room_left(&self, nsp: &str, room: &str, sid: &Sid) {
        if self.development() {
            self.tell(nsp, "room_left", || {
                Payload::from_values(&[json!(nsp), json!(room), json!(&**sid), now()])
            });
        }
    }

    fn event_received(&self, socket: &Socket, event: &str, args: &Payload) {
        let nsp = socket.nsp().name();
        if self.development() && nsp != self.nsp.name() {
            self.tell(nsp, "event_received", || {
                event_args(nsp, socket.id(), event, args)
            });
        }
    }

    fn event_sent(&self, nsp: &str, sid: &Sid, event: &str, args: &Payload) {
        if self.development() && nsp != self.nsp.name() {
            self.tell(nsp, "event_sent", || event_args(nsp, sid, event, args));
        }
    }
}

/// The room of the admin namespace where what a scope may see is sent.
fn room_of(scope: &Scope) -> String {
    match scope {
        Scope::All => "nsbox-admin:all".to_owned(),
        Scope::Tenant(tenant) => format!("nsbox-admin:tenant:{tenant}"),
    }
}

/// The sockets of `nsp` a command is for: those in the room `filter` names, or all.
fn selected(nsp: &Arc<Namespace>, filter: Option<&Value>) -> BroadcastOperator {
    match filter.and_then(Value::as_str) {
        Some(room) if !room.is_empty() => nsp.to(room),
        _ => nsp.broadcast_op(),
    }
}

/// `[nsp, id, [event, ...args], timestamp]`, the event's binaries kept as attachments.
fn event_args(nsp: &str, sid: &Sid, event: &str, args: &Payload) -> Payload {
    let inner = args
        .json()
        .trim()
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or("")
        .trim();
    let separator = if inner.is_empty() { "" } else { "," };
    let json = format!(
        "[{},{},[{}{separator}{inner}],{}]",
        json!(nsp),
        json!(&**sid),
        json!(event),
        now()
    );
    Payload::from_json(json, args.attachments().to_vec()).unwrap_or_else(|_| {
        Payload::from_values(&[json!(nsp), json!(&**sid), json!([event]), now()])
    })
}

/// How long `all_sockets` waits for the other nodes of a cluster (Node's `fetchSockets`
/// default is 5 s; a UI waits for its list).
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// The sockets of `namespaces` on every node, as the UI lists them (Node's admin UI
/// lists what `fetchSockets` finds, which with an adapter is every server's).
async fn every_socket(namespaces: &[Arc<Namespace>]) -> Vec<Value> {
    let elsewhere = namespaces
        .iter()
        .map(|nsp| async move { nsp.broadcast_op().fetch_elsewhere(FETCH_TIMEOUT).await });
    let elsewhere = futures_util::future::join_all(elsewhere).await;
    namespaces
        .iter()
        .zip(elsewhere)
        .flat_map(|(nsp, (remote, _))| {
            let here = nsp.sockets().into_iter().map(|socket| serialize(&socket));
            let there = remote.into_iter().map(|r| serialize_remote(nsp.name(), r));
            here.chain(there).collect::<Vec<_>>()
        })
        .collect()
}

/// A socket of another node as the UI lists it: what that node told of it.
fn serialize_remote(nsp: &str, socket: RemoteSocket) -> Value {
    let handshake = &socket.handshake;
    let header = |name: &str| handshake["headers"][name].as_str().map(str::to_owned);
    let address = header("cf-connecting-ip")
        .or(header("x-forwarded-for"))
        .map(Value::from)
        .unwrap_or_else(|| handshake["address"].clone());
    let client: String = socket.admin["clientId"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take(12)
        .collect();
    let data = match socket.data {
        Value::Object(mut data) => {
            data.remove("_admin");
            Value::Object(data)
        }
        _ => json!({}),
    };
    json!({
        "id": socket.id,
        "clientId": client,
        "transport": socket.admin["transport"],
        "nsp": nsp,
        "data": data,
        "handshake": {
            "address": address,
            "headers": handshake["headers"],
            "query": handshake["query"],
            "issued": handshake["issued"],
            "secure": handshake["secure"],
            "time": handshake["time"],
            "url": handshake["url"],
            "xdomain": handshake["xdomain"],
        },
        "rooms": socket.rooms,
    })
}

/// A socket as the UI shows it (`SerializedSocket`).
fn serialize(socket: &Socket) -> Value {
    let handshake = socket.handshake();
    let pairs = |pairs: &[(String, String)]| {
        Value::Object(pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
    };
    let address = handshake
        .header("cf-connecting-ip")
        .or(handshake.header("x-forwarded-for"))
        .map(str::to_owned)
        .unwrap_or_else(|| handshake.address.ip().to_string());
    let data = match socket.data() {
        Value::Object(data) => Value::Object(data),
        _ => json!({}),
    };
    let issued = handshake.issued_ms();
    let client: String = socket.client_id().chars().take(12).collect();
    json!({
        "id": &**socket.id(),
        "clientId": client,
        "transport": socket.transport(),
        "nsp": socket.nsp().name(),
        "data": data,
        "handshake": {
            "address": address,
            "headers": pairs(&handshake.headers),
            "query": pairs(&handshake.query),
            "issued": issued,
            "secure": handshake.secure(),
            "time": crate::calendar::js_date(issued),
            "url": handshake.url,
            "xdomain": handshake.xdomain(),
        },
        "rooms": socket.rooms(),
    })
}

/// Now, as JSON writes a JavaScript `Date`.
fn now() -> Value {
    json!(crate::calendar::rfc3339(now_ms()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A session id: 16 hex digits of randomness, as Node's admin UI makes them.
fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SocketIoConfig;
    use crate::tenants::{Limits, Runtime};

    #[tokio::test]
    async fn a_password_that_is_not_a_bcrypt_hash_is_refused_at_start() {
        let io = SocketIo::new(SocketIoConfig::default());
        let runtime = Runtime::new().expect("the engine starts");
        let tenants = Tenants::new(runtime, Limits::default(), crate::kv::memory());
        let settings = |hash: &str| AdminUiSettings {
            namespace: "/nsbox-admin".into(),
            username: Some("admin".into()),
            password_bcrypt: Some(hash.into()),
            auth: true,
            mode: AdminUiMode::Development,
            readonly: false,
            server_id: None,
        };
        let tokens: TokenCheck = Arc::new(|_: &str| None);
        let refused = instrument(&io, tenants.clone(), tokens.clone(), settings("secret"));
        assert!(refused.is_err_and(|e| e.to_string().contains("bcrypt")));
        let hash = bcrypt::hash("secret", 4).expect("hashes");
        assert!(instrument(&io, tenants, tokens, settings(&hash)).is_ok());
    }
}
