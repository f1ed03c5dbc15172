//! Replica heartbeats: who counts as live.

use crate::common::Backend;
use crate::open;

async fn heartbeats_count_live_replicas(backend: Backend) {
    let (_db, store) = open(backend).await;
    const S: i64 = 1_000_000;
    assert_eq!(store.heartbeat("a", 100 * S, 85 * S).await.unwrap(), 1);
    assert_eq!(store.heartbeat("b", 101 * S, 86 * S).await.unwrap(), 2);
    // A beat refreshes the row rather than adding one.
    assert_eq!(store.heartbeat("a", 102 * S, 87 * S).await.unwrap(), 2);
    // "b" falls silent: once its last beat is older than the window, it no longer counts.
    assert_eq!(store.heartbeat("a", 120 * S, 105 * S).await.unwrap(), 1);
    store.heartbeat("b", 121 * S, 106 * S).await.unwrap();
    store.leave("b").await.unwrap();
    assert_eq!(store.heartbeat("a", 122 * S, 107 * S).await.unwrap(), 1);
}

for_each_backend!(heartbeats_count_live_replicas);
