//! Client policy: failure counting, lockout strikes, and lockouts carried by the change log.

use tokend::domain::changes::ChangeKind;

use crate::common::Backend;
use crate::open;

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

for_each_backend!(
    lockouts_travel_through_the_change_log,
    failures_count_per_window_and_locks_add_strikes,
);
