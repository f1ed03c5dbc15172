//! Audit events and usage: committed with their change, filtered, paged, aggregated, purged.

use tokend::domain::AuditEvent;
use tokend::domain::audit::UsageCounts;
use tokend::store;

use crate::common::Backend;
use crate::ids::{C1, C2};
use crate::{audit_row, client, open, secret};

async fn audit_events_commit_with_their_change(backend: Backend) {
    let (_db, s) = open(backend).await;
    let created = [audit_row("e1", C1, 10, "client_created")];
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 1)), &created)
        .await
        .unwrap();
    // A change that fails writes no event: a duplicate client, a stale update.
    let dup = [audit_row("e2", C1, 20, "client_created")];
    assert!(
        s.insert_client(&client(C1, "a"), Some(&secret("s2", C1, 1)), &dup)
            .await
            .is_err()
    );
    let stale = [audit_row("e3", C1, 30, "client_updated")];
    let mut next = client(C1, "a");
    next.revision = 2;
    assert!(s.update_client(&next, 7, false, &stale).await.is_err());
    let deleted = [audit_row("e4", C1, 40, "client_deleted")];
    assert!(s.delete_client(C1, 40, &deleted).await.unwrap());
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
        audit_row("a", C1, 100, "client_created"),
        audit_row("b", C2, 200, "client_created"),
        audit_row("c", C1, 200, "client_updated"),
        audit_row("d", C1, 300, "client_deleted"),
    ];
    s.record_audit(&rows).await.unwrap();
    let ids = |rows: Vec<AuditEvent>| rows.into_iter().map(|r| r.event_id).collect::<Vec<_>>();
    let f = store::AuditFilter {
        client_id: Some(C1.into()),
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
    let mut agg = audit_row("m1", C1, 400, "token_refused_bad_secret");
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
    let day = |d: i64, n: i64| UsageCounts {
        client_id: C1.into(),
        day: d,
        tokens_issued: n,
        ..Default::default()
    };
    s.add_usage(&[day(1, 2), day(2, 1)]).await.unwrap();
    s.add_usage(&[day(2, 5)]).await.unwrap();
    // Authentications by method add up too, and make a day of their own.
    let mut by_method = day(3, 0);
    by_method.authentications = [("private_key_jwt".into(), 2), ("client_secret".into(), 1)].into();
    s.add_usage(std::slice::from_ref(&by_method)).await.unwrap();
    s.add_usage(&[by_method]).await.unwrap();
    let usage = s.client_usage(C1, 0).await.unwrap();
    assert_eq!(
        usage
            .iter()
            .map(|u| (u.day, u.tokens_issued))
            .collect::<Vec<_>>(),
        [(3, 0), (2, 6), (1, 2)]
    );
    assert_eq!(
        usage[0].authentications,
        [("client_secret".into(), 2), ("private_key_jwt".into(), 4)].into()
    );
    let purged = s.purge_audit(250, 2).await.unwrap();
    assert_eq!(purged, 3 + 1);
    assert_eq!(
        ids(s.list_audit_events(&Default::default(), 10).await.unwrap()),
        ["m1", "d"]
    );
    assert_eq!(s.client_usage(C1, 0).await.unwrap().len(), 2);
    s.purge_audit(250, 4).await.unwrap();
    assert!(s.client_usage(C1, 0).await.unwrap().is_empty());
}

for_each_backend!(
    audit_events_commit_with_their_change,
    audit_events_filter_page_aggregate_and_purge,
);
