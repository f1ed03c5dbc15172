//! What each replica remembers to stay fast (verified secrets, verified tokens, batched
//! last-use times) never outlives what it stands for: a rotation, a disable or a revocation
//! made anywhere counts on the next call everywhere.

use std::time::Duration;

use tokend::proto::token_service_client::TokenServiceClient;
use tokend::proto::*;
use tonic::Code;

use crate::common::{Backend, eventually, eventually_some};
use crate::helpers::*;

async fn rotate(app: &TestApp, admin: &str, client_id: &str, grace_secs: i64) -> String {
    app.clients()
        .rotate_client_secret(authed(
            RotateClientSecretRequest {
                client_id: client_id.into(),
                grace_period: Some(prost_types::Duration {
                    seconds: grace_secs,
                    nanos: 0,
                }),
            },
            admin,
        ))
        .await
        .expect("rotate")
        .into_inner()
        .client_secret
}

async fn issue_on(replica: &Replica, creds: &Creds) -> Result<IssueTokenResponse, tonic::Status> {
    TokenServiceClient::new(replica.channel.clone())
        .issue_token(IssueTokenRequest {
            client_id: creds.client_id.clone(),
            client_secret: creds.client_secret.clone(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

/// Polls `replica` until `creds` stop authenticating; panics after `limit`.
async fn until_refused(replica: &Replica, creds: &Creds, limit: Duration) {
    let (status, _) = eventually_some("the replica to refuse the old secret", limit, async || {
        issue_on(replica, creds).await.err()
    })
    .await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

/// A secret the other replica verified (and so remembers) stops working there too once it is
/// rotated away, and a disabled client gets nothing even with a remembered secret.
async fn remembered_secrets_are_forgotten_on_every_replica(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let (c, old) = app
        .create_client(&admin, client("acme", "svc", &["read"]))
        .await;
    let b = Replica::start(&app, |s| s.sync.poll_interval_ms = 50).await;
    // Verified on both replicas, twice, so both remember it.
    for _ in 0..2 {
        app.token(&old, &[]).await;
        issue_on(&b, &old).await.expect("B accepts the secret");
    }
    let new = Creds {
        client_id: c.client_id.clone(),
        client_secret: rotate(&app, &admin, &c.client_id, 0).await,
    };
    // The replica that rotated refuses at once; the other within its sync latency.
    let err = app.try_token(&old, &[], &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    until_refused(&b, &old, Duration::from_secs(10)).await;
    issue_on(&b, &new).await.expect("the new secret works on B");
    app.token(&new, &[]).await;

    // Disabling wins over a remembered secret, on both replicas.
    let mut off = c.clone();
    off.active = Some(false);
    app.update_client(&admin, off, &["active"]).await.unwrap();
    let err = app.try_token(&new, &[], &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    eventually(
        "B to stop issuing to the disabled client",
        Duration::from_secs(10),
        async || issue_on(&b, &new).await.is_err(),
    )
    .await;
    b.stop().await;
}

/// A remembered secret never outlives its grace period.
async fn remembered_secrets_end_with_the_grace_period(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let (c, old) = app
        .create_client(&admin, client("acme", "svc", &["read"]))
        .await;
    rotate(&app, &admin, &c.client_id, 30).await;
    app.token(&old, &[]).await; // verified inside the grace period, and remembered
    app.advance(Duration::from_secs(29));
    app.token(&old, &[]).await;
    app.advance(Duration::from_secs(2));
    let err = app.try_token(&old, &[], &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

/// Introspection answers stay exact with the verified-token cache on and off: a token
/// introspected (and cached) before its revocation is inactive right after it.
async fn cached_tokens_still_honour_revocation(backend: Backend) {
    for entries in [100_000, 0] {
        let app = TestApp::spawn_with(backend, |s| s.introspection.cache_entries = entries).await;
        let admin = app.admin("system").await;
        let introspector = app.introspector("acme").await;
        let (c, creds) = app
            .create_client(&admin, client("acme", "svc", &["read"]))
            .await;
        let t = app.token(&creds, &["read"]).await;
        for _ in 0..3 {
            let r = app.introspect(&introspector, &t).await;
            assert!(r.active, "cache_entries = {entries}");
            assert_eq!(r.scopes, ["read"]);
        }
        app.revoke(&creds, &t).await;
        assert!(!app.introspect(&introspector, &t).await.active);
        // And a deleted client's cached token.
        let t2 = app.token(&creds, &[]).await;
        assert!(app.introspect(&introspector, &t2).await.active);
        app.try_delete_client(&admin, &c.client_id).await.unwrap();
        assert!(!app.introspect(&introspector, &t2).await.active);
        // Expiry is checked on every hit, not only when the entry was made.
        let t3 = app.token(&app.bootstrap("acme", "read").await, &[]).await;
        assert!(app.introspect(&introspector, &t3).await.active);
        app.advance(Duration::from_secs(3600));
        let fresh = app.introspector("acme").await;
        assert!(!app.introspect(&fresh, &t3).await.active);
    }
}

/// `last_used_time` is written in batches, and a graceful stop writes what is pending.
async fn last_use_is_batched_and_flushed_on_stop(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.tokens.last_used_flush_secs = 1).await;
    let admin = app.admin("system").await;
    let (c, creds) = app
        .create_client(&admin, client("acme", "svc", &["read"]))
        .await;
    assert!(
        app.get_client(&admin, &c.client_id)
            .await
            .last_used_time
            .is_none()
    );
    app.token(&creds, &[]).await;
    eventually(
        "the last use to be written",
        Duration::from_secs(10),
        async || {
            let c = app.get_client(&admin, &c.client_id).await;
            c.last_used_time.is_some()
        },
    )
    .await;

    let app = TestApp::spawn_with(backend, |s| s.tokens.last_used_flush_secs = 3600).await;
    let admin = app.admin("system").await;
    let (c, creds) = app
        .create_client(&admin, client("acme", "svc", &["read"]))
        .await;
    app.token(&creds, &[]).await;
    let app = app.restart().await;
    let admin = app.admin("system").await;
    let used = app.get_client(&admin, &c.client_id).await.last_used_time;
    assert!(
        used.is_some(),
        "the graceful stop wrote the pending last use"
    );
}

for_each_backend!(
    remembered_secrets_are_forgotten_on_every_replica,
    remembered_secrets_end_with_the_grace_period,
    cached_tokens_still_honour_revocation,
    last_use_is_batched_and_flushed_on_stop,
);
