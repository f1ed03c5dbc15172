//! Token exchange (RFC 8693) over gRPC and HTTP: delegation with `act`, the exchanging
//! client's policy, every error the RFC names, and the rule no peer has: an exchanged token
//! dies with the token it came from, on every replica.

use std::time::Duration;

use tokend::proto::introspection_service_client::IntrospectionServiceClient;
use tokend::proto::token_service_client::TokenServiceClient;
use tokend::proto::*;
use tonic::{Code, Status};

use crate::common::{Backend, eventually};
use crate::helpers::*;

const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The parties of a delegation: a frontend whose token a gateway exchanges for the orders
/// service, and an admin and introspector of their tenant.
struct Parties {
    app: TestApp,
    admin: String,
    introspector: String,
    frontend: Creds,
    frontend_client: Client,
    gateway: Creds,
    gateway_client: Client,
}

async fn parties(backend: Backend) -> Parties {
    parties_with(backend, |_| {}).await
}

async fn parties_with(backend: Backend, change: impl FnOnce(&mut Client)) -> Parties {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let introspector = app.introspector("acme").await;
    let mut frontend = client("acme", "frontend", &["read:*", "write:orders", "admin:x"]);
    frontend.audiences = vec!["https://gateway.internal".into()];
    frontend.roles = vec!["web".into()];
    frontend.refresh_token_ttl = Some(prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    });
    let (frontend_client, frontend) = app.create_client(&admin, frontend).await;
    let mut gateway = client("acme", "gateway", &["read:*", "write:orders"]);
    gateway.exchange_audiences = vec![
        "https://orders.internal".into(),
        "https://billing.internal".into(),
    ];
    change(&mut gateway);
    let (gateway_client, gateway) = app.create_client(&admin, gateway).await;
    Parties {
        app,
        admin,
        introspector,
        frontend,
        frontend_client,
        gateway,
        gateway_client,
    }
}

fn exchange_request(creds: &Creds, subject: &str) -> ExchangeTokenRequest {
    ExchangeTokenRequest {
        client_id: creds.client_id.clone(),
        client_secret: creds.client_secret.clone(),
        subject_token: subject.into(),
        subject_token_type: ACCESS.into(),
        ..Default::default()
    }
}

async fn exchange(
    tokens: &mut TokenServiceClient<tonic::transport::Channel>,
    request: ExchangeTokenRequest,
) -> Result<ExchangeTokenResponse, Status> {
    tokens.exchange_token(request).await.map(|r| r.into_inner())
}

fn assert_oauth(err: &Status, code: Code, oauth: &str) {
    assert_eq!(err.code(), code, "{err:?}");
    assert_eq!(oauth2_error(err), oauth, "{err:?}");
}

async fn delegation_names_the_actor_and_narrows(backend: Backend) {
    let p = parties(backend).await;
    let app = &p.app;
    let subject = app
        .try_token(
            &p.frontend,
            &["read:orders", "write:orders", "admin:x"],
            &[],
        )
        .await
        .unwrap();
    let mut request = exchange_request(&p.gateway, &subject.access_token);
    request.audience = vec!["https://orders.internal".into()];
    request.scopes = vec!["read:orders".into()];
    let got = exchange(&mut app.tokens(), request).await.unwrap();
    assert_eq!(got.issued_token_type, ACCESS);
    assert_eq!(got.token_type, "Bearer");
    assert_eq!(got.scopes, ["read:orders"]);
    assert!(got.expires_in > 0 && got.expires_in <= subject.expires_in);

    let seen = app.introspect(&p.introspector, &got.access_token).await;
    assert!(seen.active);
    assert_eq!(seen.sub, p.frontend.client_id, "sub stays the subject's");
    assert_eq!(
        seen.client_id, p.gateway.client_id,
        "client_id is the exchanger"
    );
    assert_eq!(seen.aud, ["https://orders.internal"]);
    assert_eq!(seen.scopes, ["read:orders"]);
    assert_eq!(seen.roles, ["web"], "roles are the subject's");
    assert_eq!(seen.tenant, "acme");
    let act = seen.act.expect("act claim");
    assert_eq!(act.sub, p.gateway.client_id);
    assert!(act.act.is_none());
    let subject_seen = app.introspect(&p.introspector, &subject.access_token).await;
    assert!(seen.exp <= subject_seen.exp);

    // None asked: every scope of the subject token the gateway is allowed (admin:x is not),
    // every exchange audience; the JWT token type is accepted for a JWT.
    let mut request = exchange_request(&p.gateway, &subject.access_token);
    request.subject_token_type = JWT.into();
    let all = exchange(&mut app.tokens(), request).await.unwrap();
    assert_eq!(all.scopes, ["read:orders", "write:orders"]);
    let seen = app.introspect(&p.introspector, &all.access_token).await;
    assert_eq!(
        seen.aud,
        ["https://billing.internal", "https://orders.internal"]
    );

    // A chain: the billing service exchanges the gateway's token again; act nests, and
    // revoking the original token kills both.
    let mut billing = client("acme", "billing", &["read:*"]);
    billing.exchange_audiences = vec!["https://ledger.internal".into()];
    let (_, billing) = app.create_client(&p.admin, billing).await;
    let second = exchange(
        &mut app.tokens(),
        exchange_request(&billing, &got.access_token),
    )
    .await
    .unwrap();
    let seen = app.introspect(&p.introspector, &second.access_token).await;
    assert!(seen.active);
    assert_eq!(seen.sub, p.frontend.client_id);
    let act = seen.act.unwrap();
    assert_eq!(act.sub, billing.client_id);
    assert_eq!(act.act.unwrap().sub, p.gateway.client_id);
    app.tokens()
        .revoke_token(RevokeTokenRequest {
            client_id: p.frontend.client_id.clone(),
            client_secret: p.frontend.client_secret.clone(),
            token: subject.access_token.clone(),
            token_type_hint: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    for token in [&got.access_token, &all.access_token, &second.access_token] {
        assert!(!app.introspect(&p.introspector, token).await.active);
    }
    // And an inactive subject cannot be exchanged any more.
    let err = exchange(
        &mut app.tokens(),
        exchange_request(&p.gateway, &subject.access_token),
    )
    .await
    .unwrap_err();
    assert_oauth(&err, Code::InvalidArgument, "invalid_grant");
}

async fn an_actor_token_names_the_actor(backend: Backend) {
    let p = parties(backend).await;
    let app = &p.app;
    let subject = app.token(&p.frontend, &["read:orders"]).await;
    let (_, robot) = app
        .create_client(&p.admin, client("acme", "robot", &["read:*"]))
        .await;
    let actor = app.token(&robot, &[]).await;
    let mut request = exchange_request(&p.gateway, &subject);
    request.actor_token = actor.clone();
    request.actor_token_type = ACCESS.into();
    let got = exchange(&mut app.tokens(), request.clone()).await.unwrap();
    let seen = app.introspect(&p.introspector, &got.access_token).await;
    assert_eq!(seen.act.unwrap().sub, robot.client_id);
    // The token also dies with its actor token.
    app.revoke(&robot, &actor).await;
    assert!(
        !app.introspect(&p.introspector, &got.access_token)
            .await
            .active
    );
    let err = exchange(&mut app.tokens(), request).await.unwrap_err();
    assert_oauth(&err, Code::InvalidArgument, "invalid_grant");
}

/// Every way the subject token can end ends the exchanged token too: its refresh family,
/// its client's RevokeClientTokens, disable and delete.
async fn exchanged_tokens_die_with_their_subject(backend: Backend) {
    let p = parties(backend).await;
    let app = &p.app;
    let introspector = &p.introspector;
    let fresh = || async {
        let issued = app
            .try_token(&p.frontend, &["read:orders"], &[])
            .await
            .unwrap();
        let got = exchange(
            &mut app.tokens(),
            exchange_request(&p.gateway, &issued.access_token),
        )
        .await
        .unwrap();
        assert!(app.introspect(introspector, &got.access_token).await.active);
        (issued, got.access_token)
    };

    let revoke_all = |client_id: &str| {
        let request = RevokeClientTokensRequest {
            client_id: client_id.into(),
        };
        let mut clients = app.clients();
        let admin = p.admin.clone();
        async move {
            clients
                .revoke_client_tokens(authed(request, &admin))
                .await
                .unwrap();
        }
    };

    // The subject's refresh family, revoked by its refresh token.
    let (issued, exchanged) = fresh().await;
    app.tokens()
        .revoke_token(RevokeTokenRequest {
            client_id: p.frontend.client_id.clone(),
            client_secret: p.frontend.client_secret.clone(),
            token: issued.refresh_token.clone(),
            token_type_hint: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!app.introspect(introspector, &exchanged).await.active);

    // RevokeClientTokens on the subject's client.
    let (_, exchanged) = fresh().await;
    revoke_all(&p.frontend.client_id).await;
    assert!(!app.introspect(introspector, &exchanged).await.active);

    // RevokeClientTokens on the exchanging client ends its own tokens, as always.
    let (_, exchanged) = fresh().await;
    revoke_all(&p.gateway.client_id).await;
    assert!(!app.introspect(introspector, &exchanged).await.active);

    // Disabling the subject's client.
    let (_, exchanged) = fresh().await;
    let mut off = p.frontend_client.clone();
    off.active = Some(false);
    app.update_client(&p.admin, off, &["active"]).await.unwrap();
    assert!(!app.introspect(introspector, &exchanged).await.active);
    let mut on = p.frontend_client.clone();
    on.active = Some(true);
    app.update_client(&p.admin, on, &["active"]).await.unwrap();

    // Deleting it.
    let (_, exchanged) = fresh().await;
    app.try_delete_client(&p.admin, &p.frontend.client_id)
        .await
        .unwrap();
    assert!(!app.introspect(introspector, &exchanged).await.active);
}

/// A revocation on one replica ends the exchanged token on the other within its sync latency,
/// with no database read on the introspection path.
async fn the_other_replica_sees_it_too(backend: Backend) {
    let p = parties(backend).await;
    let app = &p.app;
    let b = Replica::start(app, |s| s.sync.poll_interval_ms = 50).await;
    let subject = app.token(&p.frontend, &["read:orders"]).await;
    let got = exchange(
        &mut TokenServiceClient::new(b.channel.clone()),
        exchange_request(&p.gateway, &subject),
    )
    .await
    .unwrap();
    let on_b = || async {
        IntrospectionServiceClient::new(b.channel.clone())
            .introspect(authed(
                IntrospectRequest {
                    token: got.access_token.clone(),
                    ..Default::default()
                },
                &p.introspector,
            ))
            .await
            .unwrap()
            .into_inner()
            .active
    };
    assert!(on_b().await);
    app.tokens()
        .revoke_token(RevokeTokenRequest {
            client_id: p.frontend.client_id.clone(),
            client_secret: p.frontend.client_secret.clone(),
            token: subject,
            token_type_hint: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    eventually("B to say inactive", Duration::from_secs(10), async || {
        !on_b().await
    })
    .await;
    b.stop().await;
}

async fn opaque_tokens_exchange_both_ways(backend: Backend) {
    let p = parties_with(backend, |g| {
        g.access_token_format = AccessTokenFormat::Opaque.into();
    })
    .await;
    let app = &p.app;
    let mut bot = client("acme", "bot", &["read:*"]);
    bot.access_token_format = AccessTokenFormat::Opaque.into();
    let (_, bot) = app.create_client(&p.admin, bot).await;
    let subject = app.token(&bot, &["read:orders"]).await;
    assert!(subject.starts_with("tkd_at_"));
    let got = exchange(&mut app.tokens(), exchange_request(&p.gateway, &subject))
        .await
        .unwrap();
    assert!(
        got.access_token.starts_with("tkd_at_"),
        "the gateway's format"
    );
    let seen = app.introspect(&p.introspector, &got.access_token).await;
    assert!(seen.active);
    assert_eq!(seen.sub, bot.client_id);
    assert_eq!(seen.act.unwrap().sub, p.gateway.client_id);
    // An opaque token is no JWT.
    let mut request = exchange_request(&p.gateway, &subject);
    request.subject_token_type = JWT.into();
    let err = exchange(&mut app.tokens(), request).await.unwrap_err();
    assert_oauth(&err, Code::InvalidArgument, "invalid_request");
    app.revoke(&bot, &subject).await;
    assert!(
        !app.introspect(&p.introspector, &got.access_token)
            .await
            .active
    );
}

async fn refusals_carry_rfc_8693_codes(backend: Backend) {
    let p = parties(backend).await;
    let app = &p.app;
    let subject = app.token(&p.frontend, &["read:orders"]).await;
    let mut tokens = app.tokens();
    let base = exchange_request(&p.gateway, &subject);
    let cases: Vec<(ExchangeTokenRequest, Code, &str)> = vec![
        (
            ExchangeTokenRequest {
                subject_token_type: String::new(),
                ..base.clone()
            },
            Code::InvalidArgument,
            "invalid_request",
        ),
        (
            ExchangeTokenRequest {
                subject_token_type: "urn:ietf:params:oauth:token-type:saml2".into(),
                ..base.clone()
            },
            Code::InvalidArgument,
            "invalid_request",
        ),
        (
            ExchangeTokenRequest {
                subject_token: String::new(),
                ..base.clone()
            },
            Code::InvalidArgument,
            "invalid_request",
        ),
        (
            ExchangeTokenRequest {
                actor_token: subject.clone(),
                ..base.clone()
            },
            Code::InvalidArgument,
            "invalid_request",
        ),
        (
            ExchangeTokenRequest {
                requested_token_type: "urn:ietf:params:oauth:token-type:id_token".into(),
                ..base.clone()
            },
            Code::InvalidArgument,
            "invalid_request",
        ),
        (
            ExchangeTokenRequest {
                subject_token: "garbage".into(),
                ..base.clone()
            },
            Code::InvalidArgument,
            "invalid_grant",
        ),
        (
            ExchangeTokenRequest {
                audience: vec!["https://elsewhere.internal".into()],
                ..base.clone()
            },
            Code::InvalidArgument,
            "invalid_target",
        ),
        (
            // Allowed for the gateway, but not held by the subject token.
            ExchangeTokenRequest {
                scopes: vec!["write:orders".into()],
                ..base.clone()
            },
            Code::InvalidArgument,
            "invalid_scope",
        ),
        (
            ExchangeTokenRequest {
                scopes: vec!["tokend.introspect".into()],
                ..base.clone()
            },
            Code::InvalidArgument,
            "invalid_scope",
        ),
        (
            ExchangeTokenRequest {
                client_secret: "tkd_cs_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into(),
                ..base.clone()
            },
            Code::Unauthenticated,
            "invalid_client",
        ),
    ];
    for (request, code, oauth) in cases {
        let err = exchange(&mut tokens, request.clone()).await.unwrap_err();
        assert_oauth(&err, code, oauth);
    }
    // Held by the subject, not allowed for the exchanger.
    let wide = app.token(&p.frontend, &["read:orders", "admin:x"]).await;
    let mut request = exchange_request(&p.gateway, &wide);
    request.scopes = vec!["admin:x".into()];
    let err = exchange(&mut tokens, request).await.unwrap_err();
    assert_oauth(&err, Code::InvalidArgument, "invalid_scope");
    let mut request = exchange_request(&p.gateway, &app.token(&p.frontend, &["admin:x"]).await);
    request.scopes = vec![];
    let err = exchange(&mut tokens, request).await.unwrap_err();
    assert_oauth(&err, Code::InvalidArgument, "invalid_scope");

    // A client without exchange_audiences may not exchange at all.
    let err = exchange(&mut tokens, exchange_request(&p.frontend, &subject))
        .await
        .unwrap_err();
    assert_oauth(&err, Code::PermissionDenied, "unauthorized_client");

    // Another tenant's token is not active for this client.
    let other_admin = app.admin("globex").await;
    let (_, stranger) = app
        .create_client(&other_admin, client("globex", "x", &["read:*"]))
        .await;
    let foreign = app.token(&stranger, &[]).await;
    let err = exchange(&mut tokens, exchange_request(&p.gateway, &foreign))
        .await
        .unwrap_err();
    assert_oauth(&err, Code::InvalidArgument, "invalid_grant");

    // exchange_audiences is a client field like any other: validated, shown, updatable.
    let mut bad = p.gateway_client.clone();
    bad.exchange_audiences = vec!["has space".into()];
    let err = app
        .update_client(&p.admin, bad, &["exchange_audiences"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("exchange_audiences"), "{err:?}");
    let mut none = p.gateway_client.clone();
    none.exchange_audiences = vec![];
    let updated = app
        .update_client(&p.admin, none, &["exchange_audiences"])
        .await
        .unwrap();
    assert!(updated.exchange_audiences.is_empty());
    let err = exchange(&mut tokens, exchange_request(&p.gateway, &subject))
        .await
        .unwrap_err();
    assert_oauth(&err, Code::PermissionDenied, "unauthorized_client");
    let shown = app.get_client(&p.admin, &p.gateway.client_id).await;
    assert!(shown.exchange_audiences.is_empty());
}

async fn exchange_over_http(backend: Backend) {
    let p = parties(backend).await;
    let app = &p.app;
    let subject = app.token(&p.frontend, &["read:orders"]).await;
    let body = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
         &subject_token={subject}&subject_token_type={}&audience=https%3A%2F%2Forders.internal\
         &scope=read%3Aorders",
        urlencode(ACCESS)
    );
    let r = crate::oauth_http::token_with_basic(app.addr, &p.gateway, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let json = r.json();
    assert_eq!(json["issued_token_type"], ACCESS);
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["scope"], "read:orders");
    assert!(json.get("refresh_token").is_none());
    let token = json["access_token"].as_str().unwrap();
    let seen = app.introspect(&p.introspector, token).await;
    assert_eq!(seen.act.unwrap().sub, p.gateway.client_id);

    // The same errors as over gRPC, as RFC 8693 section 2.2.2 names them.
    let wrong_aud = body.replace("orders.internal", "nowhere.internal");
    let r = crate::oauth_http::token_with_basic(app.addr, &p.gateway, &wrong_aud).await;
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_target"));
    let no_type = body.replace("subject_token_type", "x");
    let r = crate::oauth_http::token_with_basic(app.addr, &p.gateway, &no_type).await;
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));
    let r = crate::oauth_http::token_with_basic(app.addr, &p.frontend, &body).await;
    assert_eq!((r.status, r.error().as_str()), (400, "unauthorized_client"));
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A")
}

for_each_backend!(
    delegation_names_the_actor_and_narrows,
    an_actor_token_names_the_actor,
    exchanged_tokens_die_with_their_subject,
    the_other_replica_sees_it_too,
    opaque_tokens_exchange_both_ways,
    refusals_carry_rfc_8693_codes,
    exchange_over_http,
);
