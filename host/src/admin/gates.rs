//! One gate per tenant: the admin API's changes to a tenant (upload, roll back, limits,
//! delete) take its gate one at a time, and changes to different tenants never wait
//! for each other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

/// The gates of every tenant the API has changed.
#[derive(Default)]
pub(crate) struct Gates {
    gates: Mutex<HashMap<String, Arc<Gate>>>,
}

/// One tenant's gate, and how many times it was deleted: an upload that began before a
/// deletion must not bring the tenant back once it gets the gate.
#[derive(Default)]
pub(crate) struct Gate {
    changing: AsyncMutex<()>,
    deletions: AtomicU64,
}

impl Gates {
    /// The gate of `tenant`.
    pub(crate) fn of(&self, tenant: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock();

        gates.entry(tenant.to_owned()).or_default().clone()
    }
}

impl Gate {
    /// Waits for the other changes to this tenant.
    pub(crate) async fn enter(&self) -> MutexGuard<'_, ()> {
        self.changing.lock().await
    }

    /// How many times the tenant was deleted so far.
    pub(crate) fn deletions(&self) -> u64 {
        self.deletions.load(Ordering::Acquire)
    }

    /// Records a deletion (with the gate entered).
    pub(crate) fn deleted(&self) {
        self.deletions.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_tenant_waits_and_another_does_not() {
        let gates = Gates::default();
        let alpha = gates.of("alpha");
        let held = alpha.enter().await;
        let again = gates.of("alpha");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), again.enter())
                .await
                .is_err(),
            "a second change to alpha waits"
        );
        let beta = gates.of("beta");
        assert!(
            tokio::time::timeout(Duration::from_secs(5), beta.enter())
                .await
                .is_ok(),
            "beta does not wait for alpha"
        );
        drop(held);
        let seen = alpha.deletions();
        alpha.deleted();
        assert_ne!(gates.of("alpha").deletions(), seen);
    }
}
