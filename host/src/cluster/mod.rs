//! nsbox nodes on Redis: every node equal, joined through one `redis-server`.
//!
//! [`redis::RedisTransport`] carries the namespaces' cluster messages
//! ([`crate::socketio::cluster`]) over Redis sharded pub/sub exactly as
//! `@socket.io/redis-adapter`'s `createShardedAdapter` does in its default
//! (`"dynamic"`) subscription mode, so Node servers with that adapter share
//! namespaces with nsbox nodes.

pub mod redis;
#[cfg(test)]
pub(crate) mod testing;

pub use redis::{ClusterError, LinkStats, RedisTransport};
