//! A stock OAuth 2.0 client library (the `oauth2` crate) against tokend's HTTP endpoints, as a
//! Rust service would use it: client credentials, refresh, introspection (as a resource server
//! with its own credentials); revocation once tokend serves TLS (the crate insists on https). Token exchange is not in that crate; `exchange`
//! drives it over HTTP by hand.

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, ClientId, ClientSecret, ConfigurationError, IntrospectionUrl, RequestTokenError,
    RevocationUrl, Scope, StandardRevocableToken, TokenIntrospectionResponse, TokenResponse,
    TokenUrl,
};

use crate::common::Backend;
use crate::helpers::*;

fn http_client() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        // RFC 6749 section 3.2 / RFC 9700: never follow redirects from the token endpoint.
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn a_stock_client_library_gets_refreshes_introspects_and_revokes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let mut c = client("acme", "svc", &["read:*"]);
    c.audiences = vec!["https://orders.internal".into()];
    c.refresh_token_ttl = Some(prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    });
    let (_, creds) = app.create_client(&admin, c).await;
    let resource_server = app.bootstrap("acme", "tokend.introspect").await;
    let base = format!("http://{}", app.addr);
    let http = http_client();

    let svc = BasicClient::new(ClientId::new(creds.client_id.clone()))
        .set_client_secret(ClientSecret::new(creds.client_secret.clone()))
        .set_token_uri(TokenUrl::new(format!("{base}/oauth2/token")).unwrap())
        .set_revocation_url(RevocationUrl::new(format!("{base}/oauth2/revoke")).unwrap());
    let issued = svc
        .exchange_client_credentials()
        .add_scope(Scope::new("read:orders".into()))
        .request_async(&http)
        .await
        .expect("client credentials");
    assert_eq!(
        issued.scopes().unwrap(),
        &vec![Scope::new("read:orders".into())]
    );
    assert!(issued.expires_in().unwrap() <= Duration::from_secs(15 * 60));
    let refresh = issued.refresh_token().expect("a refresh token").clone();

    // client_secret_post works the same way; a wrong secret is invalid_client.
    let posted = BasicClient::new(ClientId::new(creds.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            "tkd_cs_wrongwrongwrongwrongwrongwrongwrongwrongwro".into(),
        ))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(format!("{base}/oauth2/token")).unwrap());
    match posted
        .exchange_client_credentials()
        .request_async(&http)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient);
        }
        other => panic!("expected invalid_client, got {other:?}"),
    }

    let refreshed = svc
        .exchange_refresh_token(&refresh)
        .request_async(&http)
        .await
        .expect("refresh");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        refresh.secret(),
        "rotated"
    );

    let rs = BasicClient::new(ClientId::new(resource_server.client_id.clone()))
        .set_client_secret(ClientSecret::new(resource_server.client_secret.clone()))
        .set_introspection_url(IntrospectionUrl::new(format!("{base}/oauth2/introspect")).unwrap());
    let seen = rs
        .introspect(refreshed.access_token())
        .request_async(&http)
        .await
        .expect("introspect");
    assert!(seen.active());
    assert_eq!(seen.client_id().unwrap().as_str(), creds.client_id);
    assert_eq!(seen.sub(), Some(creds.client_id.as_str()));
    assert_eq!(
        seen.aud().unwrap(),
        &vec!["https://orders.internal".to_owned()]
    );
    assert!(seen.exp().is_some());

    // The crate sends revocations only over https (RFC 7009 section 2: TLS is a MUST), and
    // tokend serves TLS from issue 14 on; until then the crate refuses, and the refresh token
    // is revoked through RevokeToken (the HTTP endpoint is driven by hand in `oauth_http`).
    let plain = svc.revoke_token(StandardRevocableToken::RefreshToken(
        refreshed.refresh_token().unwrap().clone(),
    ));
    assert!(
        matches!(plain, Err(ConfigurationError::InsecureUrl(_))),
        "{plain:?}"
    );
    app.tokens()
        .revoke_token(tokend::proto::RevokeTokenRequest {
            client_id: creds.client_id.clone(),
            client_secret: creds.client_secret.clone(),
            token: refreshed.refresh_token().unwrap().secret().clone(),
            token_type_hint: String::new(),
            ..Default::default()
        })
        .await
        .expect("revoke");
    let seen = rs
        .introspect(refreshed.access_token())
        .request_async(&http)
        .await
        .expect("introspect");
    assert!(!seen.active(), "the family went with its refresh token");
    // A spent or revoked refresh token is invalid_grant.
    match svc
        .exchange_refresh_token(&refresh)
        .request_async(&http)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant);
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
}

for_each_backend!(a_stock_client_library_gets_refreshes_introspects_and_revokes);
