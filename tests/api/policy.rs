//! Client policy over gRPC: allow-lists (with trusted proxies) and rate limits on the token
//! endpoint, each also across two replicas (the brute-force lockout is in `lockout`). Calls come from chosen
//! loopback addresses (127.0.0.x), so a test can be several clients at once.

use std::time::Duration;

use tokend::proto::token_service_client::TokenServiceClient;
use tokend::proto::*;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt as _;

use crate::common::{Backend, eventually};
use crate::helpers::*;

const WRONG_SECRET: &str = "tkd_cs_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn hour() -> prost_types::Duration {
    prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    }
}

pub(crate) fn wrong(creds: &Creds) -> IssueTokenRequest {
    IssueTokenRequest {
        client_secret: WRONG_SECRET.into(),
        ..issue_request(creds)
    }
}

pub(crate) fn refresh_request(creds: &Creds, refresh_token: &str) -> RefreshTokenRequest {
    RefreshTokenRequest {
        client_id: creds.client_id.clone(),
        client_secret: creds.client_secret.clone(),
        refresh_token: refresh_token.into(),
        scopes: vec![],
        ..Default::default()
    }
}

/// The delay a refusal asks for: the RetryInfo detail and the `retry-after` metadata (whole
/// seconds), which must agree.
fn retry_after(status: &Status) -> Duration {
    let delay = status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("a RetryInfo detail");
    let secs: u64 = status
        .metadata()
        .get("retry-after")
        .expect("retry-after metadata")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(secs, delay.as_secs() + u64::from(delay.subsec_nanos() > 0));
    delay
}

pub(crate) fn assert_rate_limited(status: &Status) -> Duration {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(oauth2_error(status), "rate_limited");
    retry_after(status)
}

/// How many of `n` IssueToken calls pass; the others must be rate limited.
pub(crate) async fn passes(
    tokens: &mut TokenServiceClient<Channel>,
    creds: &Creds,
    n: usize,
) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        match tokens.issue_token(issue_request(creds)).await {
            Ok(_) => ok += 1,
            Err(status) => {
                assert_rate_limited(&status);
            }
        }
    }
    ok
}

async fn introspect_at(
    channel: &Channel,
    caller: &str,
    token: &str,
    address: &str,
) -> Result<IntrospectResponse, Status> {
    let request = IntrospectRequest {
        token: token.into(),
        token_type_hint: String::new(),
        client_address: address.into(),
        ..Default::default()
    };
    tokend::proto::introspection_service_client::IntrospectionServiceClient::new(channel.clone())
        .introspect(authed(request, caller))
        .await
        .map(|r| r.into_inner())
}

async fn allow_lists_guard_the_token_endpoint(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let mut bot = client("acme", "bot", &["read"]);
    bot.allowed_cidrs = vec!["127.0.0.2/32".into()];
    bot.refresh_token_ttl = Some(hour());
    let (created, creds) = app.create_client(&admin, bot).await;
    let mut inside = app.tokens_from("127.0.0.2").await;
    let mut outside = app.tokens_from("127.0.0.3").await;
    let issued = inside
        .issue_token(issue_request(&creds))
        .await
        .expect("inside the allow-list")
        .into_inner();

    // Credentials first: a wrong secret from outside learns nothing of the allow-list.
    let err = outside.issue_token(wrong(&creds)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = outside
        .issue_token(issue_request(&creds))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(oauth2_error(&err), "unauthorized_client");
    assert!(err.message().contains("127.0.0.3"), "{err:?}");
    assert!(
        !err.message().contains("127.0.0.2"),
        "names the list: {err:?}"
    );
    let err = outside
        .refresh_token(refresh_request(&creds, &issued.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let revoke = RevokeTokenRequest {
        client_id: creds.client_id.clone(),
        client_secret: creds.client_secret.clone(),
        token: issued.access_token.clone(),
        token_type_hint: String::new(),
        ..Default::default()
    };
    let err = outside.revoke_token(revoke.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // The refused refresh left the token usable from inside.
    inside
        .refresh_token(refresh_request(&creds, &issued.refresh_token))
        .await
        .expect("refresh inside the allow-list");
    inside.revoke_token(revoke).await.expect("revoke inside");

    // A wider list holds at once.
    let mut wider = created.clone();
    wider.allowed_cidrs = vec!["127.0.0.0/8".into()];
    app.update_client(&admin, wider, &["allowed_cidrs"])
        .await
        .unwrap();
    outside
        .issue_token(issue_request(&creds))
        .await
        .expect("inside the wider list");
}

/// A bare address in an allow-list is that one host, stored and shown as its CIDR.
async fn bare_addresses_in_allow_lists_mean_one_host(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let mut bot = client("acme", "bot", &["read"]);
    bot.allowed_cidrs = vec!["127.0.0.1".into(), "::1".into()];
    let (created, creds) = app.create_client(&admin, bot).await;
    assert_eq!(created.allowed_cidrs, ["127.0.0.1/32", "::1/128"]);
    let shown = app.get_client(&admin, &creds.client_id).await;
    assert_eq!(shown.allowed_cidrs, ["127.0.0.1/32", "::1/128"]);
    app.tokens_from("127.0.0.1")
        .await
        .issue_token(issue_request(&creds))
        .await
        .expect("from the listed address");
    let err = app
        .tokens_from("127.0.0.2")
        .await
        .issue_token(issue_request(&creds))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
}

async fn trusted_proxies_forward_the_client_address(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let admin = app.admin("acme").await;
    let mut bot = client("acme", "bot", &["read"]);
    bot.allowed_cidrs = vec!["192.0.2.0/24".into()];
    let (_, creds) = app.create_client(&admin, bot).await;
    let forwarded = |xff: &str| {
        let mut request = Request::new(issue_request(&creds));
        request
            .metadata_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
        request
    };
    let mut proxy = app.tokens_from("127.0.0.1").await;
    // The right-most entry the proxy did not write itself is the client; what the client put
    // in front of it is not believed.
    proxy
        .issue_token(forwarded("198.51.100.1, 192.0.2.7"))
        .await
        .expect("forwarded from inside the allow-list");
    let err = proxy
        .issue_token(forwarded("192.0.2.7, 198.51.100.1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("198.51.100.1"), "{err:?}");
    // An untrusted peer's header is ignored.
    let mut direct = app.tokens_from("127.0.0.2").await;
    let err = direct
        .issue_token(forwarded("192.0.2.7"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("127.0.0.2"), "{err:?}");
}

async fn introspection_checks_the_client_address(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.sync.poll_interval_ms = 50).await;
    let admin = app.admin("acme").await;
    let introspector = app.introspector("acme").await;
    let (created, creds) = app
        .create_client(&admin, client("acme", "bot", &["read"]))
        .await;
    let token = app.token(&creds, &[]).await;
    // The allow-list changes after the token was issued: it counts for that token too.
    let mut listed = created.clone();
    listed.allowed_cidrs = vec!["10.0.0.0/8".into()];
    let listed = app
        .update_client(&admin, listed, &["allowed_cidrs"])
        .await
        .unwrap();
    let replica = Replica::start(&app, |_| {}).await;
    for (addr, active) in [
        ("", true),
        ("10.1.2.3", true),
        ("::ffff:10.1.2.3", true),
        ("192.0.2.1", false),
        ("2001:db8::1", false),
    ] {
        let r = introspect_at(&app.channel, &introspector, &token, addr)
            .await
            .unwrap();
        assert_eq!(r.active, active, "{addr}");
        if !active {
            assert_eq!(r, IntrospectResponse::default(), "inactive says nothing");
        }
        let r = introspect_at(&replica.channel, &introspector, &token, addr)
            .await
            .unwrap();
        assert_eq!(r.active, active, "{addr} on the replica");
    }
    let err = introspect_at(&app.channel, &introspector, &token, "10.1.2")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let violations = err.get_error_details().bad_request().unwrap().clone();
    assert_eq!(violations.field_violations[0].field, "client_address");

    // Emptying the list holds at once here, and on the replica as soon as it reads the log.
    let mut open = listed.clone();
    open.allowed_cidrs = vec![];
    app.update_client(&admin, open, &["allowed_cidrs"])
        .await
        .unwrap();
    let r = introspect_at(&app.channel, &introspector, &token, "192.0.2.1")
        .await
        .unwrap();
    assert!(r.active);
    eventually(
        "the replica to see the new list",
        Duration::from_secs(10),
        || {
            let (channel, introspector, token) = (&replica.channel, &introspector, &token);
            async move {
                introspect_at(channel, introspector, token, "192.0.2.1")
                    .await
                    .unwrap()
                    .active
            }
        },
    )
    .await;
    replica.stop().await;
}

async fn client_rate_limits_refuse_with_retry_info(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let mut bot = client("acme", "bot", &["read"]);
    bot.rate_limit_per_minute = 2;
    bot.refresh_token_ttl = Some(hour());
    let (_, creds) = app.create_client(&admin, bot).await;
    let (_, free) = app
        .create_client(&admin, client("acme", "free", &["read"]))
        .await;
    let mut tokens = app.tokens();
    let first = tokens
        .issue_token(issue_request(&creds))
        .await
        .unwrap()
        .into_inner();
    tokens.issue_token(issue_request(&creds)).await.unwrap();
    let err = tokens.issue_token(issue_request(&creds)).await.unwrap_err();
    assert_eq!(assert_rate_limited(&err), Duration::from_secs(30));
    assert!(err.message().contains("retry in 30 s"), "{err:?}");
    // Refreshes count against their own limit (none here), not this one.
    tokens
        .refresh_token(refresh_request(&creds, &first.refresh_token))
        .await
        .expect("refreshes are not held back by rate_limit_per_minute");
    // Half a minute refills one call.
    app.advance(Duration::from_secs(20));
    let err = tokens.issue_token(issue_request(&creds)).await.unwrap_err();
    assert_eq!(assert_rate_limited(&err), Duration::from_secs(10));
    app.advance(Duration::from_secs(10));
    assert_eq!(passes(&mut tokens, &creds, 2).await, 1, "refilled");
    // A client without a limit is not held back by another's.
    assert_eq!(passes(&mut tokens, &free, 10).await, 10);
}

async fn the_per_address_limit_covers_every_client(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.server.token_endpoint_rate_per_minute = 3).await;
    let admin = app.admin("acme").await;
    let (_, a) = app
        .create_client(&admin, client("acme", "a", &["read"]))
        .await;
    let (_, b) = app
        .create_client(&admin, client("acme", "b", &["read"]))
        .await;
    let mut from2 = app.tokens_from("127.0.0.2").await;
    assert_eq!(passes(&mut from2, &a, 2).await, 2);
    assert_eq!(passes(&mut from2, &b, 2).await, 1);
    let err = from2.issue_token(issue_request(&a)).await.unwrap_err();
    assert_eq!(assert_rate_limited(&err), Duration::from_secs(20));
    assert!(err.message().contains("address"), "{err:?}");
    // Checked before the secret: a wrong one is refused without a verification.
    let err = from2.issue_token(wrong(&a)).await.unwrap_err();
    assert_rate_limited(&err);
    let mut from3 = app.tokens_from("127.0.0.3").await;
    assert_eq!(passes(&mut from3, &b, 1).await, 1);
}

/// Starts a replica of `app` and waits until both have heartbeated since, so each knows
/// there are two.
async fn second_replica(app: &TestApp) -> Replica {
    let replica = Replica::start(app, |_| {}).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    replica
}

async fn two_replicas_share_one_rate_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.sync.heartbeat_ms = 100).await;
    let admin = app.admin("acme").await;
    let mut bot = client("acme", "bot", &["read"]);
    bot.rate_limit_per_minute = 4;
    let (_, creds) = app.create_client(&admin, bot).await;
    let replica = second_replica(&app).await;
    let mut a = app.tokens();
    let mut b = TokenServiceClient::new(replica.channel.clone());
    // Each replica grants its half: four calls in all, not eight.
    assert_eq!(passes(&mut a, &creds, 4).await, 2);
    assert_eq!(passes(&mut b, &creds, 4).await, 2);
    // Alone again, the remaining replica takes the whole limit at its next heartbeat.
    replica.stop().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    app.advance(Duration::from_secs(60));
    assert_eq!(passes(&mut a, &creds, 6).await, 4);
}

for_each_backend!(
    allow_lists_guard_the_token_endpoint,
    bare_addresses_in_allow_lists_mean_one_host,
    trusted_proxies_forward_the_client_address,
    introspection_checks_the_client_address,
    client_rate_limits_refuse_with_retry_info,
    the_per_address_limit_covers_every_client,
    two_replicas_share_one_rate_limit,
);
