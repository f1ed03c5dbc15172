//! Client policy: failure counting, lockout strikes, lockouts carried by the change log, and
//! the addresses clients are trusted at.

use tokend::domain::changes::ChangeKind;
use tokend::domain::policy::TrustedAddress;
use tokend::store::StoreError;

use crate::common::Backend;
use crate::ids::{C1, GHOST};
use crate::{client, open, secret};

async fn lockouts_travel_through_the_change_log(backend: Backend) {
    let (_db, store) = open(backend).await;
    let before = store.last_change_seq().await.unwrap();
    store
        .record_lockout("address:192.0.2.1/32", 2_000, 1_000)
        .await
        .unwrap();
    store
        .record_lockout("client:x", 1_500, 1_000)
        .await
        .unwrap();
    let changes = store.changes_since(before, 10).await.unwrap();
    let kinds: Vec<(&str, &str, i64)> = changes
        .iter()
        .map(|c| (c.kind.as_str(), c.subject.as_str(), c.expire_time_us))
        .collect();
    assert_eq!(
        kinds,
        [
            (ChangeKind::Lockout.as_str(), "address:192.0.2.1/32", 2_000),
            (ChangeKind::Lockout.as_str(), "client:x", 1_500)
        ]
    );
    let live: Vec<String> = store
        .live_lockouts(1_600)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.subject)
        .collect();
    assert_eq!(live, ["address:192.0.2.1/32"]);
}

async fn failures_count_per_window_and_locks_add_strikes(backend: Backend) {
    let (_db, s) = open(backend).await;
    const W: i64 = 100;
    assert_eq!(
        s.count_failure("address:x", 1_000, W).await.unwrap(),
        (1, 0)
    );
    assert_eq!(
        s.count_failure("address:x", 1_050, W).await.unwrap(),
        (2, 0)
    );
    // Another subject counts apart; a failure after the window starts a new one.
    assert_eq!(s.count_failure("client:y", 1_050, W).await.unwrap(), (1, 0));
    assert_eq!(
        s.count_failure("address:x", 1_100, W).await.unwrap(),
        (1, 0)
    );
    // A lock: a strike, and counting restarts when it ends.
    s.record_lockout("address:x", 2_000, 1_100).await.unwrap();
    assert_eq!(
        s.count_failure("address:x", 1_500, W).await.unwrap(),
        (1, 1)
    );
    assert_eq!(
        s.count_failure("address:x", 2_050, W).await.unwrap(),
        (2, 1)
    );
    // Strikes are forgiven a day after the lock ended.
    let day = 86_400_000_000;
    assert_eq!(
        s.count_failure("address:x", 2_001 + day, W).await.unwrap(),
        (1, 0)
    );
    // Concurrent failures are all counted.
    let mut handles = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.count_failure("client:z", 5_000 + i, 1_000)
                .await
                .unwrap()
                .0
        }));
    }
    let mut counts = Vec::new();
    for h in handles {
        counts.push(h.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=20).collect::<Vec<i64>>());
    assert_eq!(s.purge_failures(3 * day).await.unwrap(), 3);
}

fn pair(client_id: &str, address: &str, until_us: i64) -> TrustedAddress {
    TrustedAddress {
        client_id: client_id.into(),
        address: address.parse().unwrap(),
        until_us,
    }
}

/// Trust is stored (a later end wins), announced in the change log, listed while live,
/// purged when over, and gone with its client.
async fn trusted_addresses_are_kept_announced_and_purged(backend: Backend) {
    let (_db, store) = open(backend).await;
    store
        .insert_client(&client(C1, "a"), Some(&secret("s1", C1, 1)), &[])
        .await
        .unwrap();
    let before = store.last_change_seq().await.unwrap();
    store
        .trust_address(&pair(C1, "10.0.0.6/32", 5_000), 1_000)
        .await
        .unwrap();
    store
        .trust_address(&pair(C1, "10.0.0.6/32", 3_000), 1_100)
        .await
        .unwrap();
    store
        .trust_address(&pair(C1, "2001:db8::/64", 2_000), 1_200)
        .await
        .unwrap();
    let changes = store.changes_since(before, 10).await.unwrap();
    assert_eq!(changes.len(), 3);
    assert!(changes.iter().all(|c| c.kind == ChangeKind::Trust));
    assert_eq!(changes[0].subject, format!("{C1}@10.0.0.6/32"));
    assert_eq!(changes[0].expire_time_us, 5_000);
    let mut live = store.live_trust(1_500).await.unwrap();
    live.sort_by_key(|p| p.until_us);
    assert_eq!(
        live,
        [
            pair(C1, "2001:db8::/64", 2_000),
            pair(C1, "10.0.0.6/32", 5_000)
        ],
        "the later end kept"
    );
    assert_eq!(store.live_trust(2_500).await.unwrap().len(), 1);
    store.purge_failures(2_500).await.unwrap();
    assert_eq!(
        store.live_trust(0).await.unwrap(),
        [pair(C1, "10.0.0.6/32", 5_000)]
    );
    let err = store
        .trust_address(&pair(GHOST, "10.0.0.6/32", 5_000), 1_000)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(store.delete_client(C1, 3_000, &[]).await.unwrap());
    assert!(
        store.live_trust(0).await.unwrap().is_empty(),
        "gone with the client"
    );
}

for_each_backend!(
    lockouts_travel_through_the_change_log,
    failures_count_per_window_and_locks_add_strikes,
    trusted_addresses_are_kept_announced_and_purged,
);
