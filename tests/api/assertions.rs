//! `private_key_jwt` (RFC 7523 section 2.2): clients that prove themselves with assertions signed
//! by their own keys, over gRPC and HTTP, and every way an assertion is refused (always the
//! `invalid_client` of a wrong secret, counted by the lockout alike).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokend::domain::Clock as _;
use tokend::proto::*;
use tonic::Code;

use crate::common::Backend;
use crate::helpers::*;
use crate::oauth_http::{FORM, http, introspect, token};
use crate::policy::assert_rate_limited;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client's key pairs: an Ed25519 one (`ed`) and a P-256 one (`ec`).
struct Keys {
    ed: EncodingKey,
    ec: EncodingKey,
    ed_public: Vec<u8>,
    jwks: String,
}

fn keys() -> Keys {
    let rng = SystemRandom::new();
    let ed_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).unwrap();
    let ec_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec_pkcs8.as_ref()).unwrap();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let point = ec.public_key().as_ref();
    let jwks = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "use": "sig", "x": b64(ed.public_key().as_ref())},
        {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&point[1..33]), "y": b64(&point[33..])},
    ]});
    Keys {
        ed: EncodingKey::from_ed_der(ed_pkcs8.as_ref()),
        ec: EncodingKey::from_ec_der(ec_pkcs8.as_ref()),
        ed_public: ed.public_key().as_ref().to_vec(),
        jwks: jwks.to_string(),
    }
}

/// A client of tenant `acme` that authenticates only with `keys`.
fn keyed_client(keys: &Keys) -> Client {
    let mut c = client("acme", "keyed", &["read:*", "tokend.introspect"]);
    c.auth_methods = vec!["private_key_jwt".into()];
    c.jwks = keys.jwks.clone();
    c
}

/// Good claims for `client_id` at the server's time, with a fresh `jti`.
fn claims(app: &TestApp, client_id: &str) -> Value {
    let now = app.clock.now().unix_timestamp();
    json!({
        "iss": client_id, "sub": client_id, "aud": ISSUER,
        "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A good Ed25519 assertion for `client_id`.
fn assertion(app: &TestApp, keys: &Keys, client_id: &str) -> String {
    sign(Algorithm::EdDSA, "ed", &keys.ed, &claims(app, client_id))
}

fn issue_with(client_id: &str, assertion: &str) -> IssueTokenRequest {
    IssueTokenRequest {
        client_id: client_id.into(),
        client_assertion_type: JWT_BEARER.into(),
        client_assertion: assertion.into(),
        ..Default::default()
    }
}

/// The message of a wrong secret's refusal, which every refused assertion must match.
async fn wrong_secret_message(app: &TestApp, admin: &str) -> String {
    let (_, creds) = app
        .create_client(admin, client("acme", "secret", &["read"]))
        .await;
    let mut request = issue_request(&creds);
    request.client_secret = "tkd_cs_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into();
    let err = app.tokens().issue_token(request).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    err.message().to_owned()
}

async fn a_key_only_client_gets_tokens_over_grpc_and_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let keys = keys();
    let (created, creds) = app.create_client(&admin, keyed_client(&keys)).await;
    assert!(
        creds.client_secret.is_empty(),
        "a key-only client has no secret"
    );
    assert_eq!(created.auth_methods, ["private_key_jwt"]);
    let fetched = app.get_client(&admin, &created.client_id).await;
    assert_eq!(fetched.jwks, created.jwks);
    let id = created.client_id.as_str();

    let issued = app
        .tokens()
        .issue_token(issue_with(id, &assertion(&app, &keys, id)))
        .await
        .expect("a token for a good assertion")
        .into_inner();
    let introspector = app.introspector("acme").await;
    assert!(
        app.introspect(&introspector, &issued.access_token)
            .await
            .active
    );
    // The P-256 key works too, and the client_id may be left to the assertion's `sub`.
    let es256 = sign(Algorithm::ES256, "ec", &keys.ec, &claims(&app, id));
    app.tokens()
        .issue_token(issue_with("", &es256))
        .await
        .expect("ES256, no client_id");

    // Over HTTP, as an RFC 7523 client sends it (no client_id in the form).
    let body = format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion={}",
        urlencode(JWT_BEARER),
        assertion(&app, &keys, id)
    );
    let r = token(app.addr, &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["access_token"].is_string());

    // A client without a secret has none to rotate.
    let rotate = RotateClientSecretRequest {
        client_id: id.into(),
        grace_period: None,
    };
    let err = app
        .clients()
        .rotate_client_secret(authed(rotate, &admin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("auth_methods"), "{}", err.message());
}

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

async fn create_refuses_private_keys_and_unimplemented_methods(backend: Backend) {
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
            vec!["tls_client_auth"],
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

async fn revocation_and_introspection_accept_an_assertion(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let keys = keys();
    let (created, _) = app.create_client(&admin, keyed_client(&keys)).await;
    let id = created.client_id.as_str();
    let introspector = app.introspector("acme").await;
    // gRPC RevokeToken.
    let access = issue(&app, &keys, id).await;
    let revoke = RevokeTokenRequest {
        client_id: id.into(),
        token: access.clone(),
        client_assertion_type: JWT_BEARER.into(),
        client_assertion: assertion(&app, &keys, id),
        ..Default::default()
    };
    app.tokens()
        .revoke_token(revoke)
        .await
        .expect("RevokeToken with an assertion");
    assert!(!app.introspect(&introspector, &access).await.active);
    // HTTP revocation.
    let access = issue(&app, &keys, id).await;
    let body = format!("token={access}&{}", form_auth(&app, &keys, id));
    let r = http(app.addr, "POST /oauth2/revoke", &[FORM], &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!app.introspect(&introspector, &access).await.active);
    // HTTP introspection, the resource server authenticating with its own assertion.
    let access = issue(&app, &keys, id).await;
    let body = format!("token={access}&{}", form_auth(&app, &keys, id));
    let r = introspect(app.addr, &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["active"], true);
    assert_eq!(r.json()["client_id"], id);
}

/// An access token for the key-only client `id`.
async fn issue(app: &TestApp, keys: &Keys, id: &str) -> String {
    let request = issue_with(id, &assertion(app, keys, id));
    app.tokens()
        .issue_token(request)
        .await
        .expect("IssueToken")
        .into_inner()
        .access_token
}

/// The form fields of a fresh assertion for `id`.
fn form_auth(app: &TestApp, keys: &Keys, id: &str) -> String {
    let assertion = assertion(app, keys, id);
    format!(
        "client_assertion_type={}&client_assertion={assertion}",
        urlencode(JWT_BEARER)
    )
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

for_each_backend!(
    a_key_only_client_gets_tokens_over_grpc_and_http,
    a_replayed_assertion_is_refused_on_every_replica,
    refused_assertions_look_like_a_wrong_secret,
    assertion_failures_count_toward_the_lockout,
    a_client_authenticates_only_by_the_methods_it_lists,
    create_refuses_private_keys_and_unimplemented_methods,
    revocation_and_introspection_accept_an_assertion,
);
