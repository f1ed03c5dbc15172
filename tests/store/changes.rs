//! The change log every write appends to, and the deny list replicas read from it.

use tokend::domain::changes::ChangeKind;

use crate::common::Backend;
use crate::ids::C1;
use crate::{client, open, raw_text, secret};

async fn change_log_orders_every_write(backend: Backend) {
    let (_db, s) = open(backend).await;
    let start = s.last_change_seq().await.unwrap();
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 1)), &[])
        .await
        .unwrap();
    assert!(
        s.revoke_access_token("jti-1", C1, 9_000, None, 10)
            .await
            .unwrap()
    );
    assert!(
        !s.revoke_access_token("jti-1", C1, 9_000, None, 11)
            .await
            .unwrap(),
        "revoking twice logs nothing new"
    );
    assert!(s.revoke_client_tokens(C1, 12, &[]).await.unwrap());
    // A secret rotation is logged too: replicas drop the secrets they verified.
    s.rotate_secret(&secret("s2", C1, 13), 13, &[])
        .await
        .unwrap();
    assert!(s.delete_client(C1, 13, &[]).await.unwrap());
    let changes = s.changes_since(start, 100).await.unwrap();
    let kinds: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c.kind.as_str(), c.subject.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("client", C1),
            ("token", "jti-1"),
            ("client", C1),
            ("client", C1),
            ("client", C1)
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
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 1)), &[])
        .await
        .unwrap();
    for jti in ["j3", "j1", "j2"] {
        s.revoke_access_token(jti, C1, 9_000, None, 10)
            .await
            .unwrap();
    }
    s.revoke_access_token("j0", C1, 50, None, 10).await.unwrap(); // dead at 100
    let first = s.live_revocations(100, None, 2).await.unwrap();
    let subjects: Vec<&str> = first.iter().map(|r| r.subject.as_str()).collect();
    assert_eq!(subjects, ["j1", "j2"]);
    let last = &first[1];
    let rest = s
        .live_revocations(100, Some((last.kind.as_str(), &last.subject)), 2)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].subject, "j3");
}

/// A kind this version does not know (a newer replica logged it) is read as `Unknown`, for the
/// replica to skip, and never stops it reading the entries after it.
async fn unknown_change_kinds_are_read(backend: Backend) {
    let (db, s) = open(backend).await;
    let start = s.last_change_seq().await.unwrap();
    let logged = raw_text(
        &db,
        "INSERT INTO changes (kind, subject, expire_time_us, create_time_us) \
         VALUES ('quota', 'c1', 0, 5) RETURNING kind",
    )
    .await;
    assert_eq!(logged, ["quota"]);
    s.record_lockout("client:x", 2_000, 1_000).await.unwrap();
    let changes = s.changes_since(start, 100).await.unwrap();
    let kinds: Vec<(ChangeKind, &str)> = changes
        .iter()
        .map(|c| (c.kind.clone(), c.subject.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ChangeKind::Unknown("quota".into()), "c1"),
            (ChangeKind::Lockout, "client:x")
        ]
    );
}

for_each_backend!(
    change_log_orders_every_write,
    revocations_are_read_in_pages,
    unknown_change_kinds_are_read
);
