//! `JwtVerifier` against tokens signed with the real key, which black-box tests cannot
//! forge: what must fail even when the signature is good.

use std::sync::{LazyLock, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use proptest::prelude::*;

use super::*;
use crate::domain::clock::ManualClock;
use crate::domain::keys::{Kek, KekSet, SigningAlgorithm};
use crate::domain::keys::{Resealed, SealedSecret, StoredKey};
use crate::store::{KeyStore, StoreResult};

const ISSUER: &str = "urn:tokend:unit";

/// Just enough of a key store for a key ring: rows in memory, no rotation.
#[derive(Default)]
struct MemoryKeys(Mutex<Vec<StoredKey>>);

#[async_trait::async_trait]
impl KeyStore for MemoryKeys {
    async fn insert_first_key(&self, key: &StoredKey) -> StoreResult<bool> {
        let mut rows = self.0.lock().unwrap();
        let first = rows.is_empty();
        if first {
            rows.push(key.clone());
        }
        Ok(first)
    }

    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>> {
        Ok(self.0.lock().unwrap().clone())
    }

    async fn insert_rotated_key(
        &self,
        _key: &StoredKey,
        _newest_kid: &str,
        _retire: &[(String, i64)],
        _audit: &[crate::domain::AuditEvent],
    ) -> StoreResult<bool> {
        unreachable!("these tests never rotate")
    }

    async fn get_sealed_secret(&self, _name: &str) -> StoreResult<Option<SealedSecret>> {
        unreachable!("a key ring alone needs no MAC key")
    }

    async fn list_sealed_secrets(&self) -> StoreResult<Vec<SealedSecret>> {
        unreachable!("a key ring alone needs no MAC key")
    }

    async fn insert_sealed_secret(&self, _secret: &SealedSecret) -> StoreResult<bool> {
        unreachable!("a key ring alone needs no MAC key")
    }

    async fn reseal(
        &self,
        _keys: &[Resealed],
        _secrets: &[Resealed],
        _kek_id: &str,
        _audit: &[crate::domain::AuditEvent],
    ) -> StoreResult<bool> {
        unreachable!("these tests never rotate the KEK")
    }
}

/// One EdDSA verifier for the whole test binary: key generation is the slow part.
static VERIFIER: LazyLock<JwtVerifier> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let (kek, _) = Kek::generate().unwrap();
    let ring = runtime.block_on(KeyRing::load_or_create(
        &MemoryKeys::default(),
        Arc::new(KekSet::from(kek)),
        SigningAlgorithm::EdDsa,
        clock,
    ));
    JwtVerifier {
        keys: Arc::new(ring.unwrap()),
        issuer: ISSUER.into(),
    }
});

fn kid() -> String {
    VERIFIER.keys.signing_key().kid.clone()
}

/// A header naming our key, with `typ`.
fn header(typ: &str) -> String {
    serde_json::json!({"alg": "EdDSA", "typ": typ, "kid": kid()}).to_string()
}

/// The claims of a well-formed token, as JSON text; `iss` as given.
fn claims(iss: &str) -> String {
    serde_json::json!({"iss": iss, "sub": "c", "aud": [ISSUER], "exp": 4_000_000_000i64,
        "iat": 1, "nbf": 1, "jti": "j", "client_id": "c", "scope": "read", "tenant": "acme"})
    .to_string()
}

/// Header and claims exactly as given (duplicate members survive), signed with our key.
fn signed(header: &str, claims: &str) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = VERIFIER.keys.signing_key();
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), key.encoding_key(), Algorithm::EdDSA);
    format!("{message}.{}", signature.unwrap())
}

fn verifies(token: &str) -> bool {
    VERIFIER.verify(token).is_some()
}

#[test]
fn a_well_formed_token_verifies() {
    let verified = VERIFIER.verify(&signed(&header("at+jwt"), &claims(ISSUER)));
    assert_eq!(verified.unwrap().tenant, "acme");
    assert!(verifies(&signed(
        &header("application/AT+JWT"),
        &claims(ISSUER)
    )));
}

#[test]
fn a_good_signature_without_our_typ_is_refused() {
    for header in [
        header("JWT"),
        header("jwt"),
        header(""),
        header("at+jwt "),
        serde_json::json!({"alg": "EdDSA", "kid": kid()}).to_string(),
    ] {
        assert!(!verifies(&signed(&header, &claims(ISSUER))), "{header}");
    }
}

#[test]
fn a_good_signature_without_a_kid_is_refused() {
    let header = r#"{"alg":"EdDSA","typ":"at+jwt"}"#;
    assert!(!verifies(&signed(header, &claims(ISSUER))));
}

#[test]
fn duplicated_claims_are_refused_even_when_signed() {
    // RFC 7519 section 4: reject, or take the last. Two parsers taking different ones of
    // two `exp`s is how a token outlives its expiry; tokend rejects.
    let good = claims(ISSUER);
    for (name, value) in [
        ("exp", "9999999999"),
        ("client_id", "\"someone-else\""),
        ("tenant", "\"system\""),
        ("iss", "\"urn:evil\""),
        ("scope", "\"tokend.admin\""),
    ] {
        let doubled = good.replacen('{', &format!("{{\"{name}\":{value},"), 1);
        assert!(!verifies(&signed(&header("at+jwt"), &doubled)), "{name}");
    }
}

#[test]
fn duplicated_header_members_are_refused_even_when_signed() {
    let kid = kid();
    for header in [
        format!(r#"{{"alg":"EdDSA","typ":"JWT","typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"other","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"HS256","alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#),
    ] {
        assert!(!verifies(&signed(&header, &claims(ISSUER))), "{header}");
    }
}

#[test]
fn an_alg_other_than_the_keys_is_refused() {
    // HS256 keyed with the public key (the classic confusion), and every other alg
    // tokend knows, each over our kid.
    let key = VERIFIER.keys.signing_key();
    let x = URL_SAFE_NO_PAD
        .decode(key.jwk.x.as_deref().unwrap())
        .unwrap();
    let kid = kid();
    for secret in [x.clone(), key.jwk.x.clone().unwrap().into_bytes()] {
        let header = format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#);
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD.encode(claims(ISSUER))
        );
        let hmac = jsonwebtoken::EncodingKey::from_secret(&secret);
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &hmac, Algorithm::HS256);
        assert!(!verifies(&format!("{message}.{}", sig.unwrap())));
    }
    let token = signed(&header("at+jwt"), &claims(ISSUER));
    let (_, rest) = token.split_once('.').unwrap();
    for alg in ["ES256", "RS256", "HS256", "PS256", "none"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}"#);
        let swapped = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header));
        assert!(!verifies(&swapped), "{alg}");
    }
}

#[test]
fn tokens_over_the_size_cap_are_refused_unparsed() {
    let padded = claims(ISSUER).replacen(
        '{',
        &format!("{{\"pad\":\"{}\",", "x".repeat(MAX_TOKEN_LEN)),
        1,
    );
    assert!(!verifies(&signed(&header("at+jwt"), &padded)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_strings_never_verify(token in any::<String>()) {
        prop_assert!(VERIFIER.verify(&token).is_none());
    }

    #[test]
    fn arbitrary_jwt_shaped_input_never_verifies(
        header in prop_oneof![
            any::<Vec<u8>>(),
            r#"\{"alg":"(EdDSA|none|HS256)","typ":"at\+jwt","kid":"[a-z0-9./']{0,40}"\}"#
                .prop_map(String::into_bytes),
        ],
        claims in any::<Vec<u8>>(),
        signature in any::<Vec<u8>>(),
    ) {
        let token = [header, claims, signature].map(|p| URL_SAFE_NO_PAD.encode(p)).join(".");
        prop_assert!(VERIFIER.verify(&token).is_none());
    }

    #[test]
    fn changing_any_one_character_breaks_a_good_token(
        at in any::<prop::sample::Index>(),
        with in r"[A-Za-z0-9_.=+/-]",
    ) {
        let token = signed(&header("at+jwt"), &claims(ISSUER));
        let at = at.index(token.len());
        let with = with.chars().next().unwrap();
        prop_assume!(token.as_bytes()[at] != with as u8);
        let mut changed = token.into_bytes();
        changed[at] = with as u8;
        prop_assert!(VERIFIER.verify(&String::from_utf8(changed).unwrap()).is_none());
    }

    #[test]
    fn only_the_access_token_typ_verifies(
        typ in prop_oneof![r"[ -~]{0,20}", "(application/)?[aA][tT]\\+[jJ][wW][tT]"],
    ) {
        let lower = typ.to_ascii_lowercase();
        let ours = lower == "at+jwt" || lower == "application/at+jwt";
        prop_assert_eq!(verifies(&signed(&header(&typ), &claims(ISSUER))), ours);
    }

    #[test]
    fn only_our_issuer_verifies(iss in prop_oneof![".{0,40}", "urn:tokend:unit.?"]) {
        let ours = iss == ISSUER;
        prop_assert_eq!(verifies(&signed(&header("at+jwt"), &claims(&iss))), ours);
    }
}
