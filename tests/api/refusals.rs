//! Requests refused before they are acted on: two `Authorization` fields (RFC 9110 section
//! 5.3 forbids repeating a field that is not a list, and a proxy that reads the other copy
//! would disagree with tokend about who calls) on every endpoint that reads one, over HTTP and
//! gRPC; and a revocation judged only after its client has authenticated (RFC 7009 section
//! 2.1), over HTTP and gRPC.

use tokend::proto::*;
use tonic::Code;

use crate::common::Backend;
use crate::helpers::*;
use crate::oauth_http::{FORM, basic, http, introspect, token};

async fn two_authorization_fields_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.bootstrap("acme", "read").await;
    let other = app.bootstrap("acme", "read").await;
    let (mine, theirs) = (basic(&creds), basic(&other));
    let grant = "grant_type=client_credentials";
    // One is served...
    let r = token(app.addr, &[("Authorization", &mine)], grant).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let access = r.json()["access_token"].as_str().unwrap().to_owned();
    // ...two are refused, the same twice or two clients' (where a proxy may read the other).
    for second in [&mine, &theirs] {
        let both = [("Authorization", mine.as_str()), ("Authorization", second)];
        let r = token(app.addr, &both, grant).await;
        assert_eq!(
            (r.status, r.error().as_str()),
            (400, "invalid_request"),
            "{}",
            r.body
        );
        assert!(r.body.contains("more than once"), "{}", r.body);
        let mut all = vec![FORM];
        all.extend(both);
        let r = http(
            app.addr,
            "POST /oauth2/revoke",
            &all,
            &format!("token={access}"),
        )
        .await;
        assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));
    }
    // Introspection's bearer caller, over HTTP and gRPC.
    let bearer = format!("Bearer {}", app.introspector("acme").await);
    let body = format!("token={access}");
    let r = introspect(app.addr, &[("Authorization", &bearer)], &body).await;
    assert_eq!(r.json()["active"], true, "{}", r.body);
    let both = [
        ("Authorization", bearer.as_str()),
        ("Authorization", bearer.as_str()),
    ];
    let r = introspect(app.addr, &both, &body).await;
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));
    let request = |copies: usize| {
        let mut request = tonic::Request::new(IntrospectRequest {
            token: access.clone(),
            ..Default::default()
        });
        for _ in 0..copies {
            request
                .metadata_mut()
                .append("authorization", bearer.parse().unwrap());
        }
        request
    };
    let once = app.introspection().introspect(request(1)).await.unwrap();
    assert!(once.into_inner().active);
    let err = app
        .introspection()
        .introspect(request(2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("authorization"), "{err:?}");
}

async fn revocation_authenticates_the_client_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.bootstrap("acme", "read").await;
    let wrong = Creds {
        client_secret: "tkd_cs_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into(),
        ..creds.clone()
    };
    let revoke = |who: &Creds, body: &str| {
        let (addr, auth, body) = (app.addr, basic(who), body.to_owned());
        async move {
            http(
                addr,
                "POST /oauth2/revoke",
                &[FORM, ("Authorization", &auth)],
                &body,
            )
            .await
        }
    };
    // Unauthenticated, a bad hint or no token at all is not looked at: invalid_client.
    for body in [
        "token=x&token_type_hint=id_token",
        "token_type_hint=id_token",
        "",
    ] {
        let r = revoke(&wrong, body).await;
        assert_eq!(
            (r.status, r.error().as_str()),
            (401, "invalid_client"),
            "{body}: {}",
            r.body
        );
        let r = http(app.addr, "POST /oauth2/revoke", &[FORM], body).await;
        assert_eq!(
            (r.status, r.error().as_str()),
            (401, "invalid_client"),
            "{body}"
        );
    }
    // Authenticated, the hint is judged.
    let r = revoke(&creds, "token=x&token_type_hint=id_token").await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "unsupported_token_type")
    );
    // gRPC alike: UNAUTHENTICATED for the wrong secret, then the hint's INVALID_ARGUMENT.
    let grpc = |who: &Creds| RevokeTokenRequest {
        client_id: who.client_id.clone(),
        client_secret: who.client_secret.clone(),
        token: "x".into(),
        token_type_hint: "id_token".into(),
        ..Default::default()
    };
    let err = app.tokens().revoke_token(grpc(&wrong)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(oauth2_error(&err), "invalid_client");
    let err = app.tokens().revoke_token(grpc(&creds)).await.unwrap_err();
    assert_eq!(oauth2_error(&err), "unsupported_token_type", "{err:?}");
}

for_each_backend!(
    two_authorization_fields_are_refused,
    revocation_authenticates_the_client_first,
);
