//! Certificate-bound tokens at the HTTP forward-auth endpoint: the proxy that terminated the
//! client's mTLS forwards its certificate (Envoy's XFCC, RFC 9440 `Client-Cert`, or nginx's
//! `$ssl_client_escaped_cert`), and a bound token passes only with the certificate it is bound
//! to; from a peer that is not a trusted proxy, none of it is believed.

use base64::Engine as _;

use super::*;
use crate::common::Backend;
use crate::forward_auth::proxies::send_from;
use crate::helpers::*;

async fn a_bound_token_passes_forward_auth_only_with_its_certificate(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.server.trusted_proxies = vec![format!("{PROXY}/32")];
        s.ext_authz.forward_auth = true;
    })
    .await;
    let admin = app.admin("acme").await;
    let ca = Ca::new("mesh CA");
    let (ours, theirs) = (ca.workload(SPIFFE_ID), ca.workload(SPIFFE_ID));
    let mut bound = mtls_client("bound");
    bound.tls_client_certificate_bound_access_tokens = true;
    let (created, _) = app.create_client(&admin, bound).await;
    let token = app
        .tokens_from(PROXY)
        .await
        .issue_token(forwarded(id_only(&created.client_id), &xfcc(&ours)))
        .await
        .expect("a bound token")
        .into_inner()
        .access_token;
    let bearer = format!("Bearer {token}");
    let verify = |from: &'static str, cert: Option<(&'static str, String)>| {
        let bearer = bearer.clone();
        let app = &app;
        async move {
            let mut headers = vec![
                ("Authorization", bearer.clone()),
                ("X-Forwarded-Method", "GET".to_owned()),
                ("X-Forwarded-Uri", "/orders/1".to_owned()),
            ];
            headers.extend(cert);
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            send_from(from, app.addr, "GET", "/edge/verify", &headers).await
        }
    };
    let rfc9440 = |leaf: &Leaf| {
        format!(
            ":{}:",
            base64::engine::general_purpose::STANDARD.encode(&leaf.der)
        )
    };
    for cert in [
        ("X-Forwarded-Client-Cert", xfcc(&ours)),
        ("Client-Cert", rfc9440(&ours)),
        ("X-SSL-Client-Cert", urlencode_pem(&ours.cert)),
    ] {
        let name = cert.0;
        let answer = verify(PROXY, Some(cert)).await;
        assert_eq!(answer.status, 200, "{name}: {answer:?}");
        assert_eq!(answer.headers["x-tokend-client-id"], created.client_id);
    }
    // Another certificate, or none: the bound token is not valid here.
    for cert in [Some(("Client-Cert", rfc9440(&theirs))), None] {
        let answer = verify(PROXY, cert).await;
        assert_eq!(answer.status, 401, "{answer:?}");
        assert!(answer.headers["www-authenticate"].contains("invalid_token"));
    }
    // A header that cannot be read is refused, not read as no certificate.
    let answer = verify(PROXY, Some(("Client-Cert", "not base64".into()))).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    // From a peer that is not a trusted proxy, neither the request nor the certificate is
    // believed.
    let answer = verify("127.0.0.1", Some(("Client-Cert", rfc9440(&ours)))).await;
    assert_eq!(answer.status, 403, "{answer:?}");
}

for_each_backend!(a_bound_token_passes_forward_auth_only_with_its_certificate);
