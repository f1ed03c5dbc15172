//! `server.tls.client_auth = "any"`: tokend's own TLS accepts a certificate from any issuer,
//! so a `self_signed_tls_client_auth` client proves itself over it by its key alone, while for
//! `tls_client_auth` tokend checks the issuer itself, against `client_ca_file`.

use rcgen::KeyPair;
use tokend::config::ClientAuth;

use super::*;
use crate::common::Backend;
use crate::helpers::*;

async fn a_self_signed_certificate_proves_its_client_over_tokends_own_tls(backend: Backend) {
    let ca = Ca::new("mesh CA");
    let (app, _files) = mtls_app_with(backend, &ca, ClientAuth::Any).await;
    let admin = app.admin("acme").await;
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut c = client("acme", "self-signed", &["read"]);
    c.auth_methods = vec!["self_signed_tls_client_auth".into()];
    c.jwks = jwks_of(&key);
    let (created, _) = app.create_client(&admin, c).await;
    let id = created.client_id.as_str();
    tokens_with(app.addr, &ca, &self_signed(&key))
        .await
        .issue_token(id_only(id))
        .await
        .expect("a self-signed certificate holding the client's key, over tokend's own TLS");
    let stranger = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let err = tokens_with(app.addr, &ca, &self_signed(&stranger))
        .await
        .issue_token(id_only(id))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client");
}

async fn with_any_issuer_accepted_tls_client_auth_still_needs_the_client_ca(backend: Backend) {
    let ca = Ca::new("mesh CA");
    let (app, _files) = mtls_app_with(backend, &ca, ClientAuth::Any).await;
    let admin = app.admin("acme").await;
    let (created, _) = app.create_client(&admin, mtls_client("billing")).await;
    let id = created.client_id.as_str();
    tokens_with(app.addr, &ca, &ca.workload(SPIFFE_ID))
        .await
        .issue_token(id_only(id))
        .await
        .expect("a certificate of client_ca_file carrying the client's URI");
    // The same URI from a CA tokend does not trust passes the handshake, not the client check.
    let rogue = Ca::new("rogue CA");
    let err = tokens_with(app.addr, &ca, &rogue.workload(SPIFFE_ID))
        .await
        .issue_token(id_only(id))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client");
}

for_each_backend!(
    a_self_signed_certificate_proves_its_client_over_tokends_own_tls,
    with_any_issuer_accepted_tls_client_auth_still_needs_the_client_ca,
);
