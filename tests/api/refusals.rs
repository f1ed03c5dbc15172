//! Requests refused before they are acted on: two `Authorization` fields (RFC 9110 section
//! 5.3 forbids repeating a field that is not a list, and a proxy that reads the other copy
//! would disagree with tokend about who calls) on every endpoint that reads one, over HTTP and
//! gRPC.

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

for_each_backend!(two_authorization_fields_are_refused,);
