//! XFCC parsing: Envoy's documented forms, quoting, the certificate and its thumbprint.

use base64::Engine as _;

use super::*;

/// A self-signed certificate (PEM, DER) made here.
fn certificate() -> (String, Vec<u8>) {
    let params = rcgen::CertificateParams::new(vec!["billing.payments.svc".to_owned()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), cert.der().to_vec())
}

/// URL-encodes a PEM as Envoy does for `Cert`.
fn url_encoded(pem: &str) -> String {
    pem.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sha256_hex(der: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn envoys_documented_example_reads() {
    let value = "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject=\"/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client\";URI=spiffe://lyft.com/frontend;DNS=lyft.com;DNS=www.lyft.com";
    let cert = nearest(value).unwrap();
    assert_eq!(cert.by.as_deref(), Some("http://frontend.lyft.com"));
    assert_eq!(
        cert.subject.as_deref(),
        Some("/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client")
    );
    assert_eq!(cert.uris, ["spiffe://lyft.com/frontend"]);
    assert_eq!(cert.dns, ["lyft.com", "www.lyft.com"]);
    assert!(cert.der.is_none());
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        decode_hex("468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688").unwrap(),
    );
    assert_eq!(cert.thumbprint().unwrap(), expected);
}

#[test]
fn the_nearest_proxys_element_is_the_last_and_quotes_hold_separators() {
    let value = "By=spiffe://a;URI=spiffe://first, By=spiffe://b;Subject=\"CN=x, O=\\\"a;b\\\"\";URI=spiffe://second";
    let all = parse(value).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].uris, ["spiffe://first"]);
    let nearest = nearest(value).unwrap();
    assert_eq!(nearest.uris, ["spiffe://second"]);
    assert_eq!(nearest.subject.as_deref(), Some("CN=x, O=\"a;b\""));
}

#[test]
fn a_forwarded_certificate_gives_its_own_thumbprint_and_must_match_hash() {
    let (pem, der) = certificate();
    let value = format!("Hash={};Cert=\"{}\"", sha256_hex(&der), url_encoded(&pem));
    let cert = nearest(&value).unwrap();
    assert_eq!(cert.der.as_deref(), Some(der.as_slice()));
    let thumbprint = cert.thumbprint().unwrap();
    assert_eq!(thumbprint.len(), 43, "SHA-256, base64url without padding");
    let lying = format!("Hash={};Cert=\"{}\"", "00".repeat(32), url_encoded(&pem));
    assert_eq!(
        nearest(&lying).unwrap().thumbprint(),
        Err(XfccError("Hash is not the SHA-256 of Cert"))
    );
}

#[test]
fn unreadable_headers_are_errors_not_empty() {
    for bad in [
        "",
        "URI=\"spiffe://unterminated",
        "Subject=\"a\"b",
        "novalue",
        "Cert=%ZZ",
        "Cert=\"not a pem\"",
        "Cert=\"-----BEGIN CERTIFICATE-----!!!-----END CERTIFICATE-----\"",
    ] {
        assert!(nearest(bad).is_err(), "{bad:?}");
    }
    assert!(parse(&"DNS=a;".repeat(20_000)).is_err(), "too long");
    assert_eq!(
        nearest("URI=spiffe://x").unwrap().thumbprint(),
        Err(XfccError("neither Cert nor Hash"))
    );
    assert_eq!(
        nearest("Hash=abc").unwrap().thumbprint(),
        Err(XfccError("Hash is not SHA-256 hex"))
    );
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;

    proptest! {
        #[test]
        fn arbitrary_values_never_panic(raw in any::<String>()) {
            if let Ok(cert) = nearest(&raw) {
                let _ = cert.thumbprint();
            }
        }

        #[test]
        fn uris_and_dns_names_read_back(uri in "spiffe://[a-z0-9./-]{1,40}", dns in "[a-z0-9.-]{1,40}") {
            let cert = nearest(&format!("URI={uri};DNS={dns}")).unwrap();
            prop_assert_eq!(cert.uris, vec![uri]);
            prop_assert_eq!(cert.dns, vec![dns]);
        }
    }
}
