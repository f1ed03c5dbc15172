//! `private_key_jwt` (RFC 7523 section 2.2): clients that prove themselves with assertions signed
//! by their own keys, over gRPC and HTTP, and what shapes the rules; `refusals`: every way an
//! assertion (or a method the client does not list) is refused: always the `invalid_client` of
//! a wrong secret, counted by the lockout alike.

mod jwks_uri;
mod refusals;

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

pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client's key pairs: an Ed25519 one (`ed`) and a P-256 one (`ec`).
pub(crate) struct Keys {
    pub ed: EncodingKey,
    pub ec: EncodingKey,
    pub ed_public: Vec<u8>,
    pub jwks: String,
}

pub(crate) fn keys() -> Keys {
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
pub(super) fn keyed_client(keys: &Keys) -> Client {
    let mut c = client("acme", "keyed", &["read:*", "tokend.introspect"]);
    c.auth_methods = vec!["private_key_jwt".into()];
    c.jwks = keys.jwks.clone();
    c
}

/// Good claims for `client_id` at the server's time, with a fresh `jti`.
pub(super) fn claims(app: &TestApp, client_id: &str) -> Value {
    let now = app.clock.now().unix_timestamp();
    json!({
        "iss": client_id, "sub": client_id, "aud": ISSUER,
        "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string(),
    })
}

pub(crate) fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A good Ed25519 assertion for `client_id`.
pub(super) fn assertion(app: &TestApp, keys: &Keys, client_id: &str) -> String {
    sign(Algorithm::EdDSA, "ed", &keys.ed, &claims(app, client_id))
}

pub(crate) fn issue_with(client_id: &str, assertion: &str) -> IssueTokenRequest {
    IssueTokenRequest {
        client_id: client_id.into(),
        client_assertion_type: JWT_BEARER.into(),
        client_assertion: assertion.into(),
        ..Default::default()
    }
}

/// The message of a wrong secret's refusal, which every refused assertion must match.
pub(crate) async fn wrong_secret_message(app: &TestApp, admin: &str) -> String {
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

async fn the_settings_shape_the_rules(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.assertions.max_lifetime_secs = 30;
        s.server.public_url = Some("https://auth.example.com/".into());
    })
    .await;
    let admin = app.admin("acme").await;
    let keys = keys();
    let (created, _) = app.create_client(&admin, keyed_client(&keys)).await;
    let id = created.client_id.as_str();
    let now = app.clock.now().unix_timestamp();
    let signed = |aud: &str, lifetime: i64| {
        let mut c = claims(&app, id);
        c["aud"] = aud.into();
        c["exp"] = (now + lifetime).into();
        sign(Algorithm::EdDSA, "ed", &keys.ed, &c)
    };
    // The token endpoint's URL under server.public_url names tokend.
    let url = "https://auth.example.com/oauth2/token";
    let mut tokens = app.tokens();
    tokens
        .issue_token(issue_with(id, &signed(url, 30)))
        .await
        .expect("30 s under public_url");
    let err = tokens
        .issue_token(issue_with(id, &signed(url, 31)))
        .await
        .unwrap_err();
    assert_eq!(
        oauth2_error(&err),
        "invalid_client",
        "longer than max_lifetime_secs"
    );
    let err = tokens
        .issue_token(issue_with(
            id,
            &signed("http://tokend.test/oauth2/token", 10),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        oauth2_error(&err),
        "invalid_client",
        "a URL of another host"
    );
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
pub(super) async fn issue(app: &TestApp, keys: &Keys, id: &str) -> String {
    let request = issue_with(id, &assertion(app, keys, id));
    app.tokens()
        .issue_token(request)
        .await
        .expect("IssueToken")
        .into_inner()
        .access_token
}

/// The form fields of a fresh assertion for `id`.
pub(super) fn form_auth(app: &TestApp, keys: &Keys, id: &str) -> String {
    let assertion = assertion(app, keys, id);
    format!(
        "client_assertion_type={}&client_assertion={assertion}",
        urlencode(JWT_BEARER)
    )
}

pub(crate) fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The offline `tokend client create` makes a key-only client too (bootstrap without any
/// secret), and says why when its key file cannot be read.
async fn the_cli_creates_a_key_only_client(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let keys = keys();
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("payroll-jwks.json");
    std::fs::write(&jwks_file, &keys.jwks).unwrap();
    let jwks_path = jwks_file.to_str().unwrap();
    let create = ["client", "create", "--tenant", "acme", "--name", "payroll"];
    let out = app
        .cli(
            &[
                &create[..],
                &["--scopes", "read:*", "--auth-methods", "private_key_jwt"],
            ]
            .concat(),
        )
        .await;
    assert!(!out.status.success(), "private_key_jwt without keys");
    assert!(String::from_utf8_lossy(&out.stderr).contains("jwks"));
    let keyed = [
        "--auth-methods",
        "private_key_jwt",
        "--jwks-file",
        jwks_path,
    ];
    let out = app.cli(&[&create[..], &keyed[..]].concat()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(created["client_secret"].is_null(), "{created}");
    let id = created["client_id"].as_str().unwrap();
    app.tokens()
        .issue_token(issue_with(id, &assertion(&app, &keys, id)))
        .await
        .expect("a token for the CLI's key-only client");
    let missing = dir.path().join("nope.json");
    let missing = [
        "--auth-methods",
        "private_key_jwt",
        "--jwks-file",
        missing.to_str().unwrap(),
    ];
    let out = app.cli(&[&create[..], &missing[..]].concat()).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.json"));
}

for_each_backend!(
    the_cli_creates_a_key_only_client,
    a_key_only_client_gets_tokens_over_grpc_and_http,
    the_settings_shape_the_rules,
    revocation_and_introspection_accept_an_assertion,
);
