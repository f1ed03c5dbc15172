//! Client assertions: a `jti` is spent once per client, whichever replica tries, until it is
//! purged after its assertion expired.

use tokend::store::StoreError;

use crate::clients::key_only_client;
use crate::common::Backend;
use crate::ids::{C1, C2, GHOST};
use crate::open;

async fn a_jti_is_spent_once_per_client_until_purged(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&key_only_client(C1), None, &[])
        .await
        .unwrap();
    s.insert_client(&key_only_client(C2), None, &[])
        .await
        .unwrap();
    s.spend_assertion(C1, "j1", 5_000).await.unwrap();
    let replay = s.spend_assertion(C1, "j1", 5_000).await.unwrap_err();
    assert!(matches!(replay, StoreError::AlreadyExists), "{replay:?}");
    // Another client's jti space is its own.
    s.spend_assertion(C2, "j1", 5_000).await.unwrap();
    // An unknown client cannot spend one.
    let ghost = s.spend_assertion(GHOST, "j2", 5_000).await.unwrap_err();
    assert!(matches!(ghost, StoreError::NotFound), "{ghost:?}");
    // Kept while the assertion lives; forgotten once it has expired.
    assert_eq!(s.purge(4_999, 0).await.unwrap().assertion_jtis, 0);
    assert_eq!(s.purge(5_000, 0).await.unwrap().assertion_jtis, 2);
    s.spend_assertion(C1, "j1", 9_000).await.unwrap();
}

for_each_backend!(a_jti_is_spent_once_per_client_until_purged);
