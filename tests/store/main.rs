//! The store test suite, run against both backends: every behaviour the domain relies on.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{Backend, TestDb};
use sqlx::types::Json;
use tokend::store::{
    self, ClientRow, ConnectOptions, GrantRow, KeyRow, RefreshClaim, RefreshRow, Resealed,
    SealedSecretRow, SecretRow, Store, StoreError,
};

async fn open(backend: Backend) -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::new(backend).await;
    let store = store::connect(&ConnectOptions {
        url: db.url.clone(),
        max_connections: 8,
    })
    .await
    .expect("connect");
    store.migrate().await.expect("migrate");
    (db, store)
}

fn client(id: &str, tenant: &str) -> ClientRow {
    ClientRow {
        client_id: id.into(),
        tenant: tenant.into(),
        name: format!("client {id}"),
        description: String::new(),
        scopes: Json(vec!["read:*".into()]),
        audiences: Json(vec!["api".into()]),
        roles: Json(vec![]),
        access_token_ttl_secs: 900,
        refresh_token_ttl_secs: 0,
        active: true,
        allowed_cidrs: Json(vec!["10.0.0.0/8".into()]),
        rate_limit_per_minute: 0,
        metadata: Json(BTreeMap::from([("team".into(), "payments".into())])),
        create_time_us: 1_000,
        update_time_us: 1_000,
        last_used_time_us: None,
        revision: 1,
        access_token_format: "jwt".into(),
        exchange_audiences: Json(Vec::new()),
        token_generation: 0,
    }
}

fn secret(id: &str, client_id: &str, at: i64) -> SecretRow {
    SecretRow {
        secret_id: id.into(),
        client_id: client_id.into(),
        selector: format!("sel-{id}"),
        hash: format!("hash-{id}"),
        create_time_us: at,
        expire_time_us: None,
    }
}

fn key(kid: &str, at: i64) -> KeyRow {
    KeyRow {
        kid: kid.into(),
        algorithm: "EdDSA".into(),
        public_jwk: "{}".into(),
        private_key: vec![1, 2, 3],
        kek_id: "kek".into(),
        create_time_us: at,
        activate_time_us: at,
        retire_time_us: None,
    }
}

async fn client_round_trip(backend: Backend) {
    let (_db, s) = open(backend).await;
    let c = client("c1", "acme");
    s.insert_client(&c, &secret("s1", "c1", 1), &[])
        .await
        .unwrap();
    assert_eq!(s.get_client("c1").await.unwrap(), Some(c));
    assert_eq!(s.get_client("nope").await.unwrap(), None);
}

async fn duplicate_client_is_already_exists(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client("c1", "a"), &secret("s1", "c1", 1), &[])
        .await
        .unwrap();
    let err = s
        .insert_client(&client("c1", "a"), &secret("s2", "c1", 1), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err:?}");
    // The failed insert left nothing behind: still exactly one secret.
    assert_eq!(
        s.live_secret_hashes("c1", 0).await.unwrap(),
        vec!["hash-s1"]
    );
}

async fn list_filters_orders_and_pages(backend: Backend) {
    let (_db, s) = open(backend).await;
    for (id, tenant) in [("c3", "a"), ("c1", "a"), ("c2", "b"), ("c4", "a")] {
        s.insert_client(&client(id, tenant), &secret(&format!("s{id}"), id, 1), &[])
            .await
            .unwrap();
    }
    let ids = |rows: Vec<ClientRow>| rows.into_iter().map(|r| r.client_id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_clients(None, None, 10).await.unwrap()),
        ["c1", "c2", "c3", "c4"]
    );
    assert_eq!(
        ids(s.list_clients(Some("a"), None, 10).await.unwrap()),
        ["c1", "c3", "c4"]
    );
    assert_eq!(
        ids(s.list_clients(Some("a"), Some("c1"), 1).await.unwrap()),
        ["c3"]
    );
    assert_eq!(
        ids(s.list_clients(None, Some("c4"), 10).await.unwrap()),
        Vec::<String>::new()
    );
}

async fn update_is_optimistic(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client("c1", "a"), &secret("s1", "c1", 1), &[])
        .await
        .unwrap();
    let mut next = client("c1", "a");
    next.name = "renamed".into();
    next.active = false;
    next.revision = 2;
    s.update_client(&next, 1, false, &[]).await.unwrap();
    assert_eq!(s.get_client("c1").await.unwrap(), Some(next.clone()));
    let err = s.update_client(&next, 1, false, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    let err = s
        .update_client(&client("ghost", "a"), 1, false, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn delete_cascades_to_secrets(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client("c1", "a"), &secret("s1", "c1", 1), &[])
        .await
        .unwrap();
    assert!(s.delete_client("c1", 5, &[]).await.unwrap());
    assert!(!s.delete_client("c1", 6, &[]).await.unwrap());
    assert!(s.live_secret_hashes("c1", 0).await.unwrap().is_empty());
    // The id can be reused only as a new client; the old secret did not survive.
    s.insert_client(&client("c1", "a"), &secret("s9", "c1", 1), &[])
        .await
        .unwrap();
    assert_eq!(
        s.live_secret_hashes("c1", 0).await.unwrap(),
        vec!["hash-s9"]
    );
}

async fn rotation_expires_old_secrets(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client("c1", "a"), &secret("s1", "c1", 100), &[])
        .await
        .unwrap();
    // Rotate at t=200 with a grace period until t=500.
    s.rotate_secret(&secret("s2", "c1", 200), 500, &[])
        .await
        .unwrap();
    assert_eq!(
        s.live_secret_hashes("c1", 499).await.unwrap(),
        vec!["hash-s2", "hash-s1"]
    );
    assert_eq!(
        s.live_secret_hashes("c1", 500).await.unwrap(),
        vec!["hash-s2"]
    );
    // A later rotation never extends a grace period: s1 keeps its t=500 expiry.
    s.rotate_secret(&secret("s3", "c1", 300), 1_000, &[])
        .await
        .unwrap();
    assert_eq!(
        s.live_secret_hashes("c1", 600).await.unwrap(),
        vec!["hash-s3", "hash-s2"]
    );
    // Immediate revocation.
    s.rotate_secret(&secret("s4", "c1", 700), 700, &[])
        .await
        .unwrap();
    assert_eq!(
        s.live_secret_hashes("c1", 700).await.unwrap(),
        vec!["hash-s4"]
    );
    let err = s
        .rotate_secret(&secret("s5", "ghost", 1), 1, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn secrets_are_found_by_selector(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client("c1", "a"), &secret("s1", "c1", 100), &[])
        .await
        .unwrap();
    let found = s.live_secret("c1", "sel-s1", 100).await.unwrap().unwrap();
    assert_eq!(found.hash, "hash-s1");
    assert_eq!(found.expire_time_us, None);
    assert_eq!(s.live_secret("c1", "sel-other", 100).await.unwrap(), None);
    assert_eq!(s.live_secret("c2", "sel-s1", 100).await.unwrap(), None);
    s.rotate_secret(&secret("s2", "c1", 200), 300, &[])
        .await
        .unwrap();
    let graced = s.live_secret("c1", "sel-s1", 299).await.unwrap().unwrap();
    assert_eq!(graced.expire_time_us, Some(300));
    assert_eq!(s.live_secret("c1", "sel-s1", 300).await.unwrap(), None);
}

async fn concurrent_rotations_leave_one_live_secret(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client("c1", "a"), &secret("s0", "c1", 100), &[])
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
                s.rotate_secret(&secret(&id, "c1", at), at, &[]).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let live = s
            .live_secret_hashes("c1", 1_000 * (round + 1))
            .await
            .unwrap();
        assert_eq!(live.len(), 1, "round {round}: {live:?}");
    }
}

async fn touch_only_moves_forward(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client("c1", "a"), &secret("s1", "c1", 1), &[])
        .await
        .unwrap();
    s.touch_client("c1", 5_000, None).await.unwrap();
    s.touch_client("c1", 4_000, None).await.unwrap();
    let row = s.get_client("c1").await.unwrap().unwrap();
    assert_eq!(row.last_used_time_us, Some(5_000));
    assert_eq!(row.revision, 1, "touching is not a configuration change");
}

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

async fn migrations_are_idempotent(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.migrate().await.unwrap();
    s.insert_client(&client("c1", "a"), &secret("s1", "c1", 1), &[])
        .await
        .unwrap();
    s.migrate().await.unwrap();
    assert!(s.get_client("c1").await.unwrap().is_some());
}

fn grant(id: &str, client_id: &str) -> GrantRow {
    GrantRow {
        grant_id: id.into(),
        client_id: client_id.into(),
        scopes: Json(vec!["read:a".into()]),
        audiences: Json(vec!["api".into()]),
        create_time_us: 100,
        token_generation: 0,
        access_expire_time_us: 1_000,
        refresh_expire_time_us: 10_000,
        revoke_time_us: None,
    }
}

fn refresh(hash: &str, grant_id: &str, expire: i64) -> RefreshRow {
    RefreshRow {
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
    s.insert_client(&client("c1", "a"), &secret("s1", "c1", 1), &[])
        .await
        .unwrap();
    s.insert_grant(&grant("g1", "c1"), &refresh("h0", "g1", 10_000))
        .await
        .unwrap();
    (db, s)
}

/// Waits until a backend of the test database waits on a row lock (up to 20 s), so a test
/// knows its statement reached the lock rather than merely being slow to start.
async fn until_a_backend_waits_on_a_lock(url: &str) {
    use sqlx::Connection as _;
    let mut watcher = sqlx::PgConnection::connect(url).await.unwrap();
    for _ in 0..1000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no statement came to wait on the lock");
}

async fn concurrent_refreshes_rotate_exactly_once(backend: Backend) {
    let (_db, s) = open_with_family(backend).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.rotate_refresh("h0", "c1", &refresh("h1", "", 20_000), 2_000, 200)
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
    for c in ["c1", "c2"] {
        s.insert_client(&client(c, "a"), &secret(&format!("s-{c}"), c, 1), &[])
            .await
            .unwrap();
    }
    s.insert_grant(&grant("g1", "c1"), &refresh("h0", "g1", 500))
        .await
        .unwrap();
    let succ = refresh("h1", "", 9_000);
    // Another client cannot claim it; an expired token cannot be claimed.
    let other = s.rotate_refresh("h0", "c2", &succ, 0, 200).await.unwrap();
    assert!(
        matches!(other, RefreshClaim::Rejected(Some(_))),
        "{other:?}"
    );
    let late = s.rotate_refresh("h0", "c1", &succ, 0, 600).await.unwrap();
    assert!(matches!(late, RefreshClaim::Rejected(Some(_))), "{late:?}");
    let unknown = s.rotate_refresh("nope", "c1", &succ, 0, 200).await.unwrap();
    assert_eq!(unknown, RefreshClaim::Rejected(None));
    // A family begun under an older token generation of its client never exchanges (it was
    // created while the client's tokens were being revoked).
    let mut stale = grant("g0", "c1");
    stale.token_generation = -1;
    s.insert_grant(&stale, &refresh("h-stale", "g0", 9_000))
        .await
        .unwrap();
    let next = refresh("h-s1", "", 9_000);
    let old = s.rotate_refresh("h-stale", "c1", &next, 0, 200);
    assert!(matches!(
        old.await.unwrap(),
        RefreshClaim::Rejected(Some(_))
    ));
    // A revoked family is dead, and revoking twice reports false.
    assert!(s.revoke_grant("g1", 5, 300, &[]).await.unwrap());
    assert!(!s.revoke_grant("g1", 5, 301, &[]).await.unwrap());
    let dead = s.rotate_refresh("h0", "c1", &succ, 0, 400).await.unwrap();
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
            s.rotate_refresh("h0", "c1", &refresh("h1", "", 20_000), 2_000, 200)
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
    assert!(s.revoke_client_tokens("c1", 50, &[]).await.unwrap());
    assert!(!s.revoke_client_tokens("ghost", 50, &[]).await.unwrap());
    // An update computed from a read taken before the revocation keeps the new generation.
    let mut stale = client("c1", "a");
    stale.revision = 2;
    s.update_client(&stale, 1, false, &[]).await.unwrap();
    assert_eq!(
        s.get_client("c1").await.unwrap().unwrap().token_generation,
        1
    );
    // Disabling through update bumps it again.
    stale.revision = 3;
    s.update_client(&stale, 2, true, &[]).await.unwrap();
    assert_eq!(
        s.get_client("c1").await.unwrap().unwrap().token_generation,
        2
    );
    let (_, g) = s.find_refresh("h0").await.unwrap().unwrap();
    assert_eq!(g.revoke_time_us, Some(50));
}

async fn change_log_orders_every_write(backend: Backend) {
    let (_db, s) = open(backend).await;
    let start = s.last_change_seq().await.unwrap();
    s.insert_client(&client("c1", "a"), &secret("s1", "c1", 1), &[])
        .await
        .unwrap();
    assert!(
        s.revoke_access_token("jti-1", "c1", 9_000, None, 10)
            .await
            .unwrap()
    );
    assert!(
        !s.revoke_access_token("jti-1", "c1", 9_000, None, 11)
            .await
            .unwrap(),
        "revoking twice logs nothing new"
    );
    assert!(s.revoke_client_tokens("c1", 12, &[]).await.unwrap());
    // A secret rotation is logged too: replicas drop the secrets they verified.
    s.rotate_secret(&secret("s2", "c1", 13), 13, &[])
        .await
        .unwrap();
    assert!(s.delete_client("c1", 13, &[]).await.unwrap());
    let changes = s.changes_since(start, 100).await.unwrap();
    let kinds: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c.kind.as_str(), c.subject.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("client", "c1"),
            ("token", "jti-1"),
            ("client", "c1"),
            ("client", "c1"),
            ("client", "c1")
        ]
    );
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(s.last_change_seq().await.unwrap(), changes[4].seq);
    assert_eq!(
        s.changes_since(changes[1].seq, 1).await.unwrap()[0].seq,
        changes[2].seq
    );
    // Purging: the deny entry goes once expired, old log rows after the retention cut.
    let purged = s.purge(8_999, 0).await.unwrap();
    assert_eq!((purged.revocations, purged.changes), (0, 0));
    let purged = s.purge(9_000, 13).await.unwrap();
    assert_eq!((purged.revocations, purged.changes), (1, 2));
    assert!(s.live_revocations(0, None, 1000).await.unwrap().is_empty());
}

async fn revocations_are_read_in_pages(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client("c1", "a"), &secret("s1", "c1", 1), &[])
        .await
        .unwrap();
    for jti in ["j3", "j1", "j2"] {
        s.revoke_access_token(jti, "c1", 9_000, None, 10)
            .await
            .unwrap();
    }
    s.revoke_access_token("j0", "c1", 50, None, 10)
        .await
        .unwrap(); // dead at 100
    let first = s.live_revocations(100, None, 2).await.unwrap();
    let subjects: Vec<&str> = first.iter().map(|r| r.subject.as_str()).collect();
    assert_eq!(subjects, ["j1", "j2"]);
    let last = &first[1];
    let rest = s
        .live_revocations(100, Some((&last.kind, &last.subject)), 2)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].subject, "j3");
}

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
            (store::CHANGE_LOCKOUT, "address:192.0.2.1/32", 2_000),
            (store::CHANGE_LOCKOUT, "client:x", 1_500)
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

fn audit_row(id: &str, client_id: &str, time_us: i64, kind: &str) -> store::AuditRow {
    store::AuditRow {
        event_id: id.into(),
        time_us,
        tenant: "a".into(),
        client_id: client_id.into(),
        actor: "admin".into(),
        source_address: "192.0.2.1".into(),
        kind: kind.into(),
        details: Json(BTreeMap::from([("fields".into(), "scopes".into())])),
        count: 1,
    }
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

async fn audit_events_commit_with_their_change(backend: Backend) {
    let (_db, s) = open(backend).await;
    let created = [audit_row("e1", "c1", 10, "client_created")];
    s.insert_client(&client("c1", "a"), &secret("s1", "c1", 1), &created)
        .await
        .unwrap();
    // A change that fails writes no event: a duplicate client, a stale update.
    let dup = [audit_row("e2", "c1", 20, "client_created")];
    assert!(
        s.insert_client(&client("c1", "a"), &secret("s2", "c1", 1), &dup)
            .await
            .is_err()
    );
    let stale = [audit_row("e3", "c1", 30, "client_updated")];
    let mut next = client("c1", "a");
    next.revision = 2;
    assert!(s.update_client(&next, 7, false, &stale).await.is_err());
    let deleted = [audit_row("e4", "c1", 40, "client_deleted")];
    assert!(s.delete_client("c1", 40, &deleted).await.unwrap());
    let all = s
        .list_audit_events(&store::AuditFilter::default(), 10)
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        ids,
        ["e4", "e1"],
        "newest first, failed changes left no event"
    );
    assert_eq!(all[1], created[0]);
}

async fn audit_events_filter_page_aggregate_and_purge(backend: Backend) {
    let (_db, s) = open(backend).await;
    let rows = [
        audit_row("a", "c1", 100, "client_created"),
        audit_row("b", "c2", 200, "client_created"),
        audit_row("c", "c1", 200, "client_updated"),
        audit_row("d", "c1", 300, "client_deleted"),
    ];
    s.record_audit(&rows).await.unwrap();
    let ids = |rows: Vec<store::AuditRow>| rows.into_iter().map(|r| r.event_id).collect::<Vec<_>>();
    let f = store::AuditFilter {
        client_id: Some("c1".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(s.list_audit_events(&f, 10).await.unwrap()),
        ["d", "c", "a"]
    );
    let f = store::AuditFilter {
        kinds: vec!["client_created".into(), "client_deleted".into()],
        start_us: Some(150),
        ..Default::default()
    };
    assert_eq!(ids(s.list_audit_events(&f, 10).await.unwrap()), ["d", "b"]);
    // Keyset paging: strictly after (200, "c") in (time, id) descending order.
    let f = store::AuditFilter {
        before: Some((200, "c".into())),
        ..Default::default()
    };
    assert_eq!(ids(s.list_audit_events(&f, 10).await.unwrap()), ["b", "a"]);
    let f = store::AuditFilter {
        tenant: Some("other".into()),
        ..Default::default()
    };
    assert!(s.list_audit_events(&f, 10).await.unwrap().is_empty());
    // An aggregated event recorded again adds to its count.
    let mut agg = audit_row("m1", "c1", 400, "token_refused_bad_secret");
    agg.count = 3;
    s.record_audit(std::slice::from_ref(&agg)).await.unwrap();
    agg.count = 4;
    s.record_audit(&[agg]).await.unwrap();
    let f = store::AuditFilter {
        kinds: vec!["token_refused_bad_secret".into()],
        ..Default::default()
    };
    assert_eq!(s.list_audit_events(&f, 10).await.unwrap()[0].count, 7);
    // Usage adds up per client and day; purge drops what is older than the cut.
    let day = |d: i64, n: i64| store::UsageRow {
        client_id: "c1".into(),
        day: d,
        tokens_issued: n,
        ..Default::default()
    };
    s.add_usage(&[day(1, 2), day(2, 1)]).await.unwrap();
    s.add_usage(&[day(2, 5)]).await.unwrap();
    let usage = s.client_usage("c1", 0).await.unwrap();
    assert_eq!(
        usage
            .iter()
            .map(|u| (u.day, u.tokens_issued))
            .collect::<Vec<_>>(),
        [(2, 6), (1, 2)]
    );
    let purged = s.purge_audit(250, 2).await.unwrap();
    assert_eq!(purged, 3 + 1);
    assert_eq!(
        ids(s.list_audit_events(&Default::default(), 10).await.unwrap()),
        ["m1", "d"]
    );
    assert_eq!(s.client_usage("c1", 0).await.unwrap().len(), 1);
}

async fn last_use_keeps_the_address(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client("c1", "a"), &secret("s1", "c1", 1), &[])
        .await
        .unwrap();
    assert_eq!(s.last_use("c1").await.unwrap(), Some((None, None)));
    s.touch_client("c1", 5_000, Some("192.0.2.9"))
        .await
        .unwrap();
    s.touch_client("c1", 4_000, Some("192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(
        s.last_use("c1").await.unwrap(),
        Some((Some(5_000), Some("192.0.2.9".into())))
    );
    assert_eq!(s.last_use("ghost").await.unwrap(), None);
}

fn sealed(name: &str, kek_id: &str, material: &[u8]) -> SealedSecretRow {
    SealedSecretRow {
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
    concurrent_refreshes_rotate_exactly_once,
    a_revocation_racing_an_exchange_wins,
    refresh_claims_respect_client_expiry_and_revocation,
    client_revocation_survives_stale_updates,
    change_log_orders_every_write,
    revocations_are_read_in_pages,
    client_round_trip,
    duplicate_client_is_already_exists,
    list_filters_orders_and_pages,
    update_is_optimistic,
    delete_cascades_to_secrets,
    rotation_expires_old_secrets,
    touch_only_moves_forward,
    secrets_are_found_by_selector,
    concurrent_rotations_leave_one_live_secret,
    first_key_is_inserted_once,
    concurrent_rotations_add_exactly_one_key,
    migrations_are_idempotent,
    heartbeats_count_live_replicas,
    lockouts_travel_through_the_change_log,
    failures_count_per_window_and_locks_add_strikes,
    audit_events_commit_with_their_change,
    audit_events_filter_page_aggregate_and_purge,
    last_use_keeps_the_address,
    sealed_secrets_are_inserted_once,
    reseal_moves_everything_or_nothing,
    reseal_waits_for_a_key_insert_in_flight,
);
