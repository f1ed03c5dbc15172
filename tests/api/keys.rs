//! KeyService and the signing-key lifecycle: RS256, listing, rotation with pre-publication and
//! retirement, compromise, authorisation, restart, automatic rotation, replicas.

use std::time::Duration;

use tokend::config::Settings;
use tokend::proto::introspection_service_client::IntrospectionServiceClient;
use tokend::proto::key_service_client::KeyServiceClient;
use tokend::proto::*;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::common::{Backend, eventually, eventually_some};
use crate::helpers::*;

const DAY: Duration = Duration::from_secs(24 * 3600);
const LEEWAY: Duration = Duration::from_secs(5);

fn keys(channel: &Channel) -> KeyServiceClient<Channel> {
    KeyServiceClient::new(channel.clone())
}

async fn list(channel: &Channel, admin: &str) -> Result<Vec<SigningKey>, Status> {
    let request = authed(ListSigningKeysRequest {}, admin);
    Ok(keys(channel)
        .list_signing_keys(request)
        .await?
        .into_inner()
        .keys)
}

async fn rotate(
    channel: &Channel,
    admin: &str,
    prepublish: Option<Duration>,
    retire_previous: bool,
) -> Result<SigningKey, Status> {
    let request = RotateSigningKeyRequest {
        prepublish: prepublish.map(|d| prost_types::Duration {
            seconds: d.as_secs() as i64,
            nanos: 0,
        }),
        retire_previous,
    };
    let response = keys(channel)
        .rotate_signing_key(authed(request, admin))
        .await?;
    Ok(response.into_inner().key.expect("key"))
}

fn state(key: &SigningKey) -> SigningKeyState {
    SigningKeyState::try_from(key.state).unwrap()
}

fn states(keys: &[SigningKey]) -> Vec<(String, SigningKeyState)> {
    keys.iter().map(|k| (k.kid.clone(), state(k))).collect()
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn jwks_kids(jwks: &GetJwksResponse) -> Vec<String> {
    jwks.keys.iter().map(|k| k.kid.clone()).collect()
}

fn secs(t: &Option<prost_types::Timestamp>) -> i64 {
    t.as_ref().expect("timestamp").seconds
}

/// Verifies `token` the way a resource server would: a stock JWT library and the JWKS.
fn verify_with_jwks(jwks_json: &str, token: &str) -> Result<serde_json::Value, String> {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(jwks_json).unwrap();
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let jwk = set
        .find(header.kid.as_deref().unwrap_or_default())
        .ok_or("kid not in the JWKS")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[ISSUER]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

/// A system-tenant client that may administer and introspect, for tests that outlive tokens.
async fn operator(app: &TestApp) -> Creds {
    app.bootstrap("system", "tokend.admin,tokend.introspect")
        .await
}

/// A client of tenant acme whose tokens live for the longest allowed lifetime (24 h).
async fn long_lived_client(app: &TestApp, admin: &str) -> Creds {
    let mut spec = client("acme", "svc", &["read"]);
    spec.access_token_ttl = Some(prost_types::Duration {
        seconds: DAY.as_secs() as i64,
        nanos: 0,
    });
    app.create_client(admin, spec).await.1
}

async fn rs256_tokens_verify_with_the_published_jwks(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.keys.algorithm = "RS256".into()).await;
    let admin = app.token(&operator(&app).await, &[]).await;
    let jwks = app.jwks().await;
    assert_eq!(jwks.keys.len(), 1);
    let jwk = &jwks.keys[0];
    assert_eq!((jwk.kty.as_str(), jwk.alg.as_str()), ("RSA", "RS256"));
    assert_eq!(jwk.e, "AQAB");
    assert!(jwk.n.len() > 300, "2048-bit modulus, base64url");
    assert!(jwk.crv.is_empty() && jwk.x.is_empty());
    let header = jsonwebtoken::decode_header(&admin).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some(jwk.kid.as_str()));
    let claims = verify_with_jwks(&jwks.jwks_json, &admin).expect("stock verification");
    assert_eq!(claims["iss"], ISSUER);
    assert!(app.introspect(&admin, &admin).await.active);
    let listed = list(&app.channel, &admin).await.unwrap();
    assert_eq!(listed[0].algorithm, "RS256");
}

async fn a_new_server_lists_one_active_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(&operator(&app).await, &[]).await;
    let listed = list(&app.channel, &admin).await.unwrap();
    assert_eq!(listed.len(), 1);
    let key = &listed[0];
    assert_eq!(state(key), SigningKeyState::Active);
    assert_eq!(key.algorithm, "EdDSA");
    assert_eq!(key.kid, kid(&admin));
    assert_eq!(secs(&key.create_time), secs(&key.activate_time));
    assert!(key.retire_time.is_none());
    let jwk: serde_json::Value = serde_json::from_str(&key.public_jwk_json).unwrap();
    assert_eq!(jwk["kid"], key.kid.as_str());
    assert!(jwk.get("d").is_none(), "never private material");
    let published: serde_json::Value = serde_json::from_str(&app.jwks().await.jwks_json).unwrap();
    assert_eq!(published["keys"][0], jwk);
}

async fn rotation_prepublishes_then_activates_then_retires(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let op = operator(&app).await;
    let admin = app.token(&op, &[]).await;
    let creds = long_lived_client(&app, &admin).await;
    let old_kid = kid(&admin);
    let first = app.token(&creds, &[]).await;

    // Rotate with the default pre-publication (600 s): published, not signing.
    let new = rotate(&app.channel, &admin, None, false).await.unwrap();
    assert_eq!(state(&new), SigningKeyState::Pending);
    assert_ne!(new.kid, old_kid);
    assert_eq!(secs(&new.activate_time), secs(&new.create_time) + 600);
    assert_eq!(
        jwks_kids(&app.jwks().await),
        [new.kid.as_str(), old_kid.as_str()]
    );
    let listed = list(&app.channel, &admin).await.unwrap();
    assert_eq!(
        states(&listed),
        [
            (new.kid.clone(), SigningKeyState::Pending),
            (old_kid.clone(), SigningKeyState::Active)
        ]
    );
    let grace = (DAY + LEEWAY).as_secs() as i64;
    assert_eq!(
        secs(&listed[1].retire_time),
        secs(&new.activate_time) + grace
    );

    // Just before activation the old key still signs; such a token must outlive activation.
    app.advance(Duration::from_secs(599));
    let last_old = app.token(&creds, &[]).await;
    assert_eq!(kid(&last_old), old_kid);

    // At activation the new key signs; the old key's tokens stay active.
    app.advance(Duration::from_secs(1));
    let admin = app.token(&op, &[]).await;
    let fresh = app.token(&creds, &[]).await;
    assert_eq!(kid(&fresh), new.kid);
    for token in [&first, &last_old, &fresh] {
        assert!(app.introspect(&admin, token).await.active);
    }
    let jwks = app.jwks().await;
    assert_eq!(jwks_kids(&jwks), [new.kid.as_str(), old_kid.as_str()]);
    verify_with_jwks(&jwks.jwks_json, &last_old).expect("old kid still published");
    let listed = list(&app.channel, &admin).await.unwrap();
    assert_eq!(
        states(&listed),
        [
            (new.kid.clone(), SigningKeyState::Active),
            (old_kid.clone(), SigningKeyState::Retiring)
        ]
    );

    // The last token the old key signed lives its full 24 h.
    app.advance(DAY - Duration::from_secs(2));
    let admin = app.token(&op, &[]).await;
    assert!(app.introspect(&admin, &last_old).await.active);

    // Past the retire time the old key is gone; the new key's tokens are unaffected.
    app.advance(Duration::from_secs(2) + LEEWAY);
    let admin = app.token(&op, &[]).await;
    let fresh = app.token(&creds, &[]).await;
    assert!(!app.introspect(&admin, &last_old).await.active);
    assert!(app.introspect(&admin, &fresh).await.active);
    assert_eq!(jwks_kids(&app.jwks().await), [new.kid.as_str()]);
    let listed = list(&app.channel, &admin).await.unwrap();
    assert_eq!(
        states(&listed),
        [
            (new.kid.clone(), SigningKeyState::Active),
            (old_kid.clone(), SigningKeyState::Retired)
        ]
    );
}

async fn retire_previous_makes_old_tokens_inactive_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let op = operator(&app).await;
    let admin = app.token(&op, &[]).await;
    let creds = long_lived_client(&app, &admin).await;
    let old = app.token(&creds, &[]).await;

    let err = rotate(&app.channel, &admin, Some(Duration::from_secs(600)), true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("prepublish"), "{}", err.message());

    let new = rotate(&app.channel, &admin, None, true).await.unwrap();
    assert_eq!(state(&new), SigningKeyState::Active);
    // The admin's own token was signed by the retired key.
    let err = list(&app.channel, &admin).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let admin = app.token(&op, &[]).await;
    assert_eq!(kid(&admin), new.kid);
    assert!(!app.introspect(&admin, &old).await.active);
    assert!(
        app.introspect(&admin, &app.token(&creds, &[]).await)
            .await
            .active
    );
    assert_eq!(jwks_kids(&app.jwks().await), [new.kid.as_str()]);
    let listed = list(&app.channel, &admin).await.unwrap();
    assert_eq!(state(&listed[1]), SigningKeyState::Retired);
}

async fn only_system_admins_manage_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tenant_admin = app.admin("acme").await;
    let introspector = app.introspector("system").await;
    for token in [&tenant_admin, &introspector] {
        let err = list(&app.channel, token).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        let err = rotate(&app.channel, token, None, false).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    }
    let err = keys(&app.channel)
        .list_signing_keys(ListSigningKeysRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(app.jwks().await.keys.len(), 1, "nothing rotated");
}

async fn a_restart_keeps_the_rotation_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let op = operator(&app).await;
    let admin = app.token(&op, &[]).await;
    let new = rotate(&app.channel, &admin, Some(Duration::from_secs(60)), false)
        .await
        .unwrap();
    let before = list(&app.channel, &admin).await.unwrap();

    let app = app.restart().await;
    assert_eq!(list(&app.channel, &admin).await.unwrap(), before);
    assert_eq!(kid(&app.token(&op, &[]).await), kid(&admin));
    app.advance(Duration::from_secs(60));
    assert_eq!(kid(&app.token(&op, &[]).await), new.kid);
}

async fn algorithm_change_applies_at_the_next_rotation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let op = operator(&app).await;
    let admin = app.token(&op, &[]).await;
    let rsa = Replica::start(&app, |s| s.keys.algorithm = "RS256".into()).await;
    assert_eq!(kid(&rsa.token(&op).await), kid(&admin), "no rotation yet");
    let new = rotate(&rsa.channel, &admin, Some(Duration::ZERO), false)
        .await
        .unwrap();
    assert_eq!(new.algorithm, "RS256");
    let jwks = rsa.jwks().await;
    let kinds: Vec<&str> = jwks.keys.iter().map(|k| k.kty.as_str()).collect();
    assert_eq!(kinds, ["RSA", "OKP"]);
    let token = rsa.token(&op).await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    verify_with_jwks(&jwks.jwks_json, &token).unwrap();
    verify_with_jwks(&jwks.jwks_json, &admin).unwrap();
}

/// The maintenance loop's period in this test (`keys.reload_secs`).
const RELOAD: Duration = Duration::from_secs(1);

async fn automatic_rotation_happens_once_across_replicas(backend: Backend) {
    let fast = |s: &mut Settings| {
        s.keys.rotation_interval_secs = 3600;
        s.keys.reload_secs = RELOAD.as_secs();
    };
    let app = TestApp::spawn_with(backend, fast).await;
    let other = Replica::start(&app, fast).await;
    let op = operator(&app).await;
    // One second short of due: the loops' checks (every RELOAD, on the wall clock) must find
    // nothing to do. A loop runs without anything a client can see when nothing is due, so
    // this waits for more than two periods; that the loops do run is shown right after, when
    // one second more makes the key due.
    app.advance(Duration::from_secs(3599));
    let admin = app.token(&op, &[]).await;
    tokio::time::sleep(RELOAD * 5 / 2).await;
    assert_eq!(
        list(&app.channel, &admin).await.unwrap().len(),
        1,
        "not due"
    );

    app.advance(Duration::from_secs(1));
    let admin = app.token(&op, &[]).await;
    let new = eventually_some(
        "an automatic rotation",
        Duration::from_secs(10),
        async || {
            let listed = list(&app.channel, &admin).await.unwrap();
            (listed.len() == 2).then(|| listed[0].kid.clone())
        },
    )
    .await
    .0;
    // Both replicas have reread the keys since (each serves the new one), so each has made its
    // check with the key due; still exactly one new key.
    eventually(
        "both replicas to serve the new key",
        Duration::from_secs(10),
        async || {
            jwks_kids(&app.jwks().await).contains(&new)
                && jwks_kids(&other.jwks().await).contains(&new)
        },
    )
    .await;
    let listed = list(&app.channel, &admin).await.unwrap();
    assert_eq!(listed.len(), 2, "{:?}", states(&listed));
    assert_eq!(state(&listed[0]), SigningKeyState::Pending);
    assert_eq!(jwks_kids(&other.jwks().await), jwks_kids(&app.jwks().await));
}

async fn a_replica_serves_a_rotation_after_reload(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.keys.reload_secs = 1).await;
    let b = Replica::start(&app, |s| s.keys.reload_secs = 1).await;
    let op = operator(&app).await;
    let admin = app.token(&op, &[]).await;
    let new = rotate(&app.channel, &admin, None, false).await.unwrap();
    assert!(jwks_kids(&app.jwks().await).contains(&new.kid));
    eventually(
        "replica B to publish the new key",
        Duration::from_secs(10),
        async || jwks_kids(&b.jwks().await).contains(&new.kid),
    )
    .await;
    // B signs with it once it activates, and verifies A's tokens signed with it.
    app.advance(Duration::from_secs(600));
    let from_b = b.token(&op).await;
    assert_eq!(kid(&from_b), new.kid);
    assert!(
        app.introspect(&app.token(&op, &[]).await, &from_b)
            .await
            .active
    );
}

async fn key_service_is_healthy_and_reflected(backend: Backend) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn(backend).await;
    let status = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: "tokend.v1.KeyService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "tokend.v1.KeyService".into(),
        )),
    };
    let mut stream = ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!(
            "KeyService is not reflected: {:?}",
            response.message_response
        );
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

for_each_backend!(
    rs256_tokens_verify_with_the_published_jwks,
    a_new_server_lists_one_active_key,
    rotation_prepublishes_then_activates_then_retires,
    retire_previous_makes_old_tokens_inactive_at_once,
    only_system_admins_manage_keys,
    a_restart_keeps_the_rotation_state,
    algorithm_change_applies_at_the_next_rotation,
    automatic_rotation_happens_once_across_replicas,
    a_replica_serves_a_rotation_after_reload,
    key_service_is_healthy_and_reflected,
);

#[test]
fn a_prepublication_shorter_than_the_jwks_cache_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("migrate")
        .env("TOKEND__DATABASE__URL", "sqlite::memory:")
        .env("TOKEND__KEYS__PREPUBLISH_SECS", "299")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("keys.prepublish_secs (299)"), "{stderr}");
    assert!(stderr.contains("max-age"), "{stderr}");
}

impl Replica {
    async fn jwks(&self) -> GetJwksResponse {
        IntrospectionServiceClient::new(self.channel.clone())
            .get_jwks(GetJwksRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    async fn token(&self, creds: &Creds) -> String {
        let request = IssueTokenRequest {
            client_id: creds.client_id.clone(),
            client_secret: creds.client_secret.clone(),
            scopes: vec![],
            audience: vec![],
            ..Default::default()
        };
        tokend::proto::token_service_client::TokenServiceClient::new(self.channel.clone())
            .issue_token(request)
            .await
            .unwrap()
            .into_inner()
            .access_token
    }
}
