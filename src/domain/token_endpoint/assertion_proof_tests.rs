//! Unit tests of the assertion rules: every claim, the key choice and the algorithm binding.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;

const ID: &str = "0190a8e2-3c4d-7e5f-8a9b-0c1d2e3f4a5b";
const NOW: i64 = 1_800_000_000;
const LEEWAY: Duration = Duration::from_secs(5);

struct Keys {
    jwks: ClientJwks,
    ed: EncodingKey,
    ec: EncodingKey,
    /// The Ed25519 public key's raw bytes.
    ed_public: Vec<u8>,
}

fn keys() -> Keys {
    let rng = SystemRandom::new();
    let ed_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).unwrap();
    let ec_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec_pkcs8.as_ref()).unwrap();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let point = ec.public_key().as_ref();
    let set = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(ed.public_key().as_ref())},
        {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&point[1..33]), "y": b64(&point[33..])},
    ]});
    Keys {
        jwks: ClientJwks::parse("jwks", &set.to_string()).unwrap(),
        ed: EncodingKey::from_ed_der(ed_pkcs8.as_ref()),
        ec: EncodingKey::from_ec_der(ec_pkcs8.as_ref()),
        ed_public: ed.public_key().as_ref().to_vec(),
    }
}

fn rules() -> AssertionRules {
    AssertionRules::new(
        "urn:tokend",
        Some("https://auth.example/"),
        DEFAULT_ASSERTION_LIFETIME,
    )
}

fn claims() -> Value {
    json!({"iss": ID, "sub": ID, "aud": "urn:tokend", "iat": NOW, "exp": NOW + 60, "jti": "j1"})
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn check(k: &Keys, assertion: &str) -> Result<Spent, &'static str> {
    rules().check(&k.jwks, assertion, ID, NOW, LEEWAY)
}

#[test]
fn a_good_assertion_passes_with_either_key_and_is_spent_until_exp() {
    let k = keys();
    let spent = check(&k, &sign(Algorithm::EdDSA, Some("ed"), &k.ed, &claims())).unwrap();
    assert_eq!(
        spent,
        Spent {
            jti: "j1".into(),
            expire_us: (NOW + 65) * 1_000_000
        }
    );
    let mut c = claims();
    c["aud"] = json!(["https://other", "https://auth.example/oauth2/token"]);
    check(&k, &sign(Algorithm::ES256, Some("ec"), &k.ec, &c)).unwrap();
}

#[test]
fn the_audiences_are_the_issuer_and_the_token_endpoint_urls() {
    assert_eq!(
        rules().audiences,
        ["urn:tokend", "https://auth.example/oauth2/token"]
    );
    let web = AssertionRules::new("https://auth.example", None, DEFAULT_ASSERTION_LIFETIME);
    assert_eq!(
        web.audiences,
        ["https://auth.example", "https://auth.example/oauth2/token"]
    );
}

#[test]
fn each_claim_is_checked() {
    let k = keys();
    let refused = |change: &dyn Fn(&mut Value)| {
        let mut c = claims();
        change(&mut c);
        check(&k, &sign(Algorithm::EdDSA, Some("ed"), &k.ed, &c)).unwrap_err()
    };
    assert_eq!(
        refused(&|c| c["iss"] = "other".into()),
        "iss or sub is not the client_id"
    );
    assert_eq!(
        refused(&|c| c["sub"] = "other".into()),
        "iss or sub is not the client_id"
    );
    assert_eq!(
        refused(&|c| c["aud"] = "https://elsewhere/token".into()),
        "aud does not name tokend"
    );
    assert_eq!(
        refused(&|c| {
            c.as_object_mut().unwrap().remove("aud");
        }),
        "aud does not name tokend"
    );
    assert_eq!(
        refused(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
        "no exp"
    );
    assert_eq!(refused(&|c| c["exp"] = (NOW - 5).into()), "expired");
    assert_eq!(
        refused(&|c| c["nbf"] = (NOW + 30).into()),
        "not yet valid (nbf)"
    );
    assert_eq!(
        refused(&|c| c["iat"] = (NOW + 30).into()),
        "issued in the future (iat)"
    );
    assert_eq!(
        refused(&|c| c["exp"] = (NOW + 301).into()),
        "lives longer than assertions.max_lifetime_secs"
    );
    assert_eq!(
        refused(&|c| {
            c["iat"] = (NOW - 200).into();
            c["exp"] = (NOW + 101).into();
        }),
        "lives longer than assertions.max_lifetime_secs"
    );
    assert_eq!(
        refused(&|c| {
            c.as_object_mut().unwrap().remove("jti");
        }),
        "no jti, or one too long"
    );
    assert_eq!(
        refused(&|c| c["exp"] = "soon".into()),
        "bad signature or malformed claims"
    );
}

#[test]
fn without_iat_the_lifetime_counts_from_now_and_the_leeway_holds() {
    let k = keys();
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iat");
    c["exp"] = (NOW + 300).into();
    check(&k, &sign(Algorithm::EdDSA, Some("ed"), &k.ed, &c)).unwrap();
    c["exp"] = (NOW - 4).into();
    check(&k, &sign(Algorithm::EdDSA, Some("ed"), &k.ed, &c)).unwrap();
}

#[test]
fn the_key_is_chosen_by_kid_and_binds_the_algorithm() {
    let k = keys();
    let c = claims();
    assert_eq!(
        check(&k, &sign(Algorithm::EdDSA, Some("nope"), &k.ed, &c)).unwrap_err(),
        "no such key"
    );
    assert_eq!(
        check(&k, &sign(Algorithm::EdDSA, None, &k.ed, &c)).unwrap_err(),
        "no such key"
    );
    // The EC key's signature presented as the Ed25519 key's: the signature fails.
    assert!(check(&k, &sign(Algorithm::ES256, Some("ed"), &k.ec, &c)).is_err());
    // HMAC keyed with the public key's bytes: no key allows HS256.
    let hmac = EncodingKey::from_secret(&k.ed_public);
    assert_eq!(
        check(&k, &sign(Algorithm::HS256, Some("ed"), &hmac, &c)).unwrap_err(),
        "algorithm does not fit the key"
    );
    // RS256 named on an EC key: refused before any signature check.
    let good = sign(Algorithm::ES256, Some("ec"), &k.ec, &c);
    let forged = format!(
        "{}.{}",
        part(&json!({"alg": "RS256", "kid": "ec"})),
        rest(&good)
    );
    assert_eq!(
        check(&k, &forged).unwrap_err(),
        "algorithm does not fit the key"
    );
}

#[test]
fn none_and_oversized_assertions_are_refused_before_any_verification() {
    let k = keys();
    let unsigned = format!(
        "{}.{}.",
        part(&json!({"alg": "none", "kid": "ed"})),
        part(&claims())
    );
    assert_eq!(check(&k, &unsigned).unwrap_err(), "malformed header");
    let huge = format!(
        "{}.{}.x",
        part(&json!({"alg": "EdDSA"})),
        "a".repeat(MAX_ASSERTION_LEN)
    );
    assert_eq!(check(&k, &huge).unwrap_err(), "assertion too long");
    assert_eq!(check(&k, "not a jwt").unwrap_err(), "malformed header");
}

fn part(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A JWT's payload and signature, without its header.
fn rest(jwt: &str) -> &str {
    jwt.split_once('.').unwrap().1
}

#[test]
fn rsa_keys_verify_rs256_and_ps256_and_nothing_else() {
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair};
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = pair.public_key();
    let set = json!({"keys": [{
        "kty": "RSA", "kid": "rsa",
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    }]});
    let jwks = ClientJwks::parse("jwks", &set.to_string()).unwrap();
    // Signed by hand with aws-lc-rs: jsonwebtoken wants a PKCS#1 document to sign with.
    let sign_rsa = |alg: &str, padding: &'static dyn RsaEncoding| {
        let input = format!(
            "{}.{}",
            part(&json!({"alg": alg, "kid": "rsa"})),
            part(&claims())
        );
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(
            padding,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    };
    let check = |assertion: &str| rules().check(&jwks, assertion, ID, NOW, LEEWAY);
    check(&sign_rsa("RS256", &RSA_PKCS1_SHA256)).unwrap();
    check(&sign_rsa("PS256", &RSA_PSS_SHA256)).unwrap();
    // A PKCS#1 signature labelled PS256 fails; RS512 is not an algorithm tokend accepts.
    assert!(check(&sign_rsa("PS256", &RSA_PKCS1_SHA256)).is_err());
    assert_eq!(
        check(&sign_rsa("RS512", &RSA_PKCS1_SHA256)).unwrap_err(),
        "algorithm does not fit the key"
    );
}
