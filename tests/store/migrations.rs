//! Migrations: applying them again changes nothing.

use crate::common::Backend;
use crate::ids::C1;
use crate::{client, open, secret};

async fn migrations_are_idempotent(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.migrate().await.unwrap();
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 1)), &[])
        .await
        .unwrap();
    s.migrate().await.unwrap();
    assert!(s.get_client(C1).await.unwrap().is_some());
}

for_each_backend!(migrations_are_idempotent);
