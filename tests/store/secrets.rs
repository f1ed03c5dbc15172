//! Client secrets: rotation with a grace period, lookup by selector, concurrent rotations.

use tokend::store::StoreError;

use crate::common::Backend;
use crate::ids::{C1, C2, GHOST};
use crate::{client, open, secret};

async fn rotation_expires_old_secrets(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 100)), &[])
        .await
        .unwrap();
    // Rotate at t=200 with a grace period until t=500.
    s.rotate_secret(&secret("s2", C1, 200), 500, &[])
        .await
        .unwrap();
    assert_eq!(
        s.live_secret_hashes(C1, 499).await.unwrap(),
        vec!["hash-s2", "hash-s1"]
    );
    assert_eq!(
        s.live_secret_hashes(C1, 500).await.unwrap(),
        vec!["hash-s2"]
    );
    // A later rotation never extends a grace period: s1 keeps its t=500 expiry.
    s.rotate_secret(&secret("s3", C1, 300), 1_000, &[])
        .await
        .unwrap();
    assert_eq!(
        s.live_secret_hashes(C1, 600).await.unwrap(),
        vec!["hash-s3", "hash-s2"]
    );
    // Immediate revocation.
    s.rotate_secret(&secret("s4", C1, 700), 700, &[])
        .await
        .unwrap();
    assert_eq!(
        s.live_secret_hashes(C1, 700).await.unwrap(),
        vec!["hash-s4"]
    );
    let err = s
        .rotate_secret(&secret("s5", GHOST, 1), 1, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn secrets_are_found_by_selector(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 100)), &[])
        .await
        .unwrap();
    let found = s.live_secret(C1, "sel-s1", 100).await.unwrap().unwrap();
    assert_eq!(found.hash, "hash-s1");
    assert_eq!(found.expire_time_us, None);
    assert_eq!(s.live_secret(C1, "sel-other", 100).await.unwrap(), None);
    assert_eq!(s.live_secret(C2, "sel-s1", 100).await.unwrap(), None);
    s.rotate_secret(&secret("s2", C1, 200), 300, &[])
        .await
        .unwrap();
    let graced = s.live_secret(C1, "sel-s1", 299).await.unwrap().unwrap();
    assert_eq!(graced.expire_time_us, Some(300));
    assert_eq!(s.live_secret(C1, "sel-s1", 300).await.unwrap(), None);
}

async fn concurrent_rotations_leave_one_live_secret(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client(C1, "a"), Some(&secret("s0", C1, 100)), &[])
        .await
        .unwrap();
    for round in 0..5 {
        let mut tasks = Vec::new();
        for i in 0..4 {
            let s = s.clone();
            let id = format!("r{round}-{i}");
            let at = 1_000 * (round + 1);
            tasks.push(tokio::spawn(async move {
                // Grace 0: every other secret is revoked at once.
                s.rotate_secret(&secret(&id, C1, at), at, &[]).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let live = s.live_secret_hashes(C1, 1_000 * (round + 1)).await.unwrap();
        assert_eq!(live.len(), 1, "round {round}: {live:?}");
    }
}

for_each_backend!(
    rotation_expires_old_secrets,
    secrets_are_found_by_selector,
    concurrent_rotations_leave_one_live_secret,
);
