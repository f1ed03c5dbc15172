//! The audit trail and usage over gRPC: every kind of event recorded with its actor and
//! address, refusals aggregated per minute, tenant boundaries, filters and paging, usage
//! counters. On both stores.

use std::time::Duration;

use tokend::proto::audit_service_client::AuditServiceClient;
use tokend::proto::key_service_client::KeyServiceClient;
use tokend::proto::token_service_client::TokenServiceClient;
use tokend::proto::*;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::common::{Backend, eventually, eventually_some};
use crate::helpers::*;

use AuditEventKind as K;

fn audit(app: &TestApp) -> AuditServiceClient<Channel> {
    AuditServiceClient::new(app.channel.clone())
}

async fn list(
    app: &TestApp,
    admin: &str,
    request: ListAuditEventsRequest,
) -> Result<ListAuditEventsResponse, Status> {
    audit(app)
        .list_audit_events(authed(request, admin))
        .await
        .map(|r| r.into_inner())
}

/// Every event of `client_id` the admin sees, oldest first (the API lists newest first).
pub(crate) async fn events_of(app: &TestApp, admin: &str, client_id: &str) -> Vec<AuditEvent> {
    let request = ListAuditEventsRequest {
        client_id: client_id.into(),
        page_size: 1000,
        ..Default::default()
    };
    let mut events = list(app, admin, request).await.unwrap().events;
    events.reverse();
    events
}

fn kinds(events: &[AuditEvent]) -> Vec<AuditEventKind> {
    events.iter().map(|e| e.kind()).collect()
}

/// Waits until the events of `client_id` include `kind` (refusals are written in batches).
pub(crate) async fn until_recorded(
    app: &TestApp,
    admin: &str,
    client_id: &str,
    kind: AuditEventKind,
) -> AuditEvent {
    let what = format!("a {kind:?} event for {client_id}");
    let (event, _) = eventually_some(what, Duration::from_secs(15), async || {
        let events = events_of(app, admin, client_id).await;
        events.into_iter().find(|e| e.kind() == kind)
    })
    .await;
    event
}

pub(crate) fn quick_flush(s: &mut tokend::config::Settings) {
    s.tokens.last_used_flush_secs = 1;
}

fn field(status: &Status) -> String {
    status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations[0]
        .field
        .clone()
}

async fn admin_changes_are_recorded_with_actor_and_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root = app.bootstrap("system", "tokend.admin").await;
    let root_token = app.token(&root, &[]).await;
    let (created, _) = app
        .create_client(&root_token, client("acme", "bot", &["read"]))
        .await;
    let id = created.client_id.clone();
    let mut narrower = created.clone();
    narrower.scopes = vec!["read".into(), "write".into()];
    let updated = app
        .update_client(&root_token, narrower, &["scopes"])
        .await
        .unwrap();
    // A refused update records nothing.
    let mut bad = updated.clone();
    bad.scopes = vec!["not a scope".into()];
    assert!(
        app.update_client(&root_token, bad, &["scopes"])
            .await
            .is_err()
    );
    let mut off = updated.clone();
    off.active = Some(false);
    app.update_client(&root_token, off, &["active"])
        .await
        .unwrap();
    app.clients()
        .rotate_client_secret(authed(
            RotateClientSecretRequest {
                client_id: id.clone(),
                grace_period: Some(prost_types::Duration {
                    seconds: 60,
                    nanos: 0,
                }),
            },
            &root_token,
        ))
        .await
        .unwrap();
    app.clients()
        .revoke_client_tokens(authed(
            RevokeClientTokensRequest {
                client_id: id.clone(),
            },
            &root_token,
        ))
        .await
        .unwrap();
    app.try_delete_client(&root_token, &id).await.unwrap();

    let events = events_of(&app, &root_token, &id).await;
    assert_eq!(
        kinds(&events),
        [
            K::ClientCreated,
            K::ClientUpdated,
            K::ClientUpdated,
            K::ClientDisabled,
            K::SecretRotated,
            K::ClientTokensRevoked,
            K::ClientDeleted,
        ]
    );
    for e in &events {
        assert_eq!(e.actor, root.client_id, "{e:?}");
        assert_eq!(e.tenant, "acme");
        assert_eq!(e.source_address, "127.0.0.1");
        assert_eq!(e.count, 1);
        assert!(!e.event_id.is_empty() && e.time.is_some());
    }
    assert_eq!(events[1].details["fields"], "scopes");
    assert_eq!(events[2].details["fields"], "active");
    assert_eq!(events[4].details["grace_period_secs"], "60");
    assert_eq!(events[0].details["scopes"], "read");

    // The operator's bootstrap and a key rotation.
    let boot = events_of(&app, &root_token, &root.client_id).await;
    assert_eq!(kinds(&boot), [K::ClientBootstrapped]);
    assert_eq!(boot[0].actor, "cli");
    assert_eq!(boot[0].tenant, "system");
    KeyServiceClient::new(app.channel.clone())
        .rotate_signing_key(authed(RotateSigningKeyRequest::default(), &root_token))
        .await
        .unwrap();
    let request = ListAuditEventsRequest {
        kinds: vec![K::SigningKeyRotated as i32],
        ..Default::default()
    };
    let rotated = list(&app, &root_token, request).await.unwrap().events;
    assert_eq!(rotated.len(), 1);
    assert_eq!(rotated[0].actor, root.client_id);
    assert!(!rotated[0].details["kid"].is_empty());
}

async fn token_endpoint_refusals_and_reuse_are_recorded(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        quick_flush(s);
        s.secrets.max_failures = 3;
    })
    .await;
    let admin = app.admin("acme").await;
    let mut bot = client("acme", "bot", &["read"]);
    bot.refresh_token_ttl = Some(prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    });
    bot.rate_limit_per_minute = 2;
    let (created, creds) = app.create_client(&admin, bot).await;
    let id = creds.client_id.clone();

    // Refresh reuse: the family dies, and the trail says so.
    let first = app.try_token(&creds, &[], &[]).await.unwrap();
    let refresh = |token: String| {
        let mut tokens = app.tokens();
        let request = RefreshTokenRequest {
            client_id: creds.client_id.clone(),
            client_secret: creds.client_secret.clone(),
            refresh_token: token,
            scopes: vec![],
            ..Default::default()
        };
        async move { tokens.refresh_token(request).await }
    };
    refresh(first.refresh_token.clone()).await.unwrap();
    app.advance(Duration::from_secs(60));
    let err = refresh(first.refresh_token.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let reuse = until_recorded(&app, &admin, &id, K::RefreshReuseDetected).await;
    assert_eq!(
        (reuse.actor.as_str(), reuse.source_address.as_str()),
        (id.as_str(), "127.0.0.1")
    );
    assert!(!reuse.details["grant_id"].is_empty());

    // Over the rate limit (2 a minute).
    let mut refused = None;
    for _ in 0..3 {
        if let Err(err) = app.try_token(&creds, &[], &[]).await {
            refused = Some(err);
            break;
        }
    }
    assert_eq!(
        refused.expect("rate limited").code(),
        Code::ResourceExhausted
    );
    let limited = until_recorded(&app, &admin, &id, K::TokenRefusedRateLimit).await;
    assert_eq!(limited.details["limit"], "client");

    // Outside the allow-list.
    let mut listed = created.clone();
    listed.allowed_cidrs = vec!["10.0.0.0/8".into()];
    app.update_client(&admin, listed, &["allowed_cidrs"])
        .await
        .unwrap();
    let err = app.try_token(&creds, &[], &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    until_recorded(&app, &admin, &id, K::TokenRefusedAddress).await;

    // Wrong secrets: one event for the minute, counting all of them; then the lockout.
    let mut attacker = TokenServiceClient::new(channel_from(app.addr, "127.0.0.2").await);
    let wrong = IssueTokenRequest {
        client_secret: "tkd_cs_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into(),
        ..issue_request(&creds)
    };
    for _ in 0..3 {
        assert_eq!(
            attacker
                .issue_token(wrong.clone())
                .await
                .unwrap_err()
                .code(),
            Code::Unauthenticated
        );
    }
    for _ in 0..2 {
        assert_eq!(
            attacker
                .issue_token(wrong.clone())
                .await
                .unwrap_err()
                .code(),
            Code::ResourceExhausted
        );
    }
    let bad = until_recorded(&app, &admin, &id, K::TokenRefusedBadSecret).await;
    assert_eq!(bad.count, 3, "{bad:?}");
    assert_eq!(bad.source_address, "127.0.0.2");
    assert_eq!(
        bad.details.get("proof").map(String::as_str),
        Some("secret"),
        "which kind of proof failed: {bad:?}"
    );
    assert_eq!(bad.tenant, "acme");
    let locked = until_recorded(&app, &admin, &id, K::TokenRefusedLockout).await;
    assert_eq!(locked.count, 2);
    // Unknown client ids are counted, under no client, visible to system admins only.
    let unknown = IssueTokenRequest {
        client_id: "0190f0c8-0000-7000-8000-00000000beef".into(),
        ..wrong.clone()
    };
    let mut elsewhere = TokenServiceClient::new(channel_from(app.addr, "127.0.0.3").await);
    assert!(elsewhere.issue_token(unknown).await.is_err());
    let root = app.admin("system").await;
    eventually(
        "an event for the unknown client",
        Duration::from_secs(15),
        async || {
            let request = ListAuditEventsRequest {
                kinds: vec![K::TokenRefusedBadSecret as i32],
                ..Default::default()
            };
            let events = list(&app, &root, request).await.unwrap().events;
            events
                .iter()
                .any(|e| e.client_id.is_empty() && e.source_address == "127.0.0.3")
        },
    )
    .await;
    let request = ListAuditEventsRequest {
        kinds: vec![K::TokenRefusedBadSecret as i32],
        ..Default::default()
    };
    let seen_by_acme = list(&app, &admin, request).await.unwrap().events;
    assert!(
        seen_by_acme.iter().all(|e| e.tenant == "acme"),
        "{seen_by_acme:?}"
    );
}

async fn tenants_filters_and_pages_are_enforced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let acme = app.admin("acme").await;
    let globex = app.admin("globex").await;
    let mut acme_ids = Vec::new();
    for i in 0..5 {
        let (c, _) = app
            .create_client(&acme, client("acme", &format!("a{i}"), &["read"]))
            .await;
        acme_ids.push(c.client_id);
    }
    let (g, _) = app
        .create_client(&globex, client("globex", "g", &["read"]))
        .await;

    // Tenant boundary: acme sees its own events only; another tenant's client is NOT_FOUND.
    let all = list(
        &app,
        &acme,
        ListAuditEventsRequest {
            page_size: 1000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(all.events.iter().all(|e| e.tenant == "acme"));
    assert!(all.events.len() >= 5);
    // Another tenant's client has no events for acme: the same empty answer as a client
    // that never existed, so the listing tells nothing about other tenants.
    let foreign = ListAuditEventsRequest {
        client_id: g.client_id.clone(),
        ..Default::default()
    };
    assert!(list(&app, &acme, foreign).await.unwrap().events.is_empty());
    let globex_sees = events_of(&app, &globex, &g.client_id).await;
    assert_eq!(kinds(&globex_sees), [K::ClientCreated]);
    // Without tokend.admin: refused.
    let reader = app.introspector("acme").await;
    let err = list(&app, &reader, ListAuditEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Newest first, in pages that add up to the whole list and never overlap.
    let filter = ListAuditEventsRequest {
        kinds: vec![K::ClientCreated as i32],
        page_size: 2,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut request = filter.clone();
    loop {
        let page = list(&app, &acme, request.clone()).await.unwrap();
        assert!(page.events.len() <= 2);
        seen.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    let ids: Vec<&str> = seen.iter().map(|e| e.client_id.as_str()).collect();
    let mut newest_first: Vec<&str> = acme_ids.iter().map(String::as_str).collect();
    newest_first.reverse();
    assert_eq!(ids, newest_first);
    let times: Vec<_> = seen.iter().map(|e| e.time.unwrap().seconds).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));

    // A page token is bound to its filters.
    let first = list(&app, &acme, filter.clone()).await.unwrap();
    let mut other = filter.clone();
    other.kinds = vec![];
    other.page_token = first.next_page_token;
    let err = list(&app, &acme, other).await.unwrap_err();
    assert_eq!(
        (err.code(), field(&err)),
        (Code::InvalidArgument, "page_token".into())
    );

    // Bad filters name their field.
    let cases = [
        (
            ListAuditEventsRequest {
                kinds: vec![99],
                ..Default::default()
            },
            "kinds[0]",
        ),
        (
            ListAuditEventsRequest {
                kinds: vec![0],
                ..Default::default()
            },
            "kinds[0]",
        ),
        (
            ListAuditEventsRequest {
                client_id: "nope".into(),
                ..Default::default()
            },
            "client_id",
        ),
        (
            ListAuditEventsRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            ListAuditEventsRequest {
                start_time: Some(prost_types::Timestamp {
                    seconds: 100,
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: 50,
                    nanos: 0,
                }),
                ..Default::default()
            },
            "end_time",
        ),
        (
            ListAuditEventsRequest {
                start_time: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: -1,
                }),
                ..Default::default()
            },
            "start_time",
        ),
    ];
    for (request, name) in cases {
        let err = list(&app, &acme, request).await.unwrap_err();
        assert_eq!(
            (err.code(), field(&err)),
            (Code::InvalidArgument, name.to_owned())
        );
    }
    // A time range selects.
    let far = ListAuditEventsRequest {
        start_time: Some(prost_types::Timestamp {
            seconds: 4_000_000_000,
            nanos: 0,
        }),
        ..Default::default()
    };
    assert!(list(&app, &acme, far).await.unwrap().events.is_empty());
}

async fn usage_counts_what_each_client_does(backend: Backend) {
    let app = TestApp::spawn_with(backend, quick_flush).await;
    let admin = app.admin("acme").await;
    let introspector = app.introspector("acme").await;
    let mut bot = client("acme", "bot", &["read"]);
    bot.refresh_token_ttl = Some(prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    });
    let (created, creds) = app.create_client(&admin, bot).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(app.try_token(&creds, &[], &[]).await.unwrap());
    }
    app.tokens()
        .refresh_token(RefreshTokenRequest {
            client_id: creds.client_id.clone(),
            client_secret: creds.client_secret.clone(),
            refresh_token: tokens[0].refresh_token.clone(),
            scopes: vec![],
            ..Default::default()
        })
        .await
        .unwrap();
    let wrong = Creds {
        client_secret: "tkd_cs_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into(),
        ..creds.clone()
    };
    assert!(app.try_token(&wrong, &[], &[]).await.is_err());
    assert!(
        app.introspect(&introspector, &tokens[1].access_token)
            .await
            .active
    );
    assert!(
        app.introspect(&introspector, &tokens[2].access_token)
            .await
            .active
    );
    app.try_delete_client(&admin, &created.client_id).await.ok();
    let (kept, kept_creds) = app
        .create_client(&admin, client("acme", "kept", &["read"]))
        .await;
    let t = app.token(&kept_creds, &[]).await;
    app.clients()
        .revoke_client_tokens(authed(
            RevokeClientTokensRequest {
                client_id: kept.client_id.clone(),
            },
            &admin,
        ))
        .await
        .unwrap();
    assert!(!app.introspect(&introspector, &t).await.active);

    let usage = |client_id: String, days: i32| {
        let mut audit = audit(&app);
        let admin = admin.clone();
        async move {
            audit
                .get_client_usage(authed(GetClientUsageRequest { client_id, days }, &admin))
                .await
                .map(|r| r.into_inner())
        }
    };
    let kept_usage = usage(kept.client_id.clone(), 0).await.unwrap();
    assert_eq!(kept_usage.days.len(), 1);
    let today = &kept_usage.days[0];
    assert_eq!((today.tokens_issued, today.introspections_inactive), (1, 1));
    // The deleted client is gone; its usage with it.
    assert_eq!(
        usage(created.client_id.clone(), 0)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // A fresh client's counters, read before and after the batch is written.
    let (c, c_creds) = app
        .create_client(&admin, client("acme", "c", &["read"]))
        .await;
    let t1 = app.token(&c_creds, &[]).await;
    let _t2 = app.token(&c_creds, &[]).await;
    assert!(app.introspect(&introspector, &t1).await.active);
    assert!(
        app.try_token(
            &Creds {
                client_secret: wrong.client_secret.clone(),
                ..c_creds.clone()
            },
            &[],
            &[]
        )
        .await
        .is_err()
    );
    let u = usage(c.client_id.clone(), 7).await.unwrap();
    let day = &u.days[0];
    assert_eq!(
        (
            day.tokens_issued,
            day.refreshes,
            day.introspections_active,
            day.refused_bad_secret
        ),
        (2, 0, 1, 1)
    );
    assert_eq!(day.date.len(), 10);
    let (u, _) = eventually_some(
        "the last use to be written",
        Duration::from_secs(15),
        async || {
            let u = usage(c.client_id.clone(), 7).await.unwrap();
            u.last_used_time.is_some().then_some(u)
        },
    )
    .await;
    assert_eq!(u.last_used_address, "127.0.0.1");
    // Written and merged: the same counts, not twice.
    assert_eq!(u.days[0].tokens_issued, 2);
    let err = usage(c.client_id.clone(), 100_000).await.unwrap_err();
    assert_eq!(
        (err.code(), field(&err)),
        (Code::InvalidArgument, "days".into())
    );
}

for_each_backend!(
    admin_changes_are_recorded_with_actor_and_address,
    token_endpoint_refusals_and_reuse_are_recorded,
    tenants_filters_and_pages_are_enforced,
    usage_counts_what_each_client_does,
);
