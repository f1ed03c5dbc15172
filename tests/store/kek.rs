//! What is sealed under the KEK: sealed secrets written once, and re-sealing everything or nothing.

use std::sync::Arc;

use tokend::domain::keys::{Resealed, SealedSecret};
use tokend::store::{self, Store};

use crate::common::Backend;
use crate::{audit_row, key, open, until_a_backend_waits_on_a_lock};

fn sealed(name: &str, kek_id: &str, material: &[u8]) -> SealedSecret {
    SealedSecret {
        name: name.into(),
        sealed: material.to_vec(),
        kek_id: kek_id.into(),
        create_time_us: 1,
    }
}

fn resealed(name: &str, old: &[u8], new: &[u8]) -> Resealed {
    Resealed {
        name: name.into(),
        old: old.to_vec(),
        new: new.to_vec(),
    }
}

async fn sealed_secrets_are_inserted_once(backend: Backend) {
    let (_db, s) = open(backend).await;
    assert_eq!(s.get_sealed_secret("mac_key").await.unwrap(), None);
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let row = sealed("mac_key", "kek", &[i]);
                (s.insert_sealed_secret(&row).await.unwrap(), i)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (inserted, i) = t.await.unwrap();
        if inserted {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one replica stores it");
    let stored = s.get_sealed_secret("mac_key").await.unwrap().unwrap();
    assert_eq!(stored.sealed, [winners[0]], "everyone reads the winner's");
    assert!(
        !s.insert_sealed_secret(&sealed("mac_key", "x", &[9]))
            .await
            .unwrap()
    );
    assert_eq!(s.list_sealed_secrets().await.unwrap(), [stored]);
}

/// Keys k0 and k1 and the secret `mac_key`, all sealed under KEK `a`.
async fn sealed_under_a(s: &Arc<dyn Store>) {
    let mut k0 = key("k0", 0);
    k0.kek_id = "a".into();
    let mut k1 = key("k1", 10);
    (k1.kek_id, k1.private_key) = ("a".into(), vec![4, 5, 6]);
    assert!(s.insert_first_key(&k0).await.unwrap());
    assert!(s.insert_rotated_key(&k1, "k0", &[], &[]).await.unwrap());
    assert!(
        s.insert_sealed_secret(&sealed("mac_key", "a", &[7]))
            .await
            .unwrap()
    );
}

async fn reseal_moves_everything_or_nothing(backend: Backend) {
    let (_db, s) = open(backend).await;
    sealed_under_a(&s).await;
    let before = (
        s.list_keys().await.unwrap(),
        s.list_sealed_secrets().await.unwrap(),
    );
    let event = [audit_row("e1", "", 50, "kek_rotated")];
    let k0 = [resealed("k0", &[1, 2, 3], &[10])];
    let mac = [resealed("mac_key", &[7], &[12])];
    // k1's material is not what the rotation read (re-sealed meanwhile): nothing changes.
    let stale = [k0[0].clone(), resealed("k1", &[9], &[11])];
    assert!(!s.reseal(&stale, &mac, "b", &event).await.unwrap());
    // k1 was left out (added after the read): nothing changes either.
    assert!(!s.reseal(&k0, &mac, "b", &event).await.unwrap());
    let after = (
        s.list_keys().await.unwrap(),
        s.list_sealed_secrets().await.unwrap(),
    );
    assert_eq!(after, before);
    let filter = store::AuditFilter::default();
    assert!(s.list_audit_events(&filter, 10).await.unwrap().is_empty());

    let all = [k0[0].clone(), resealed("k1", &[4, 5, 6], &[11])];
    assert!(s.reseal(&all, &mac, "b", &event).await.unwrap());
    let keys = s.list_keys().await.unwrap();
    let moved: Vec<(&str, &str, &[u8])> = keys
        .iter()
        .map(|k| (k.kid.as_str(), k.kek_id.as_str(), k.private_key.as_slice()))
        .collect();
    assert_eq!(moved, [("k1", "b", &[11][..]), ("k0", "b", &[10][..])]);
    assert_eq!(keys[0].create_time_us, 10, "only the sealing changes");
    let secret = s.get_sealed_secret("mac_key").await.unwrap().unwrap();
    assert_eq!((secret.kek_id.as_str(), secret.sealed), ("b", vec![12]));
    let events = s.list_audit_events(&filter, 10).await.unwrap();
    assert_eq!(events, event, "the event commits with the change");
    // Everything is under b now: nothing to do succeeds, and nothing is under c.
    assert!(s.reseal(&[], &[], "b", &[]).await.unwrap());
    assert!(!s.reseal(&[], &[], "c", &[]).await.unwrap());
}

/// A signing-key rotation in flight (its transaction holds the key lock and has added a key
/// under the old KEK) holds up a KEK rotation planned before it, which then sees that key and
/// changes nothing.
async fn reseal_waits_for_a_key_insert_in_flight(backend: Backend) {
    use sqlx::Connection as _;
    let (db, s) = open(backend).await;
    sealed_under_a(&s).await;
    let columns = "INSERT INTO signing_keys (kid, algorithm, public_jwk, private_key, kek_id, \
        create_time_us, activate_time_us, retire_time_us) VALUES ('k2', 'EdDSA', '{}'";
    let mut pg = None;
    let mut lite = None;
    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let sql = format!(
                "BEGIN; LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE; \
                 {columns}, decode('01', 'hex'), 'a', 20, 20, NULL)"
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
            pg = Some(conn);
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let sql = format!("BEGIN IMMEDIATE; {columns}, X'01', 'a', 20, 20, NULL)");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
            lite = Some(conn);
        }
    }
    let planned = [
        resealed("k0", &[1, 2, 3], &[10]),
        resealed("k1", &[4, 5, 6], &[11]),
    ];
    let mac = [resealed("mac_key", &[7], &[12])];
    let task = {
        let s = s.clone();
        tokio::spawn(async move { s.reseal(&planned, &mac, "b", &[]).await })
    };
    if backend == Backend::Postgres {
        until_a_backend_waits_on_a_lock(&db.url).await;
    } else {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(
        !task.is_finished(),
        "the KEK rotation waits for the key insert"
    );
    let commit = sqlx::raw_sql(sqlx::AssertSqlSafe("COMMIT".to_owned()));
    match (pg.as_mut(), lite.as_mut()) {
        (Some(conn), _) => commit.execute(conn).await.map(|_| ()).unwrap(),
        (_, Some(conn)) => commit.execute(conn).await.map(|_| ()).unwrap(),
        _ => unreachable!(),
    }
    assert!(
        !task.await.unwrap().unwrap(),
        "k2 is under a: nothing changes"
    );
    let keks: Vec<(String, String)> = s
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.kek_id))
        .collect();
    let expected = [("k2", "a"), ("k1", "a"), ("k0", "a")].map(|(k, e)| (k.into(), e.into()));
    assert_eq!(keks, expected);
}

for_each_backend!(
    sealed_secrets_are_inserted_once,
    reseal_moves_everything_or_nothing,
    reseal_waits_for_a_key_insert_in_flight,
);
