//! Every way a client certificate is refused: a certificate without the client's subject
//! value, a client that does not list the method, a self-signed certificate with a key that is
//! not the client's: always the `invalid_client` of a wrong secret, counted by the lockout
//! alike; and the subject metadata's own rules.

use rcgen::KeyPair;
use tokend::proto::*;
use tonic::Code;

use super::*;
use crate::assertions::wrong_secret_message;
use crate::common::Backend;
use crate::helpers::*;
use crate::policy::assert_rate_limited;

async fn a_certificate_without_the_subject_or_an_unlisted_method_is_refused(backend: Backend) {
    let app = proxied_app(backend).await;
    let admin = app.admin("acme").await;
    let wrong_secret = wrong_secret_message(&app, &admin).await;
    let (bound, _) = app.create_client(&admin, mtls_client("billing")).await;
    let mut by_dn = mtls_client("by-dn");
    by_dn.tls_client_auth_san_uri = String::new();
    by_dn.tls_client_auth_subject_dn = "cn=Billing, o=example".into();
    let (by_dn, _) = app.create_client(&admin, by_dn).await;
    assert_eq!(by_dn.tls_client_auth_subject_dn, "CN=Billing,O=example");
    let (secret_only, _) = app
        .create_client(&admin, client("acme", "secret-only", &["read"]))
        .await;
    let ca = Ca::new("mesh CA");
    let mut proxy = app.tokens_from(PROXY).await;
    let ours = xfcc(&ca.workload(SPIFFE_ID));
    let other = xfcc(&ca.workload("spiffe://prod.example/ns/payments/sa/other"));

    // The subject DN matches (case and spacing aside): accepted.
    proxy
        .issue_token(forwarded(id_only(&by_dn.client_id), &ours))
        .await
        .expect("the DN matches");
    for (id, header) in [
        (&bound.client_id, &other),      // another SPIFFE ID
        (&secret_only.client_id, &ours), // the method is not listed
    ] {
        let err = proxy
            .issue_token(forwarded(id_only(id), header))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert_eq!(oauth2_error(&err), "invalid_client");
        assert_eq!(
            err.message(),
            wrong_secret,
            "the same refusal as a wrong secret"
        );
    }
}

async fn self_signed_certificates_prove_the_client_by_its_key(backend: Backend) {
    let app = proxied_app(backend).await;
    let admin = app.admin("acme").await;
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut c = client("acme", "self-signed", &["read"]);
    c.auth_methods = vec!["self_signed_tls_client_auth".into()];
    c.jwks = jwks_of(&key);
    let (created, creds) = app.create_client(&admin, c).await;
    assert!(creds.client_secret.is_empty());
    let id = created.client_id.as_str();
    let mut proxy = app.tokens_from(PROXY).await;
    proxy
        .issue_token(forwarded(id_only(id), &xfcc(&self_signed(&key))))
        .await
        .expect("the certificate's key is the client's");
    let stranger = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let err = proxy
        .issue_token(forwarded(id_only(id), &xfcc(&self_signed(&stranger))))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client");
    // A secret is no proof for it either.
    let mut with_secret = id_only(id);
    with_secret.client_secret = "tkd_cs_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into();
    let err = app.tokens().issue_token(with_secret).await.unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client");
}

/// With `client_ca_file` configured, a certificate a trusted proxy forwards for
/// `tls_client_auth` must chain to it too: the proxy may trust more CAs than tokend does.
async fn a_forwarded_certificate_must_come_from_tokends_client_ca(backend: Backend) {
    let ca = Ca::new("mesh CA");
    let (app, _files) = mtls_app(backend, &ca).await;
    let admin = app.admin("acme").await;
    let (created, _) = app.create_client(&admin, mtls_client("billing")).await;
    let id = created.client_id.as_str();
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", app.addr))
        .unwrap()
        .local_address(Some(PROXY.parse().unwrap()))
        .tls_config(app.client_tls.clone().unwrap())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut proxy = tokend::proto::token_service_client::TokenServiceClient::new(channel);
    proxy
        .issue_token(forwarded(id_only(id), &xfcc(&ca.workload(SPIFFE_ID))))
        .await
        .expect("a certificate of the client CA, forwarded");
    let stranger = Ca::new("another CA").workload(SPIFFE_ID);
    let err = proxy
        .issue_token(forwarded(id_only(id), &xfcc(&stranger)))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client");
    // Issued by an intermediate of the client CA: it chains with the intermediate the proxy
    // forwards in `Chain`, and not without it.
    let intermediate = ca.intermediate("mesh issuing CA");
    let leaf = intermediate.workload(SPIFFE_ID);
    let chained = format!(
        "{};Chain=\"{}\"",
        xfcc(&leaf),
        urlencode_pem(&format!("{}{}", leaf.cert, intermediate.pem()))
    );
    proxy
        .issue_token(forwarded(id_only(id), &chained))
        .await
        .expect("a certificate of an intermediate, with its chain");
    let err = proxy
        .issue_token(forwarded(id_only(id), &xfcc(&leaf)))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client", "no chain, no issuer");
}

async fn certificate_failures_count_toward_the_lockout(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.server.trusted_proxies = vec![format!("{PROXY}/32")];
        s.secrets.max_failures = 3;
        s.secrets.failure_window_secs = 60;
    })
    .await;
    let admin = app.admin("acme").await;
    let (created, _) = app.create_client(&admin, mtls_client("billing")).await;
    let id = created.client_id.as_str();
    let ca = Ca::new("mesh CA");
    let mut proxy = app.tokens_from(PROXY).await;
    let other = xfcc(&ca.workload("spiffe://prod.example/ns/payments/sa/other"));
    for _ in 0..3 {
        let err = proxy
            .issue_token(forwarded(id_only(id), &other))
            .await
            .unwrap_err();
        assert_eq!(oauth2_error(&err), "invalid_client");
    }
    // Locked: even the right certificate is refused now.
    let err = proxy
        .issue_token(forwarded(id_only(id), &xfcc(&ca.workload(SPIFFE_ID))))
        .await
        .unwrap_err();
    assert_rate_limited(&err);
}

async fn the_subject_metadata_names_the_field_to_fix(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let field = |err: tonic::Status| {
        use tonic_types::StatusExt as _;
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        let details = err.get_error_details();
        let bad = details.bad_request().expect("a BadRequest detail");
        bad.field_violations[0].field.clone()
    };
    let create = |c: Client| {
        let mut clients = app.clients();
        let admin = admin.clone();
        async move {
            clients
                .create_client(authed(CreateClientRequest { client: Some(c) }, &admin))
                .await
                .map(|r| r.into_inner())
        }
    };
    let mut none = mtls_client("none");
    none.tls_client_auth_san_uri = String::new();
    assert_eq!(
        field(create(none).await.unwrap_err()),
        "client.tls_client_auth_subject_dn"
    );
    let mut two = mtls_client("two");
    two.tls_client_auth_san_ip = "10.0.0.1".into();
    assert_eq!(
        field(create(two).await.unwrap_err()),
        "client.tls_client_auth_san_ip"
    );
    let mut no_keys = client("acme", "no-keys", &["read"]);
    no_keys.auth_methods = vec!["self_signed_tls_client_auth".into()];
    assert_eq!(field(create(no_keys).await.unwrap_err()), "client.jwks");
    let mut bad_dn = mtls_client("bad-dn");
    bad_dn.tls_client_auth_san_uri = String::new();
    bad_dn.tls_client_auth_subject_dn = "not a dn".into();
    assert_eq!(
        field(create(bad_dn).await.unwrap_err()),
        "client.tls_client_auth_subject_dn"
    );
}

for_each_backend!(
    a_certificate_without_the_subject_or_an_unlisted_method_is_refused,
    self_signed_certificates_prove_the_client_by_its_key,
    a_forwarded_certificate_must_come_from_tokends_client_ca,
    certificate_failures_count_toward_the_lockout,
    the_subject_metadata_names_the_field_to_fix,
);
