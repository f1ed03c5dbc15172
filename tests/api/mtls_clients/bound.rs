//! Certificate-bound access tokens (RFC 8705 section 3): a client with
//! `tls_client_certificate_bound_access_tokens` gets tokens carrying `cnf` with its
//! certificate's `x5t#S256` (JWT and opaque alike), only when it calls with a certificate;
//! introspection returns the binding and answers `active: false` for another certificate;
//! ext_authz lets a bound token through only with its certificate; refreshes stay bound.

use std::collections::HashMap;

use base64::Engine as _;
use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as HttpAttributes,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tokend::proto::*;
use tonic::Code;

use super::*;
use crate::common::Backend;
use crate::helpers::*;

/// A bound client of `acme`: `tls_client_auth` to `SPIFFE_ID`, in `format`, with refresh.
fn bound_client(name: &str, format: AccessTokenFormat) -> Client {
    let mut c = mtls_client(name);
    c.tls_client_certificate_bound_access_tokens = true;
    c.access_token_format = format.into();
    c.refresh_token_ttl = Some(prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    });
    c
}

/// The `cnf` claim of a JWT, read without verifying (tokend signed it).
fn jwt_cnf(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["cnf"].clone()
}

async fn introspect_seen_with(
    app: &TestApp,
    caller: &str,
    token: &str,
    thumbprint: &str,
) -> Result<IntrospectResponse, tonic::Status> {
    let request = IntrospectRequest {
        token: token.into(),
        client_certificate_thumbprint: thumbprint.into(),
        ..Default::default()
    };
    app.introspection()
        .introspect(authed(request, caller))
        .await
        .map(|r| r.into_inner())
}

async fn bound_tokens_carry_cnf_and_introspection_compares_it(backend: Backend) {
    let app = proxied_app(backend).await;
    let admin = app.admin("acme").await;
    let introspector = app.introspector("acme").await;
    let ca = Ca::new("mesh CA");
    let (ours, theirs) = (ca.workload(SPIFFE_ID), ca.workload(SPIFFE_ID));
    let mut proxy = app.tokens_from(PROXY).await;
    for format in [AccessTokenFormat::Jwt, AccessTokenFormat::Opaque] {
        let (created, _) = app
            .create_client(&admin, bound_client("bound", format))
            .await;
        assert!(created.tls_client_certificate_bound_access_tokens);
        let issued = proxy
            .issue_token(forwarded(id_only(&created.client_id), &xfcc(&ours)))
            .await
            .expect("a bound token")
            .into_inner();
        let token = issued.access_token.as_str();
        if format == AccessTokenFormat::Jwt {
            assert_eq!(jwt_cnf(token)["x5t#S256"], x5t(&ours));
        }
        let plain = app.introspect(&introspector, token).await;
        assert!(plain.active, "without a thumbprint: active, with its cnf");
        assert_eq!(plain.cnf.unwrap().x5t_s256, x5t(&ours));
        let seen = introspect_seen_with(&app, &introspector, token, &x5t(&ours)).await;
        assert!(seen.unwrap().active);
        let other = introspect_seen_with(&app, &introspector, token, &x5t(&theirs)).await;
        assert_eq!(other.unwrap(), IntrospectResponse::default(), "{format:?}");
        let err = introspect_seen_with(&app, &introspector, token, "not-a-thumbprint")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        // Over HTTP: the `cnf` object, and `active: false` for another certificate.
        let auth = format!("Bearer {introspector}");
        let headers = [("Authorization", auth.as_str())];
        let answer = crate::oauth_http::introspect(app.addr, &headers, &format!("token={token}"))
            .await
            .json();
        assert_eq!(answer["cnf"]["x5t#S256"], x5t(&ours));
        let body = format!(
            "token={token}&client_certificate_thumbprint={}",
            x5t(&theirs)
        );
        let answer = crate::oauth_http::introspect(app.addr, &headers, &body).await;
        assert_eq!(answer.json(), serde_json::json!({"active": false}));
    }
    // Unbound tokens are unaffected by a thumbprint.
    let plain = app.token(&app.bootstrap("acme", "read").await, &[]).await;
    let seen = introspect_seen_with(&app, &introspector, &plain, &x5t(&ours)).await;
    assert!(seen.unwrap().active);
}

async fn a_bound_client_gets_tokens_only_with_a_certificate(backend: Backend) {
    let app = proxied_app(backend).await;
    let admin = app.admin("acme").await;
    // A secret client whose tokens are bound: the secret proves it, the certificate binds.
    let mut c = client("acme", "secret-bound", &["read"]);
    c.tls_client_certificate_bound_access_tokens = true;
    let (_, creds) = app.create_client(&admin, c).await;
    let err = app
        .tokens()
        .issue_token(issue_request(&creds))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(oauth2_error(&err), "invalid_request");
    assert!(err.message().contains("mutual TLS"), "{}", err.message());
    let workload = Ca::new("mesh CA").workload(SPIFFE_ID);
    let issued = app
        .tokens_from(PROXY)
        .await
        .issue_token(forwarded(issue_request(&creds), &xfcc(&workload)))
        .await
        .expect("the secret wins; the certificate binds")
        .into_inner();
    assert_eq!(jwt_cnf(&issued.access_token)["x5t#S256"], x5t(&workload));
}

async fn refreshed_tokens_stay_bound_to_the_same_certificate(backend: Backend) {
    let app = proxied_app(backend).await;
    let admin = app.admin("acme").await;
    let introspector = app.introspector("acme").await;
    let (created, _) = app
        .create_client(&admin, bound_client("bound", AccessTokenFormat::Jwt))
        .await;
    let id = created.client_id.as_str();
    let ca = Ca::new("mesh CA");
    let (ours, theirs) = (ca.workload(SPIFFE_ID), ca.workload(SPIFFE_ID));
    let mut proxy = app.tokens_from(PROXY).await;
    let issued = proxy
        .issue_token(forwarded(id_only(id), &xfcc(&ours)))
        .await
        .unwrap()
        .into_inner();
    let refresh = |refresh_token: &str| RefreshTokenRequest {
        client_id: id.into(),
        refresh_token: refresh_token.into(),
        ..Default::default()
    };
    // Another certificate of the same workload identity authenticates the client, but the
    // family is bound to the first: refused, and the refresh token is not spent.
    let err = proxy
        .refresh_token(forwarded(refresh(&issued.refresh_token), &xfcc(&theirs)))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_grant");
    let refreshed = proxy
        .refresh_token(forwarded(refresh(&issued.refresh_token), &xfcc(&ours)))
        .await
        .expect("the same certificate refreshes")
        .into_inner();
    assert_eq!(jwt_cnf(&refreshed.access_token)["x5t#S256"], x5t(&ours));
    let answer = app.introspect(&introspector, &refreshed.access_token).await;
    assert_eq!(answer.cnf.unwrap().x5t_s256, x5t(&ours));
}

/// A CheckRequest for `GET /orders` with `token`, from a peer with `certificate` (PEM).
fn check(token: &str, certificate: Option<&Leaf>) -> CheckRequest {
    let headers = HashMap::from([("authorization".to_owned(), format!("Bearer {token}"))]);
    let urlencoded = |pem: &str| -> String {
        pem.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                certificate: certificate.map(|l| urlencoded(&l.cert)).unwrap_or_default(),
                ..Default::default()
            }),
            request: Some(HttpAttributes {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/orders".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

async fn ext_authz_lets_a_bound_token_through_only_with_its_certificate(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.server.trusted_proxies = vec![format!("{PROXY}/32")];
        s.ext_authz.enabled = true;
    })
    .await;
    let admin = app.admin("acme").await;
    let (created, _) = app
        .create_client(&admin, bound_client("bound", AccessTokenFormat::Jwt))
        .await;
    let ca = Ca::new("mesh CA");
    let (ours, theirs) = (ca.workload(SPIFFE_ID), ca.workload(SPIFFE_ID));
    let token = app
        .tokens_from(PROXY)
        .await
        .issue_token(forwarded(id_only(&created.client_id), &xfcc(&ours)))
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let mut envoy = AuthorizationClient::new(app.channel.clone());
    let mut verdict = async |request: CheckRequest| {
        let answer = envoy.check(request).await.unwrap().into_inner();
        answer.status.unwrap().code
    };
    assert_eq!(verdict(check(&token, Some(&ours))).await, Code::Ok as i32);
    assert_eq!(
        verdict(check(&token, None)).await,
        Code::Unauthenticated as i32,
        "a bound token without a certificate"
    );
    assert_eq!(
        verdict(check(&token, Some(&theirs))).await,
        Code::Unauthenticated as i32,
        "a bound token with another certificate"
    );
    // An unbound token passes with or without one.
    let plain = app.token(&app.bootstrap("acme", "read").await, &[]).await;
    assert_eq!(verdict(check(&plain, Some(&theirs))).await, Code::Ok as i32);
    assert_eq!(verdict(check(&plain, None)).await, Code::Ok as i32);
}

for_each_backend!(
    bound_tokens_carry_cnf_and_introspection_compares_it,
    a_bound_client_gets_tokens_only_with_a_certificate,
    refreshed_tokens_stay_bound_to_the_same_certificate,
    ext_authz_lets_a_bound_token_through_only_with_its_certificate,
);
