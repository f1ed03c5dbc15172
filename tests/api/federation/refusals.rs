//! Refused workload tokens: each claim, the key, the algorithm, the method, an issuer whose
//! keys cannot be had; always the `invalid_client` of a wrong secret, counted by the lockout.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use tokend::domain::Clock as _;
use tonic::Code;

use super::{Cluster, SUBJECT, federated_client};
use crate::assertions::{issue_with, keys, sign, wrong_secret_message};
use crate::common::Backend;
use crate::helpers::*;
use crate::policy::assert_rate_limited;

async fn refused_workload_tokens_look_like_a_wrong_secret(backend: Backend) {
    let cluster = Cluster::start().await;
    let settings = cluster.settings(&[]);
    let app = TestApp::spawn_with(backend, |s| {
        s.federation.issuers = vec![settings];
        s.secrets.max_failures = 0;
    })
    .await;
    let admin = app.admin("acme").await;
    let expected = wrong_secret_message(&app, &admin).await;
    let (created, _) = app
        .create_client(&admin, federated_client("acme", cluster.issuer()))
        .await;
    let id = created.client_id.clone();
    let now = app.clock.now().unix_timestamp();
    let changed = |key: &str, value: serde_json::Value| {
        let mut c = cluster.claims(&app);
        c[key] = value;
        cluster.token(&c)
    };
    let stranger = keys();
    let hmac = {
        // HS256 "signed" with the issuer's public key as the secret: alg confusion.
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.kid = Some("ec".into());
        let secret = EncodingKey::from_secret(cluster.keys.jwks.as_bytes());
        jsonwebtoken::encode(&header, &cluster.claims(&app), &secret).unwrap()
    };
    let cases = [
        (
            "another audience",
            changed("aud", json!(["https://kubernetes.default.svc"])),
        ),
        (
            "another subject",
            changed("sub", json!("system:serviceaccount:payments:other")),
        ),
        (
            "another issuer",
            changed("iss", json!("https://other.example")),
        ),
        ("expired", changed("exp", json!(now - 60))),
        ("no exp", changed("exp", json!(null))),
        (
            "older than max_token_age",
            changed("iat", json!(now - 3700)),
        ),
        ("not yet valid", changed("nbf", json!(now + 600))),
        (
            "a key the issuer does not have",
            sign(Algorithm::ES256, "ec", &stranger.ec, &cluster.claims(&app)),
        ),
        (
            "an unknown kid",
            sign(
                Algorithm::ES256,
                "rotated",
                &cluster.keys.ec,
                &cluster.claims(&app),
            ),
        ),
        ("HS256 with the public key", hmac),
        (
            "EdDSA header on the EC key",
            sign(
                Algorithm::EdDSA,
                "ec",
                &cluster.keys.ed,
                &cluster.claims(&app),
            ),
        ),
    ];
    let mut tokens = app.tokens();
    for (case, workload) in cases {
        let err = tokens
            .issue_token(issue_with(&id, &workload))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{case}");
        assert_eq!(err.message(), expected, "{case}");
    }
    // Each refusal was for its one flaw: the good token passes.
    tokens
        .issue_token(issue_with(&id, &cluster.token(&cluster.claims(&app))))
        .await
        .expect("the good workload token");
}

async fn a_client_that_does_not_list_federated_jwt_refuses_workload_tokens(backend: Backend) {
    let cluster = Cluster::start().await;
    let settings = cluster.settings(&[]);
    let app = TestApp::spawn_with(backend, |s| s.federation.issuers = vec![settings]).await;
    let admin = app.admin("acme").await;
    let mut c = federated_client("acme", cluster.issuer());
    c.auth_methods = vec!["client_secret_basic".into()];
    let (created, creds) = app.create_client(&admin, c).await;
    assert!(!creds.client_secret.is_empty());
    let err = app
        .tokens()
        .issue_token(issue_with(
            &created.client_id,
            &cluster.token(&cluster.claims(&app)),
        ))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client");
    assert_eq!(cluster.server.jwks_hits(), 0, "refused before any fetch");
}

async fn an_issuer_whose_keys_cannot_be_had_lets_nothing_through(backend: Backend) {
    let down = Cluster::start().await;
    let liar = Cluster::start().await;
    down.server.answer(503);
    // Its discovery document names another issuer: OpenID Discovery says refuse it.
    liar.server.claim_issuer("https://someone-else.example");
    let issuers = vec![down.settings(&[]), liar.settings(&[])];
    let app = TestApp::spawn_with(backend, |s| s.federation.issuers = issuers).await;
    let admin = app.admin("acme").await;
    for cluster in [&down, &liar] {
        let (created, _) = app
            .create_client(&admin, federated_client("acme", cluster.issuer()))
            .await;
        let err = app
            .tokens()
            .issue_token(issue_with(
                &created.client_id,
                &cluster.token(&cluster.claims(&app)),
            ))
            .await
            .unwrap_err();
        assert_eq!(oauth2_error(&err), "invalid_client");
    }
    assert!(down.server.discovery_hits() >= 1);
    assert_eq!(
        liar.server.jwks_hits(),
        0,
        "keys of an issuer that is not it"
    );
}

async fn workload_token_failures_count_toward_the_lockout(backend: Backend) {
    let cluster = Cluster::start().await;
    let settings = cluster.settings(&[]);
    let app = TestApp::spawn_with(backend, |s| {
        s.federation.issuers = vec![settings];
        s.secrets.max_failures = 3;
        s.secrets.failure_window_secs = 60;
    })
    .await;
    let admin = app.admin("acme").await;
    let (created, _) = app
        .create_client(&admin, federated_client("acme", cluster.issuer()))
        .await;
    let id = created.client_id.as_str();
    let mut attacker = app.tokens_from("127.0.0.2").await;
    let mut claims = cluster.claims(&app);
    claims["sub"] = json!(format!("{SUBJECT}-not"));
    for _ in 0..3 {
        let err = attacker
            .issue_token(issue_with(id, &cluster.token(&claims)))
            .await
            .unwrap_err();
        assert_eq!(oauth2_error(&err), "invalid_client");
    }
    let err = attacker
        .issue_token(issue_with(id, &cluster.token(&cluster.claims(&app))))
        .await
        .unwrap_err();
    assert_rate_limited(&err);
}

for_each_backend!(
    refused_workload_tokens_look_like_a_wrong_secret,
    a_client_that_does_not_list_federated_jwt_refuses_workload_tokens,
    an_issuer_whose_keys_cannot_be_had_lets_nothing_through,
    workload_token_failures_count_toward_the_lockout,
);
