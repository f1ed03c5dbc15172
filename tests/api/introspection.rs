//! Introspect and GetJwks: caller authorisation, inactive answers, expiry, local verification.

use std::time::Duration;

use base64::Engine as _;
use tokend::proto::*;
use tonic::Code;

use crate::common::Backend;
use crate::helpers::*;

async fn introspect_needs_an_authorised_caller(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.bootstrap("acme", "read").await;
    let token = app.token(&creds, &[]).await;
    let request = IntrospectRequest {
        token: token.clone(),
        token_type_hint: String::new(),
        client_address: String::new(),
        ..Default::default()
    };
    let err = app
        .introspection()
        .introspect(request.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("tokend.introspect"),
        "{}",
        err.message()
    );
    // A valid token without the scope is refused.
    let err = app
        .introspection()
        .introspect(authed(request.clone(), &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let introspector = app.introspector("acme").await;
    assert!(app.introspect(&introspector, &token).await.active);
}

async fn bad_tokens_are_inactive_not_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let introspector = app.introspector("system").await;
    let good = app.token(&app.bootstrap("acme", "read").await, &[]).await;
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // Same claims, header switched to alg none / another typ: must not verify.
    let none_header = b64.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
    let jwt_typ = {
        let mut header: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
        header["typ"] = "JWT".into();
        b64.encode(header.to_string())
    };
    let mut tampered_claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    tampered_claims["scope"] = "tokend.admin".into();
    let cases = vec![
        String::new(),
        "garbage".into(),
        "a.b.c".into(),
        format!("{none_header}.{}.", parts[1]),
        format!("{jwt_typ}.{}.{}", parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(tampered_claims.to_string()),
            parts[2]
        ),
        format!("{good}x"),
        "x".repeat(9000),
    ];
    for token in cases {
        let r = app.introspect(&introspector, &token).await;
        assert_eq!(r, IntrospectResponse::default(), "token {:.40}", token);
    }
    assert!(app.introspect(&introspector, &good).await.active);
}

async fn expired_tokens_are_inactive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let introspector_creds = app.bootstrap("system", "tokend.introspect").await;
    let mut spec = client("acme", "short", &["read"]);
    spec.access_token_ttl = Some(prost_types::Duration {
        seconds: 30,
        nanos: 0,
    });
    let (_, creds) = app.create_client(&admin, spec).await;
    let token = app.token(&creds, &[]).await;
    app.advance(Duration::from_secs(30));
    // Within the 5 s leeway it is still active...
    let introspector = app.token(&introspector_creds, &[]).await;
    assert!(app.introspect(&introspector, &token).await.active);
    app.advance(Duration::from_secs(6));
    let introspector = app.token(&introspector_creds, &[]).await;
    assert!(!app.introspect(&introspector, &token).await.active);
}

async fn jwks_verifies_tokens_locally(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(&app.bootstrap("acme", "read").await, &[]).await;
    let jwks = app.jwks().await;
    assert_eq!(jwks.keys.len(), 1);
    let key = &jwks.keys[0];
    assert_eq!(
        (
            key.kty.as_str(),
            key.alg.as_str(),
            key.crv.as_str(),
            key.r#use.as_str()
        ),
        ("OKP", "EdDSA", "Ed25519", "sig")
    );
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    // A standard JWT library verifies with the published set alone.
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks.jwks_json).unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_jwk(set.find(&key.kid).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[ISSUER]);
    let data = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "client_id",
        "scope",
        "tenant",
        "roles",
    ] {
        assert!(data.claims.get(claim).is_some(), "missing claim {claim}");
    }
}

async fn es256_keys_work_too(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.keys.algorithm = "ES256".into()).await;
    let introspector = app.introspector("system").await;
    let token = app.token(&app.bootstrap("acme", "read").await, &[]).await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    assert!(app.introspect(&introspector, &token).await.active);
    let jwks = app.jwks().await;
    assert_eq!(
        (jwks.keys[0].kty.as_str(), jwks.keys[0].crv.as_str()),
        ("EC", "P-256")
    );
    assert!(!jwks.keys[0].y.is_empty());
}

/// A bare HTTP/1.1 GET, as a JWT library or Envoy would send it; returns (head, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: tokend\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_owned())
}

async fn jwks_is_served_over_plain_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (head, body) = http_get(app.addr, "/.well-known/jwks.json").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: application/jwk-set+json"),
        "{head}"
    );
    assert!(
        head.contains("cache-control: public, max-age=300"),
        "{head}"
    );
    assert_eq!(body, app.jwks().await.jwks_json, "same set as GetJwks");
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&body).unwrap();
    let token = app.token(&app.bootstrap("acme", "read").await, &[]).await;
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    assert!(set.find(&kid).is_some());
    let (head, _) = http_get(app.addr, "/nope").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    // gRPC on the same port is unaffected, and unknown gRPC methods still get UNIMPLEMENTED.
    app.jwks().await;
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/tokend.v1.NoSuchService/Nothing");
    let codec = tonic_prost::ProstCodec::<GetJwksRequest, GetJwksResponse>::default();
    let err = grpc
        .unary(tonic::Request::new(GetJwksRequest {}), path, codec)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

/// Issue 20 section 6: a caller of one tenant introspecting another tenant's tokens learns
/// nothing (`active: false`) and must not move that tenant's usage counters either.
async fn another_tenants_introspections_leave_its_usage_alone(backend: Backend) {
    use tokend::proto::audit_service_client::AuditServiceClient;

    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let mut spec = client("beta", "victim", &["read"]);
    // Tokens are issued here (127.0.0.1) and introspected as if seen at 192.0.2.1.
    spec.allowed_cidrs = vec!["127.0.0.0/8".into()];
    let (victim, creds) = app.create_client(&admin, spec).await;
    let fenced = app.token(&creds, &[]).await;
    let revoked = app.token(&creds, &[]).await;
    app.revoke(&creds, &revoked).await;
    let from_outside = |caller: &str, token: &str| {
        let request = IntrospectRequest {
            token: token.into(),
            token_type_hint: String::new(),
            client_address: "192.0.2.1".into(),
            ..Default::default()
        };
        let mut introspection = app.introspection();
        let request = authed(request, caller);
        async move {
            introspection
                .introspect(request)
                .await
                .unwrap()
                .into_inner()
        }
    };
    let inactive = async || {
        let usage = AuditServiceClient::new(app.channel.clone())
            .get_client_usage(authed(
                GetClientUsageRequest {
                    client_id: victim.client_id.clone(),
                    days: 0,
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner();
        usage
            .days
            .iter()
            .map(|d| d.introspections_inactive)
            .sum::<u64>()
    };

    let alpha = app.introspector("alpha").await;
    for _ in 0..3 {
        assert!(!app.introspect(&alpha, &revoked).await.active);
        assert!(!from_outside(&alpha, &fenced).await.active);
    }
    assert_eq!(inactive().await, 0, "tenant alpha moved beta's counter");

    // Beta's own introspector (and a system one) are counted, as before.
    let beta = app.introspector("beta").await;
    assert!(!app.introspect(&beta, &revoked).await.active);
    assert!(!from_outside(&beta, &fenced).await.active);
    assert_eq!(inactive().await, 2);
    let system = app.introspector("system").await;
    assert!(!app.introspect(&system, &revoked).await.active);
    assert_eq!(inactive().await, 3);
}

for_each_backend!(
    another_tenants_introspections_leave_its_usage_alone,
    jwks_is_served_over_plain_http,
    introspect_needs_an_authorised_caller,
    bad_tokens_are_inactive_not_errors,
    expired_tokens_are_inactive,
    jwks_verifies_tokens_locally,
    es256_keys_work_too,
);
