//! The catalog does the same on disk and in Redis; in Redis, several nodes share it.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use fred::interfaces::{ClientLike, HashesInterface, KeysInterface};
use tokio::sync::mpsc::UnboundedReceiver;

use super::*;
use crate::cluster::testing::TestRedis;
use crate::store::tokens::Access;
use crate::store::Quarantine;
use crate::tenants::FaultReport;

const OPERATOR: &str = "operator-token-0123456789";

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("nsbox-catalog-{}", rand::random::<u64>()))
}

fn config(pairs: &[(&str, &str)]) -> TenantConfig {
    let change = serde_json::json!({
        "config": pairs.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>()
    });
    TenantConfig::default()
        .patched(&change)
        .expect("a valid configuration")
}

/// Every case, one after the other, on a fresh catalog.
async fn every_case(catalog: &Catalog) {
    // Versions roll forward and back.
    let (one, pruned) = catalog
        .add_version("acme", b"one", 3, "0.2.0")
        .await
        .expect("stored");
    assert_eq!((one.version, pruned.len()), (1, 0));
    let (two, _) = catalog
        .add_version("acme", b"two", 3, "0.1.0")
        .await
        .expect("stored");
    assert_eq!((two.version, two.contract.as_str()), (2, "0.1.0"));
    assert_eq!(
        catalog.set_current("acme", 1).await.expect("rolled back"),
        one
    );
    let record = catalog.record("acme").await.expect("read").expect("there");
    assert_eq!(record.current, 1);
    assert_eq!(
        catalog.component("acme", &two).await.expect("bytes"),
        b"two"
    );
    assert!(matches!(
        catalog.set_current("acme", 9).await,
        Err(CatalogError::NoVersion(9) | CatalogError::Disk(_))
    ));
    // Old versions go, the live one never; the same bytes again are a new version.
    catalog
        .add_version("acme", b"one", 3, "0.2.0")
        .await
        .expect("stored");
    let (four, pruned) = catalog
        .add_version("acme", b"four", 3, "0.2.0")
        .await
        .expect("stored");
    assert_eq!((four.version, pruned), (4, vec![1]));
    let three = catalog.record("acme").await.expect("read").expect("there");
    let three = three.version(3).expect("v3 kept").clone();
    assert_eq!(
        catalog.component("acme", &three).await.expect("bytes"),
        b"one",
        "v3's bytes outlive v1, which had the same"
    );
    // Limits and configuration, beside the record.
    let mut limits = serde_json::Map::new();
    limits.insert("cpu_per_call_ms".into(), serde_json::json!(20));
    catalog.set_limits("acme", &limits).await.expect("set");
    catalog
        .set_config("acme", &config(&[("greeting", "hi")]))
        .await
        .expect("set");
    let stored = catalog.tenant("acme").await.expect("read").expect("there");
    assert_eq!(stored.record.limits, limits);
    assert_eq!(stored.record.current, 4);
    assert_eq!(stored.config, config(&[("greeting", "hi")]));
    assert!(matches!(
        catalog.set_limits("nobody", &limits).await,
        Err(CatalogError::NoTenant(_) | CatalogError::Disk(_))
    ));
    assert_eq!(catalog.tenant("nobody").await.expect("read"), None);
    // Deploy tokens, and what a deletion takes with it.
    let token = catalog.mint("acme").await.expect("minted");
    assert_eq!(
        catalog.authenticate(&token),
        Some(Access::Tenant("acme".into()))
    );
    assert_eq!(catalog.authenticate(OPERATOR), Some(Access::Operator));
    catalog
        .add_version("beta", b"beta", 3, "0.2.0")
        .await
        .expect("stored");
    let names: Vec<String> = catalog
        .tenants()
        .await
        .expect("listed")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["acme", "beta"]);
    assert!(catalog.delete("acme").await.expect("deleted"));
    assert!(!catalog.delete("acme").await.expect("already gone"));
    assert_eq!(catalog.authenticate(&token), None);
    assert_eq!(catalog.tenant("acme").await.expect("read"), None);
    // A tenant made again starts afresh.
    let (again, _) = catalog
        .add_version("acme", b"again", 3, "0.2.0")
        .await
        .expect("stored");
    assert_eq!(again.version, 1);
    let stored = catalog.tenant("acme").await.expect("read").expect("there");
    assert_eq!(stored.config, TenantConfig::default());
}

/// Compiled forms stay for the components stored versions have, made by this engine.
async fn the_cache_keeps_what_stored_versions_need(catalog: &Catalog) {
    let kept = catalog
        .add_version("alpha", b"\0asm one", 10, "0.2.0")
        .await
        .expect("stored")
        .0;
    let gone = catalog
        .add_version("gamma", b"\0asm two", 10, "0.2.0")
        .await
        .expect("stored")
        .0;
    let cache = catalog.cache_dir().to_owned();
    fs::create_dir_all(&cache).expect("cache dir");
    let touch = |name: String| fs::write(cache.join(name), b"x").expect("written");
    for ext in ["cwasm", "sha256"] {
        touch(format!("{}-0000000000000abc.{ext}", kept.sha256));
        touch(format!("{}-0000000000000abc.{ext}", gone.sha256));
        touch(format!("{}-00000000000old00.{ext}", kept.sha256));
        touch(format!("{}-0000000000000abc.{ext}", "f".repeat(64)));
    }
    touch("stray".into());
    // What both need stays; another engine's, a stranger's and a stray go.
    assert_eq!(
        catalog
            .prune_cache("0000000000000abc")
            .await
            .expect("pruned"),
        5
    );
    assert!(catalog.delete("gamma").await.expect("deleted"));
    assert_eq!(
        catalog
            .prune_cache("0000000000000abc")
            .await
            .expect("pruned"),
        2
    );
    let left = fs::read_dir(&cache).expect("cache dir").count();
    assert_eq!(left, 2, "alpha's two files");
}

#[tokio::test]
async fn on_disk() {
    let dir = temp_dir();
    let catalog = Catalog::on_disk(&dir, OPERATOR).expect("opens");
    every_case(&catalog).await;
    the_cache_keeps_what_stored_versions_need(&catalog).await;
    let token = catalog.mint("beta").await.expect("minted");
    // It all survives a restart.
    let reopened = Catalog::on_disk(&dir, OPERATOR).expect("opens");
    assert_eq!(reopened.tenants().await.expect("listed").len(), 3);
    assert_eq!(
        reopened.authenticate(&token),
        Some(Access::Tenant("beta".into()))
    );
    let _ = fs::remove_dir_all(&dir);
}

async fn node(redis: &TestRedis) -> (Catalog, UnboundedReceiver<Change>, PathBuf) {
    let dir = temp_dir();
    let (catalog, changes) = Catalog::in_redis(&redis.url, &dir, OPERATOR)
        .await
        .expect("connects");
    catalog.refresh_tokens().await.expect("read");
    (catalog, changes, dir)
}

/// Two nodes, A and B, where A uploaded `acme` and B heard of it; what B hears next.
async fn two_nodes_with_acme(
    redis: &TestRedis,
) -> (Catalog, Catalog, UnboundedReceiver<Change>, [PathBuf; 2]) {
    let (a, _, dir_a) = node(redis).await;
    let (b, mut heard, dir_b) = node(redis).await;
    a.add_version("acme", b"one", 10, "0.2.0")
        .await
        .expect("stored");
    assert_eq!(next(&mut heard).await, Change::Tenant("acme".into()));
    (a, b, heard, [dir_a, dir_b])
}

/// The next change announced, within 5 s.
async fn next(changes: &mut UnboundedReceiver<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("a change within 5 s")
        .expect("the listener lives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_redis() {
    let redis = TestRedis::start().await;
    let (catalog, _, dir) = node(&redis).await;
    every_case(&catalog).await;
    the_cache_keeps_what_stored_versions_need(&catalog).await;
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_redis_a_component_is_kept_once_and_goes_with_its_last_version() {
    let redis = TestRedis::start().await;
    let (catalog, _, dir) = node(&redis).await;
    let client = redis.client().await;
    let kept = |sha: String| {
        let client = client.clone();
        async move {
            let n: u64 = client
                .exists(format!("nsbox:{{catalog}}:component:{sha}"))
                .await
                .expect("asked");
            n == 1
        }
    };
    let shared = crate::store::sha256_hex(b"shared");
    catalog
        .add_version("a", b"shared", 2, "0.2.0")
        .await
        .expect("stored");
    catalog
        .add_version("b", b"shared", 2, "0.2.0")
        .await
        .expect("stored");
    catalog
        .add_version("b", b"other", 2, "0.2.0")
        .await
        .expect("stored");
    assert!(kept(shared.clone()).await && kept(crate::store::sha256_hex(b"other")).await);
    let counts: std::collections::HashMap<String, u64> =
        client.hgetall("nsbox:{catalog}:refs").await.expect("read");
    assert_eq!(
        counts.get(&shared),
        Some(&2),
        "one copy, two versions: {counts:?}"
    );
    // b's v1 goes (pruned), a still has the bytes.
    catalog
        .add_version("b", b"third", 2, "0.2.0")
        .await
        .expect("stored");
    assert!(kept(shared.clone()).await);
    assert!(catalog.delete("a").await.expect("deleted"));
    assert!(!kept(shared).await, "no version has them any more");
    assert!(kept(crate::store::sha256_hex(b"third")).await);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_the_catalog_and_hear_of_each_others_changes() {
    let redis = TestRedis::start().await;
    let (a, b, mut heard, [dir_a, dir_b]) = two_nodes_with_acme(&redis).await;
    assert_eq!(
        b.record("acme")
            .await
            .expect("read")
            .expect("there")
            .current,
        1
    );
    // A token minted on one node is accepted on the other once it has heard.
    let token = a.mint("acme").await.expect("minted");
    assert_eq!(next(&mut heard).await, Change::Tokens);
    assert_eq!(b.authenticate(&token), None, "not read yet");
    b.refresh_tokens().await.expect("read");
    assert_eq!(b.authenticate(&token), Some(Access::Tenant("acme".into())));
    // Uploads on both at once: every one gets a version of its own, none is lost.
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let mut uploads = Vec::new();
    for i in 0..20u8 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        uploads.push(tokio::spawn(async move {
            node.add_version("acme", &[i], 100, "0.2.0")
                .await
                .map(|(info, _)| info.version)
        }));
    }
    let mut versions = Vec::new();
    for upload in uploads {
        match upload.await.expect("ran") {
            Ok(version) => versions.push(version),
            // Outrun by the others eight times in a row: said so, nothing stored.
            Err(CatalogError::Busy(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    versions.sort();
    versions.dedup();
    let record = a.record("acme").await.expect("read").expect("there");
    assert_eq!(
        record.versions.len(),
        versions.len() + 1,
        "v1 and each upload"
    );
    assert!(versions.len() >= 10, "most uploads land: {versions:?}");
    // A deletion revokes the tenant's tokens on every node that hears of it.
    assert!(b.delete("acme").await.expect("deleted"));
    a.refresh_tokens().await.expect("read");
    assert_eq!(a.authenticate(&token), None);
    let _ = (fs::remove_dir_all(&dir_a), fs::remove_dir_all(&dir_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_nothing_changes_and_what_was_acknowledged_survives_it() {
    let mut redis = TestRedis::start_durable().await;
    let (catalog, mut heard, dir) = node(&redis).await;
    catalog
        .add_version("acme", b"one", 10, "0.2.0")
        .await
        .expect("stored");
    let token = catalog.mint("acme").await.expect("minted");
    assert_eq!(next(&mut heard).await, Change::Tenant("acme".into()));
    assert_eq!(next(&mut heard).await, Change::Tokens);
    redis.kill();
    for _ in 0..100 {
        if !catalog.available() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!catalog.available(), "the link is seen down within 5 s");
    let refused = catalog.add_version("acme", b"two", 10, "0.2.0").await;
    assert!(
        matches!(refused, Err(CatalogError::Unavailable(_))),
        "{refused:?}"
    );
    redis.kill_and_restart().await;
    // Back: what was acknowledged is there, what was refused is not, and the
    // listener says everything may have changed.
    assert_eq!(next(&mut heard).await, Change::Everything);
    let record = catalog.record("acme").await.expect("read").expect("there");
    assert_eq!(record.versions.len(), 1, "nothing half-stored");
    catalog.refresh_tokens().await.expect("read");
    assert_eq!(
        catalog.authenticate(&token),
        Some(Access::Tenant("acme".into()))
    );
    assert_eq!(
        catalog
            .component("acme", &record.versions[0])
            .await
            .expect("bytes"),
        b"one"
    );
    let _ = fs::remove_dir_all(&dir);
}

async fn quarantine_of(catalog: &Catalog) -> Option<Quarantine> {
    let stored = catalog.tenant("acme").await.expect("read");
    stored.expect("there").quarantine
}

fn fault(version: u64) -> FaultReport {
    FaultReport {
        tenant: "acme".into(),
        version,
        error: "trapped: boom".into(),
        window: Duration::from_secs(60),
        quarantine_after: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_every_node_quarantine_the_version_together_until_a_new_one() {
    let redis = TestRedis::start().await;
    let (a, b, mut heard, [dir_a, dir_b]) = two_nodes_with_acme(&redis).await;
    // Two faults on A and one on B: three in the window.
    a.record_fault(&fault(1)).await.expect("counted");
    b.record_fault(&fault(1)).await.expect("counted");
    assert_eq!(quarantine_of(&b).await, None, "two are not enough");
    // A fault of a version no longer current is not counted.
    b.record_fault(&fault(7)).await.expect("ignored");
    assert_eq!(quarantine_of(&b).await, None);
    a.record_fault(&fault(1)).await.expect("counted");
    assert_eq!(next(&mut heard).await, Change::Tenant("acme".into()));
    assert_eq!(
        quarantine_of(&b).await,
        Some(Quarantine {
            version: 1,
            faults: 3,
            error: "trapped: boom".into()
        })
    );
    // A new version starts with a clean record.
    b.add_version("acme", b"two", 10, "0.2.0")
        .await
        .expect("stored");
    assert_eq!(quarantine_of(&a).await, None);
    a.record_fault(&fault(2)).await.expect("counted");
    a.record_fault(&fault(2)).await.expect("counted");
    assert_eq!(
        quarantine_of(&a).await,
        None,
        "the old version's faults went with it"
    );
    let _ = (fs::remove_dir_all(&dir_a), fs::remove_dir_all(&dir_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_tokens_uploads_a_minute_are_counted_on_every_node_together() {
    let redis = TestRedis::start().await;
    let (a, _, dir_a) = node(&redis).await;
    let (b, _, dir_b) = node(&redis).await;
    let (token, other) = ([1u8; 32], [2u8; 32]);
    for node in [&a, &b, &a] {
        assert_eq!(
            node.take_upload(&token, 3).await.expect("asked"),
            Some(Ok(()))
        );
    }
    let Some(Err(wait)) = b.take_upload(&token, 3).await.expect("asked") else {
        panic!("the fourth upload of a minute is refused");
    };
    assert!(
        wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
        "{wait:?}"
    );
    assert_eq!(
        b.take_upload(&other, 3).await.expect("asked"),
        Some(Ok(())),
        "per token"
    );
    let disk = Catalog::on_disk(&dir_a, OPERATOR).expect("opens");
    assert_eq!(
        disk.take_upload(&token, 3).await.expect("asked"),
        None,
        "counted by the API"
    );
    let _ = (fs::remove_dir_all(&dir_a), fs::remove_dir_all(&dir_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_its_data_is_told_from_one_that_kept_it() {
    let mut redis = TestRedis::start_durable().await;
    let (catalog, _, dir) = node(&redis).await;
    assert!(catalog.same_epoch().await.expect("asked"));
    // Restarted with its append-only file: the same catalog.
    redis.kill_and_restart().await;
    let mut same = None;
    for _ in 0..100 {
        if let Ok(answer) = catalog.same_epoch().await {
            same = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(same, Some(true), "what Redis kept is the same catalog");
    // Emptied (as a restart without persistence leaves it): another one.
    let client = redis.client().await;
    let _: () = client.flushall(false).await.expect("flushed");
    assert!(!catalog.same_epoch().await.expect("asked"));
    let _ = fs::remove_dir_all(&dir);
}
