//! IssueToken: credentials, scopes, audiences, disabled clients.

use tokend::proto::*;
use tonic::Code;

use crate::common::Backend;
use crate::helpers::*;

async fn bootstrap_create_issue_introspect_disable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let introspector = app.introspector("acme").await;
    let mut spec = client("acme", "billing", &["read:*", "write:orders"]);
    spec.audiences = vec!["https://orders.internal".into()];
    spec.roles = vec!["billing-bot".into()];
    let (created, creds) = app.create_client(&admin, spec).await;
    assert!(creds.client_secret.starts_with("tkd_cs_"));
    assert_eq!(created.tenant, "acme");
    assert_eq!(created.active, Some(true), "active defaults to true");

    let issued = app
        .try_token(&creds, &["read:invoices"], &[])
        .await
        .unwrap();
    assert_eq!(issued.token_type, "Bearer");
    assert_eq!(issued.expires_in, 900);
    assert_eq!(issued.scopes, ["read:invoices"]);
    assert!(issued.refresh_token.is_empty());

    let r = app.introspect(&introspector, &issued.access_token).await;
    assert!(r.active);
    assert_eq!(r.client_id, creds.client_id);
    assert_eq!(r.sub, creds.client_id);
    assert_eq!(r.scopes, ["read:invoices"]);
    assert_eq!(r.aud, ["https://orders.internal"]);
    assert_eq!(r.iss, ISSUER);
    assert_eq!(r.tenant, "acme");
    assert_eq!(r.roles, ["billing-bot"]);
    assert_eq!(r.token_type, "Bearer");
    assert_eq!(r.exp - r.iat, 900);
    assert_eq!(r.nbf, r.iat);
    assert!(!r.jti.is_empty());

    // Disable the client: its token is inactive at once, and it cannot get new ones.
    let mut update = created.clone();
    update.active = Some(false);
    app.update_client(&admin, update, &["active"])
        .await
        .unwrap();
    let r = app.introspect(&introspector, &issued.access_token).await;
    assert_eq!(
        r,
        IntrospectResponse::default(),
        "inactive carries nothing but active=false"
    );
    let err = app.try_token(&creds, &[], &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(oauth2_error(&err), "unauthorized_client");
}

async fn wrong_secret_and_unknown_client_look_alike(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.bootstrap("acme", "read").await;
    let other = app.bootstrap("acme", "read").await;
    let wrong_secret = Creds {
        client_id: creds.client_id.clone(),
        client_secret: other.client_secret.clone(),
    };
    let unknown = Creds {
        client_id: uuid::Uuid::now_v7().to_string(),
        client_secret: creds.client_secret.clone(),
    };
    let garbage = Creds {
        client_id: creds.client_id.clone(),
        client_secret: "hunter2".into(),
    };
    let mut messages = Vec::new();
    for c in [wrong_secret, unknown, garbage] {
        let err = app.try_token(&c, &[], &[]).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert_eq!(oauth2_error(&err), "invalid_client");
        messages.push(err.message().to_owned());
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:?}");
    // The right secret still works.
    app.token(&creds, &[]).await;
}

async fn scope_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let (_, creds) = app
        .create_client(&admin, client("acme", "svc", &["read:*", "write:orders"]))
        .await;
    let granted = |r: IssueTokenResponse| r.scopes;
    // No scopes requested: every allowed scope, wildcards as written.
    assert_eq!(
        granted(app.try_token(&creds, &[], &[]).await.unwrap()),
        ["read:*", "write:orders"]
    );
    assert_eq!(
        granted(
            app.try_token(&creds, &["read:a", "read:b"], &[])
                .await
                .unwrap()
        ),
        ["read:a", "read:b"]
    );
    for refused in [
        &["write:users"][..],
        &["read:a", "admin"],
        &["tokend.admin"],
        &["*"],
    ] {
        let err = app.try_token(&creds, refused, &[]).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(oauth2_error(&err), "invalid_scope");
    }
    let err = app
        .try_token(&creds, &["has space"], &[])
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_scope");
    assert!(err.message().contains("not a scope"), "{}", err.message());
}

async fn audience_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let introspector = app.introspector("system").await;
    let mut spec = client("acme", "svc", &["read"]);
    spec.audiences = vec!["api-a".into(), "api-b".into()];
    let (_, creds) = app.create_client(&admin, spec).await;
    let aud_of = |t: String| {
        let app = &app;
        let introspector = introspector.clone();
        async move { app.introspect(&introspector, &t).await.aud }
    };
    let all = app.try_token(&creds, &[], &[]).await.unwrap().access_token;
    assert_eq!(aud_of(all).await, ["api-a", "api-b"]);
    let one = app
        .try_token(&creds, &[], &["api-b"])
        .await
        .unwrap()
        .access_token;
    assert_eq!(aud_of(one).await, ["api-b"]);
    let err = app.try_token(&creds, &[], &["api-c"]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(oauth2_error(&err), "invalid_target");
    // A client with no audiences gets tokens meant for tokend itself.
    let (_, plain) = app
        .create_client(&admin, client("acme", "plain", &["read"]))
        .await;
    let t = app.token(&plain, &[]).await;
    assert_eq!(aud_of(t).await, [ISSUER]);
}

/// RevokeToken applies RFC 7009's `token_type_hint` rule as `/oauth2/revoke` does: a hint
/// naming a type tokend never issues is `unsupported_token_type`, and nothing is revoked.
async fn revocation_hints_are_checked_as_over_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let introspector = app.introspector("acme").await;
    let creds = app.bootstrap("acme", "read").await;
    let token = app.token(&creds, &[]).await;
    let revoke = |hint: &str| RevokeTokenRequest {
        client_id: creds.client_id.clone(),
        client_secret: creds.client_secret.clone(),
        token: token.clone(),
        token_type_hint: hint.into(),
        ..Default::default()
    };
    let err = app
        .tokens()
        .revoke_token(revoke("id_token"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(oauth2_error(&err), "unsupported_token_type");
    assert!(err.message().contains("id_token"), "{}", err.message());
    assert!(app.introspect(&introspector, &token).await.active);
    app.tokens()
        .revoke_token(revoke("access_token"))
        .await
        .unwrap();
    assert!(!app.introspect(&introspector, &token).await.active);
}

for_each_backend!(
    revocation_hints_are_checked_as_over_http,
    bootstrap_create_issue_introspect_disable,
    wrong_secret_and_unknown_client_look_alike,
    scope_rules,
    audience_rules,
);
