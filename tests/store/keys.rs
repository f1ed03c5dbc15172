//! Signing keys: the first key and rotations, each written exactly once across replicas.

use crate::common::Backend;
use crate::{key, open};

async fn first_key_is_inserted_once(backend: Backend) {
    let (_db, s) = open(backend).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.insert_first_key(&key(&format!("k{i}"), i)).await
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 1, "exactly one replica creates the first key");
    assert_eq!(s.list_keys().await.unwrap().len(), 1);
    assert!(!s.insert_first_key(&key("later", 99)).await.unwrap());
    let stored = &s.list_keys().await.unwrap()[0];
    assert_eq!(stored.private_key, vec![1, 2, 3]);
}

async fn concurrent_rotations_add_exactly_one_key(backend: Backend) {
    let (_db, s) = open(backend).await;
    assert!(s.insert_first_key(&key("k0", 0)).await.unwrap());
    let mut tasks = Vec::new();
    for i in 1..=8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let retire = [("k0".to_owned(), 1_000 + i)];
            s.insert_rotated_key(&key(&format!("k{i}"), 100), "k0", &retire, &[])
                .await
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 1, "exactly one replica rotates");
    let keys = s.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let winner = keys[0].kid.clone();
    let retire = keys[1]
        .retire_time_us
        .expect("the winner's retirement applied");
    assert_eq!(
        format!("k{}", retire - 1_000),
        winner,
        "and only the winner's"
    );
    // A rotation based on a stale read changes nothing, not even retire times.
    let stale = [("k0".to_owned(), 5), (winner.clone(), 5)];
    assert!(
        !s.insert_rotated_key(&key("late", 200), "k0", &stale, &[])
            .await
            .unwrap()
    );
    assert_eq!(s.list_keys().await.unwrap(), keys);
    // Based on the current newest key, it applies.
    let next = [(winner.clone(), 300)];
    assert!(
        s.insert_rotated_key(&key("k9", 200), &winner, &next, &[])
            .await
            .unwrap()
    );
    let keys = s.list_keys().await.unwrap();
    assert_eq!(keys[0].kid, "k9");
    assert_eq!(keys[1].retire_time_us, Some(300));
}

for_each_backend!(
    first_key_is_inserted_once,
    concurrent_rotations_add_exactly_one_key,
);
