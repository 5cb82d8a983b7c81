//! What this node serves of the uploaded tenants, kept in line with the catalog: at
//! start, after each change made through this node's API, and in a cluster whenever
//! another node changes a tenant (or the link to Redis is back, when every tenant is
//! looked at again).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::Admin;
use crate::store::{CatalogError, Change, Quarantine, StoredTenant, VersionInfo};
use crate::tenants::{Code, FaultSink, TenantConfig};

/// An uploaded tenant as this node serves it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Served {
    /// The version live here.
    pub(super) info: VersionInfo,
    /// The operator's limit overrides it runs under.
    pub(super) overrides: Map<String, Value>,
    /// The admin API's configuration it reads.
    pub(super) config: TenantConfig,
    /// Why the cluster quarantined the version, if it did.
    pub(super) quarantine: Option<Quarantine>,
}

/// A component compiled for a change, so that applying it compiles nothing again.
pub(super) struct Compiled {
    /// Its digest.
    pub(super) sha256: String,
    /// It, compiled.
    pub(super) code: Arc<Code>,
}

impl Admin {
    /// Acts on a change the catalog announced.
    pub async fn follow(&self, change: Change) {
        match change {
            Change::Tenant(tenant) => self.follow_tenant(&tenant).await,
            Change::Tokens => self.refresh_tokens().await,
            Change::Everything => {
                self.refresh_tokens().await;
                if let Err(error) = self.sync_all().await {
                    tracing::warn!(%error, "cannot bring the tenants in line with the catalog");
                }
            }
        }
    }

    /// In a cluster, counts every fault of the uploaded tenants' instances with those
    /// of the other nodes, so that a version faulting on several nodes is quarantined
    /// on all of them.
    pub fn share_faults(self: &Arc<Self>) {
        if !self.catalog.counts_faults() {
            return;
        }
        let admin = Arc::downgrade(self);
        let sink: FaultSink = Arc::new(move |fault| {
            let Some(admin) = admin.upgrade() else { return };
            tokio::spawn(async move {
                if let Err(error) = admin.catalog.record_fault(&fault).await {
                    tracing::warn!(tenant = %fault.tenant, %error, "a fault not counted for the cluster");
                }
            });
        });
        self.tenants.report_faults(sink);
    }

    /// [`Admin::apply`] with the tenant's gate entered; a failure is logged (the next
    /// change, or the link coming back, tries again).
    async fn follow_tenant(&self, tenant: &str) {
        let gate = self.gates.of(tenant);
        let _one_at_a_time = gate.enter().await;
        if let Err(error) = self.apply(tenant, None).await {
            tracing::error!(%tenant, %error, "cannot bring a tenant in line with the catalog");
        }
    }

    async fn refresh_tokens(&self) {
        if let Err(error) = self.catalog.refresh_tokens().await {
            tracing::warn!(%error, "cannot read the deploy tokens");
        }
    }

    /// Serves every uploaded tenant's current version, and stops serving those no
    /// longer in the catalog, unless the catalog lost its data: then they go on and the
    /// log says why. One that does not load is logged and left as it was.
    pub async fn sync_all(&self) -> Result<(), CatalogError> {
        let mut names: Vec<String> = self
            .catalog
            .tenants()
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let missing: Vec<String> = {
            let served = self.served.lock();
            served
                .keys()
                .filter(|n| !names.contains(n))
                .cloned()
                .collect()
        };
        if !missing.is_empty() && !self.catalog.same_epoch().await? {
            tracing::error!(
                tenants = ?missing,
                "the cluster's Redis lost the tenants' catalog (restarted without persistence?): these tenants go on serving here, but are no longer stored; upload them again"
            );
        } else {
            names.extend(missing);
        }
        for tenant in names {
            self.follow_tenant(&tenant).await;
        }
        super::prune_cache(&self.catalog, self.tenants.runtime()).await;
        Ok(())
    }

    /// Makes what this node serves of `tenant` what the catalog says (with the tenant's
    /// gate entered): its current version, limits and configuration, or nothing once it
    /// is gone. `compiled`: the component just compiled for this change, if any.
    pub(super) async fn apply(
        &self,
        tenant: &str,
        compiled: Option<Compiled>,
    ) -> Result<(), CatalogError> {
        let stored = self.catalog.tenant(tenant).await?;
        let served = self.served.lock().get(tenant).cloned();
        let Some(StoredTenant {
            record,
            config,
            quarantine,
        }) = stored
        else {
            if served.is_some() {
                self.served.lock().remove(tenant);
                self.gates.of(tenant).deleted();
                self.tenants.remove(tenant).await;
                tracing::info!(tenant, "deleted");
            }
            return Ok(());
        };
        let Some(info) = record.current_info().cloned() else {
            return Ok(());
        };
        let next = Served {
            quarantine: quarantine.filter(|q| q.version == info.version),
            info,
            overrides: record.limits,
            config,
        };
        if served.as_ref() == Some(&next) {
            return Ok(());
        }
        let limits = self.tenants.limits_with_overrides(tenant, &next.overrides);
        self.tenants.keep_config(tenant, &next.config);
        let same_version = served.as_ref().is_some_and(|s| s.info == next.info);
        let same_run = served.as_ref().is_some_and(|s| {
            s.info == next.info && s.overrides == next.overrides && s.config == next.config
        });
        if same_run {
            // Only the quarantine changed: the running instance takes it.
        } else if same_version {
            // The same version under other limits or another configuration.
            self.tenants.set_limits(tenant, limits).await;
        } else {
            let code = match compiled.filter(|c| c.sha256 == next.info.sha256) {
                Some(compiled) => compiled.code,
                None => self.load(tenant, &next.info).await?,
            };
            self.tenants
                .deploy(tenant, next.info.version, code, limits)
                .await;
            tracing::info!(tenant, version = next.info.version, sha256 = %next.info.sha256, "serving");
        }
        if let (Some(quarantine), Some(slot)) = (&next.quarantine, self.tenants.get(tenant)) {
            slot.current().quarantine(format!(
                "{} faults within the fault window on the cluster's nodes; the last: {}",
                quarantine.faults, quarantine.error
            ));
        }
        self.served.lock().insert(tenant.to_owned(), next);
        Ok(())
    }

    /// A stored version, compiled (from this machine's cache when it has it).
    async fn load(&self, tenant: &str, info: &VersionInfo) -> Result<Arc<Code>, CatalogError> {
        let bytes = self.catalog.component(tenant, info).await?;
        let cache = Some(self.catalog.cache_dir().to_owned());
        let _turn = self.compiles.turn().await;
        self.tenants
            .runtime()
            .compile_untrusted(bytes.into(), cache)
            .await
            .map_err(|e| CatalogError::DoesNotLoad {
                version: info.version,
                error: e.to_string(),
            })
    }
}
