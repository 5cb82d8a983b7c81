//! The tenant's handlers and its sockets' state, kept in the instance between calls,
//! and the dispatch of the world's exports (the `handlers` interface and the optional
//! ones) to them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::args::Args;
use crate::bindings::exports::nsbox::tenant::broadcast_handlers::Guest as BroadcastGuest;
use crate::bindings::exports::nsbox::tenant::cluster_handlers::Guest as ClusterGuest;
use crate::bindings::exports::nsbox::tenant::handlers::Guest;
use crate::bindings::exports::nsbox::tenant::recovery_handlers::Guest as RecoveryGuest;
use crate::bindings::nsbox::tenant::types::{
    AckFailure as WitAckFailure, Args as WitArgs, Handshake as WitHandshake, Rejection,
};
use crate::socket::{self, Ack, AckFailure, Handshake, Reject, Socket};

type Middleware = Rc<dyn Fn(&Socket, &Handshake) -> Result<(), Reject>>;
type ConnectionHandler = Rc<dyn Fn(&Socket)>;
type EventHandler = Rc<dyn Fn(&Socket, Args, Option<Ack>)>;
type AnyHandler = Rc<dyn Fn(&Socket, &str, Args, Option<Ack>)>;
type IncomingListener = Rc<dyn Fn(&Socket, &str, &Args)>;
type DisconnectHandler = Rc<dyn Fn(&Socket, &str)>;
type StartHandler = Rc<dyn Fn()>;
type ServerEventHandler = Rc<dyn Fn(&str, Args)>;

/// The tenant's namespace logic: middleware and handlers, registered once in the
/// setup function given to [`export!`](crate::export).
#[derive(Default)]
pub struct App {
    middlewares: Vec<Middleware>,
    connection: Vec<ConnectionHandler>,
    /// By name. An app has a few: a handful of comparisons finds one in fewer
    /// instructions than hashing its name (about 100 with SipHash), on every event.
    events: BTreeMap<String, EventHandler>,
    any: Option<AnyHandler>,
    incoming: Vec<IncomingListener>,
    disconnect: Vec<DisconnectHandler>,
    start: Vec<StartHandler>,
    server_events: Vec<ServerEventHandler>,
    recovered: Vec<ConnectionHandler>,
}

impl App {
    /// Adds a middleware. Middleware runs in the order added, once per socket asking to
    /// join; the first `Err` refuses the socket and the rest do not run.
    pub fn use_middleware<F>(&mut self, middleware: F) -> &mut App
    where
        F: Fn(&Socket, &Handshake) -> Result<(), Reject> + 'static,
    {
        self.middlewares.push(Rc::new(middleware));
        self
    }

    /// Adds a handler for sockets that have joined.
    pub fn on_connection<F>(&mut self, handler: F) -> &mut App
    where
        F: Fn(&Socket) + 'static,
    {
        self.connection.push(Rc::new(handler));
        self
    }

    /// Sets the handler of one event name. `ack` is there when the client asked for one.
    pub fn on<F>(&mut self, event: &str, handler: F) -> &mut App
    where
        F: Fn(&Socket, Args, Option<Ack>) + 'static,
    {
        self.events.insert(event.to_owned(), Rc::new(handler));
        self
    }

    /// Sets the handler of every event no [`App::on`] handler takes.
    pub fn on_any<F>(&mut self, handler: F) -> &mut App
    where
        F: Fn(&Socket, &str, Args, Option<Ack>) + 'static,
    {
        self.any = Some(Rc::new(handler));
        self
    }

    /// Adds a listener of every event a client sends, called before the event's own
    /// handler (socket.io's `socket.onAny`): the socket, the event and its arguments.
    pub fn on_any_incoming<F>(&mut self, listener: F) -> &mut App
    where
        F: Fn(&Socket, &str, &Args) + 'static,
    {
        self.incoming.push(Rc::new(listener));
        self
    }

    /// Adds a listener of every event the tenant sends one socket (`Socket::emit`,
    /// `emit_volatile`, `emit_with_ack`; socket.io's `socket.onAnyOutgoing`). A
    /// broadcast's recipients are the host's to find, so broadcasts are not heard here.
    pub fn on_any_outgoing<F>(&mut self, listener: F) -> &mut App
    where
        F: Fn(&Socket, &str, &Args) + 'static,
    {
        socket::listen_outgoing(Rc::new(listener));
        self
    }

    /// Adds a handler called once when a fresh instance starts, before anything else:
    /// the first socket, and again after an eviction, a fault, a new version or new
    /// limits, when memory and timers are gone (re-arm timers here).
    pub fn on_start<F>(&mut self, handler: F) -> &mut App
    where
        F: Fn() + 'static,
    {
        self.start.push(Rc::new(handler));
        self
    }

    /// Adds a handler for what the tenant's instances on the other nodes of the cluster
    /// send with [`cluster::emit`](crate::cluster::emit) (socket.io's `serverSideEmit`,
    /// a Node server's included): the event's name and arguments.
    pub fn on_server_event<F>(&mut self, handler: F) -> &mut App
    where
        F: Fn(&str, Args) + 'static,
    {
        self.server_events.push(Rc::new(handler));
        self
    }

    /// Adds a handler for sockets given back to their clients by connection state
    /// recovery (`recovery_window_ms`): the connection dropped and the client came back
    /// within the window, to the same socket in the same rooms, with every event sent
    /// to it meanwhile delivered. Neither the middleware, nor [`App::on_disconnect`]
    /// and [`App::on_connection`], ran for the drop.
    pub fn on_recovered<F>(&mut self, handler: F) -> &mut App
    where
        F: Fn(&Socket) + 'static,
    {
        self.recovered.push(Rc::new(handler));
        self
    }

    /// Adds a handler for sockets leaving, with socket.io's reason.
    pub fn on_disconnect<F>(&mut self, handler: F) -> &mut App
    where
        F: Fn(&Socket, &str) + 'static,
    {
        self.disconnect.push(Rc::new(handler));
        self
    }
}

thread_local! {
    static APP: RefCell<Option<Rc<App>>> = const { RefCell::new(None) };
}

/// Builds the app from the tenant's setup function on first use.
pub trait Setup {
    /// Registers the tenant's middleware and handlers.
    fn setup(app: &mut App);
}

fn app<S: Setup>() -> Rc<App> {
    if let Some(app) = APP.with(|app| app.borrow().clone()) {
        return app;
    }
    let mut built = App::default();
    S::setup(&mut built);
    let built = Rc::new(built);
    APP.with(|app| *app.borrow_mut() = Some(built.clone()));
    built
}

/// The world's exports, dispatched to the app that `S` sets up.
pub struct Exports<S>(PhantomData<S>);

impl<S: Setup> Guest for Exports<S> {
    fn middleware(socket: u64, handshake: WitHandshake) -> Result<(), Rejection> {
        let app = app::<S>();
        let handshake = Rc::new(Handshake {
            namespace: handshake.namespace,
            id: handshake.id,
            auth: serde_json::from_str(&handshake.auth).unwrap_or(Value::Object(Map::new())),
            query: handshake.query,
            headers: handshake.headers,
            address: handshake.address,
            issued: handshake.issued,
        });
        socket::track(socket, handshake.clone());
        let socket = Socket { handle: socket };
        for middleware in &app.middlewares {
            if let Err(reject) = middleware(&socket, &handshake) {
                socket::forget(socket.handle);
                return Err(Rejection {
                    message: reject.message,
                    data: reject.data.map(|data| data.to_string()),
                });
            }
        }
        Ok(())
    }

    fn on_connection(socket: u64) {
        let app = app::<S>();
        let socket = Socket { handle: socket };
        for handler in &app.connection {
            handler(&socket);
        }
    }

    fn on_event(socket: u64, event: String, args: WitArgs, ack: Option<u64>) {
        let app = app::<S>();
        let socket = Socket { handle: socket };
        let args = Args::from_wit(args);
        let ack = ack.map(|handle| Ack { handle });
        for listener in &app.incoming {
            listener(&socket, &event, &args);
        }
        if let Some(handler) = app.events.get(&event) {
            handler(&socket, args, ack);
        } else if let Some(handler) = &app.any {
            handler(&socket, &event, args, ack);
        }
    }

    fn on_disconnect(socket: u64, reason: String) {
        let app = app::<S>();
        let socket = Socket { handle: socket };
        for handler in &app.disconnect {
            handler(&socket, &reason);
        }
        socket::forget(socket.handle);
    }

    fn on_start() {
        let app = app::<S>();
        for handler in &app.start {
            handler();
        }
    }

    fn on_timer(timer: u64) {
        crate::timers::fire(timer);
    }

    fn on_ack_reply(request: u64, reply: Result<WitArgs, WitAckFailure>) {
        socket::replied(request, reply.map(Args::from_wit).map_err(AckFailure::from));
    }
}

impl<S: Setup> ClusterGuest for Exports<S> {
    fn on_sockets_fetched(
        request: u64,
        sockets: Vec<crate::bindings::nsbox::tenant::cluster::RemoteSocket>,
        complete: bool,
    ) {
        crate::cluster::fetched(request, sockets, complete);
    }

    fn on_server_event(event: String, args: WitArgs) {
        let app = app::<S>();
        for handler in &app.server_events {
            handler(&event, Args::from_wit(args.clone()));
        }
    }
}

impl<S: Setup> RecoveryGuest for Exports<S> {
    fn on_recovered(socket: u64) {
        let app = app::<S>();
        let socket = Socket { handle: socket };
        for handler in &app.recovered {
            handler(&socket);
        }
    }
}

impl<S: Setup> BroadcastGuest for Exports<S> {
    fn on_broadcast_replies(request: u64, replies: WitArgs, complete: bool) {
        socket::broadcast_replied(request, Args::from_wit(replies), complete);
    }
}
