//! Refused client assertions and methods a client does not list: replays (on one replica and
//! across two), every claim, key and algorithm check, the lockout, and a client's input.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokend::domain::Clock as _;
use tokend::proto::*;
use tonic::Code;

use super::{
    JWT_BEARER, assertion, claims, issue_with, keyed_client, keys, sign, urlencode,
    wrong_secret_message,
};
use crate::common::Backend;
use crate::helpers::*;
use crate::oauth_http::token;
use crate::policy::assert_rate_limited;

async fn a_replayed_assertion_is_refused_on_every_replica(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let keys = keys();
    let (created, _) = app.create_client(&admin, keyed_client(&keys)).await;
    let id = created.client_id.as_str();
    let replica = Replica::start(&app, |_| {}).await;
    let mut there =
        tokend::proto::token_service_client::TokenServiceClient::new(replica.channel.clone());

    let once = assertion(&app, &keys, id);
    app.tokens()
        .issue_token(issue_with(id, &once))
        .await
        .expect("first use");
    let err = app
        .tokens()
        .issue_token(issue_with(id, &once))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), oauth2_error(&err).as_str()),
        (Code::Unauthenticated, "invalid_client")
    );
    let err = there.issue_token(issue_with(id, &once)).await.unwrap_err();
    assert_eq!(
        oauth2_error(&err),
        "invalid_client",
        "replayed at another replica"
    );
    // A fresh assertion used at the replica first is spent for this one too.
    let fresh = assertion(&app, &keys, id);
    there
        .issue_token(issue_with(id, &fresh))
        .await
        .expect("first use at the replica");
    let err = app
        .tokens()
        .issue_token(issue_with(id, &fresh))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client");
    replica.stop().await;
}

async fn refused_assertions_look_like_a_wrong_secret(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.secrets.max_failures = 0).await;
    let admin = app.admin("acme").await;
    let expected = wrong_secret_message(&app, &admin).await;
    let keys = keys();
    let (created, _) = app.create_client(&admin, keyed_client(&keys)).await;
    let id = created.client_id.clone();
    let changed = |change: &dyn Fn(&mut Value)| {
        let mut c = claims(&app, &id);
        change(&mut c);
        sign(Algorithm::EdDSA, "ed", &keys.ed, &c)
    };
    let now = app.clock.now().unix_timestamp();
    let good = sign(Algorithm::ES256, "ec", &keys.ec, &claims(&app, &id));
    let forged_header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": "ec"}).to_string());
    let unsigned_header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": "ed"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims(&app, &id).to_string());
    let refused = [
        (
            "wrong aud",
            changed(&|c| c["aud"] = "https://elsewhere/oauth2/token".into()),
        ),
        ("wrong iss", changed(&|c| c["iss"] = "someone-else".into())),
        ("wrong sub", changed(&|c| c["sub"] = "someone-else".into())),
        (
            "expired",
            changed(&|c| {
                c["iat"] = (now - 120).into();
                c["exp"] = (now - 60).into();
            }),
        ),
        ("over-long", changed(&|c| c["exp"] = (now + 301).into())),
        (
            "no jti",
            changed(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        (
            "unknown kid",
            sign(Algorithm::EdDSA, "gone", &keys.ed, &claims(&app, &id)),
        ),
        (
            "HS256 keyed with the public key",
            sign(
                Algorithm::HS256,
                "ed",
                &EncodingKey::from_secret(&keys.ed_public),
                &claims(&app, &id),
            ),
        ),
        (
            "RS256 header on an EC key",
            format!("{forged_header}.{}", good.split_once('.').unwrap().1),
        ),
        ("alg none", format!("{unsigned_header}.{payload}.")),
        ("garbage", "not-a-jwt".into()),
    ];
    for (what, assertion) in refused {
        let err = app
            .tokens()
            .issue_token(issue_with(&id, &assertion))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what}");
        assert_eq!(oauth2_error(&err), "invalid_client", "{what}");
        assert_eq!(
            err.message(),
            expected,
            "{what}: no hint which check failed"
        );
    }
    // Over HTTP: the answer of a wrong secret in the body (400; 401 is for HTTP Basic).
    let body = format!(
        "grant_type=client_credentials&client_id={id}&client_assertion_type={}&client_assertion={}",
        urlencode(JWT_BEARER),
        changed(&|c| c["aud"] = "https://elsewhere".into())
    );
    let r = token(app.addr, &[], &body).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "invalid_client"),
        "{}",
        r.body
    );
    assert_eq!(r.json()["error_description"], expected);
}

async fn assertion_failures_count_toward_the_lockout(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.secrets.max_failures = 3;
        s.secrets.failure_window_secs = 60;
    })
    .await;
    let admin = app.admin("acme").await;
    let keys = keys();
    let (created, _) = app.create_client(&admin, keyed_client(&keys)).await;
    let id = created.client_id.as_str();
    let mut attacker = app.tokens_from("127.0.0.2").await;
    for _ in 0..3 {
        let bad = sign(Algorithm::EdDSA, "gone", &keys.ed, &claims(&app, id));
        let err = attacker
            .issue_token(issue_with(id, &bad))
            .await
            .unwrap_err();
        assert_eq!(oauth2_error(&err), "invalid_client");
    }
    // Locked: even a good assertion is refused from there now.
    let err = attacker
        .issue_token(issue_with(id, &assertion(&app, &keys, id)))
        .await
        .unwrap_err();
    assert_rate_limited(&err);
}

async fn a_client_authenticates_only_by_the_methods_it_lists(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let keys = keys();
    // Keys registered, but only the secret methods listed: an assertion is refused.
    let mut secret_only = client("acme", "secret-only", &["read"]);
    secret_only.jwks = keys.jwks.clone();
    let (created, creds) = app.create_client(&admin, secret_only).await;
    assert_eq!(
        created.auth_methods,
        ["client_secret_basic", "client_secret_post"]
    );
    let id = created.client_id.as_str();
    let err = app
        .tokens()
        .issue_token(issue_with(id, &assertion(&app, &keys, id)))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client");
    app.tokens()
        .issue_token(issue_request(&creds))
        .await
        .expect("its secret works");
    // Moved to its key: its old secret stops working, the assertion works.
    let mut change = created.clone();
    change.auth_methods = vec!["private_key_jwt".into()];
    app.update_client(&admin, change, &["auth_methods"])
        .await
        .expect("update");
    let err = app
        .tokens()
        .issue_token(issue_request(&creds))
        .await
        .unwrap_err();
    assert_eq!(
        oauth2_error(&err),
        "invalid_client",
        "a secret for a key-only client"
    );
    app.tokens()
        .issue_token(issue_with(id, &assertion(&app, &keys, id)))
        .await
        .expect("assertion");
    // A secret and an assertion at once: invalid_request.
    let mut both = issue_with(id, &assertion(&app, &keys, id));
    both.client_secret = creds.client_secret.clone();
    let err = app.tokens().issue_token(both).await.unwrap_err();
    assert_eq!(
        (err.code(), oauth2_error(&err).as_str()),
        (Code::InvalidArgument, "invalid_request")
    );
}

async fn create_refuses_private_keys_and_unknown_methods(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let keys = keys();
    let mut jwks: Value = serde_json::from_str(&keys.jwks).unwrap();
    jwks["keys"][1]["d"] = "c2VjcmV0".into();
    let cases = [
        (
            jwks.to_string(),
            vec!["private_key_jwt"],
            "client.jwks.keys[1].d",
        ),
        (String::new(), vec!["private_key_jwt"], "client.jwks"),
        (
            keys.jwks.clone(),
            vec!["password"],
            "client.auth_methods[0]",
        ),
        ("{\"keys\": 1}".into(), vec![], "client.jwks"),
    ];
    for (jwks, methods, field) in cases {
        let mut c = keyed_client(&keys);
        c.jwks = jwks;
        c.auth_methods = methods.into_iter().map(str::to_owned).collect();
        let request = CreateClientRequest { client: Some(c) };
        let err = app
            .clients()
            .create_client(authed(request, &admin))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert!(
            err.message().starts_with(&format!("{field}:")),
            "{}",
            err.message()
        );
    }
}

for_each_backend!(
    a_replayed_assertion_is_refused_on_every_replica,
    refused_assertions_look_like_a_wrong_secret,
    assertion_failures_count_toward_the_lockout,
    a_client_authenticates_only_by_the_methods_it_lists,
    create_refuses_private_keys_and_unknown_methods,
);
