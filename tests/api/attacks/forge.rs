//! The attacker's tools: keys of its own, genuine tokens taken apart, every forgery built from
//! one, and deterministic garbage.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tokend::proto::Jwk;

use crate::helpers::ISSUER;

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url segment")
}

/// The attacker's own keys, one per algorithm tokend knows.
pub struct Attacker {
    ed: Ed25519KeyPair,
    ec: EcdsaKeyPair,
    rsa: RsaKeyPair,
}

impl Attacker {
    pub fn new() -> Self {
        Self {
            ed: Ed25519KeyPair::generate().unwrap(),
            ec: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            rsa: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
        }
    }

    fn ed(&self, message: &[u8]) -> Vec<u8> {
        self.ed.sign(message).as_ref().to_vec()
    }

    fn ec(&self, message: &[u8]) -> Vec<u8> {
        let signature = self.ec.sign(&SystemRandom::new(), message).unwrap();
        signature.as_ref().to_vec()
    }

    fn rsa(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.rsa.public_modulus_len()];
        let rng = SystemRandom::new();
        let signed = self
            .rsa
            .sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature);
        signed.unwrap();
        signature
    }
}

/// An HMAC (HS256 or HS512) keyed with `secret`.
fn hmac(algorithm: aws_lc_rs::hmac::Algorithm, secret: &[u8], message: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(algorithm, secret);
    aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
}

/// A compact JWS of the JSON texts as given (duplicate members survive), signed by `sign`.
fn jws(header: &str, claims: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let signature = sign(message.as_bytes());
    format!("{message}.{}", b64(signature))
}

/// A genuine token taken apart.
pub struct Genuine {
    pub token: String,
    /// The three segments as sent.
    pub h: String,
    pub c: String,
    pub s: String,
    pub header: Value,
    pub claims: Value,
    pub kid: String,
}

impl Genuine {
    pub fn new(token: &str) -> Self {
        let parts: Vec<&str> = token.split('.').collect();
        let [h, c, s] = parts[..] else {
            panic!("not a JWS: {token}")
        };
        let header: Value = serde_json::from_slice(&unb64(h)).unwrap();
        let claims: Value = serde_json::from_slice(&unb64(c)).unwrap();
        Self {
            token: token.to_owned(),
            kid: header["kid"].as_str().unwrap().to_owned(),
            h: h.to_owned(),
            c: c.to_owned(),
            s: s.to_owned(),
            header,
            claims,
        }
    }

    /// The genuine header and signature around other claims: the signature cannot match.
    fn with_claims(&self, claims: &str) -> String {
        format!("{}.{}.{}", self.h, b64(claims), self.s)
    }

    /// Other header, genuine claims and signature.
    fn with_header(&self, header: &str) -> String {
        format!("{}.{}.{}", b64(header), self.c, self.s)
    }

    /// The claims JSON with `name` set to `value`.
    fn claims_with(&self, name: &str, value: Value) -> String {
        let mut claims = self.claims.clone();
        claims[name] = value;
        claims.to_string()
    }

    /// The claims JSON with a second `name` member, after the genuine one or before it.
    fn doubled_claim(&self, name: &str, value: &str, last: bool) -> String {
        let text = self.claims.to_string();
        if last {
            format!("{},\"{name}\":{value}}}", &text[..text.len() - 1])
        } else {
            format!("{{\"{name}\":{value},{}", &text[1..])
        }
    }
}

/// A JOSE header; `kid: None` leaves it out.
fn header(alg: &str, typ: &str, kid: Option<Value>) -> String {
    let mut header = json!({"alg": alg, "typ": typ});
    if let Some(kid) = kid {
        header["kid"] = kid;
    }
    header.to_string()
}

/// Every forgery of `genuine` (a token of the server's key `jwk`), each with what it tries.
pub fn forgeries(genuine: &Genuine, jwk: &Jwk, attacker: &Attacker) -> Vec<(String, String)> {
    let g = genuine;
    let kid = || Some(Value::from(g.kid.as_str()));
    let claims = g.claims.to_string();
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut add = |what: &str, token: String| cases.push((what.to_owned(), token));

    // alg none: unsigned, with an empty signature or the genuine one left in place.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let none = header(alg, "at+jwt", kid());
        add(&format!("alg {alg}"), format!("{}.{}.", b64(&none), g.c));
        add(&format!("alg {alg}, old signature"), g.with_header(&none));
        add(
            &format!("alg {alg}, no kid"),
            format!("{}.{}.", b64(header(alg, "at+jwt", None)), g.c),
        );
    }

    // HMAC keyed with the public key, in every form it is published or commonly held in.
    let x = unb64(&jwk.x);
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(&x);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(&spki)
    );
    let jwk_json = json!({"kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "kid": jwk.kid}).to_string();
    let secrets: [(&str, &[u8]); 6] = [
        ("raw x", &x),
        ("x as base64url", jwk.x.as_bytes()),
        ("SPKI DER", &spki),
        ("PEM", pem.as_bytes()),
        ("PEM without newline", pem.trim_end().as_bytes()),
        ("JWK JSON", jwk_json.as_bytes()),
    ];
    for (form, secret) in secrets {
        for (alg, algorithm) in [
            ("HS256", aws_lc_rs::hmac::HMAC_SHA256),
            ("HS512", aws_lc_rs::hmac::HMAC_SHA512),
        ] {
            let forged = jws(&header(alg, "at+jwt", kid()), &claims, |m| {
                hmac(algorithm, secret, m)
            });
            add(&format!("{alg} keyed with the public key ({form})"), forged);
        }
    }

    // A header alg other than the kid's (EdDSA), with a real signature of that alg; and the
    // kid's own alg with the attacker's key.
    add(
        "ES256 on the EdDSA kid",
        jws(&header("ES256", "at+jwt", kid()), &claims, |m| {
            attacker.ec(m)
        }),
    );
    add(
        "RS256 on the EdDSA kid",
        jws(&header("RS256", "at+jwt", kid()), &claims, |m| {
            attacker.rsa(m)
        }),
    );
    add(
        "PS256 on the EdDSA kid",
        jws(&header("PS256", "at+jwt", kid()), &claims, |m| {
            attacker.rsa(m)
        }),
    );
    add(
        "EdDSA by another key",
        jws(&header("EdDSA", "at+jwt", kid()), &claims, |m| {
            attacker.ed(m)
        }),
    );

    // Kids that name no key, some built to hurt a careless lookup.
    let kids = [
        (
            "unknown kid",
            json!(uuid::Uuid::new_v4().simple().to_string()),
        ),
        ("path traversal kid", json!("../../etc/passwd")),
        ("SQL kid", json!("' OR 1=1 --")),
        ("10 KB kid", json!("k".repeat(10 * 1024))),
        ("empty kid", json!("")),
        ("numeric kid", json!(1)),
        ("null kid", Value::Null),
        ("kid with NUL", json!(format!("{}\u{0}", g.kid))),
        (
            "kid with a suffix",
            json!(format!("{}/../{}", g.kid, g.kid)),
        ),
        ("kid in upper case", json!(g.kid.to_uppercase())),
    ];
    for (what, kid) in kids {
        add(
            what,
            jws(&header("EdDSA", "at+jwt", Some(kid)), &claims, |m| {
                attacker.ed(m)
            }),
        );
    }
    add(
        "no kid",
        jws(&header("EdDSA", "at+jwt", None), &claims, |m| {
            attacker.ed(m)
        }),
    );

    // typ other than at+jwt: the genuine header re-encoded (the signature no longer matches)
    // and signed by the attacker under the server's kid.
    for typ in [Some("JWT"), None, Some(""), Some("at+jwt+evil")] {
        let mut changed = g.header.clone();
        match typ {
            Some(typ) => changed["typ"] = typ.into(),
            None => {
                changed.as_object_mut().unwrap().remove("typ");
            }
        }
        let changed = changed.to_string();
        add(&format!("typ {typ:?}, re-encoded"), g.with_header(&changed));
        add(
            &format!("typ {typ:?}, attacker-signed"),
            jws(&changed, &claims, |m| attacker.ed(m)),
        );
    }

    // Claims an attacker wants, over the genuine signature and signed by the attacker, under
    // the server's kid and under an unknown one. Exp and nbf are signed with a key published
    // nowhere, so they prove only that the signature comes first; the clock's own checks are
    // tested with genuine tokens below.
    let year = 365 * 24 * 3600;
    let exp = g.claims["exp"].as_i64().unwrap();
    let privileged = {
        let mut c = g.claims.clone();
        c["scope"] = "tokend.admin tokend.introspect".into();
        c["tenant"] = "system".into();
        c["exp"] = (exp + year).into();
        c.to_string()
    };
    let variations = [
        (
            "iss of another tokend",
            g.claims_with("iss", json!("urn:tokend:elsewhere")),
        ),
        (
            "iss as an array",
            g.claims_with("iss", json!([ISSUER, "urn:evil"])),
        ),
        (
            "aud of another service",
            g.claims_with("aud", json!(["https://elsewhere"])),
        ),
        ("exp in the past", g.claims_with("exp", json!(exp - year))),
        ("exp a year on", g.claims_with("exp", json!(exp + year))),
        (
            "exp far out of range",
            g.claims_with("exp", json!(u64::MAX)),
        ),
        (
            "exp as a string",
            g.claims_with("exp", json!(exp.to_string())),
        ),
        ("nbf in the future", g.claims_with("nbf", json!(exp + year))),
        (
            "client of another tenant",
            g.claims_with("tenant", json!("acme")),
        ),
        (
            "scope widened",
            g.claims_with("scope", json!("tokend.admin tokend.introspect *")),
        ),
        (
            "generation from the future",
            g.claims_with("gen", json!(i64::MAX)),
        ),
        ("system admin for a year", privileged),
    ];
    let unknown = Some(json!("attacker"));
    for (what, changed) in variations {
        add(
            &format!("{what}, genuine signature"),
            g.with_claims(&changed),
        );
        let server_kid = header("EdDSA", "at+jwt", kid());
        add(
            &format!("{what}, attacker-signed"),
            jws(&server_kid, &changed, |m| attacker.ed(m)),
        );
        let own_kid = header("EdDSA", "at+jwt", unknown.clone());
        add(
            &format!("{what}, attacker's kid"),
            jws(&own_kid, &changed, |m| attacker.ed(m)),
        );
    }

    // Duplicated claims: many JSON parsers keep the last, some the first.
    let far = (exp + year).to_string();
    for (name, value) in [
        ("exp", far.as_str()),
        ("client_id", "\"00000000-0000-7000-8000-000000000000\""),
        ("tenant", "\"system\""),
        ("scope", "\"tokend.admin\""),
        ("iss", "\"urn:evil\""),
    ] {
        for last in [true, false] {
            let doubled = g.doubled_claim(name, value, last);
            add(
                &format!("{name} twice (last: {last})"),
                g.with_claims(&doubled),
            );
            let server_kid = header("EdDSA", "at+jwt", kid());
            add(
                &format!("{name} twice, attacker-signed"),
                jws(&server_kid, &doubled, |m| attacker.ed(m)),
            );
        }
    }

    // Truncated.
    let t = &g.token;
    for (what, token) in [
        ("last character cut", t[..t.len() - 1].to_owned()),
        ("signature cut short", t[..t.len() - 10].to_owned()),
        ("half a token", t[..t.len() / 2].to_owned()),
        ("header only", g.h.clone()),
        ("header and claims", format!("{}.{}", g.h, g.c)),
        ("empty signature", format!("{}.{}.", g.h, g.c)),
        ("empty claims", format!("{}..{}", g.h, g.s)),
        ("empty header", format!(".{}.{}", g.c, g.s)),
        ("empty", String::new()),
        ("dots", "...".into()),
        ("two dots", "..".into()),
    ] {
        add(what, token);
    }

    // Extra segments.
    for (what, token) in [
        ("trailing dot", format!("{t}.")),
        ("signature twice", format!("{t}.{}", g.s)),
        ("header twice", format!("{}.{t}", g.h)),
        ("claims twice", format!("{}.{}.{}.{}", g.h, g.c, g.c, g.s)),
        ("five segments (JWE shape)", format!("{t}.{}.{}", g.s, g.s)),
    ] {
        add(what, token);
    }

    // Not base64url, or not the strict unpadded form.
    let standard_alphabet = t.replace('-', "+").replace('_', "/");
    let padded = |s: &str| format!("{s}{}", "=".repeat((4 - s.len() % 4) % 4));
    for (what, token) in [
        ("padded signature", format!("{}.{}.{}=", g.h, g.c, g.s)),
        (
            "padded segments",
            format!("{}.{}.{}", padded(&g.h), padded(&g.c), padded(&g.s)),
        ),
        ("symbols", "!!!.@@@.###".into()),
        (
            "star in the signature",
            format!("{}.{}.*{}", g.h, g.c, &g.s[1..]),
        ),
        ("space inside", format!("{}.{} .{}", g.h, g.c, g.s)),
        ("non-ASCII", format!("{t}é")),
        ("NUL byte", format!("{}\u{0}.{}.{}", g.h, g.c, g.s)),
        ("newline", format!("{}.{}\n.{}", g.h, g.c, g.s)),
        ("percent-encoded", t.replace('.', "%2E")),
        (
            "raw JSON segments",
            format!("{}.{}.{}", g.header, g.claims, g.s),
        ),
    ] {
        add(what, token);
    }
    if standard_alphabet != *t {
        add("standard base64 alphabet", standard_alphabet);
    }

    // One flipped bit: of the signature (first and last byte) and of the claims.
    let flip = |segment: &str, byte: usize, bit: u8| {
        let mut bytes = unb64(segment);
        let at = byte.min(bytes.len() - 1);
        bytes[at] ^= bit;
        b64(bytes)
    };
    add(
        "signature bit flipped (first byte)",
        format!("{}.{}.{}", g.h, g.c, flip(&g.s, 0, 1)),
    );
    add(
        "signature bit flipped (last byte)",
        format!("{}.{}.{}", g.h, g.c, flip(&g.s, usize::MAX, 0x80)),
    );
    add(
        "claims bit flipped",
        format!("{}.{}.{}", g.h, flip(&g.c, 20, 4), g.s),
    );
    add(
        "header bit flipped",
        format!("{}.{}.{}", flip(&g.h, 2, 1), g.c, g.s),
    );

    cases
}

/// Deterministic garbage (xorshift), so a failure replays.
pub struct Garbage(pub u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Random printable text, random bytes as JWT segments, or mangled genuine segments; up
    /// to ~10 KB, so some are over the size cap.
    pub fn token(&mut self, genuine: &Genuine) -> String {
        let len = (self.next() % 10_000) as usize;
        match self.next() % 4 {
            0 => self
                .bytes(len)
                .iter()
                .map(|b| char::from(b' ' + b % 95))
                .collect(),
            1 => [self.bytes(len / 3), self.bytes(len / 3), self.bytes(64)]
                .map(b64)
                .join("."),
            2 => format!("{}.{}.{}", genuine.h, b64(self.bytes(len)), genuine.s),
            _ => String::from_utf8_lossy(&self.bytes(len)).into_owned(),
        }
    }
}
