//! Refresh-token families (grants): exchange exactly once, the claim rules, revocation racing an
//! exchange, client-wide revocation.

use std::sync::Arc;

use tokend::domain::token_endpoint::{RefreshClaim, RefreshFamily, RefreshRecord};
use tokend::store::Store;

use crate::common::{Backend, TestDb};
use crate::ids::{C1, C2, GHOST, NOPE};
use crate::{client, open, secret, until_a_backend_waits_on_a_lock};

fn grant(id: &str, client_id: &str) -> RefreshFamily {
    RefreshFamily {
        grant_id: id.into(),
        client_id: client_id.into(),
        scopes: vec!["read:a".into()],
        audiences: vec!["api".into()],
        create_time_us: 100,
        token_generation: 0,
        access_expire_time_us: 1_000,
        refresh_expire_time_us: 10_000,
        revoke_time_us: None,
        cnf_x5t_s256: None,
    }
}

fn refresh(hash: &str, grant_id: &str, expire: i64) -> RefreshRecord {
    RefreshRecord {
        token_hash: hash.into(),
        grant_id: grant_id.into(),
        create_time_us: 100,
        expire_time_us: expire,
        use_time_us: None,
    }
}

/// A store with client `c1` and its family `g1`, whose refresh token `h0` expires at 10,000.
async fn open_with_family(backend: Backend) -> (TestDb, Arc<dyn Store>) {
    let (db, s) = open(backend).await;
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 1)), &[])
        .await
        .unwrap();
    s.insert_grant(&grant("g1", C1), &refresh("h0", "g1", 10_000))
        .await
        .unwrap();
    (db, s)
}

async fn concurrent_refreshes_rotate_exactly_once(backend: Backend) {
    let (_db, s) = open_with_family(backend).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.rotate_refresh("h0", C1, &refresh("h1", "", 20_000), 2_000, 200)
                    .await
            })
        })
        .collect();
    let mut rotated = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            RefreshClaim::Rotated(g) => {
                rotated += 1;
                assert_eq!(g.access_expire_time_us, 2_000);
                assert_eq!(g.refresh_expire_time_us, 20_000);
            }
            RefreshClaim::Rejected(Some((t, g))) => {
                assert_eq!(t.use_time_us, Some(200));
                assert_eq!(g.grant_id, "g1");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(rotated, 1, "exactly one exchange wins");
    let (next, _) = s.find_refresh("h1").await.unwrap().unwrap();
    assert_eq!(next.grant_id, "g1");
    assert_eq!(next.use_time_us, None);
}

async fn refresh_claims_respect_client_expiry_and_revocation(backend: Backend) {
    let (_db, s) = open(backend).await;
    for c in [C1, C2] {
        s.insert_client(&client(c, "a"), Some(&secret(&format!("s-{c}"), c, 1)), &[])
            .await
            .unwrap();
    }
    s.insert_grant(&grant("g1", C1), &refresh("h0", "g1", 500))
        .await
        .unwrap();
    let succ = refresh("h1", "", 9_000);
    // Another client cannot claim it; an expired token cannot be claimed.
    let other = s.rotate_refresh("h0", C2, &succ, 0, 200).await.unwrap();
    assert!(
        matches!(other, RefreshClaim::Rejected(Some(_))),
        "{other:?}"
    );
    let late = s.rotate_refresh("h0", C1, &succ, 0, 600).await.unwrap();
    assert!(matches!(late, RefreshClaim::Rejected(Some(_))), "{late:?}");
    let unknown = s.rotate_refresh(NOPE, C1, &succ, 0, 200).await.unwrap();
    assert_eq!(unknown, RefreshClaim::Rejected(None));
    // A family begun under an older token generation of its client never exchanges (it was
    // created while the client's tokens were being revoked).
    let mut stale = grant("g0", C1);
    stale.token_generation = -1;
    s.insert_grant(&stale, &refresh("h-stale", "g0", 9_000))
        .await
        .unwrap();
    let next = refresh("h-s1", "", 9_000);
    let old = s.rotate_refresh("h-stale", C1, &next, 0, 200);
    assert!(matches!(
        old.await.unwrap(),
        RefreshClaim::Rejected(Some(_))
    ));
    // A revoked family is dead, and revoking twice reports false.
    assert!(s.revoke_grant("g1", 5, 300, &[]).await.unwrap());
    assert!(!s.revoke_grant("g1", 5, 301, &[]).await.unwrap());
    let dead = s.rotate_refresh("h0", C1, &succ, 0, 400).await.unwrap();
    assert!(matches!(dead, RefreshClaim::Rejected(Some((_, g))) if g.revoke_time_us == Some(300)));
    let denied = s.live_revocations(0, None, 1000).await.unwrap();
    assert_eq!(denied.len(), 1);
    assert_eq!(
        (denied[0].kind.as_str(), denied[0].expire_time_us),
        ("grant", 1_005)
    );
}

/// A family revoked while an exchange of its token is in flight: the exchange waits for the
/// revocation's commit, then finds the family revoked, and no successor is stored.
async fn a_revocation_racing_an_exchange_wins(backend: Backend) {
    let (db, s) = open_with_family(backend).await;
    let revoke = "UPDATE grants SET revoke_time_us = 300 WHERE grant_id = 'g1'";
    let exchange = || {
        let s = s.clone();
        tokio::spawn(async move {
            s.rotate_refresh("h0", C1, &refresh("h1", "", 20_000), 2_000, 200)
                .await
        })
    };
    // The revocation holds the family's row lock (SQLite: the write lock) when the exchange
    // starts, and commits while the exchange waits for it.
    let task = match backend {
        Backend::Postgres => {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            sqlx::query(revoke).execute(&mut *tx).await.unwrap();
            let task = exchange();
            until_a_backend_waits_on_a_lock(&db.url).await;
            tx.commit().await.unwrap();
            task
        }
        Backend::Sqlite => {
            use sqlx::Connection as _;
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(revoke).execute(&mut conn).await.unwrap();
            let task = exchange();
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert!(!task.is_finished(), "the exchange waits for the write lock");
            sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
            task
        }
    };
    let claim = task.await.unwrap().unwrap();
    assert!(
        matches!(&claim, RefreshClaim::Rejected(Some((_, g))) if g.revoke_time_us == Some(300)),
        "{claim:?}"
    );
    assert!(
        s.find_refresh("h1").await.unwrap().is_none(),
        "no successor"
    );
    // Postgres claimed the token before it saw the revocation (one statement, one snapshot)
    // and keeps it spent, a dead token of a dead family; SQLite's transaction waited before
    // its claim and left it as it was.
    let (token, _) = s.find_refresh("h0").await.unwrap().unwrap();
    let spent = match backend {
        Backend::Postgres => Some(200),
        Backend::Sqlite => None,
    };
    assert_eq!(token.use_time_us, spent);
}

async fn client_revocation_survives_stale_updates(backend: Backend) {
    let (_db, s) = open_with_family(backend).await;
    assert!(s.revoke_client_tokens(C1, 50, &[]).await.unwrap());
    assert!(!s.revoke_client_tokens(GHOST, 50, &[]).await.unwrap());
    // An update computed from a read taken before the revocation keeps the new generation.
    let mut stale = client(C1, "a");
    stale.revision = 2;
    s.update_client(&stale, 1, false, &[]).await.unwrap();
    assert_eq!(s.get_client(C1).await.unwrap().unwrap().token_generation, 1);
    // Disabling through update bumps it again.
    stale.revision = 3;
    s.update_client(&stale, 2, true, &[]).await.unwrap();
    assert_eq!(s.get_client(C1).await.unwrap().unwrap().token_generation, 2);
    let (_, g) = s.find_refresh("h0").await.unwrap().unwrap();
    assert_eq!(g.revoke_time_us, Some(50));
}

for_each_backend!(
    concurrent_refreshes_rotate_exactly_once,
    refresh_claims_respect_client_expiry_and_revocation,
    a_revocation_racing_an_exchange_wins,
    client_revocation_survives_stale_updates,
);
