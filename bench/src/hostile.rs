//! Hostile load for the sandbox benchmark: clients that make their tenants loop to
//! the CPU deadline, trap, or flood, over and over, reconnecting after each fault.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::client::Client;

/// The hostile tenants (namespace, the event that makes it misbehave).
pub const ATTACKS: &[(&str, &str)] = &[("/spin", "spin"), ("/crash", "boom"), ("/flood", "flood")];

/// Starts `per_attack` clients for each attack; they run until `stop` is set and
/// count the attacks made.
pub fn start(
    base: &str,
    per_attack: usize,
    stop: Arc<AtomicBool>,
    attacks: Arc<AtomicU64>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for &(nsp, event) in ATTACKS {
        for _ in 0..per_attack {
            let (base, stop, attacks) = (base.to_owned(), stop.clone(), attacks.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut client) = Client::connect(&base, nsp, "{}").await else {
                        // Refused (backing off or quarantined): try again shortly.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    if client.emit(event, "1").await.is_ok() {
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
