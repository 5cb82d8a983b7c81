//! What a deploy token may make the host spend on uploads: so many a minute per token,
//! and compilations bounded in number at once (in total and per tenant) and in time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Uploads per minute for each deploy token, in bursts of as many.
pub(crate) struct UploadRate {
    per_minute: u32,
    buckets: Mutex<HashMap<[u8; 32], Bucket>>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl UploadRate {
    pub(crate) fn new(per_minute: u32) -> UploadRate {
        UploadRate {
            per_minute: per_minute.max(1),
            buckets: Mutex::default(),
        }
    }

    /// Takes one upload for the token whose digest is `token`; when none is left, how
    /// long until one is.
    pub(crate) fn take(&self, token: [u8; 32]) -> Result<(), Duration> {
        self.take_at(token, Instant::now())
    }

    fn take_at(&self, token: [u8; 32], now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock();

        let bucket = buckets.entry(token).or_insert(Bucket {
            tokens: capacity,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.last = now;
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// Compilations at once, one per tenant, and how long an upload may wait for and
/// take one.
pub(crate) struct Compiles {
    slots: Arc<Semaphore>,
    timeout: Duration,
    /// Tenants with a compilation under way.
    tenants: Arc<Mutex<HashSet<String>>>,
}

/// A tenant's one compilation at a time, until dropped.
pub(crate) struct Claim {
    tenant: String,
    tenants: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.tenants.lock().remove(&self.tenant);
    }
}

impl Compiles {
    pub(crate) fn new(at_once: usize, timeout: Duration) -> Compiles {
        Compiles {
            slots: Arc::new(Semaphore::new(at_once.max(1))),
            timeout,
            tenants: Arc::default(),
        }
    }

    /// The tenant's turn to have a compilation under way, unless it has one already.
    pub(crate) fn claim(&self, tenant: &str) -> Option<Claim> {
        self.tenants
            .lock()
            .insert(tenant.to_owned())
            .then(|| Claim {
                tenant: tenant.to_owned(),
                tenants: self.tenants.clone(),
            })
    }

    /// How long an upload may wait for and take its compilation.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A turn to compile, held by the compilation until it ends or is stopped.
    pub(crate) async fn turn(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_its_burst_then_one_upload_per_share_of_a_minute() {
        let rate = UploadRate::new(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(rate.take_at([1; 32], start).is_ok());
        }
        let wait = rate
            .take_at([1; 32], start)
            .expect_err("the burst is spent");
        assert!(
            wait <= Duration::from_secs(20) && wait > Duration::from_secs(19),
            "{wait:?}"
        );
        // Another token has its own.
        assert!(rate.take_at([2; 32], start).is_ok());
        assert!(rate
            .take_at([1; 32], start + Duration::from_secs(21))
            .is_ok());
    }
}
