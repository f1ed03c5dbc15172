use rcgen::{CertificateParams, DnType, KeyPair, SanType};

use super::*;
use crate::domain::clients::ClientJwks;

fn cert(key: &KeyPair) -> Vec<u8> {
    let mut params = CertificateParams::new(vec!["billing.example".to_owned()]).unwrap();
    // Least specific first, as CAs encode it (rcgen starts with a CN of its own).
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example, Inc.");
    params
        .distinguished_name
        .push(DnType::CommonName, "billing");
    params.subject_alt_names.extend([
        SanType::URI(
            "spiffe://prod.example/ns/payments/sa/billing"
                .try_into()
                .unwrap(),
        ),
        SanType::IpAddress("10.1.2.3".parse().unwrap()),
        SanType::Rfc822Name("billing@example.com".try_into().unwrap()),
    ]);
    params.self_signed(key).unwrap().der().to_vec()
}

#[test]
fn a_certificate_says_its_subject_names_key_and_thumbprint() {
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let der = cert(&key);
    let parsed = ClientCertificate::from_der(&der, CertificateSource::Handshake).unwrap();
    assert_eq!(parsed.thumbprint(), thumbprint(&der));
    assert!(is_thumbprint(parsed.thumbprint()));
    assert_eq!(parsed.subject().to_string(), "CN=billing,O=Example\\, Inc.");
    let dn = |raw| SubjectBinding::Dn(DistinguishedName::parse("f", raw).unwrap());
    for binding in [
        dn("CN=billing,O=Example\\, Inc."),
        dn("cn = Billing , organizationName=example\\2C inc."),
        dn("2.5.4.3=billing,O=Example\\, Inc."),
        SubjectBinding::Dns("BILLING.example".into()),
        SubjectBinding::Uri("spiffe://prod.example/ns/payments/sa/billing".into()),
        SubjectBinding::Ip("10.1.2.3".parse().unwrap()),
        SubjectBinding::Email("billing@example.com".into()),
    ] {
        assert!(binding.matches(&parsed), "{binding:?}");
    }
    for binding in [
        dn("CN=billing"),
        dn("O=Example\\, Inc.,CN=billing"),
        dn("CN=billing2,O=Example\\, Inc."),
        SubjectBinding::Dns("other.example".into()),
        SubjectBinding::Uri("spiffe://prod.example/ns/payments/sa/other".into()),
        SubjectBinding::Ip("10.1.2.4".parse().unwrap()),
        SubjectBinding::Email("other@example.com".into()),
    ] {
        assert!(!binding.matches(&parsed), "{binding:?}");
    }
    assert!(ClientCertificate::from_der(b"junk", CertificateSource::Proxy).is_err());
}

#[test]
fn a_self_signed_certificate_key_is_found_in_the_jwks_that_holds_it() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ec = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = ec.public_key_raw();
    let jwks = |keys: serde_json::Value| {
        ClientJwks::parse("jwks", &serde_json::json!({ "keys": keys }).to_string()).unwrap()
    };
    let ed_jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed",
        "x": b64(ed.public_key_raw())});
    let ec_jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "ec",
        "x": b64(&point[1..33]), "y": b64(&point[33..])});
    let both = jwks(serde_json::json!([ed_jwk.clone(), ec_jwk]));
    let only_ed = jwks(serde_json::json!([ed_jwk]));
    for (key, in_only_ed) in [(&ed, true), (&ec, false)] {
        let parsed = ClientCertificate::from_der(&cert(key), CertificateSource::Proxy).unwrap();
        let material = parsed.key().expect("a key a JWK can hold");
        assert!(both.contains(material));
        assert_eq!(only_ed.contains(material), in_only_ed);
    }
}

#[test]
fn dns_are_parsed_or_refused_naming_the_field() {
    let dn = DistinguishedName::parse("f", "CN=a+UID=7,DC=example,DC=com").unwrap();
    assert_eq!(dn.to_string(), "CN=a+UID=7,DC=example,DC=com");
    assert!(dn.same_as(&DistinguishedName::parse("f", "UID=7+CN=A,DC=example,DC=com").unwrap()));
    for bad in ["", "CN", "CN=", "=x", "CN=a\\"] {
        let err = DistinguishedName::parse("client.dn", bad).unwrap_err();
        assert!(err.to_string().starts_with("client.dn:"), "{bad:?}: {err}");
    }
    assert!(!is_thumbprint("short"));
}
