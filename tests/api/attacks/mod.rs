//! Attacks on token verification, through the real server: forged, altered, foreign, stale,
//! oversized and malformed tokens, against Introspect and as the bearer token of every RPC that
//! takes one. Each must be `active: false` (UNAUTHENTICATED as a bearer), change nothing, and
//! leave the server answering.
//!
//! A test cannot sign with the server's private key, so a forgery here either carries a
//! signature that no longer matches (a genuine token re-encoded) or one made with the
//! attacker's own keys, published nowhere. That proves the signature is checked against the
//! `kid`'s key whatever the claims say; that `typ`, `iss` and duplicated claims are refused even
//! under a good signature is proved beside `JwtVerifier` (src/domain/introspection.rs), which
//! can sign with a real key. What the server's clock decides (`exp`, `nbf`, key retirement) and
//! another tokend's tokens are tested here with genuine signatures.

mod forge;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokend::domain::{Clock as _, ManualClock};
use tokend::proto::key_service_client::KeyServiceClient;
use tokend::proto::*;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

use self::forge::{Attacker, Garbage, Genuine, b64, forgeries};
use crate::common::Backend;
use crate::helpers::*;

/// Largest bearer token sent in metadata: hyper refuses header lists over 16 KiB before tokend
/// sees them, so larger forgeries go to Introspect only.
const MAX_BEARER: usize = 15 * 1024;

/// Calls every RPC that takes a bearer token, with `bearer`; what each answered.
async fn every_bearer_rpc(
    app: &TestApp,
    bearer: &str,
    victim: &str,
) -> Vec<(&'static str, Result<(), Status>)> {
    let c = app.clients();
    let k = KeyServiceClient::new(app.channel.clone());
    let mut admin_client = client("system", "forged", &["tokend.admin"]);
    admin_client.client_id = victim.into();
    let mask = prost_types::FieldMask {
        paths: vec!["scopes".into()],
    };
    vec![
        (
            "CreateClient",
            c.clone()
                .create_client(authed(
                    CreateClientRequest {
                        client: Some(admin_client.clone()),
                    },
                    bearer,
                ))
                .await
                .map(drop),
        ),
        (
            "GetClient",
            c.clone()
                .get_client(authed(
                    GetClientRequest {
                        client_id: victim.into(),
                    },
                    bearer,
                ))
                .await
                .map(drop),
        ),
        (
            "ListClients",
            c.clone()
                .list_clients(authed(ListClientsRequest::default(), bearer))
                .await
                .map(drop),
        ),
        (
            "UpdateClient",
            c.clone()
                .update_client(authed(
                    UpdateClientRequest {
                        client: Some(admin_client),
                        update_mask: Some(mask),
                    },
                    bearer,
                ))
                .await
                .map(drop),
        ),
        (
            "RotateClientSecret",
            c.clone()
                .rotate_client_secret(authed(
                    RotateClientSecretRequest {
                        client_id: victim.into(),
                        ..Default::default()
                    },
                    bearer,
                ))
                .await
                .map(drop),
        ),
        (
            "RevokeClientTokens",
            c.clone()
                .revoke_client_tokens(authed(
                    RevokeClientTokensRequest {
                        client_id: victim.into(),
                    },
                    bearer,
                ))
                .await
                .map(drop),
        ),
        (
            "DeleteClient",
            c.clone()
                .delete_client(authed(
                    DeleteClientRequest {
                        client_id: victim.into(),
                    },
                    bearer,
                ))
                .await
                .map(drop),
        ),
        (
            "ListSigningKeys",
            k.clone()
                .list_signing_keys(authed(ListSigningKeysRequest {}, bearer))
                .await
                .map(drop),
        ),
        (
            "RotateSigningKey",
            k.clone()
                .rotate_signing_key(authed(
                    RotateSigningKeyRequest {
                        prepublish: None,
                        retire_previous: true,
                    },
                    bearer,
                ))
                .await
                .map(drop),
        ),
        (
            "Introspect",
            app.introspection()
                .introspect(authed(
                    IntrospectRequest {
                        token: victim.into(),
                        token_type_hint: String::new(),
                        client_address: String::new(),
                        ..Default::default()
                    },
                    bearer,
                ))
                .await
                .map(drop),
        ),
    ]
}

/// Whether `token` can travel as `authorization: Bearer <token>` metadata at all.
fn sendable_as_bearer(token: &str) -> bool {
    token.len() <= MAX_BEARER && MetadataValue::try_from(format!("Bearer {token}")).is_ok()
}

/// What a bearer token that is not valid gets: UNAUTHENTICATED, or INVALID_ARGUMENT when the
/// metadata is not ASCII text at all (bytes over 0x7f travel in HTTP/2 but are no token).
fn refusal(token: &str) -> Code {
    if token.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        Code::Unauthenticated
    } else {
        Code::InvalidArgument
    }
}

/// A system-tenant client that may administer and introspect: the token every forgery starts
/// from is one that, unaltered, may do everything.
async fn operator(app: &TestApp) -> Creds {
    app.bootstrap("system", "tokend.admin,tokend.introspect")
        .await
}

async fn forged_tokens_are_inactive_and_refused_as_bearers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let op = operator(&app).await;
    let genuine = Genuine::new(&app.token(&op, &[]).await);
    let (victim, _) = app
        .create_client(&genuine.token, client("acme", "victim", &["read"]))
        .await;
    let jwk = app.jwks().await.keys.remove(0);
    assert_eq!(jwk.kid, genuine.kid);
    let before = app.get_client(&genuine.token, &victim.client_id).await;

    // Control: unaltered, the token is active (and below, it still administers).
    assert!(app.introspect(&genuine.token, &genuine.token).await.active);

    let cases = forgeries(&genuine, &jwk, &Attacker::new());
    let mut bearers = 0;
    for (what, token) in &cases {
        assert_ne!(token, &genuine.token, "{what}: not a forgery");
        let answer = app.introspect(&genuine.token, token).await;
        assert_eq!(
            answer,
            IntrospectResponse::default(),
            "{what}: active through Introspect"
        );
        if !sendable_as_bearer(token) {
            continue;
        }
        bearers += 1;
        for (rpc, result) in every_bearer_rpc(&app, token, &victim.client_id).await {
            let code = result.map_or_else(|s| s.code(), |()| Code::Ok);
            assert_eq!(code, refusal(token), "{what}: {rpc} as bearer");
        }
    }
    assert!(
        cases.len() > 100 && bearers > 90,
        "{} forgeries, {bearers} as bearers",
        cases.len()
    );

    // Nothing any forgery asked for happened, and the genuine token still works.
    assert_eq!(
        app.get_client(&genuine.token, &victim.client_id).await,
        before
    );
    let keys = KeyServiceClient::new(app.channel.clone())
        .list_signing_keys(authed(ListSigningKeysRequest {}, &genuine.token))
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 1, "no rotation");
    let listed = app
        .clients()
        .list_clients(authed(ListClientsRequest::default(), &genuine.token))
        .await;
    assert_eq!(
        listed.unwrap().into_inner().clients.len(),
        2,
        "operator and victim only"
    );
    assert!(app.introspect(&genuine.token, &genuine.token).await.active);
}

async fn expired_genuine_tokens_are_inactive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let op = operator(&app).await;
    let old = app.token(&op, &[]).await;
    let exp = Genuine::new(&old).claims["exp"].as_i64().unwrap();
    let iat = Genuine::new(&old).claims["iat"].as_i64().unwrap();
    // To the last second of the leeway (5 s) it is active, then not.
    app.advance(Duration::from_secs((exp - iat + 4) as u64));
    let fresh = app.token(&op, &[]).await;
    assert!(app.introspect(&fresh, &old).await.active);
    app.advance(Duration::from_secs(1));
    assert_eq!(
        app.introspect(&fresh, &old).await,
        IntrospectResponse::default()
    );
    let err = app
        .clients()
        .list_clients(authed(ListClientsRequest::default(), &old))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

async fn not_yet_valid_genuine_tokens_are_inactive(backend: Backend) {
    // A replica whose clock runs an hour ahead signs with the same key: its tokens' nbf lies
    // an hour in this server's future.
    let app = TestApp::spawn(backend).await;
    let op = operator(&app).await;
    let now = app.clock.now();
    let ahead = Arc::new(ManualClock::new(now + Duration::from_secs(3600)));
    let replica = Replica::start_with_clock(&app, ahead, |_| {}).await;
    let early = issue(&replica.channel, &op).await;
    let fresh = app.token(&op, &[]).await;
    assert_eq!(
        app.introspect(&fresh, &early).await,
        IntrospectResponse::default()
    );
    let err = app
        .clients()
        .list_clients(authed(ListClientsRequest::default(), &early))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // Within the leeway of its nbf it is active: it was genuine all along.
    app.advance(Duration::from_secs(3600 - 5));
    let fresh = app.token(&op, &[]).await;
    assert!(app.introspect(&fresh, &early).await.active);
    replica.stop().await;
}

/// IssueToken on another server.
async fn issue(channel: &Channel, creds: &Creds) -> String {
    let request = IssueTokenRequest {
        client_id: creds.client_id.clone(),
        client_secret: creds.client_secret.clone(),
        scopes: vec![],
        audience: vec![],
        ..Default::default()
    };
    tokend::proto::token_service_client::TokenServiceClient::new(channel.clone())
        .issue_token(request)
        .await
        .expect("issue token")
        .into_inner()
        .access_token
}

async fn tokens_of_another_issuer_are_inactive(backend: Backend) {
    const ELSEWHERE: &str = "urn:tokend:elsewhere";
    let app = TestApp::spawn(backend).await;
    let op = operator(&app).await;
    let caller = app.token(&op, &[]).await;

    // Another tokend on its own database: another issuer and another key.
    let other = TestApp::spawn_with(backend, |s| s.tokens.issuer = ELSEWHERE.into()).await;
    let theirs = other.token(&operator(&other).await, &[]).await;
    assert!(
        other.introspect(&theirs, &theirs).await.active,
        "genuine where it was issued"
    );
    assert_eq!(
        app.introspect(&caller, &theirs).await,
        IntrospectResponse::default()
    );

    // A replica on this database with another issuer: same key, same client; only `iss` (and
    // the audience that follows it) differs.
    let renamed = Replica::start(&app, |s| s.tokens.issuer = ELSEWHERE.into()).await;
    let foreign = issue(&renamed.channel, &op).await;
    assert_eq!(Genuine::new(&foreign).kid, Genuine::new(&caller).kid);
    assert_eq!(
        app.introspect(&caller, &foreign).await,
        IntrospectResponse::default()
    );
    // Control: a replica with this issuer is believed.
    let same = Replica::start(&app, |_| {}).await;
    assert!(
        app.introspect(&caller, &issue(&same.channel, &op).await)
            .await
            .active
    );

    for token in [&theirs, &foreign] {
        let err = app
            .clients()
            .list_clients(authed(ListClientsRequest::default(), token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    renamed.stop().await;
    same.stop().await;
}

async fn tokens_of_a_retired_key_are_inactive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let op = operator(&app).await;
    let old = app.token(&op, &[]).await;
    let rotated = KeyServiceClient::new(app.channel.clone())
        .rotate_signing_key(authed(
            RotateSigningKeyRequest {
                prepublish: None,
                retire_previous: true,
            },
            &old,
        ))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    app.advance(Duration::from_secs(1));
    let fresh = app.token(&op, &[]).await;
    assert_eq!(Genuine::new(&fresh).kid, rotated.kid);
    assert_eq!(
        app.introspect(&fresh, &old).await,
        IntrospectResponse::default()
    );
    let err = app
        .clients()
        .list_clients(authed(ListClientsRequest::default(), &old))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // After a restart the retired key is not even loaded: the kid is unknown.
    let app = app.restart().await;
    assert_eq!(
        app.introspect(&fresh, &old).await,
        IntrospectResponse::default()
    );
    assert!(app.introspect(&fresh, &fresh).await.active);
}

async fn a_flood_of_garbage_is_answered_and_the_server_stays_healthy(backend: Backend) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let app = TestApp::spawn(backend).await;
    let genuine = Genuine::new(&app.token(&operator(&app).await, &[]).await);
    let mut garbage = Garbage(0x9e37_79b9_7f4a_7c15);
    let mut tokens: Vec<String> = (0..1000).map(|_| garbage.token(&genuine)).collect();
    // Just under the message limit (limits.max_request_bytes, 192 KiB): the genuine header and
    // signature around a huge payload, and plain bytes. They reach tokend, which must refuse
    // them unparsed (MAX_TOKEN_LEN).
    tokens.push(format!(
        "{}.{}.{}",
        genuine.h,
        b64(vec![b'{'; 120 * 1024]),
        genuine.s
    ));
    tokens.push("a".repeat(180 * 1024));
    // A megabyte is over the message limit: refused before it is even decoded.
    for huge in [
        format!("{}.{}.{}", genuine.h, b64(vec![b'{'; 1 << 20]), genuine.s),
        "a".repeat(1 << 20),
    ] {
        let err = app
            .introspection()
            .introspect(authed(
                IntrospectRequest {
                    token: huge,
                    ..Default::default()
                },
                &genuine.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    }

    let answers: Vec<IntrospectResponse> = futures::stream::iter(&tokens)
        .map(|token| app.introspect(&genuine.token, token))
        .buffered(16)
        .collect()
        .await;
    assert_eq!(answers.len(), tokens.len());
    for (token, answer) in tokens.iter().zip(&answers) {
        assert_eq!(answer, &IntrospectResponse::default(), "{:.60}", token);
    }
    let bearers: Vec<&String> = tokens
        .iter()
        .filter(|t| sendable_as_bearer(t))
        .take(300)
        .collect();
    assert!(bearers.len() > 200, "{} sendable", bearers.len());
    let codes: Vec<(Code, Code)> = futures::stream::iter(bearers)
        .map(|token| {
            let mut clients = app.clients();
            async move {
                let answer = clients
                    .list_clients(authed(ListClientsRequest::default(), token))
                    .await;
                (
                    answer.map_or_else(|s| s.code(), |_| Code::Ok),
                    refusal(token),
                )
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (code, expected) in codes {
        assert_eq!(code, expected);
    }

    // Still healthy and still right.
    let health = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: "tokend.v1.IntrospectionService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    assert!(app.introspect(&genuine.token, &genuine.token).await.active);
}

for_each_backend!(
    forged_tokens_are_inactive_and_refused_as_bearers,
    expired_genuine_tokens_are_inactive,
    not_yet_valid_genuine_tokens_are_inactive,
    tokens_of_another_issuer_are_inactive,
    tokens_of_a_retired_key_are_inactive,
    a_flood_of_garbage_is_answered_and_the_server_stays_healthy,
);
