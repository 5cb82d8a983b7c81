//! The durable store under the data directory: every tenant's component versions and
//! which one is current, and the hashes of deploy tokens.
//!
//! ```text
//! <data>/tenants/<tenant>/v<N>.wasm     each uploaded version, as uploaded
//! <data>/tenants/<tenant>/tenant.json   {"current": N, "versions": [...]} (digests, sizes, times)
//! <data>/tenants/<tenant>/config.json   its configuration and secrets from the admin API
//! <data>/storage.sqlite3                every tenant's keys (crate::kv)
//! <data>/tokens.json                    {"<tenant>": ["<sha256 of a token>", ...]}
//! <data>/cache/<sha256>-<engine>.cwasm  compiled forms, with a .sha256 of each beside it
//! ```
//!
//! Every write is atomic ([`durable::write`]); an upload writes the component first and
//! the record naming it second, so a crash in between leaves the previous version current.

mod catalog;
pub mod redis;
pub mod tokens;

pub use catalog::{Catalog, CatalogError};
pub use redis::Change;

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::durable;
use crate::tenants::TenantConfig;

/// A stored tenant's configuration from the admin API, beside its record.
const CONFIG_FILE: &str = "config.json";

/// One stored version of a tenant's component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// 1, 2, 3, … in upload order.
    pub version: u64,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was uploaded, in milliseconds since the Unix epoch.
    pub uploaded_at_ms: u64,
    /// The `nsbox:tenant` contract version it was built for (`0.2.0`, `0.1.0`);
    /// versions stored before 0.2.0 existed were all built for 0.1.0.
    #[serde(default = "contract_before_0_2")]
    pub contract: String,
}

fn contract_before_0_2() -> String {
    "0.1.0".to_owned()
}

/// A tenant's versions and the current one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// The version that serves.
    pub current: u64,
    /// Every stored version, oldest first.
    pub versions: Vec<VersionInfo>,
    /// Limits the operator set for this tenant through the admin API, over the
    /// configuration's (same names as `[limits]`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub limits: serde_json::Map<String, serde_json::Value>,
}

impl TenantRecord {
    /// The current version's details.
    pub fn current_info(&self) -> Option<&VersionInfo> {
        self.version(self.current)
    }

    /// A version's details.
    pub fn version(&self, version: u64) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// Adds `bytes` as the next version and makes it current, keeping at most `keep`
    /// versions (the oldest others go; the new one is current, so never itself).
    /// Returns the new version's details and those of the versions that went.
    pub fn add(
        &mut self,
        bytes: &[u8],
        keep: usize,
        contract: &str,
    ) -> (VersionInfo, Vec<VersionInfo>) {
        let version = self.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        let info = VersionInfo {
            version,
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
            uploaded_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            contract: contract.to_owned(),
        };
        self.versions.push(info.clone());
        self.current = version;
        let mut pruned = Vec::new();
        while self.versions.len() > keep.max(1) {
            let Some(oldest) = self
                .versions
                .iter()
                .filter(|v| v.version != self.current)
                .min_by_key(|v| v.version)
                .cloned()
            else {
                break;
            };
            self.versions.retain(|v| v.version != oldest.version);
            pruned.push(oldest);
        }
        (info, pruned)
    }
}

/// A version quarantined by the faults of every node running it together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    /// The version.
    pub version: u64,
    /// Faults in the window when it was quarantined.
    pub faults: u64,
    /// The last of them.
    pub error: String,
}

/// An uploaded tenant as the catalog keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTenant {
    /// Its versions and limits.
    pub record: TenantRecord,
    /// What the admin API configured.
    pub config: TenantConfig,
    /// Set when its current version's faults quarantined it across the cluster.
    pub quarantine: Option<Quarantine>,
}

/// Whether a name can be a tenant: 1 to 64 ASCII letters, digits or `_` (what `\w+`
/// matches, restricted to ASCII so that it is also a safe directory name).
pub fn valid_tenant_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub use crate::durable::sha256_hex;

/// Removes from `cache` the compiled forms of components not in `needed` (digests) or
/// made by another engine than `engine`; returns how many files went.
pub fn prune_compiled(cache: &Path, needed: &HashSet<String>, engine: &str) -> io::Result<usize> {
    let entries = match fs::read_dir(cache) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = name.split('.').next().unwrap_or_default();
        let keep = stem
            .split_once('-')
            .is_some_and(|(digest, tag)| tag == engine && needed.contains(digest));
        if !keep && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// `bytes` if they are what `info` says they are.
fn checked(info: &VersionInfo, bytes: Vec<u8>) -> Result<Vec<u8>, CatalogError> {
    if sha256_hex(&bytes) != info.sha256 {
        return Err(CatalogError::Damaged(format!(
            "v{} does not match its recorded SHA-256",
            info.version
        )));
    }
    Ok(bytes)
}

/// Components and their versions on disk.
pub struct ComponentStore {
    dir: PathBuf,
    cache: PathBuf,
}

impl ComponentStore {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> io::Result<ComponentStore> {
        let dir = data_dir.join("tenants");
        durable::create_private_dir(&dir)?;
        // What a crash left half-written is swept once, here, not on every read.
        for entry in fs::read_dir(&dir)?.flatten() {
            durable::clean_temporaries(&entry.path());
        }
        Ok(ComponentStore {
            dir,
            cache: data_dir.join("cache"),
        })
    }

    /// Where compiled components are cached (see `Runtime::compile_cached`).
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    fn tenant_dir(&self, name: &str) -> io::Result<PathBuf> {
        if !valid_tenant_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid tenant name {name:?}"),
            ));
        }
        Ok(self.dir.join(name))
    }

    /// Every stored tenant with its record, sorted by name. A tenant whose record is
    /// unreadable is skipped with a warning, not fatal to the others.
    pub fn tenants(&self) -> io::Result<Vec<(String, TenantRecord)>> {
        let mut tenants = Vec::new();
        for entry in fs::read_dir(&self.dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_tenant_name(&name) {
                continue;
            }
            match self.record(&name) {
                Ok(Some(record)) => tenants.push((name, record)),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(tenant = %name, %error, "skipping an unreadable tenant")
                }
            }
        }
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(tenants)
    }

    /// A tenant's record, if it has one.
    pub fn record(&self, name: &str) -> io::Result<Option<TenantRecord>> {
        let dir = self.tenant_dir(name)?;
        match fs::read(dir.join("tenant.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn save_record(&self, name: &str, record: &TenantRecord) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        durable::write(&self.tenant_dir(name)?.join("tenant.json"), &bytes)
    }

    /// Stores a new version and makes it current, keeping at most `keep` versions (the
    /// oldest others go; the new one is current, so never itself); returns its details
    /// and the versions removed. Bytes an earlier version already has are stored once.
    pub fn add_version(
        &self,
        name: &str,
        bytes: &[u8],
        keep: usize,
        contract: &str,
    ) -> io::Result<(VersionInfo, Vec<u64>)> {
        let dir = self.tenant_dir(name)?;
        let created = !dir.exists();
        durable::create_private_dir(&dir)?;
        if created {
            durable::sync_dir(&self.dir)?;
        }
        let mut record = self.record(name)?.unwrap_or_default();
        let (info, pruned) = record.add(bytes, keep, contract);
        // The component first, the record naming it second: a crash in between leaves the
        // previous version current and an unreferenced file the next upload overwrites.
        let path = dir.join(format!("v{}.wasm", info.version));
        // Pruned versions' files are still there until the record no longer names them.
        let same = (record.versions.iter().chain(&pruned))
            .find(|v| v.sha256 == info.sha256 && v.version != info.version);
        let linked = same.is_some_and(|earlier| {
            let _ = fs::remove_file(&path);
            fs::hard_link(dir.join(format!("v{}.wasm", earlier.version)), &path).is_ok()
        });
        if linked {
            durable::sync_dir(&dir)?;
        } else {
            durable::write(&path, bytes)?;
        }
        self.save_record(name, &record)?;
        // The record no longer names them: a crash before this leaves files nobody reads.
        for gone in &pruned {
            let _ = fs::remove_file(dir.join(format!("v{}.wasm", gone.version)));
        }
        Ok((info, pruned.into_iter().map(|v| v.version).collect()))
    }

    /// Makes an earlier version current again.
    pub fn set_current(&self, name: &str, version: u64) -> io::Result<VersionInfo> {
        let mut record = self
            .record(name)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no tenant {name}")))?;
        let info = record.version(version).cloned().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no version {version}"))
        })?;
        record.current = version;
        self.save_record(name, &record)?;
        Ok(info)
    }

    /// Replaces the operator's limit overrides of a tenant (empty: none).
    pub fn set_limits(
        &self,
        name: &str,
        limits: serde_json::Map<String, serde_json::Value>,
    ) -> io::Result<()> {
        let mut record = self
            .record(name)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no tenant {name}")))?;
        record.limits = limits;
        self.save_record(name, &record)
    }

    /// The configuration the admin API gave a stored tenant (none: empty).
    pub fn config(&self, name: &str) -> io::Result<TenantConfig> {
        let path = self.tenant_dir(name)?.join(CONFIG_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(TenantConfig::default()),
            Err(error) => Err(error),
        }
    }

    /// Stores the configuration the admin API gives a stored tenant: secrets included,
    /// so in a file only the operator may read (as everything here).
    pub fn set_config(&self, name: &str, config: &TenantConfig) -> io::Result<()> {
        if self.record(name)?.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no tenant {name}"),
            ));
        }
        let bytes = serde_json::to_vec_pretty(config).map_err(io::Error::other)?;
        durable::write(&self.tenant_dir(name)?.join(CONFIG_FILE), &bytes)
    }

    /// A stored version's bytes, checked against the digest recorded at upload.
    pub fn component(&self, name: &str, info: &VersionInfo) -> Result<Vec<u8>, CatalogError> {
        let path = self
            .tenant_dir(name)?
            .join(format!("v{}.wasm", info.version));
        checked(info, fs::read(path)?)
    }

    /// Removes a tenant and all its versions. The record goes first, so a crash midway
    /// leaves no tenant rather than half of one.
    pub fn delete(&self, name: &str) -> io::Result<bool> {
        let dir = self.tenant_dir(name)?;
        if !dir.exists() {
            return Ok(false);
        }
        match fs::remove_file(dir.join("tenant.json")) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        durable::sync_dir(&dir)?;
        fs::remove_dir_all(&dir)?;
        durable::sync_dir(&self.dir)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (PathBuf, ComponentStore) {
        let dir = std::env::temp_dir().join(format!("nsbox-store-{}", rand::random::<u64>()));
        let store = ComponentStore::open(&dir).expect("opens");
        (dir, store)
    }

    #[test]
    fn versions_stored_before_0_2_read_as_built_for_0_1_0() {
        let old = r#"{"version":1,"sha256":"ab","size":3,"uploaded_at_ms":7}"#;
        let info: VersionInfo = serde_json::from_str(old).expect("an old record");
        assert_eq!(info.contract, "0.1.0");
    }

    #[test]
    fn versions_roll_forward_and_back_and_survive_reopening() {
        let (dir, store) = temp_store();
        let v1 = store
            .add_version("acme", b"one", 10, "0.2.0")
            .expect("stored")
            .0;
        let v2 = store
            .add_version("acme", b"two", 10, "0.2.0")
            .expect("stored")
            .0;
        assert_eq!((v1.version, v2.version), (1, 2));
        assert_eq!(v1.sha256, sha256_hex(b"one"));
        store.set_current("acme", 1).expect("rolled back");
        let reopened = ComponentStore::open(&dir).expect("opens");
        let tenants = reopened.tenants().expect("lists");
        assert_eq!(tenants.len(), 1);
        let record = &tenants[0].1;
        assert_eq!(record.current, 1);
        let current = record.current_info().expect("current");
        assert_eq!(
            reopened.component("acme", current).expect("readable"),
            b"one"
        );
        assert!(store.set_current("acme", 9).is_err());
        assert!(store.delete("acme").expect("deleted"));
        assert!(store.tenants().expect("lists").is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_crash_between_component_and_record_keeps_the_previous_version() {
        let (dir, store) = temp_store();
        store
            .add_version("acme", b"one", 10, "0.2.0")
            .expect("stored");
        // What a crash after the component write leaves: v2 on disk, the record at v1,
        // and a torn temporary.
        fs::write(dir.join("tenants/acme/v2.wasm"), b"two").expect("written");
        let torn = dir.join("tenants/acme/.tenant.json.7.tmp");
        fs::write(&torn, b"{\"curr").expect("written");
        // The restart: the store opens again, sweeps the torn file, keeps version 1.
        let store = ComponentStore::open(&dir).expect("opens");
        assert!(!torn.exists(), "the torn temporary is swept at open");
        let record = store.record("acme").expect("readable").expect("present");
        assert_eq!(record.current, 1);
        // The next upload takes number 2 over.
        let next = store
            .add_version("acme", b"three", 10, "0.2.0")
            .expect("stored")
            .0;
        assert_eq!(next.version, 2);
        assert_eq!(store.component("acme", &next).expect("readable"), b"three");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_tampered_component_is_refused_and_names_stay_inside_the_store() {
        let (dir, store) = temp_store();
        let info = store
            .add_version("acme", b"one", 10, "0.2.0")
            .expect("stored")
            .0;
        fs::write(dir.join("tenants/acme/v1.wasm"), b"evil").expect("tampered");
        assert!(store.component("acme", &info).is_err());
        for name in ["../x", "", "a/b", "é", ".", "a b", &"x".repeat(65)] {
            assert!(!valid_tenant_name(name), "{name:?}");
            assert!(
                store.add_version(name, b"x", 10, "0.2.0").is_err(),
                "{name:?}"
            );
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn identical_bytes_are_stored_once_and_old_versions_pruned_but_never_the_live_one() {
        use std::os::unix::fs::MetadataExt;
        let (dir, store) = temp_store();
        let one = store
            .add_version("acme", b"one", 3, "0.2.0")
            .expect("stored")
            .0;
        store
            .add_version("acme", b"two", 3, "0.2.0")
            .expect("stored");
        let again = store
            .add_version("acme", b"one", 3, "0.2.0")
            .expect("stored")
            .0;
        assert_eq!(again.sha256, one.sha256);
        let path = |v: u64| dir.join(format!("tenants/acme/v{v}.wasm"));
        let (first, third) = (
            fs::metadata(path(1)).expect("v1"),
            fs::metadata(path(3)).expect("v3"),
        );
        assert_eq!(
            (first.dev(), first.ino()),
            (third.dev(), third.ino()),
            "one copy of the bytes"
        );
        // A fourth version: the oldest goes, the bytes it shares with v3 stay.
        let (four, pruned) = store
            .add_version("acme", b"four", 3, "0.2.0")
            .expect("stored");
        assert_eq!(pruned, [1]);
        assert!(!path(1).exists());
        assert_eq!(
            store.component("acme", &again).expect("v3 readable"),
            b"one"
        );
        // The new version is live: the oldest other one goes, whatever was live before.
        store.set_current("acme", 2).expect("rolled back");
        let (five, pruned) = store
            .add_version("acme", b"five", 3, "0.2.0")
            .expect("stored");
        assert_eq!(pruned, [2]);
        let record = store.record("acme").expect("readable").expect("there");
        let kept: Vec<u64> = record.versions.iter().map(|v| v.version).collect();
        assert_eq!(kept, [3, four.version, five.version]);
        assert_eq!(record.current, five.version);
        let _ = fs::remove_dir_all(&dir);
    }
}
