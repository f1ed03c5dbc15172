//! Client certificates (RFC 8705): what a presented certificate says ([`ClientCertificate`],
//! read once from its DER by the front end that received it, over tokend's own TLS or from a
//! trusted proxy), and the one subject value a `tls_client_auth` client is bound to
//! ([`SubjectBinding`], RFC 8705 section 2.1.2).
//!
//! Whether the certificate chains to a trusted CA is not decided here: the TLS handshake (or
//! the proxy, or the front end checking a forwarded certificate) did that before a
//! `ClientCertificate` is made.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

use super::jwks::KeyMaterial;
use crate::domain::error::{Error, Result};

/// Longest subject value a client may be bound to.
const MAX_SUBJECT: usize = 1024;

/// Where a client certificate came from, which decides who vouched for its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateSource {
    /// tokend's own TLS handshake, which verified the chain against `server.tls.client_ca_file`.
    Handshake,
    /// A proxy in `server.trusted_proxies`, in `x-forwarded-client-cert`: the proxy verified
    /// it; tokend checks it against `client_ca_file` too when one is configured.
    Proxy,
}

/// The CA certificates a `tls_client_auth` certificate must chain to
/// (`server.tls.client_ca_file`), for a certificate a proxy forwarded: one from tokend's own
/// handshake was checked there already. Implemented where the TLS files are (`server`).
pub trait ClientCa: Send + Sync + fmt::Debug {
    /// Whether the DER certificate chains to one of the CAs, through `intermediates` (DER) if
    /// needed, valid now, for client auth.
    fn issued(&self, der: &[u8], intermediates: &[Vec<u8>]) -> bool;

    /// Whether tokend's own handshake checked the issuer of the certificates it accepted
    /// (`false` with `server.tls.client_auth = "any"`, which accepts any certificate).
    fn handshake_verified(&self) -> bool {
        true
    }
}

/// A client certificate as the token endpoint and introspection need it: its SHA-256
/// thumbprint (RFC 8705 `x5t#S256`), subject DN, subject alternative names and public key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    der: Vec<u8>,
    source: CertificateSource,
    thumbprint: String,
    subject: DistinguishedName,
    dns: Vec<String>,
    uris: Vec<String>,
    ips: Vec<IpAddr>,
    emails: Vec<String>,
    /// `None` for a key type no client key can be (DSA, an unknown curve...).
    key: Option<KeyMaterial>,
    /// The intermediate CAs a proxy forwarded with it (XFCC `Chain`), DER, for the issuer
    /// check; never read for anything else.
    intermediates: Vec<Vec<u8>>,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint)
            .field("subject", &self.subject.to_string())
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// Reads a DER certificate that came from `source`; `Err` names what is wrong.
    pub fn from_der(
        der: &[u8],
        source: CertificateSource,
    ) -> std::result::Result<Self, &'static str> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|_| "not a certificate")?;
        if !rest.is_empty() {
            return Err("bytes after the certificate");
        }
        let subject = DistinguishedName::of(&cert)?;
        let mut this = Self {
            der: der.to_vec(),
            source,
            thumbprint: thumbprint(der),
            subject,
            dns: Vec::new(),
            uris: Vec::new(),
            ips: Vec::new(),
            emails: Vec::new(),
            key: key_material(&cert),
            intermediates: Vec::new(),
        };
        let names = cert
            .subject_alternative_name()
            .map_err(|_| "a malformed subjectAltName")?;
        for name in names.iter().flat_map(|n| n.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(dns) => this.dns.push((*dns).to_owned()),
                GeneralName::URI(uri) => this.uris.push((*uri).to_owned()),
                GeneralName::RFC822Name(email) => this.emails.push((*email).to_owned()),
                GeneralName::IPAddress(raw) => this.ips.extend(ip_of(raw)),
                _ => {}
            }
        }
        Ok(this)
    }

    /// The same certificate, with the intermediate CAs it came with (at most 8 kept).
    pub fn with_intermediates(mut self, mut intermediates: Vec<Vec<u8>>) -> Self {
        intermediates.truncate(8);
        self.intermediates = intermediates;
        self
    }

    /// The certificate's SHA-256 as RFC 8705 `x5t#S256`: base64url of the DER's digest.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The certificate's public key, when it is of a kind a client's `jwks` can hold.
    pub fn key(&self) -> Option<&KeyMaterial> {
        self.key.as_ref()
    }

    /// The subject DN, in RFC 4514 form.
    pub fn subject(&self) -> &DistinguishedName {
        &self.subject
    }

    /// Whether the certificate chains to a CA this deployment trusts for `tls_client_auth`:
    /// checked by the handshake (unless it accepts any certificate: then by `ca` here); for a
    /// forwarded one, by `ca` when a CA is configured, else by the trusted proxy (which must
    /// check against the same CA: see the README).
    pub fn chain_trusted(&self, ca: Option<&dyn ClientCa>) -> bool {
        match (self.source, ca) {
            (CertificateSource::Handshake, Some(ca)) => {
                ca.handshake_verified() || ca.issued(&self.der, &self.intermediates)
            }
            (CertificateSource::Handshake, None) | (CertificateSource::Proxy, None) => true,
            (CertificateSource::Proxy, Some(ca)) => ca.issued(&self.der, &self.intermediates),
        }
    }
}

/// RFC 8705 `x5t#S256` of a DER certificate.
pub fn thumbprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Whether `text` is the form of an `x5t#S256` (43 base64url characters: 32 bytes).
pub fn is_thumbprint(text: &str) -> bool {
    text.len() == 43
        && URL_SAFE_NO_PAD
            .decode(text)
            .is_ok_and(|bytes| bytes.len() == 32)
}

/// The refusal of a `client_certificate_thumbprint` that is not an `x5t#S256`.
pub fn bad_thumbprint() -> Error {
    Error::invalid(
        "client_certificate_thumbprint",
        "must be the certificate's x5t#S256: base64url without padding of its SHA-256 (43 \
         characters)",
    )
}

fn ip_of(raw: &[u8]) -> Option<IpAddr> {
    match raw.len() {
        4 => <[u8; 4]>::try_from(raw).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(raw).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The certificate's key in the form `jwks` keys take: Ed25519, EC P-256/P-384, RSA.
fn key_material(cert: &X509Certificate<'_>) -> Option<KeyMaterial> {
    use x509_parser::public_key::PublicKey;
    let spki = cert.public_key();
    match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.3.101.112" => Some(KeyMaterial::Ed25519(spki.subject_public_key.data.to_vec())),
        "1.2.840.10045.2.1" => {
            let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
            let curve = match curve.to_id_string().as_str() {
                "1.2.840.10045.3.1.7" => "P-256",
                "1.3.132.0.34" => "P-384",
                _ => return None,
            };
            let point = spki.subject_public_key.data.to_vec();
            Some(KeyMaterial::Ec { curve, point })
        }
        "1.2.840.113549.1.1.1" => match spki.parsed().ok()? {
            PublicKey::RSA(rsa) => Some(KeyMaterial::Rsa {
                n: unsigned(rsa.modulus),
                e: unsigned(rsa.exponent),
            }),
            _ => None,
        },
        _ => None,
    }
}

fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// A distinguished name as RFC 4514 writes it: relative names most specific first, attribute
/// types by their short names (`CN`, `O`...) or dotted OIDs. Compared as RFC 4517's
/// caseIgnoreMatch does for the common attributes: types exact, values ignoring ASCII case and
/// surrounding spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName(Vec<Vec<(String, String)>>);

/// Short names of the attribute types RFC 4514 section 3 lists (and a few more common ones).
const SHORT_NAMES: [(&str, &str, &str); 11] = [
    ("2.5.4.3", "CN", "commonName"),
    ("2.5.4.6", "C", "countryName"),
    ("2.5.4.7", "L", "localityName"),
    ("2.5.4.8", "ST", "stateOrProvinceName"),
    ("2.5.4.9", "STREET", "streetAddress"),
    ("2.5.4.10", "O", "organizationName"),
    ("2.5.4.11", "OU", "organizationalUnitName"),
    ("2.5.4.5", "SERIALNUMBER", "serialNumber"),
    ("0.9.2342.19200300.100.1.25", "DC", "domainComponent"),
    ("0.9.2342.19200300.100.1.1", "UID", "userId"),
    ("1.2.840.113549.1.9.1", "EMAILADDRESS", "emailAddress"),
];

fn short_type(raw: &str) -> String {
    let raw = raw.trim();
    let oid = raw
        .strip_prefix("oid.")
        .or_else(|| raw.strip_prefix("OID."))
        .unwrap_or(raw);
    SHORT_NAMES
        .iter()
        .find(|(o, short, long)| {
            *o == oid || short.eq_ignore_ascii_case(raw) || long.eq_ignore_ascii_case(raw)
        })
        .map_or_else(|| oid.to_owned(), |(_, short, _)| (*short).to_owned())
}

impl DistinguishedName {
    fn of(cert: &X509Certificate<'_>) -> std::result::Result<Self, &'static str> {
        let mut rdns = Vec::new();
        for rdn in cert.subject().iter_rdn() {
            let mut parts = Vec::new();
            for atv in rdn.iter() {
                let value = atv
                    .as_str()
                    .map_err(|_| "a subject value that is not text")?;
                parts.push((
                    short_type(&atv.attr_type().to_id_string()),
                    value.to_owned(),
                ));
            }
            rdns.push(parts);
        }
        // The certificate encodes the least specific name first; RFC 4514 writes it last.
        rdns.reverse();
        Ok(Self(rdns))
    }

    /// Parses an RFC 4514 string (`CN=billing,OU=payments,O=Example`); `field` names it in
    /// errors. Attribute types may be short names, long names or dotted OIDs.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid(
                field,
                format!("{why}: write an RFC 4514 DN such as CN=billing,O=Example"),
            )
        };
        if raw.trim().is_empty() || raw.len() > MAX_SUBJECT || raw.chars().any(char::is_control) {
            return Err(bad("not a DN"));
        }
        let mut rdns = Vec::new();
        for rdn in split_escaped(raw, ',') {
            let mut parts = Vec::new();
            for atv in split_escaped(&rdn, '+') {
                let (kind, value) = atv
                    .split_once('=')
                    .ok_or_else(|| bad("a part without '='"))?;
                let value = unescape(value.trim()).ok_or_else(|| bad("a bad escape"))?;
                if kind.trim().is_empty() || value.is_empty() {
                    return Err(bad("an empty attribute type or value"));
                }
                parts.push((short_type(kind), value));
            }
            rdns.push(parts);
        }
        Ok(Self(rdns))
    }

    /// Whether two names are the same under the comparison rule above.
    pub fn same_as(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|(a, b)| {
                a.len() == b.len()
                    && a.iter().all(|(kind, value)| {
                        b.iter()
                            .any(|(k, v)| k == kind && v.trim().eq_ignore_ascii_case(value.trim()))
                    })
            })
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            for (j, (kind, value)) in rdn.iter().enumerate() {
                if j > 0 {
                    f.write_str("+")?;
                }
                write!(f, "{kind}={}", escape(value))?;
            }
        }
        Ok(())
    }
}

/// Splits at `sep` where it is not escaped with `\`.
fn split_escaped(raw: &str, sep: char) -> Vec<String> {
    let (mut parts, mut current, mut escaped) = (Vec::new(), String::new(), false);
    for c in raw.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

/// RFC 4514 section 3 escapes: `\` before a special character, or two hex digits.
fn unescape(raw: &str) -> Option<String> {
    let mut out = Vec::new();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let next = *bytes.get(i + 1)?;
        if next.is_ascii_hexdigit() {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(next);
            i += 2;
        }
    }
    String::from_utf8(out).ok()
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.len() && c == ' ');
        if edge || matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The one certificate subject value a `tls_client_auth` client is bound to (RFC 8705
/// section 2.1.2): its certificate must carry exactly this subject DN, or this value among
/// its subject alternative names of that kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectBinding {
    Dn(DistinguishedName),
    Dns(String),
    Uri(String),
    Ip(IpAddr),
    Email(String),
}

impl SubjectBinding {
    /// Whether `cert` carries the value.
    pub fn matches(&self, cert: &ClientCertificate) -> bool {
        match self {
            SubjectBinding::Dn(dn) => dn.same_as(&cert.subject),
            SubjectBinding::Dns(name) => cert.dns.iter().any(|d| d.eq_ignore_ascii_case(name)),
            SubjectBinding::Uri(uri) => cert.uris.iter().any(|u| u == uri),
            SubjectBinding::Ip(ip) => cert.ips.contains(ip),
            SubjectBinding::Email(email) => {
                cert.emails.iter().any(|e| e.eq_ignore_ascii_case(email))
            }
        }
    }

    /// A SAN value of a client's input (DNS name, URI, e-mail address): text without spaces.
    pub fn text(field: &str, raw: &str, what: &str) -> Result<String> {
        let bad = raw.is_empty()
            || raw.len() > MAX_SUBJECT
            || raw.chars().any(|c| c.is_whitespace() || c.is_control());
        if bad {
            return Err(Error::invalid(
                field,
                format!("must be {what}, 1-{MAX_SUBJECT} characters without spaces"),
            ));
        }
        Ok(raw.to_owned())
    }
}

#[cfg(test)]
#[path = "certificate_tests.rs"]
mod tests;
