//! Hostile load for the sandbox benchmark: clients that make their tenants loop to
//! the CPU deadline, trap, or flood, or make the host spend on their behalf (acks
//! nobody answers, an ack storm, log floods, rooms), over and over, reconnecting after
//! each fault.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::client::Client;

/// The hostile tenants: namespace, the event that makes it misbehave, its arguments
/// (JSON, after the event's name).
pub const ATTACKS: &[(&str, &str, &str)] = &[
    ("/spin", "spin", "1"),
    ("/crash", "boom", "1"),
    ("/flood", "flood", "1"),
    // examples/hostile/hoard: 150 acks the client never answers (the socket may owe
    // 100); 5,000 acks of a departed socket on its departure and on every reply (the
    // client leaves after its 2 s); 20,000 log lines a call; 2,000 joins (1,000 allowed).
    ("/hoard", "acks", r#"{"count":150}"#),
    ("/hoard", "ghost", r#"{"fanout":5000}"#),
    ("/hoard", "log", r#"{"lines":20000,"bytes":200}"#),
    ("/hoard", "rooms", r#"{"count":2000,"bytes":64}"#),
];

/// Starts `per_attack` clients for each attack; they run until `stop` is set and
/// count the attacks made.
pub fn start(
    base: &str,
    per_attack: usize,
    stop: Arc<AtomicBool>,
    attacks: Arc<AtomicU64>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for &(nsp, event, args) in ATTACKS {
        for _ in 0..per_attack {
            let (base, stop, attacks) = (base.to_owned(), stop.clone(), attacks.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut client) = Client::connect(&base, nsp, "{}").await else {
                        // Refused (backing off or quarantined): try again shortly.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    if client.emit(event, args).await.is_ok() {
                        attacks.fetch_add(1, Ordering::Relaxed);
                    }
                    // Read until the host drops this socket (or a while has passed).
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while client.next().await.is_ok() {}
                    })
                    .await;
                }
            });
        }
    }
    tasks
}
