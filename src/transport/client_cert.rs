//! The client certificate a trusted proxy forwards in Envoy's `x-forwarded-client-cert`
//! (XFCC) header, the way Envoy and Istio hand a mesh identity to the application (RFC 8705
//! client authentication and certificate-bound tokens, issue 21).
//!
//! The header is a list of elements separated by `,`, one per proxy hop that added one; each
//! element is `key=value` pairs separated by `;`, keys case-insensitive (`By`, `Hash`, `Cert`,
//! `Chain`, `Subject`, `URI`, `DNS`), values optionally double-quoted with `\"` escapes (a
//! subject holds `,` and `;`). `Cert` is the URL-encoded PEM of the client's certificate;
//! `Hash` its SHA-256, hex. The element tokend believes is the last one: the one the proxy
//! in front of it added for the connection it accepted. Whether to believe the header at all
//! is the caller's decision (only from `server.trusted_proxies`, as for `x-forwarded-for`).

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use http::HeaderMap;

use crate::domain::{CertificateSource, ClientCertificate, Error, Policy};

/// Envoy's header for the client certificate it saw.
pub const XFCC: &str = "x-forwarded-client-cert";

/// Longest XFCC value read (a certificate chain in PEM, URL-encoded, fits with room).
pub const MAX_XFCC_LEN: usize = 64 * 1024;

/// One element of the header: what one proxy says of its client's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardedCert {
    /// The proxy's own identity (its certificate's URI SAN).
    pub by: Option<String>,
    /// SHA-256 of the client's DER certificate, lower-case hex.
    pub hash: Option<String>,
    /// The client's certificate, DER, when the proxy forwards it (`Cert`).
    pub der: Option<Vec<u8>>,
    /// The client's whole chain, DER, leaf first, when the proxy forwards it (`Chain`).
    pub chain: Vec<Vec<u8>>,
    pub subject: Option<String>,
    pub uris: Vec<String>,
    pub dns: Vec<String>,
}

impl ForwardedCert {
    /// The certificate's SHA-256 as RFC 8705 `x5t#S256` (base64url, no padding), from the
    /// certificate itself when forwarded (checked against `Hash` when both are), else from
    /// `Hash`.
    pub fn thumbprint(&self) -> Result<String, XfccError> {
        let from_hash = match &self.hash {
            Some(hex) => Some(decode_hex(hex).ok_or(XfccError("Hash is not SHA-256 hex"))?),
            None => None,
        };
        let digest = match (&self.der, from_hash) {
            (Some(der), from_hash) => {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
                let digest = digest.as_ref().to_vec();
                if from_hash.is_some_and(|h| h != digest) {
                    return Err(XfccError("Hash is not the SHA-256 of Cert"));
                }
                digest
            }
            (None, Some(from_hash)) => from_hash,
            (None, None) => return Err(XfccError("neither Cert nor Hash")),
        };
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest))
    }
}

/// Why an XFCC header could not be read; a request carrying one is refused, never read as
/// carrying no certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("x-forwarded-client-cert: {0}")]
pub struct XfccError(&'static str);

/// The client certificate of a request as the domain sees it: from a peer in
/// `server.trusted_proxies` that sent `x-forwarded-client-cert`, the certificate of the
/// element it added (which must carry `Cert`); otherwise the one tokend's own TLS handshake
/// verified (`tls_peer`, DER), if any. The header from any other peer is ignored, as a
/// forged `x-forwarded-for` is. A header a trusted proxy sent that cannot be read is
/// `invalid_request`, never read as no certificate.
pub fn client_certificate(
    policy: &Policy,
    peer: Option<IpAddr>,
    tls_peer: Option<&[u8]>,
    headers: &HeaderMap,
) -> Result<Option<Arc<ClientCertificate>>, Error> {
    let mut values = headers.get_all(XFCC).iter().peekable();
    if values.peek().is_some() && policy.is_trusted_proxy(peer) {
        let joined = values
            .map(|v| v.to_str().map_err(|_| XfccError("not text")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?
            .join(",");
        let forwarded = nearest(&joined).map_err(invalid)?;
        forwarded.thumbprint().map_err(invalid)?; // Hash, if sent, must be Cert's
        let der = forwarded.der.ok_or_else(|| {
            invalid(XfccError(
                "Cert is required (Envoy: set_current_client_cert_details cert: true)",
            ))
        })?;
        let intermediates = forwarded
            .chain
            .into_iter()
            .filter(|link| *link != der)
            .collect();
        let cert = ClientCertificate::from_der(&der, CertificateSource::Proxy)
            .map_err(|why| Error::invalid(XFCC, format!("Cert: {why}")))?
            .with_intermediates(intermediates);
        return Ok(Some(Arc::new(cert)));
    }
    match tls_peer {
        Some(der) => ClientCertificate::from_der(der, CertificateSource::Handshake)
            .map(|cert| Some(Arc::new(cert)))
            .map_err(|why| Error::invalid("client certificate", why)),
        None => Ok(None),
    }
}

/// The `x5t#S256` of a URL-encoded PEM certificate, as Envoy's ext_authz sends the
/// downstream peer's (`attributes.source.certificate`, with `include_peer_certificate`);
/// `None` for an empty or unreadable one.
pub fn urlencoded_pem_thumbprint(value: &str) -> Option<String> {
    if value.is_empty() || value.len() > MAX_XFCC_LEN {
        return None;
    }
    let der = pem_to_der(&percent_decode(value).ok()?).ok()?;
    Some(crate::domain::clients::certificate::thumbprint(&der))
}

fn invalid(err: XfccError) -> Error {
    Error::invalid(XFCC, err.0)
}

/// The element the nearest proxy added: the last of the header's list.
pub fn nearest(value: &str) -> Result<ForwardedCert, XfccError> {
    parse(value)?.pop().ok_or(XfccError("no element"))
}

/// Every element of an XFCC value, in order.
pub fn parse(value: &str) -> Result<Vec<ForwardedCert>, XfccError> {
    if value.len() > MAX_XFCC_LEN {
        return Err(XfccError("too long"));
    }
    split_unquoted(value, ',')?
        .into_iter()
        .filter(|element| !element.trim().is_empty())
        .map(element)
        .collect()
}

fn element(raw: &str) -> Result<ForwardedCert, XfccError> {
    let mut cert = ForwardedCert::default();
    for pair in split_unquoted(raw, ';')? {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair
            .split_once('=')
            .ok_or(XfccError("a pair without '='"))?;
        let value = unquote(value.trim())?;
        match key.trim().to_ascii_lowercase().as_str() {
            "by" => cert.by = Some(value),
            "hash" => cert.hash = Some(value.to_ascii_lowercase()),
            "cert" => cert.der = Some(pem_to_der(&percent_decode(&value)?)?),
            "subject" => cert.subject = Some(value),
            "uri" => cert.uris.push(value),
            "dns" => cert.dns.push(value),
            "chain" => cert.chain = pem_chain_to_der(&percent_decode(&value)?)?,
            _ => {} // keys a newer Envoy adds: not needed to identify the client
        }
    }
    Ok(cert)
}

/// Splits at `sep` outside double quotes; an unterminated quote is an error.
fn split_unquoted(value: &str, sep: char) -> Result<Vec<&str>, XfccError> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(XfccError("an unterminated quoted value"));
    }
    parts.push(&value[start..]);
    Ok(parts)
}

fn unquote(value: &str) -> Result<String, XfccError> {
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.to_owned());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or(XfccError("text after a quoted value"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().ok_or(XfccError("a dangling escape"))?),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn percent_decode(value: &str) -> Result<String, XfccError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3).ok_or(XfccError("a bad %-escape"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| XfccError("a bad %-escape"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| XfccError("Cert is not text"))
}

/// The DER of the first certificate of a PEM text.
/// Every certificate of a PEM chain, in order; none is an error.
fn pem_chain_to_der(pem: &str) -> Result<Vec<Vec<u8>>, XfccError> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut chain = Vec::new();
    let mut rest = pem;
    while let Some(end) = rest.find(END) {
        chain.push(
            pem_to_der(&rest[..end + END.len()])
                .map_err(|_| XfccError("Chain: not PEM certificates"))?,
        );
        rest = &rest[end + END.len()..];
    }
    if chain.is_empty() {
        return Err(XfccError("Chain holds no PEM certificate"));
    }
    Ok(chain)
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, XfccError> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem
        .find(BEGIN)
        .ok_or(XfccError("Cert is not a PEM certificate"))?
        + BEGIN.len();
    let len = pem[start..]
        .find(END)
        .ok_or(XfccError("Cert is not a PEM certificate"))?;
    let body: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| XfccError("Cert is not base64"))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
#[path = "client_cert_tests.rs"]
mod tests;
