//! The catalog of uploaded tenants: their versions, configurations and deploy tokens,
//! on this machine's disk ([`ComponentStore`], `tokens.json`) or, in a cluster, in
//! Redis ([`RedisCatalog`]) where every node reads the same. Compiled forms stay on
//! each machine's disk either way.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use super::redis::{Change, RedisCatalog};
use super::tokens::{new_deploy_token, Access, Tokens};
use super::{prune_compiled, ComponentStore, StoredTenant, TenantRecord, VersionInfo};
use crate::cluster::ClusterError;
use crate::tenants::{FaultReport, TenantConfig};

/// Why the catalog could not do something; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The cluster's Redis did not answer.
    #[error(
        "the cluster's Redis is unreachable ({0}); nothing was changed, try again when it is back"
    )]
    Unavailable(String),
    /// Other nodes kept changing the tenant.
    #[error("tenant {0} is being changed on other nodes at the same time; try again")]
    Busy(String),
    /// The tenant has no record.
    #[error("no tenant {0}")]
    NoTenant(String),
    /// The tenant has no such version.
    #[error("no version {0}")]
    NoVersion(u64),
    /// A stored version no longer loads (this node's engine refuses it).
    #[error("v{version} does not load here: {error}")]
    DoesNotLoad {
        /// The version.
        version: u64,
        /// Why.
        error: String,
    },
    /// What is stored is not what was written.
    #[error("stored data is damaged: {0}")]
    Damaged(String),
    /// The disk failed.
    #[error(transparent)]
    Disk(#[from] io::Error),
}

enum Place {
    Disk(ComponentStore),
    Redis(Box<RedisCatalog>),
}

/// Where uploaded tenants are kept, and the tokens the admin API accepts.
pub struct Catalog {
    place: Place,
    tokens: Tokens,
    cache: PathBuf,
}

impl Catalog {
    /// The catalog in `data_dir`; `operator` is the operator's token.
    pub fn on_disk(data_dir: &Path, operator: &str) -> io::Result<Catalog> {
        let store = ComponentStore::open(data_dir)?;
        Ok(Catalog {
            cache: store.cache_dir().to_owned(),
            tokens: Tokens::open(data_dir, operator)?,
            place: Place::Disk(store),
        })
    }

    /// The cluster's catalog in Redis at `url`, compiled forms in `data_dir`, and the
    /// changes other nodes make. Read it with [`Catalog::refresh_tokens`] first.
    pub async fn in_redis(
        url: &str,
        data_dir: &Path,
        operator: &str,
    ) -> Result<(Catalog, mpsc::UnboundedReceiver<Change>), ClusterError> {
        let (redis, changes) = RedisCatalog::connect(url).await?;
        let catalog = Catalog {
            place: Place::Redis(Box::new(redis)),
            tokens: Tokens::kept_elsewhere(operator),
            cache: data_dir.join("cache"),
        };
        Ok((catalog, changes))
    }

    /// Whether changes can be made now: false while the cluster's Redis is unreachable.
    pub fn available(&self) -> bool {
        match &self.place {
            Place::Disk(_) => true,
            Place::Redis(redis) => redis.available(),
        }
    }

    /// Whether the catalog is the one this node started with: false once the cluster's
    /// Redis lost its data (restarted without persistence), when a tenant missing from
    /// it may still be wanted.
    pub async fn same_epoch(&self) -> Result<bool, CatalogError> {
        match &self.place {
            Place::Disk(_) => Ok(true),
            Place::Redis(redis) => redis.same_epoch().await,
        }
    }

    /// Where compiled components are cached.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// What `token` may do, if it is one of ours.
    pub fn authenticate(&self, token: &str) -> Option<Access> {
        self.tokens.authenticate(token)
    }

    /// Reads the deploy tokens again from where they are kept.
    pub async fn refresh_tokens(&self) -> Result<(), CatalogError> {
        if let Place::Redis(redis) = &self.place {
            self.tokens.replace(redis.deploy_tokens().await?);
        }
        Ok(())
    }

    /// A new deploy token for `tenant`; only its hash is kept.
    pub async fn mint(&self, tenant: &str) -> Result<String, CatalogError> {
        match &self.place {
            Place::Disk(_) => Ok(self.tokens.mint(tenant)?),
            Place::Redis(redis) => {
                let (token, hash) = new_deploy_token();
                redis.add_deploy_token(tenant, &hash).await?;
                self.tokens.add(tenant, hash)?;
                Ok(token)
            }
        }
    }

    /// Every uploaded tenant with its record, sorted by name.
    pub async fn tenants(&self) -> Result<Vec<(String, TenantRecord)>, CatalogError> {
        match &self.place {
            Place::Disk(store) => Ok(store.tenants()?),
            Place::Redis(redis) => redis.tenants().await,
        }
    }

    /// An uploaded tenant as stored, if it was uploaded.
    pub async fn tenant(&self, name: &str) -> Result<Option<StoredTenant>, CatalogError> {
        match &self.place {
            Place::Disk(store) => match store.record(name)? {
                Some(record) => Ok(Some(StoredTenant {
                    record,
                    config: store.config(name)?,
                    quarantine: None,
                })),
                None => Ok(None),
            },
            Place::Redis(redis) => redis.tenant(name).await,
        }
    }

    /// Counts a fault with those of the cluster's other nodes, which quarantine the
    /// version together (see [`RedisCatalog::record_fault`]); on one machine the
    /// instance's own restart policy is all there is.
    pub async fn record_fault(&self, fault: &FaultReport) -> Result<(), CatalogError> {
        if let Place::Redis(redis) = &self.place {
            redis.record_fault(fault).await?;
        }
        Ok(())
    }

    /// In a cluster, takes one of the uploads a minute the token whose digest is
    /// `token` may make on every node together (when none is left, how long until one
    /// is); on one machine, none (the admin API counts them itself).
    pub async fn take_upload(
        &self,
        token: &[u8; 32],
        per_minute: u32,
    ) -> Result<Option<Result<(), Duration>>, CatalogError> {
        match &self.place {
            Place::Disk(_) => Ok(None),
            Place::Redis(redis) => redis.take_upload(token, per_minute).await.map(Some),
        }
    }

    /// Whether faults are counted across nodes.
    pub fn counts_faults(&self) -> bool {
        matches!(self.place, Place::Redis(_))
    }

    /// A tenant's record, if it was uploaded.
    pub async fn record(&self, name: &str) -> Result<Option<TenantRecord>, CatalogError> {
        match &self.place {
            Place::Disk(store) => Ok(store.record(name)?),
            Place::Redis(redis) => Ok(redis.tenant(name).await?.map(|t| t.record)),
        }
    }

    /// Stores a new version and makes it current, keeping at most `keep` versions;
    /// returns its details and the versions removed.
    pub async fn add_version(
        &self,
        name: &str,
        bytes: &[u8],
        keep: usize,
        contract: &str,
    ) -> Result<(VersionInfo, Vec<u64>), CatalogError> {
        match &self.place {
            Place::Disk(store) => Ok(store.add_version(name, bytes, keep, contract)?),
            Place::Redis(redis) => redis.add_version(name, bytes, keep, contract).await,
        }
    }

    /// Makes an earlier version current again.
    pub async fn set_current(&self, name: &str, version: u64) -> Result<VersionInfo, CatalogError> {
        match &self.place {
            Place::Disk(store) => Ok(store.set_current(name, version)?),
            Place::Redis(redis) => redis.set_current(name, version).await,
        }
    }

    /// Replaces the operator's limit overrides of a tenant (empty: none).
    pub async fn set_limits(
        &self,
        name: &str,
        limits: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), CatalogError> {
        match &self.place {
            Place::Disk(store) => Ok(store.set_limits(name, limits.clone())?),
            Place::Redis(redis) => redis.set_limits(name, limits).await,
        }
    }

    /// Stores the configuration the admin API gives an uploaded tenant.
    pub async fn set_config(&self, name: &str, config: &TenantConfig) -> Result<(), CatalogError> {
        match &self.place {
            Place::Disk(store) => Ok(store.set_config(name, config)?),
            Place::Redis(redis) => redis.set_config(name, config).await,
        }
    }

    /// A version's bytes, checked against the digest recorded at upload.
    pub async fn component(&self, name: &str, info: &VersionInfo) -> Result<Vec<u8>, CatalogError> {
        match &self.place {
            Place::Disk(store) => store.component(name, info),
            Place::Redis(redis) => redis.component(info).await,
        }
    }

    /// Removes a tenant, its versions and its deploy tokens; whether it had a record.
    pub async fn delete(&self, name: &str) -> Result<bool, CatalogError> {
        let stored = match &self.place {
            Place::Disk(store) => store.delete(name)?,
            Place::Redis(redis) => redis.delete(name).await?,
        };
        self.tokens.revoke(name)?;
        Ok(stored)
    }

    /// Removes compiled forms no stored version needs: of a component no tenant has any
    /// more, or made by another engine (`engine` is the current one's tag, see
    /// `Runtime::cache_tag`). Returns how many files went. Removing too much costs a
    /// compile, never a wrong answer.
    pub async fn prune_cache(&self, engine: &str) -> Result<usize, CatalogError> {
        let needed: HashSet<String> = self
            .tenants()
            .await?
            .into_iter()
            .flat_map(|(_, record)| record.versions.into_iter().map(|v| v.sha256))
            .collect();
        Ok(prune_compiled(&self.cache, &needed, engine)?)
    }
}

#[cfg(test)]
mod tests;
