//! The cluster's messages over Redis sharded pub/sub, channel for channel as
//! `@socket.io/redis-adapter`'s sharded adapter (subscription mode `"dynamic"`):
//! - `socket.io#NSP#`: every message for the namespace;
//! - `socket.io#NSP#ROOM#`: a broadcast to that room alone, subscribed while this node
//!   has sockets in it (never for a socket's own room);
//! - `socket.io#NSP#UID#`: replies to the node whose namespace is `UID`.
//!
//! One subscriber connection for all of them: Node's adapter counts the servers of a
//! namespace as the connections subscribed to its channel (`PUBSUB SHARDNUMSUB`).
//!
//! The same connection also listens where `@socket.io/redis-emitter` publishes (classic
//! pub/sub, `socket.io#NSP#*` and `socket.io-request#NSP#`): the emitter knows only
//! the classic adapter's format, and a script that emits through it reaches nsbox's
//! sockets too.
//! Publishing goes through a second connection, fed by a bounded queue that a task
//! drains in order, pipelined. While Redis is unreachable, local delivery goes on;
//! messages for the other nodes are dropped and counted, and the subscriptions are
//! made again when it is back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::config::{Config, PerformanceConfig, ReconnectPolicy};
use fred::types::Builder;
use fred::types::MessageKind;
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;

use crate::socketio::cluster::{Route, ServerCount, Transport};
use crate::socketio::Namespace;

/// The channels' prefix: Node's adapters' default `key`/`channelPrefix`.
const PREFIX: &str = "socket.io";
/// Messages waiting to be published; past it, a message is dropped and counted.
const OUTBOX: usize = 65_536;
/// Bytes waiting to be published; past it too (a few large broadcasts must not hold
/// gigabytes while Redis is slow).
const OUTBOX_BYTES: usize = 64 << 20;
/// Messages one pipeline carries at most.
const BATCH: usize = 256;
/// Messages the subscriber may hold for the reader before it loses some.
const INBOX: usize = 65_536;
/// How long a command may take before it is given up.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the first connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL is not a Redis URL.
    #[error("the Redis URL {url:?}: {error}")]
    Url {
        /// The URL given.
        url: String,
        /// Why.
        error: String,
    },
    /// Redis could not be reached.
    #[error("cannot reach Redis at {url}: {error}")]
    Connect {
        /// The URL given.
        url: String,
        /// Why.
        error: String,
    },
}

/// What the link to Redis has done, for the metrics.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// 1 while both connections are up, else 0.
    pub up: AtomicBool,
    /// Messages published to the other nodes.
    pub published: AtomicU64,
    /// Messages received from them.
    pub received: AtomicU64,
    /// Messages not published (the link was down or the queue full) or lost on the way in.
    pub dropped: AtomicU64,
}

/// The namespaces a node serves, and the channels it listens to for them.
#[derive(Default)]
struct Routes {
    /// By namespace: its uid and where its messages go.
    namespaces: HashMap<String, (String, Weak<Namespace>)>,
    /// By channel: the namespace and whether it carries replies.
    channels: HashMap<String, (Weak<Namespace>, bool)>,
}

/// A subscription of the subscriber connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subscription {
    /// A shard channel (`SSUBSCRIBE`): the sharded adapter's.
    Shard(String),
    /// A pattern (`PSUBSCRIBE`): the emitter's broadcasts.
    Pattern(String),
    /// A channel (`SUBSCRIBE`): the emitter's requests.
    Plain(String),
}

/// A subscription change, applied in order.
enum Change {
    Subscribe(Subscription),
    Unsubscribe(Subscription),
}

/// A node's link to the cluster through Redis.
pub struct RedisTransport {
    routes: RwLock<Routes>,
    changes: mpsc::UnboundedSender<Change>,
    outbox: mpsc::Sender<(String, Vec<u8>)>,
    /// Bytes in `outbox` or on their way to Redis.
    queued_bytes: Arc<AtomicUsize>,
    stats: Arc<LinkStats>,
    /// The subscriptions wanted, made again after a reconnection.
    wanted: Arc<Mutex<HashSet<Subscription>>>,
    /// The publishing connection, for the questions about subscribers.
    publisher: Client,
}

fn main_channel(nsp: &str) -> String {
    format!("{PREFIX}#{nsp}#")
}

fn sub_channel(nsp: &str, name: &str) -> String {
    format!("{PREFIX}#{nsp}#{name}#")
}

/// Where the emitter publishes a namespace's broadcasts (with or without a room).
fn emitter_pattern(nsp: &str) -> String {
    let mut pattern = format!("{PREFIX}#");
    for c in nsp.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str("#*");
    pattern
}

/// Where the emitter publishes a namespace's requests (join, leave, disconnect).
fn emitter_requests(nsp: &str) -> String {
    format!("{PREFIX}-request#{nsp}#")
}

/// The namespace a classic channel (`socket.io#NSP#...`, `socket.io-request#NSP#`) is for.
fn classic_namespace(channel: &str) -> Option<&str> {
    let rest = channel
        .strip_prefix("socket.io-request#")
        .or_else(|| channel.strip_prefix("socket.io#"))?;
    rest.split('#').next()
}

impl RedisTransport {
    /// Connects to Redis at `url` (`redis://host:port`), twice: one connection
    /// subscribes, one publishes. Fails if Redis cannot be reached now; later outages
    /// are waited out (reconnecting forever).
    pub async fn connect(url: &str) -> Result<Arc<RedisTransport>, ClusterError> {
        let builder = builder(url, INBOX)?;
        let connect_error = |e: fred::error::Error| ClusterError::Connect {
            url: url.to_owned(),
            error: e.to_string(),
        };
        let publisher = builder.build().map_err(connect_error)?;
        let subscriber = builder.build_subscriber_client().map_err(connect_error)?;
        connected(url, async {
            publisher.init().await?;
            subscriber.init().await
        })
        .await?;
        let stats = Arc::new(LinkStats::default());
        stats.up.store(true, Relaxed);
        let (changes, changed) = mpsc::unbounded_channel();
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let transport = Arc::new(RedisTransport {
            routes: RwLock::default(),
            changes,
            outbox,
            queued_bytes: Arc::default(),
            stats: stats.clone(),
            wanted: Arc::default(),
            publisher: publisher.clone(),
        });
        watch_link(&publisher, &subscriber, &stats, &transport.wanted);
        tokio::spawn(read(subscriber.clone(), Arc::downgrade(&transport)));
        tokio::spawn(subscribe(subscriber, changed, transport.wanted.clone()));
        tokio::spawn(publish(
            publisher,
            queued,
            transport.queued_bytes.clone(),
            stats,
        ));
        tracing::info!(%url, "joined the cluster on Redis");
        Ok(transport)
    }

    /// The link's counters.
    pub fn stats(&self) -> &Arc<LinkStats> {
        &self.stats
    }

    fn change(&self, change: Change) {
        // The task lives as long as the sender; a send fails only at shutdown.
        let _ = self.changes.send(change);
    }
}

impl Transport for RedisTransport {
    fn attach(&self, nsp: &str, uid: &str, namespace: Weak<Namespace>) {
        let (main, reply) = (main_channel(nsp), sub_channel(nsp, uid));
        {
            let mut routes = self.routes.write();
            routes
                .namespaces
                .insert(nsp.to_owned(), (uid.to_owned(), namespace.clone()));
            routes
                .channels
                .insert(main.clone(), (namespace.clone(), false));
            routes.channels.insert(reply.clone(), (namespace, true));
        }
        self.change(Change::Subscribe(Subscription::Shard(main)));
        self.change(Change::Subscribe(Subscription::Shard(reply)));
        self.change(Change::Subscribe(Subscription::Pattern(emitter_pattern(
            nsp,
        ))));
        self.change(Change::Subscribe(Subscription::Plain(emitter_requests(
            nsp,
        ))));
    }

    fn detach(&self, nsp: &str, uid: &str) {
        let reply = sub_channel(nsp, uid);
        let current = {
            let mut routes = self.routes.write();
            routes.channels.remove(&reply);
            let current = routes.namespaces.get(nsp).is_some_and(|(u, _)| u == uid);
            if current {
                routes.namespaces.remove(nsp);
                let prefix = main_channel(nsp);
                routes
                    .channels
                    .retain(|channel, _| !channel.starts_with(&prefix));
            }
            current
        };
        self.change(Change::Unsubscribe(Subscription::Shard(reply)));
        if current {
            // Its room channels went with it (the namespace had no sockets left).
            let prefix = main_channel(nsp);
            let rooms: Vec<Subscription> = self
                .wanted
                .lock()
                .iter()
                .filter(|s| matches!(s, Subscription::Shard(c) if c.starts_with(&prefix)))
                .cloned()
                .collect();
            for subscription in rooms {
                self.change(Change::Unsubscribe(subscription));
            }
            self.change(Change::Unsubscribe(Subscription::Pattern(emitter_pattern(
                nsp,
            ))));
            self.change(Change::Unsubscribe(Subscription::Plain(emitter_requests(
                nsp,
            ))));
        }
    }

    fn room_created(&self, nsp: &str, room: &str) {
        let channel = sub_channel(nsp, room);
        {
            let mut routes = self.routes.write();
            let Some((_, namespace)) = routes.namespaces.get(nsp).cloned() else {
                return;
            };
            routes.channels.insert(channel.clone(), (namespace, false));
        }
        self.change(Change::Subscribe(Subscription::Shard(channel)));
    }

    fn room_deleted(&self, nsp: &str, room: &str) {
        let channel = sub_channel(nsp, room);
        if self.routes.write().channels.remove(&channel).is_some() {
            self.change(Change::Unsubscribe(Subscription::Shard(channel)));
        }
    }

    fn publish(&self, nsp: &str, route: Route<'_>, bytes: Vec<u8>) {
        let channel = match route {
            Route::All => main_channel(nsp),
            Route::Room(name) | Route::Reply(name) => sub_channel(nsp, name),
        };
        let size = bytes.len();
        let room = self.queued_bytes.fetch_add(size, Relaxed) + size <= OUTBOX_BYTES;
        if !room || !self.stats.up.load(Relaxed) || self.outbox.try_send((channel, bytes)).is_err()
        {
            self.queued_bytes.fetch_sub(size, Relaxed);
            self.stats.dropped.fetch_add(1, Relaxed);
        }
    }

    fn server_count(&self, nsp: &str) -> ServerCount {
        // As Node's sharded adapter counts them: the subscribers of the main channel.
        let (publisher, channel) = (self.publisher.clone(), main_channel(nsp));
        Box::pin(async move {
            let counts: Vec<fred::types::Value> =
                publisher.pubsub_shardnumsub(channel).await.ok()?;
            counts.get(1)?.as_u64().map(|n| n as usize)
        })
    }
}

/// How every connection to the cluster's Redis is made: it reconnects forever, each
/// command is tried once (a message published twice, or a storage write applied twice,
/// would be wrong) and given up after [`COMMAND_TIMEOUT`]. `inbox`: the messages a
/// subscriber may hold for its reader.
pub(crate) fn builder(url: &str, inbox: usize) -> Result<Builder, ClusterError> {
    let url_error = |error: String| ClusterError::Url {
        url: url.to_owned(),
        error,
    };
    if !url.starts_with("redis://") {
        return Err(url_error("write redis://[:PASSWORD@]HOST:PORT".into()));
    }
    let config = Config::from_url(url).map_err(|e| url_error(e.to_string()))?;
    let mut builder = Builder::from_config(config);
    builder
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .set_performance_config(PerformanceConfig {
            broadcast_channel_capacity: inbox,
            default_command_timeout: COMMAND_TIMEOUT,
            ..PerformanceConfig::default()
        })
        .with_connection_config(|c| {
            c.connection_timeout = CONNECT_TIMEOUT;
            c.internal_command_timeout = COMMAND_TIMEOUT;
            c.max_command_attempts = 1;
        });
    Ok(builder)
}

/// Waits for `init` (clients connecting to `url`) at most [`CONNECT_TIMEOUT`].
pub(crate) async fn connected<T>(
    url: &str,
    init: impl std::future::Future<Output = Result<T, fred::error::Error>>,
) -> Result<(), ClusterError> {
    let error = match tokio::time::timeout(CONNECT_TIMEOUT, init).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no connection within {CONNECT_TIMEOUT:?}"),
    };
    Err(ClusterError::Connect {
        url: url.to_owned(),
        error,
    })
}

/// Keeps [`LinkStats::up`] and the log in step with the connections, and subscribes
/// again to every wanted channel when the subscriber is back.
fn watch_link(
    publisher: &Client,
    subscriber: &SubscriberClient,
    stats: &Arc<LinkStats>,
    wanted: &Arc<Mutex<HashSet<Subscription>>>,
) {
    for client in [publisher.clone(), subscriber.clone().to_client()] {
        let stats = stats.clone();
        client.on_error(move |(error, _)| {
            if stats.up.swap(false, Relaxed) {
                tracing::warn!(%error, "the cluster link is down: messages for the other nodes are dropped until Redis is back");
            }
            async { Ok(()) }
        });
    }
    let (up, wanted, resubscriber) = (stats.clone(), wanted.clone(), subscriber.clone());
    let other = publisher.clone();
    subscriber.on_reconnect(move |_| {
        let (stats, wanted, subscriber, publisher) = (
            up.clone(),
            wanted.clone(),
            resubscriber.clone(),
            other.clone(),
        );
        async move {
            let subscriptions: Vec<Subscription> = wanted.lock().iter().cloned().collect();
            for subscription in subscriptions {
                if let Err(error) =
                    apply(&subscriber, Change::Subscribe(subscription.clone())).await
                {
                    tracing::warn!(%error, ?subscription, "cannot subscribe again");
                }
            }
            if publisher.is_connected() && !stats.up.swap(true, Relaxed) {
                tracing::info!("the cluster link is up again");
            }
            Ok(())
        }
    });
    let (stats, subscriber) = (stats.clone(), subscriber.clone());
    publisher.on_reconnect(move |_| {
        if subscriber.is_connected() && !stats.up.swap(true, Relaxed) {
            tracing::info!("the cluster link is up again");
        }
        async { Ok(()) }
    });
}

/// Hands each message to the namespace its channel belongs to.
async fn read(subscriber: SubscriberClient, transport: Weak<RedisTransport>) {
    let mut messages = subscriber.message_rx();
    loop {
        let message = match messages.recv().await {
            Ok(message) => message,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(lost)) => {
                if let Some(transport) = transport.upgrade() {
                    transport.stats.dropped.fetch_add(lost, Relaxed);
                }
                tracing::warn!(
                    lost,
                    "cluster messages lost: this node read them too slowly"
                );
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(transport) = transport.upgrade() else {
            return;
        };
        transport.stats.received.fetch_add(1, Relaxed);
        let Some(bytes) = message.value.as_bytes() else {
            tracing::debug!(channel = %message.channel, "a cluster message that is not bytes");
            continue;
        };
        if message.kind == MessageKind::SMessage {
            let target = transport
                .routes
                .read()
                .channels
                .get(&*message.channel)
                .cloned();
            if let Some((namespace, reply)) = target {
                if let Some(namespace) = namespace.upgrade() {
                    namespace.receive(bytes, reply);
                }
            }
        } else {
            // The emitter's, on the classic channels.
            let channel: &str = &message.channel;
            let namespace = classic_namespace(channel).and_then(|nsp| {
                let routes = transport.routes.read();
                routes.namespaces.get(nsp).and_then(|(_, n)| n.upgrade())
            });
            if let Some(namespace) = namespace {
                namespace.receive_emitted(bytes, channel.starts_with("socket.io-request#"));
            }
        }
    }
}

/// Sends one subscription change to Redis.
async fn apply(subscriber: &SubscriberClient, change: Change) -> Result<(), fred::error::Error> {
    match change {
        Change::Subscribe(Subscription::Shard(c)) => subscriber.ssubscribe(c).await,
        Change::Subscribe(Subscription::Pattern(p)) => subscriber.psubscribe(p).await,
        Change::Subscribe(Subscription::Plain(c)) => subscriber.subscribe(c).await,
        Change::Unsubscribe(Subscription::Shard(c)) => subscriber.sunsubscribe(c).await,
        Change::Unsubscribe(Subscription::Pattern(p)) => subscriber.punsubscribe(p).await,
        Change::Unsubscribe(Subscription::Plain(c)) => subscriber.unsubscribe(c).await,
    }
}

/// Applies subscription changes in order; remembers what is wanted for reconnections.
async fn subscribe(
    subscriber: SubscriberClient,
    mut changes: mpsc::UnboundedReceiver<Change>,
    wanted: Arc<Mutex<HashSet<Subscription>>>,
) {
    while let Some(change) = changes.recv().await {
        match &change {
            Change::Subscribe(s) => wanted.lock().insert(s.clone()),
            Change::Unsubscribe(s) => wanted.lock().remove(s),
        };
        if let Err(error) = apply(&subscriber, change).await {
            // Made again when the link is back (see `watch_link`).
            tracing::debug!(%error, "a subscription change waits for the cluster link");
        }
    }
}

/// Publishes what is queued, in order, as many messages a round trip as are waiting.
async fn publish(
    publisher: Client,
    mut queued: mpsc::Receiver<(String, Vec<u8>)>,
    queued_bytes: Arc<AtomicUsize>,
    stats: Arc<LinkStats>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while queued.recv_many(&mut batch, BATCH).await > 0 {
        let pipeline = publisher.pipeline();
        let count = batch.len() as u64;
        // Counted until Redis has them: what waits on a hung Redis is bounded too.
        let size: usize = batch.iter().map(|(_, bytes)| bytes.len()).sum();
        for (channel, bytes) in batch.drain(..) {
            // Queued in the pipeline; nothing is sent before `all`.
            let _: Result<(), _> = pipeline.spublish(channel, bytes).await;
        }
        match pipeline.all::<fred::types::Value>().await {
            Ok(_) => stats.published.fetch_add(count, Relaxed),
            Err(error) => {
                tracing::debug!(%error, "cluster messages not published");
                stats.dropped.fetch_add(count, Relaxed)
            }
        };
        queued_bytes.fetch_sub(size, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::TestRedis;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_redis_holds_a_bounded_queue_and_the_rest_is_dropped() {
        let redis = TestRedis::start().await;
        let transport = RedisTransport::connect(&redis.url).await.expect("connects");
        redis.pause();
        // 100 MiB for the other nodes while Redis answers nothing: what fits in the
        // queue waits, the rest is dropped and counted, and publishing never blocks.
        for _ in 0..100 {
            transport.publish("/", Route::All, vec![0; 1 << 20]);
        }
        let queued = transport.queued_bytes.load(Relaxed);
        assert!(queued <= OUTBOX_BYTES, "{queued} bytes queued");
        let dropped = transport.stats.dropped.load(Relaxed);
        assert!(dropped >= 36, "{dropped} dropped");
        redis.resume();
        // Once Redis answers, the queue drains.
        for _ in 0..200 {
            if transport.queued_bytes.load(Relaxed) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(transport.queued_bytes.load(Relaxed), 0);
    }
}
