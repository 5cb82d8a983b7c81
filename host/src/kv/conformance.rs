//! What every storage backend must do, as tests any backend's module runs on a fresh
//! store of its own kind (`SqliteStore`, `RedisStore`).

use std::sync::Arc;

use super::{Backend, KvError, Op, Outcome, Quota, QuotaKind, Start, Usage};

/// Small enough to break in a few operations.
pub(crate) const QUOTA: Quota = Quota {
    bytes: 50,
    keys: 3,
    key_bytes: 10,
    value_bytes: 20,
    read_bytes: 40,
};

/// `op` under [`QUOTA`].
pub(crate) async fn run(store: &dyn Backend, tenant: &str, op: Op) -> Result<Outcome, KvError> {
    store.run(tenant, QUOTA, op).await
}

/// Sets `key` to `value`.
pub(crate) fn set(key: &str, value: &str) -> Op {
    Op::Set(key.into(), value.into())
}

fn list(prefix: &str, start: Start, limit: usize) -> Op {
    Op::List {
        prefix: prefix.into(),
        start,
        limit,
    }
}

/// Every case, one after the other, on `store` (fresh: no tenant has keys yet).
pub(crate) async fn every_case(store: &dyn Backend) {
    each_tenant_sees_only_its_own_keys(store).await;
    a_quota_hit_changes_nothing_and_says_which(store).await;
    counters_and_compare_and_swap(store).await;
    counters_are_u64s(store).await;
    listings_page_by_prefix(store).await;
    values_are_bytes(store).await;
}

async fn each_tenant_sees_only_its_own_keys(store: &dyn Backend) {
    assert_eq!(run(store, "a", set("k", "1")).await, Ok(Outcome::Done));
    assert_eq!(
        run(store, "b", Op::Get("k".into())).await,
        Ok(Outcome::Value(None))
    );
    assert_eq!(
        run(store, "b", list("", Start::First, 10)).await,
        Ok(Outcome::Keys(vec![], false))
    );
    assert_eq!(run(store, "b", Op::Clear).await, Ok(Outcome::Done));
    assert_eq!(
        run(store, "a", Op::Get("k".into())).await,
        Ok(Outcome::Value(Some(b"1".to_vec())))
    );
}

async fn a_quota_hit_changes_nothing_and_says_which(store: &dyn Backend) {
    let too_long = run(store, "quota", set("a-very-long-key", "v")).await;
    assert!(matches!(
        too_long,
        Err(KvError::Quota {
            kind: QuotaKind::KeyBytes,
            limit: 10
        })
    ));
    let too_big = run(store, "quota", set("k", &"v".repeat(21))).await;
    assert!(matches!(
        too_big,
        Err(KvError::Quota {
            kind: QuotaKind::ValueBytes,
            ..
        })
    ));
    // Four keys in one batch: the fourth breaks the key quota, so none is written.
    let pairs = (0..4).map(|i| (format!("k{i}"), b"v".to_vec())).collect();
    let many = run(store, "quota", Op::SetMany(pairs)).await;
    assert!(matches!(
        many,
        Err(KvError::Quota {
            kind: QuotaKind::Keys,
            limit: 3
        })
    ));
    assert_eq!(
        run(store, "quota", Op::Usage).await,
        Ok(Outcome::Usage(Usage::default()))
    );
    // 22 bytes a key: the third would make 66 of 50.
    let wide = "v".repeat(20);
    run(store, "quota", set("k0", &wide)).await.expect("fits");
    run(store, "quota", set("k1", &wide)).await.expect("fits");
    let over = run(store, "quota", set("k2", &wide)).await;
    assert!(matches!(
        over,
        Err(KvError::Quota {
            kind: QuotaKind::Bytes,
            limit: 50
        })
    ));
    run(store, "quota", set("k2", "v")).await.expect("fits");
    let over = run(store, "quota", set("k3", "v")).await;
    assert!(matches!(
        over,
        Err(KvError::Quota {
            kind: QuotaKind::Keys,
            limit: 3
        })
    ));
    // Overwriting keeps the count; deleting frees it.
    run(store, "quota", set("k0", "w"))
        .await
        .expect("overwrite");
    run(store, "quota", Op::Delete("k2".into()))
        .await
        .expect("delete");
    assert_eq!(
        run(store, "quota", Op::Usage).await,
        Ok(Outcome::Usage(Usage {
            keys: 2,
            bytes: 3 + 22
        }))
    );
    // Reading back more than read_bytes (40) at once is refused.
    let two = run(store, "quota", Op::GetMany(vec!["k1".into(), "k1".into()])).await;
    assert!(two.is_ok(), "{two:?}");
    let three = run(store, "quota", Op::GetMany(vec!["k1".into(); 3])).await;
    assert!(matches!(
        three,
        Err(KvError::Quota {
            kind: QuotaKind::ReadBytes,
            ..
        })
    ));
}

async fn counters_and_compare_and_swap(store: &dyn Backend) {
    assert_eq!(
        run(store, "counters", Op::Increment("n".into(), 2)).await,
        Ok(Outcome::Number(2))
    );
    assert_eq!(
        run(store, "counters", Op::Increment("n".into(), 40)).await,
        Ok(Outcome::Number(42))
    );
    run(store, "counters", set("s", "x")).await.expect("set");
    assert!(matches!(
        run(store, "counters", Op::Increment("s".into(), 1)).await,
        Err(KvError::Invalid(_))
    ));
    let cas = |expected: Option<&str>, new: Option<&str>| Op::CompareAndSwap {
        key: "c".into(),
        expected: expected.map(Into::into),
        new: new.map(Into::into),
    };
    assert_eq!(
        run(store, "counters", cas(Some("1"), Some("2"))).await,
        Ok(Outcome::Yes(false))
    );
    assert_eq!(
        run(store, "counters", cas(None, Some("1"))).await,
        Ok(Outcome::Yes(true))
    );
    assert_eq!(
        run(store, "counters", cas(None, Some("9"))).await,
        Ok(Outcome::Yes(false))
    );
    assert_eq!(
        run(store, "counters", cas(Some("1"), None)).await,
        Ok(Outcome::Yes(true))
    );
    assert_eq!(
        run(store, "counters", Op::Exists("c".into())).await,
        Ok(Outcome::Yes(false))
    );
}

async fn listings_page_by_prefix(store: &dyn Backend) {
    let quota = Quota::UNLIMITED;
    for key in ["a/1", "a/2", "a/3", "b/1", "a"] {
        store
            .run("listing", quota, set(key, "v"))
            .await
            .expect("set");
    }
    let page = store
        .run("listing", quota, list("a/", Start::First, 2))
        .await;
    assert_eq!(
        page,
        Ok(Outcome::Keys(vec!["a/1".into(), "a/2".into()], true))
    );
    let next = store
        .run("listing", quota, list("a/", Start::After("a/2".into()), 2))
        .await;
    assert_eq!(next, Ok(Outcome::Keys(vec!["a/3".into()], false)));
    let skipped = store
        .run("listing", quota, list("", Start::Skip(3), 10))
        .await;
    assert_eq!(
        skipped,
        Ok(Outcome::Keys(vec!["a/3".into(), "b/1".into()], false))
    );
}

async fn counters_are_u64s(store: &dyn Backend) {
    let quota = Quota::UNLIMITED;
    let big = u64::MAX - 1;
    store
        .run(
            "big",
            quota,
            Op::Set("n".into(), format!("00{}", big - 5).into_bytes()),
        )
        .await
        .expect("set");
    assert_eq!(
        store.run("big", quota, Op::Increment("n".into(), 5)).await,
        Ok(Outcome::Number(big))
    );
    assert!(matches!(
        store.run("big", quota, Op::Increment("n".into(), 2)).await,
        Err(KvError::Invalid(e)) if e.contains("overflow")
    ));
    assert_eq!(
        store.run("big", quota, Op::Get("n".into())).await,
        Ok(Outcome::Value(Some(big.to_string().into_bytes())))
    );
    store
        .run("big", quota, Op::Set("e".into(), Vec::new()))
        .await
        .expect("set");
    assert!(matches!(
        store.run("big", quota, Op::Increment("e".into(), 1)).await,
        Err(KvError::Invalid(_))
    ));
}

async fn values_are_bytes(store: &dyn Backend) {
    let quota = Quota::UNLIMITED;
    let value: Vec<u8> = (0..=255).collect();
    store
        .run("bytes", quota, Op::Set("é/\u{0}k".into(), value.clone()))
        .await
        .expect("set");
    assert_eq!(
        store.run("bytes", quota, Op::Get("é/\u{0}k".into())).await,
        Ok(Outcome::Value(Some(value.clone())))
    );
    assert_eq!(
        store.run("bytes", quota, Op::Usage).await,
        Ok(Outcome::Usage(Usage {
            keys: 1,
            bytes: 5 + 256
        }))
    );
    // Cleared, it is as if it never was.
    assert_eq!(
        store.run("bytes", quota, Op::Clear).await,
        Ok(Outcome::Done)
    );
    assert_eq!(
        store.run("bytes", quota, Op::Usage).await,
        Ok(Outcome::Usage(Usage::default()))
    );
    assert_eq!(
        store.run("bytes", quota, list("", Start::First, 10)).await,
        Ok(Outcome::Keys(vec![], false))
    );
}

/// 20 tasks, spread over `stores` (one store, or several on the same data), each
/// incrementing one counter 50 times: not one increment is lost.
pub(crate) async fn concurrent_increments_lose_none(stores: &[Arc<dyn Backend>]) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = stores[i % stores.len()].clone();
        tasks.spawn(async move {
            for _ in 0..50 {
                store
                    .run("a", Quota::UNLIMITED, Op::Increment("n".into(), 1))
                    .await
                    .expect("increments");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a task");
    }
    assert_eq!(
        stores[0]
            .run("a", Quota::UNLIMITED, Op::Get("n".into()))
            .await,
        Ok(Outcome::Value(Some(b"1000".to_vec())))
    );
}
