//! `private_key_jwt` with keys the client publishes at its `jwks_uri`: fetched and cached,
//! fetched again (rate-limited) when an assertion names a key tokend has not seen, so a client
//! rotates its key without telling tokend; an outage of the key server never lets an
//! assertion through, and a copy tokend has keeps serving through one.

use jsonwebtoken::Algorithm;
use tokend::proto::*;
use tonic::Code;

use super::{claims, issue_with, keys, sign};
use crate::common::Backend;
use crate::helpers::*;
use crate::key_server::KeyServer;

/// A client of tenant `acme` authenticating with keys published at `jwks_uri`.
fn published_client(jwks_uri: &str) -> Client {
    let mut c = client("acme", "published", &["read:*"]);
    c.auth_methods = vec!["private_key_jwt".into()];
    c.jwks_uri = jwks_uri.into();
    c
}

async fn a_client_rotates_its_published_key_without_telling_tokend(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.assertions.key_refetch_interval_secs = 1).await;
    let admin = app.admin("acme").await;
    let old = keys();
    let server = KeyServer::start(&old.jwks).await;
    let (created, creds) = app
        .create_client(&admin, published_client(&server.jwks_uri()))
        .await;
    assert!(creds.client_secret.is_empty(), "a key-only client");
    assert_eq!(created.jwks_uri, server.jwks_uri());
    assert!(created.jwks.is_empty());
    let id = created.client_id.as_str();
    let mut tokens = app.tokens();
    let signed = |keys: &super::Keys, kid: &str| {
        let key = if kid.starts_with("ec") {
            (&keys.ec, Algorithm::ES256)
        } else {
            (&keys.ed, Algorithm::EdDSA)
        };
        sign(key.1, kid, key.0, &claims(&app, id))
    };
    for _ in 0..3 {
        tokens
            .issue_token(issue_with(id, &signed(&old, "ed")))
            .await
            .expect("a key from the jwks_uri");
    }
    assert_eq!(server.jwks_hits(), 1, "the set is fetched once and cached");

    // The client rotates: its server now publishes only a new key, under a new kid.
    let new = keys();
    server.rotate(&new.jwks.replace("\"ed\"", "\"ed-2\""));
    // Within the refetch interval of the last fetch, an unknown kid fetches nothing.
    let err = tokens
        .issue_token(issue_with(id, &signed(&new, "ed-2")))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client");
    assert_eq!(server.jwks_hits(), 1, "refetches are rate-limited");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    tokens
        .issue_token(issue_with(id, &signed(&new, "ed-2")))
        .await
        .expect("the new key, found by one refetch");
    assert_eq!(server.jwks_hits(), 2);
    // The old key is gone from the set tokend now holds.
    let err = tokens
        .issue_token(issue_with(id, &signed(&old, "ed")))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client");
    // Made-up kids do not make tokend hammer the client's server.
    for kid in ["x1", "x2", "x3"] {
        let err = tokens
            .issue_token(issue_with(id, &signed(&new, kid)))
            .await
            .unwrap_err();
        assert_eq!(oauth2_error(&err), "invalid_client");
    }
    assert!(server.jwks_hits() <= 3, "hits: {}", server.jwks_hits());
}

async fn a_key_server_outage_never_lets_an_assertion_through(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let keys = keys();
    let down = KeyServer::start(&keys.jwks).await;
    down.answer(503);
    let (created, _) = app
        .create_client(&admin, published_client(&down.jwks_uri()))
        .await;
    let id = created.client_id.as_str();
    let mut tokens = app.tokens();
    let err = tokens
        .issue_token(issue_with(id, &super::assertion(&app, &keys, id)))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), oauth2_error(&err).as_str()),
        (Code::Unauthenticated, "invalid_client"),
        "no keys, no token"
    );
    assert!(down.jwks_hits() >= 1);

    // A set tokend fetched keeps serving while the server is down.
    let up = KeyServer::start(&keys.jwks).await;
    let (created, _) = app
        .create_client(&admin, published_client(&up.jwks_uri()))
        .await;
    let id = created.client_id.as_str();
    tokens
        .issue_token(issue_with(id, &super::assertion(&app, &keys, id)))
        .await
        .expect("fetched");
    up.answer(503);
    tokens
        .issue_token(issue_with(id, &super::assertion(&app, &keys, id)))
        .await
        .expect("the cached copy serves through the outage");
}

async fn create_checks_the_jwks_uri(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let keys = keys();
    let cases = [
        (
            "http://keys.example.com/jwks",
            "",
            "client.jwks_uri",
            "loopback",
        ),
        (
            "ftp://keys.example.com/jwks",
            "",
            "client.jwks_uri",
            "http(s)",
        ),
        (
            "https://keys.example.com/jwks",
            keys.jwks.as_str(),
            "client.jwks_uri",
            "not both",
        ),
    ];
    for (uri, jwks, field, says) in cases {
        let mut c = published_client(uri);
        c.jwks = jwks.into();
        let err = app
            .clients()
            .create_client(authed(CreateClientRequest { client: Some(c) }, &admin))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{uri}");
        assert!(
            err.message().starts_with(&format!("{field}:")) && err.message().contains(says),
            "{uri}: {}",
            err.message()
        );
    }
    // An update can move a client from inline keys to a published set.
    let (created, _) = app.create_client(&admin, super::keyed_client(&keys)).await;
    let server = KeyServer::start(&keys.jwks).await;
    let mut change = published_client(&server.jwks_uri());
    change.jwks = String::new();
    let request = UpdateClientRequest {
        client: Some(Client {
            client_id: created.client_id.clone(),
            ..change
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["jwks".into(), "jwks_uri".into()],
        }),
    };
    let updated = app
        .clients()
        .update_client(authed(request, &admin))
        .await
        .expect("jwks -> jwks_uri")
        .into_inner()
        .client
        .unwrap();
    assert_eq!(updated.jwks_uri, server.jwks_uri());
    let id = created.client_id.as_str();
    app.tokens()
        .issue_token(issue_with(id, &super::assertion(&app, &keys, id)))
        .await
        .expect("a token with the published keys");
    assert_eq!(server.jwks_hits(), 1);
}

for_each_backend!(
    a_client_rotates_its_published_key_without_telling_tokend,
    a_key_server_outage_never_lets_an_assertion_through,
    create_checks_the_jwks_uri,
);
