//! The token lifecycle: refresh rotation with reuse detection and a retry window, revocation
//! (RFC 7009, per client, by disabling), opaque access tokens, revocation seen by a second
//! replica, and purging of the deny list.

use std::sync::Arc;
use std::time::Duration;

use tokend::proto::introspection_service_client::IntrospectionServiceClient;
use tokend::proto::*;
use tokend::store::{self, ConnectOptions};
use tonic::{Code, Status};

use crate::common::{Backend, eventually};
use crate::helpers::*;

const HOUR: i64 = 3600;

fn secs(s: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: s,
        nanos: 0,
    })
}

/// A client of tenant `acme` with refresh tokens valid for an hour.
fn refreshing(name: &str) -> Client {
    let mut c = client("acme", name, &["read:*", "write:orders"]);
    c.refresh_token_ttl = secs(HOUR);
    c
}

impl TestApp {
    async fn try_refresh(
        &self,
        creds: &Creds,
        refresh_token: &str,
        scopes: &[&str],
    ) -> Result<RefreshTokenResponse, Status> {
        self.tokens()
            .refresh_token(RefreshTokenRequest {
                client_id: creds.client_id.clone(),
                client_secret: creds.client_secret.clone(),
                refresh_token: refresh_token.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn try_revoke(&self, creds: &Creds, token: &str, hint: &str) -> Result<(), Status> {
        self.tokens()
            .revoke_token(RevokeTokenRequest {
                client_id: creds.client_id.clone(),
                client_secret: creds.client_secret.clone(),
                token: token.into(),
                token_type_hint: hint.into(),
                ..Default::default()
            })
            .await
            .map(|_| ())
    }

    async fn active(&self, caller: &str, token: &str) -> bool {
        self.introspect(caller, token).await.active
    }

    async fn revoke_client_tokens(&self, admin: &str, client_id: &str) -> Client {
        self.clients()
            .revoke_client_tokens(authed(
                RevokeClientTokensRequest {
                    client_id: client_id.into(),
                },
                admin,
            ))
            .await
            .expect("revoke client tokens")
            .into_inner()
            .client
            .unwrap()
    }
}

fn assert_invalid_grant(err: &Status) {
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(oauth2_error(err), "invalid_grant");
}

async fn refresh_rotates_and_reuse_revokes_the_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let introspector = app.introspector("acme").await;
    let (_, creds) = app.create_client(&admin, refreshing("worker")).await;

    let first = app.try_token(&creds, &["read:a"], &[]).await.unwrap();
    assert!(
        first.refresh_token.starts_with("tkd_rt_"),
        "a refresh token"
    );
    assert_eq!(first.refresh_token_expires_in, HOUR);
    let second = app
        .try_refresh(&creds, &first.refresh_token, &[])
        .await
        .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token, "rotated");
    assert_eq!(second.scopes, ["read:a"], "the family's scopes");
    assert_eq!(second.refresh_token_expires_in, HOUR);
    assert!(app.active(&introspector, &first.access_token).await);
    assert!(app.active(&introspector, &second.access_token).await);
    let third = app
        .try_refresh(&creds, &second.refresh_token, &[])
        .await
        .unwrap();

    // The first token again, long after the retry window: reuse. The whole family dies.
    app.advance(Duration::from_secs(30));
    let err = app
        .try_refresh(&creds, &first.refresh_token, &[])
        .await
        .unwrap_err();
    assert_invalid_grant(&err);
    assert!(err.message().contains("already used"), "{err:?}");
    for access in [
        &first.access_token,
        &second.access_token,
        &third.access_token,
    ] {
        assert!(!app.active(&introspector, access).await, "family revoked");
    }
    let err = app
        .try_refresh(&creds, &third.refresh_token, &[])
        .await
        .unwrap_err();
    assert_invalid_grant(&err);
    // The client itself is fine: a new grant works.
    let fresh = app.try_token(&creds, &[], &[]).await.unwrap();
    assert!(app.active(&introspector, &fresh.access_token).await);
    app.try_refresh(&creds, &fresh.refresh_token, &[])
        .await
        .unwrap();
}

async fn a_lost_response_can_be_retried_within_the_window(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let introspector = app.introspector("acme").await;
    let (_, creds) = app.create_client(&admin, refreshing("worker")).await;
    let t0 = app.try_token(&creds, &[], &[]).await.unwrap().refresh_token;

    let a = app.try_refresh(&creds, &t0, &[]).await.unwrap();
    app.advance(Duration::from_secs(2));
    let b = app.try_refresh(&creds, &t0, &[]).await.unwrap();
    assert_eq!(a.refresh_token, b.refresh_token, "same successor");
    assert!(app.active(&introspector, &a.access_token).await);
    assert!(app.active(&introspector, &b.access_token).await);
    // The successor works once; after that the old token is reuse even inside the window.
    let c = app
        .try_refresh(&creds, &b.refresh_token, &[])
        .await
        .unwrap();
    let err = app.try_refresh(&creds, &t0, &[]).await.unwrap_err();
    assert_invalid_grant(&err);
    assert!(!app.active(&introspector, &c.access_token).await);
}

async fn concurrent_refreshes_never_branch(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let (_, creds) = app.create_client(&admin, refreshing("worker")).await;
    let t0 = app.try_token(&creds, &[], &[]).await.unwrap().refresh_token;
    let app = Arc::new(app);
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (app, creds, t0) = (app.clone(), creds.clone(), t0.clone());
            tokio::spawn(async move { app.try_refresh(&creds, &t0, &[]).await })
        })
        .collect();
    let mut successors = std::collections::BTreeSet::new();
    for call in calls {
        successors.insert(call.await.unwrap().expect("refresh").refresh_token);
    }
    assert_eq!(
        successors.len(),
        1,
        "one successor for all 50: {successors:?}"
    );
    let next = successors.pop_first().unwrap();
    app.try_refresh(&creds, &next, &[]).await.unwrap();
}

async fn refresh_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let (created, creds) = app.create_client(&admin, refreshing("worker")).await;
    let (_, other) = app.create_client(&admin, refreshing("other")).await;
    let (_, plain) = app
        .create_client(&admin, client("acme", "plain", &["read:*"]))
        .await;

    // No refresh token without refresh_token_ttl, and no refreshing either.
    let issued = app.try_token(&plain, &[], &[]).await.unwrap();
    assert!(issued.refresh_token.is_empty());
    assert_eq!(issued.refresh_token_expires_in, 0);
    let t0 = app
        .try_token(&creds, &["read:a", "write:orders"], &[])
        .await
        .unwrap()
        .refresh_token;
    let err = app.try_refresh(&plain, &t0, &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(oauth2_error(&err), "unauthorized_client");

    // Another client's token, a malformed one, a wrong secret.
    let err = app.try_refresh(&other, &t0, &[]).await.unwrap_err();
    assert_invalid_grant(&err);
    let err = app
        .try_refresh(&creds, "tkd_rt_nope", &[])
        .await
        .unwrap_err();
    assert_invalid_grant(&err);
    let wrong = Creds {
        client_secret: other.client_secret.clone(),
        ..creds.clone()
    };
    let err = app.try_refresh(&wrong, &t0, &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Narrowing: only within the family's scopes.
    let narrowed = app.try_refresh(&creds, &t0, &["read:a"]).await.unwrap();
    assert_eq!(narrowed.scopes, ["read:a"]);
    let err = app
        .try_refresh(&creds, &narrowed.refresh_token, &["read:b"])
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_scope");
    // A refused request spends nothing: the token still refreshes (well after the retry
    // window, so this is no retry), with the family's scopes.
    app.advance(Duration::from_secs(30));
    let wide = app
        .try_refresh(&creds, &narrowed.refresh_token, &[])
        .await
        .unwrap();
    assert_eq!(wide.scopes, ["read:a", "write:orders"]);

    // Expiry.
    app.advance(Duration::from_secs(HOUR as u64 + 1));
    let err = app
        .try_refresh(&creds, &wide.refresh_token, &[])
        .await
        .unwrap_err();
    assert_invalid_grant(&err);

    // A disabled client cannot refresh, and re-enabling does not revive the family.
    let admin = app.admin("system").await; // the first admin token expired meanwhile
    let t1 = app.try_token(&creds, &[], &[]).await.unwrap().refresh_token;
    let mut off = created.clone();
    off.active = Some(false);
    app.update_client(&admin, off, &["active"]).await.unwrap();
    let err = app.try_refresh(&creds, &t1, &[]).await.unwrap_err();
    assert_eq!(oauth2_error(&err), "unauthorized_client");
    let mut on = created.clone();
    on.active = Some(true);
    app.update_client(&admin, on, &["active"]).await.unwrap();
    let err = app.try_refresh(&creds, &t1, &[]).await.unwrap_err();
    assert_invalid_grant(&err);
}

async fn revoke_token_follows_rfc7009(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let introspector = app.introspector("acme").await;
    let (_, creds) = app.create_client(&admin, refreshing("worker")).await;
    let (_, other) = app.create_client(&admin, refreshing("other")).await;

    // An access token: only it is revoked.
    let one = app.try_token(&creds, &[], &[]).await.unwrap();
    let two = app.try_token(&creds, &[], &[]).await.unwrap();
    app.try_revoke(&creds, &one.access_token, "access_token")
        .await
        .unwrap();
    assert!(!app.active(&introspector, &one.access_token).await);
    assert!(app.active(&introspector, &two.access_token).await);
    // Its refresh family is untouched (RFC 7009 lets the server choose; tokend keeps it).
    app.try_refresh(&creds, &one.refresh_token, &[])
        .await
        .unwrap();
    // Idempotent; unknown, malformed and foreign-issuer tokens are fine; the hint is a hint.
    app.try_revoke(&creds, &one.access_token, "").await.unwrap();
    app.try_revoke(&creds, "garbage", "refresh_token")
        .await
        .unwrap();
    app.try_revoke(&creds, &format!("tkd_rt_{}", "A".repeat(43)), "")
        .await
        .unwrap();
    // Another client's token is refused and stays active.
    let theirs = app.try_token(&other, &[], &[]).await.unwrap();
    for token in [&theirs.access_token, &theirs.refresh_token] {
        let err = app.try_revoke(&creds, token, "").await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert_eq!(oauth2_error(&err), "unauthorized_client");
    }
    assert!(app.active(&introspector, &theirs.access_token).await);
    // The client must authenticate; the token must be given.
    let wrong = Creds {
        client_secret: other.client_secret.clone(),
        ..creds.clone()
    };
    let err = app
        .try_revoke(&wrong, &two.access_token, "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = app.try_revoke(&creds, "", "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // A refresh token: its whole family goes, access tokens included.
    app.try_revoke(&creds, &two.refresh_token, "refresh_token")
        .await
        .unwrap();
    assert!(!app.active(&introspector, &two.access_token).await);
    let err = app
        .try_refresh(&creds, &two.refresh_token, &[])
        .await
        .unwrap_err();
    assert_invalid_grant(&err);
}

async fn revoke_client_tokens_and_disable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let introspector = app.introspector("acme").await;
    let (created, creds) = app.create_client(&admin, refreshing("worker")).await;
    let before = app.try_token(&creds, &[], &[]).await.unwrap();
    assert!(app.active(&introspector, &before.access_token).await);

    let after_revoke = app.revoke_client_tokens(&admin, &creds.client_id).await;
    assert_eq!(after_revoke.client_id, creds.client_id);
    assert!(!app.active(&introspector, &before.access_token).await);
    let err = app
        .try_refresh(&creds, &before.refresh_token, &[])
        .await
        .unwrap_err();
    assert_invalid_grant(&err);
    // Tokens issued afterwards work, and survive a restart with the revocation intact.
    let after = app.try_token(&creds, &[], &[]).await.unwrap();
    assert!(app.active(&introspector, &after.access_token).await);
    let app = app.restart().await;
    assert!(!app.active(&introspector, &before.access_token).await);
    assert!(app.active(&introspector, &after.access_token).await);

    // Disabling revokes too: enabling again does not bring the tokens back.
    let mut off = created.clone();
    off.active = Some(false);
    app.update_client(&admin, off, &["active"]).await.unwrap();
    let mut on = created.clone();
    on.active = Some(true);
    app.update_client(&admin, on, &["active"]).await.unwrap();
    assert!(!app.active(&introspector, &after.access_token).await);
    let again = app.token(&creds, &[]).await;
    assert!(app.active(&introspector, &again).await);

    // Other tenants' admins cannot; unknown clients are NOT_FOUND.
    let acme_admin = app.admin("other").await;
    let err = app
        .clients()
        .revoke_client_tokens(authed(
            RevokeClientTokensRequest {
                client_id: creds.client_id.clone(),
            },
            &acme_admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(app.active(&introspector, &again).await);
}

async fn opaque_access_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let introspector = app.introspector("acme").await;
    let mut spec = refreshing("bot");
    spec.access_token_format = AccessTokenFormat::Opaque.into();
    spec.access_token_ttl = secs(30 * 24 * HOUR);
    spec.roles = vec!["bot".into()];
    spec.audiences = vec!["https://api".into()];
    let (created, creds) = app.create_client(&admin, spec).await;
    assert_eq!(
        created.access_token_format,
        i32::from(AccessTokenFormat::Opaque)
    );
    let issued = app.try_token(&creds, &["read:x"], &[]).await.unwrap();
    assert!(issued.access_token.starts_with("tkd_at_"), "opaque");
    assert_eq!(issued.access_token.len(), 7 + 43);
    assert_eq!(issued.expires_in, 30 * 24 * HOUR);
    let r = app.introspect(&introspector, &issued.access_token).await;
    assert!(r.active);
    assert_eq!(r.client_id, creds.client_id);
    assert_eq!(r.sub, creds.client_id);
    assert_eq!(r.scopes, ["read:x"]);
    assert_eq!(r.aud, ["https://api"]);
    assert_eq!(r.roles, ["bot"]);
    assert_eq!(r.iss, ISSUER);
    assert_eq!(r.tenant, "acme");
    assert_eq!(r.token_type, "Bearer");
    assert_eq!(r.exp - r.iat, 30 * 24 * HOUR);
    assert!(!r.jti.is_empty());
    // Refresh gives opaque tokens too; unknown look-alikes are inactive.
    let refreshed = app
        .try_refresh(&creds, &issued.refresh_token, &[])
        .await
        .unwrap();
    assert!(refreshed.access_token.starts_with("tkd_at_"));
    assert!(app.active(&introspector, &refreshed.access_token).await);
    let fake = format!("tkd_at_{}", "B".repeat(43));
    assert!(!app.active(&introspector, &fake).await);

    // Revocation, one by one and all at once.
    app.try_revoke(&creds, &issued.access_token, "")
        .await
        .unwrap();
    assert!(!app.active(&introspector, &issued.access_token).await);
    assert!(app.active(&introspector, &refreshed.access_token).await);
    app.revoke_client_tokens(&admin, &creds.client_id).await;
    assert!(!app.active(&introspector, &refreshed.access_token).await);

    // Expiry.
    let late = app.token(&creds, &[]).await;
    assert!(app.active(&introspector, &late).await);
    app.advance(Duration::from_secs((30 * 24 * HOUR + 60) as u64));
    let introspector = app.introspector("acme").await;
    assert!(!app.active(&introspector, &late).await);

    // A JWT cannot live that long; switching format checks it.
    let admin = app.admin("system").await; // the first admin token expired meanwhile
    let mut jwt = created.clone();
    jwt.access_token_format = AccessTokenFormat::Jwt.into();
    let err = app
        .update_client(&admin, jwt, &["access_token_format"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("access_token_ttl"), "{err:?}");
}

impl Replica {
    async fn active(&self, caller: &str, token: &str) -> bool {
        let request = IntrospectRequest {
            token: token.into(),
            token_type_hint: String::new(),
            client_address: String::new(),
            ..Default::default()
        };
        let mut client = IntrospectionServiceClient::new(self.channel.clone());
        client
            .introspect(authed(request, caller))
            .await
            .expect("introspect on the replica")
            .into_inner()
            .active
    }

    /// Introspects until the token is inactive; how long that took.
    async fn until_inactive(&self, caller: &str, token: &str, limit: Duration) -> Duration {
        eventually("the replica to say inactive", limit, async || {
            !self.active(caller, token).await
        })
        .await
    }
}

/// Revocations made on A reach B's Introspect by notification, not by B's poll: B polls only
/// once a minute here. The latencies are printed (the 100 ms p99 target is measured by the
/// benchmark, not asserted by a test).
async fn revocation_reaches_another_replica(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let introspector = app.introspector("acme").await;
    let (created, creds) = app.create_client(&admin, refreshing("worker")).await;
    let push = backend == Backend::Postgres;
    let b = Replica::start(&app, |s| {
        s.sync.poll_interval_ms = if push { 60_000 } else { 50 };
    })
    .await;
    // A client created through A just now is known to B (one read of the log on a miss).
    let (_, fresh) = app.create_client(&admin, refreshing("fresh")).await;
    let fresh_token = app.token(&fresh, &[]).await;
    assert!(b.active(&introspector, &fresh_token).await);

    let limit = Duration::from_secs(if push { 5 } else { 10 });
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let t = app.try_token(&creds, &[], &[]).await.unwrap();
        assert!(b.active(&introspector, &t.access_token).await);
        app.try_revoke(&creds, &t.access_token, "").await.unwrap();
        latencies.push(
            b.until_inactive(&introspector, &t.access_token, limit)
                .await,
        );
    }
    // A family, a whole client, a disabled client, a deleted client.
    let t = app.try_token(&creds, &[], &[]).await.unwrap();
    assert!(b.active(&introspector, &t.access_token).await);
    app.try_revoke(&creds, &t.refresh_token, "").await.unwrap();
    latencies.push(
        b.until_inactive(&introspector, &t.access_token, limit)
            .await,
    );
    let t = app.token(&creds, &[]).await;
    assert!(b.active(&introspector, &t).await);
    app.revoke_client_tokens(&admin, &creds.client_id).await;
    latencies.push(b.until_inactive(&introspector, &t, limit).await);
    let t = app.token(&creds, &[]).await;
    assert!(b.active(&introspector, &t).await);
    let mut off = created.clone();
    off.active = Some(false);
    app.update_client(&admin, off, &["active"]).await.unwrap();
    latencies.push(b.until_inactive(&introspector, &t, limit).await);
    assert!(b.active(&introspector, &fresh_token).await);
    app.try_delete_client(&admin, &fresh.client_id)
        .await
        .unwrap();
    latencies.push(b.until_inactive(&introspector, &fresh_token, limit).await);

    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    eprintln!(
        "{backend:?}: revocation on A seen by B: p50 {:?}, p90 {:?}, max {:?} over {} revocations",
        pct(0.5),
        pct(0.9),
        latencies.last().unwrap(),
        latencies.len()
    );
    b.stop().await;
}

/// A dropped LISTEN connection loses nothing: the replica's poll finds what it missed.
async fn a_dropped_notification_connection_loses_nothing(backend: Backend) {
    if backend != Backend::Postgres {
        return; // SQLite has no notifications to lose
    }
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let introspector = app.introspector("acme").await;
    let (_, creds) = app.create_client(&admin, refreshing("worker")).await;
    let b = Replica::start(&app, |s| s.sync.poll_interval_ms = 300).await;
    let t = app.token(&creds, &[]).await;
    assert!(b.active(&introspector, &t).await);
    // Cut every LISTEN connection to this test's database.
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "found the LISTEN connections");
    app.try_revoke(&creds, &t, "").await.unwrap();
    b.until_inactive(&introspector, &t, Duration::from_secs(10))
        .await;
    b.stop().await;
}

/// Pooled connections that the database server cut while they sat idle (a restart, a proxy's
/// idle timeout) are replaced without a failed call: a connection idle for over a second is
/// pinged before use, and the background readers of the change log also discard dead ones.
async fn connections_cut_while_idle_are_replaced(backend: Backend) {
    if backend != Backend::Postgres {
        return; // an embedded database has no server to cut connections
    }
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let (_, creds) = app.create_client(&admin, refreshing("worker")).await;
    app.try_token(&creds, &[], &[]).await.unwrap();
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let killed: Vec<bool> =
        sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid")
            .bind(&pids)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!killed.is_empty(), "found tokend's connections");
    // Terminating is asynchronous: wait until those backends are gone, or the call below
    // would find its connections still alive and prove nothing.
    eventually(
        "the terminated connections to close",
        Duration::from_secs(10),
        async || {
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                    .bind(&pids)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            left == 0
        },
    )
    .await;
    // The pool's own idle check runs on the wall clock (a connection idle for over a second is
    // pinged before use), which a test's manual clock does not drive: let them idle that long.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let issued = app.try_token(&creds, &[], &[]).await.unwrap();
    assert!(!issued.refresh_token.is_empty());
}

/// Deny-list rows go once the tokens they cover have expired.
async fn expired_revocations_are_purged(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.sync.purge_interval_secs = 1).await;
    let admin = app.admin("system").await;
    let introspector = app.introspector("acme").await;
    let (_, creds) = app.create_client(&admin, refreshing("worker")).await;
    let t = app.try_token(&creds, &[], &[]).await.unwrap();
    app.try_revoke(&creds, &t.access_token, "").await.unwrap();
    app.try_revoke(&creds, &t.refresh_token, "").await.unwrap();
    let store = store::connect(&ConnectOptions {
        url: app.db.url.clone(),
        max_connections: 1,
    })
    .await
    .unwrap();
    assert_eq!(
        store.live_revocations(0, None, 1000).await.unwrap().len(),
        2
    );
    assert!(!app.active(&introspector, &t.access_token).await);
    // 15 minutes of access-token life, leeway, retry window and margin later, both can go.
    app.advance(Duration::from_secs(15 * 60 + 120));
    eventually(
        "the expired deny-list rows to be purged",
        Duration::from_secs(10),
        async || {
            let live = store.live_revocations(0, None, 1000).await.unwrap();
            live.is_empty()
        },
    )
    .await;
}

for_each_backend!(
    refresh_rotates_and_reuse_revokes_the_family,
    a_lost_response_can_be_retried_within_the_window,
    concurrent_refreshes_never_branch,
    refresh_rules,
    revoke_token_follows_rfc7009,
    revoke_client_tokens_and_disable,
    opaque_access_tokens,
    revocation_reaches_another_replica,
    a_dropped_notification_connection_loses_nothing,
    connections_cut_while_idle_are_replaced,
    expired_revocations_are_purged,
);
