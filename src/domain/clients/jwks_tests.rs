//! Unit tests of a client's JWK Set: what is accepted, and that every refusal names the member.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use serde_json::json;

use super::*;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn ed25519_jwk(kid: &str) -> Value {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pair.public_key().as_ref())})
}

fn p256_jwk(kid: &str) -> Value {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&point[1..33]), "y": b64(&point[33..])})
}

fn rsa_jwk(kid: &str) -> Value {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = pair.public_key();
    json!({
        "kty": "RSA", "kid": kid,
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    })
}

fn set(keys: Vec<Value>) -> String {
    json!({ "keys": keys }).to_string()
}

fn refusal(raw: &str) -> String {
    ClientJwks::parse("client.jwks", raw)
        .unwrap_err()
        .to_string()
}

#[test]
fn public_keys_of_each_type_parse_with_the_algorithms_their_type_allows() {
    let jwks = ClientJwks::parse(
        "client.jwks",
        &set(vec![ed25519_jwk("ed"), p256_jwk("ec"), rsa_jwk("rsa")]),
    )
    .unwrap();
    assert_eq!(
        jwks.select(Some("ed")).unwrap().algorithms,
        [Algorithm::EdDSA]
    );
    assert_eq!(
        jwks.select(Some("ec")).unwrap().algorithms,
        [Algorithm::ES256]
    );
    assert_eq!(
        jwks.select(Some("rsa")).unwrap().algorithms,
        [Algorithm::RS256, Algorithm::PS256]
    );
    assert!(jwks.select(Some("other")).is_none());
    assert!(jwks.select(None).is_none(), "no kid: only a set of one key");
}

#[test]
fn a_key_alg_narrows_its_types_algorithms_and_must_fit_it() {
    let mut key = rsa_jwk("rsa");
    key["alg"] = "PS256".into();
    let jwks = ClientJwks::parse("client.jwks", &set(vec![key.clone()])).unwrap();
    assert_eq!(
        jwks.select(Some("rsa")).unwrap().algorithms,
        [Algorithm::PS256]
    );
    key["alg"] = "HS256".into();
    let err = refusal(&set(vec![key]));
    assert!(err.starts_with("client.jwks.keys[0].alg:"), "{err}");
}

#[test]
fn the_only_key_needs_no_kid_but_several_need_unique_ones() {
    let mut key = ed25519_jwk("x");
    key.as_object_mut().unwrap().remove("kid");
    let jwks = ClientJwks::parse("client.jwks", &set(vec![key.clone()])).unwrap();
    assert!(jwks.select(None).is_some());
    let err = refusal(&set(vec![ed25519_jwk("a"), key]));
    assert!(err.starts_with("client.jwks.keys[1].kid:"), "{err}");
    let err = refusal(&set(vec![ed25519_jwk("a"), p256_jwk("a")]));
    assert!(err.contains("unique"), "{err}");
}

#[test]
fn private_members_are_refused_naming_the_member() {
    for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        let mut key = p256_jwk("ec");
        key[member] = "AAAA".into();
        let err = refusal(&set(vec![key]));
        assert!(
            err.starts_with(&format!("client.jwks.keys[0].{member}:")),
            "{err}"
        );
        assert!(err.contains("public keys only"), "{err}");
    }
    let err = refusal(&set(vec![json!({"kty": "oct", "k": "c2VjcmV0"})]));
    assert!(err.starts_with("client.jwks.keys[0].k:"), "{err}");
}

#[test]
fn weak_malformed_and_unsupported_keys_are_refused() {
    let mut small = rsa_jwk("rsa");
    small["n"] = b64(&[0xc1; 128]).into();
    assert!(refusal(&set(vec![small])).contains("1024 bits"));
    let mut even = rsa_jwk("rsa");
    even["e"] = b64(&[1, 0, 0]).into();
    assert!(refusal(&set(vec![even])).starts_with("client.jwks.keys[0].e:"));
    let mut short = ed25519_jwk("ed");
    short["x"] = b64(&[7; 31]).into();
    assert!(refusal(&set(vec![short])).starts_with("client.jwks.keys[0].x:"));
    let mut curve = p256_jwk("ec");
    curve["crv"] = "secp256k1".into();
    assert!(refusal(&set(vec![curve])).starts_with("client.jwks.keys[0].crv:"));
    let mut enc = p256_jwk("ec");
    enc["use"] = "enc".into();
    assert!(refusal(&set(vec![enc])).starts_with("client.jwks.keys[0].use:"));
    assert!(refusal("not json").contains("is not JSON"));
    assert!(refusal("[]").contains("JWK Set"));
    assert!(refusal(&set(vec![])).contains("1-10 keys"));
    assert!(refusal(&set(vec![json!({"kty": "XYZ"})])).starts_with("client.jwks.keys[0].kty:"));
}

#[test]
fn the_stored_text_is_compact_and_round_trips() {
    let raw = format!(
        "  {}\n",
        serde_json::to_string_pretty(&json!({"keys": [ed25519_jwk("a")]})).unwrap()
    );
    let jwks = ClientJwks::parse("client.jwks", &raw).unwrap();
    assert!(!jwks.as_str().contains('\n'));
    assert_eq!(
        ClientJwks::parse("client.jwks", jwks.as_str()).unwrap(),
        jwks
    );
}
