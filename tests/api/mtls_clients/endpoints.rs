//! A certificate alone authenticates a client at every token-endpoint surface, not only
//! IssueToken: HTTP introspection and revocation, and token exchange, whose tokens a bound
//! exchanger gets bound to the certificate it called with.

use tokend::proto::*;

use super::*;
use crate::common::Backend;
use crate::helpers::*;

const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

async fn http_introspection_and_revocation_take_a_certificate_alone(backend: Backend) {
    let ca = Ca::new("mesh CA");
    let (app, _files) = mtls_app(backend, &ca).await;
    let admin = app.admin("acme").await;
    let (created, _) = app.create_client(&admin, mtls_client("billing")).await;
    let id = created.client_id.as_str();
    let workload = ca.workload(SPIFFE_ID);
    let token = tokens_with(app.addr, &ca, &workload)
        .await
        .issue_token(id_only(id))
        .await
        .expect("IssueToken")
        .into_inner()
        .access_token;
    let form = format!("token={token}&client_id={id}");
    let (status, body) = https_post(app.addr, &ca, &workload, "/oauth2/introspect", &form).await;
    assert_eq!(
        (status, &body["active"]),
        (200, &serde_json::json!(true)),
        "{body}"
    );
    assert_eq!(body["client_id"], id);
    let (status, body) = https_post(app.addr, &ca, &workload, "/oauth2/revoke", &form).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = https_post(app.addr, &ca, &workload, "/oauth2/introspect", &form).await;
    assert_eq!(
        (status, &body["active"]),
        (200, &serde_json::json!(false)),
        "{body}"
    );
}

async fn an_exchange_by_a_bound_certificate_client_is_bound(backend: Backend) {
    let ca = Ca::new("mesh CA");
    let (app, _files) = mtls_app(backend, &ca).await;
    let admin = app.admin("acme").await;
    let (_, billing) = app
        .create_client(&admin, client("acme", "billing", &["read:*"]))
        .await;
    let subject = app.token(&billing, &["read:invoices"]).await;
    let mut gateway = mtls_client("gateway");
    gateway.tls_client_certificate_bound_access_tokens = true;
    gateway.exchange_audiences = vec!["https://ledger.internal".into()];
    let (gateway, _) = app.create_client(&admin, gateway).await;
    let workload = ca.workload(SPIFFE_ID);
    let exchanged = tokens_with(app.addr, &ca, &workload)
        .await
        .exchange_token(ExchangeTokenRequest {
            client_id: gateway.client_id.clone(),
            subject_token: subject,
            subject_token_type: ACCESS.into(),
            audience: vec!["https://ledger.internal".into()],
            ..Default::default()
        })
        .await
        .expect("an exchange authenticated by the certificate alone")
        .into_inner();
    let introspector = app.introspector("acme").await;
    let seen = app.introspect(&introspector, &exchanged.access_token).await;
    assert!(seen.active);
    let cnf = seen.cnf.expect("the exchanged token is bound");
    assert_eq!(cnf.x5t_s256, x5t(&workload));
}

for_each_backend!(
    http_introspection_and_revocation_take_a_certificate_alone,
    an_exchange_by_a_bound_certificate_client_is_bound,
);
