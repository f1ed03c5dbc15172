//! A client's settings as validated values: input arrives raw (`ClientInput`) and becomes a
//! `ClientSpec` field by field, the same code path serving create (every field) and update
//! (the fields in the mask, `ClientField`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::auth_methods::{AuthMethod, AuthMethods};
use super::federated::{FederatedCredential, parse_credentials};
use super::jwks::ClientJwks;
use super::tls_subject::{self, TlsSubject};
use crate::domain::error::{Error, Result};
use crate::domain::key_sets::check_url;
use crate::domain::scope::ScopeSet;

/// Default access-token lifetime.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Longest lifetime of a JWT access token: a verifier that checks signatures itself cannot
/// learn of a revocation, so JWTs stay short. Keys are kept for this long after they stop
/// signing.
pub const MAX_ACCESS_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest lifetime of an opaque access token (API keys for bots): every use is introspected,
/// so revocation always applies at once.
pub const MAX_OPAQUE_ACCESS_TTL: Duration = Duration::from_secs(366 * 24 * 3600);
const MAX_REFRESH_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2000;
const MAX_LIST: usize = 100;
const MAX_ITEM: usize = 256;
const MAX_METADATA: usize = 64;
const MAX_METADATA_KEY: usize = 63;
const MAX_METADATA_VALUE: usize = 1024;

/// A client's fields as a caller sent them, before validation.
#[derive(Debug, Clone, Default)]
pub struct ClientInput {
    pub tenant: String,
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub roles: Vec<String>,
    pub access_token_ttl: Option<Duration>,
    pub refresh_token_ttl: Option<Duration>,
    /// Unset means active.
    pub active: Option<bool>,
    pub allowed_cidrs: Vec<String>,
    pub rate_limit_per_minute: u32,
    pub refresh_rate_limit_per_minute: u32,
    pub metadata: BTreeMap<String, String>,
    /// Unset means JWT.
    pub access_token_format: Option<TokenFormat>,
    pub exchange_audiences: Vec<String>,
    /// RFC 7591 method names; empty means the two secret methods.
    pub auth_methods: Vec<String>,
    /// A JWK Set as JSON text; empty means none.
    pub jwks: String,
    /// Where the client publishes its JWK Set instead; empty means nowhere.
    pub jwks_uri: String,
    /// Workload identities that may act as this client (`federated_jwt`).
    pub federated_credentials: Vec<FederatedCredential>,
    /// RFC 8705 section 2.1.2 subject values, in the order of `tls_subject::FIELDS`
    /// (`tls_client_auth_subject_dn`, `_san_dns`, `_san_uri`, `_san_ip`, `_san_email`);
    /// empty means unset, at most one set.
    pub tls_client_auth_subject: [String; 5],
    /// RFC 8705 `tls_client_certificate_bound_access_tokens`.
    pub tls_client_certificate_bound_access_tokens: bool,
}

/// How a client's access tokens look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenFormat {
    /// Signed JWTs (RFC 9068): verifiable locally with the JWKS, or by `Introspect`.
    #[default]
    Jwt,
    /// Random strings stored as hashes: only `Introspect` can tell what they mean.
    Opaque,
}

impl TokenFormat {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::Opaque => "opaque",
        }
    }

    /// The format a stored name gives (`jwt`, `opaque`); `None` for anything else.
    pub fn parse_stored(raw: &str) -> Option<Self> {
        match raw {
            "jwt" => Some(Self::Jwt),
            "opaque" => Some(Self::Opaque),
            _ => None,
        }
    }
}

/// A mutable field of a client, as named in an update mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientField {
    Name,
    Description,
    Scopes,
    Audiences,
    Roles,
    AccessTokenTtl,
    RefreshTokenTtl,
    Active,
    AllowedCidrs,
    RateLimitPerMinute,
    RefreshRateLimitPerMinute,
    Metadata,
    AccessTokenFormat,
    ExchangeAudiences,
    AuthMethods,
    Jwks,
    JwksUri,
    FederatedCredentials,
    /// One of the five RFC 8705 subject fields, by its index in `tls_subject::FIELDS`.
    TlsClientAuthSubject(usize),
    TlsClientCertificateBoundAccessTokens,
}

impl ClientField {
    /// Every mutable field.
    pub const ALL: [ClientField; 24] = [
        ClientField::Name,
        ClientField::Description,
        ClientField::Scopes,
        ClientField::Audiences,
        ClientField::Roles,
        ClientField::AccessTokenTtl,
        ClientField::RefreshTokenTtl,
        ClientField::Active,
        ClientField::AllowedCidrs,
        ClientField::RateLimitPerMinute,
        ClientField::RefreshRateLimitPerMinute,
        ClientField::Metadata,
        ClientField::AccessTokenFormat,
        ClientField::ExchangeAudiences,
        ClientField::AuthMethods,
        ClientField::Jwks,
        ClientField::JwksUri,
        ClientField::FederatedCredentials,
        ClientField::TlsClientAuthSubject(0),
        ClientField::TlsClientAuthSubject(1),
        ClientField::TlsClientAuthSubject(2),
        ClientField::TlsClientAuthSubject(3),
        ClientField::TlsClientAuthSubject(4),
        ClientField::TlsClientCertificateBoundAccessTokens,
    ];

    /// The field's name in the API.
    pub fn path(self) -> &'static str {
        match self {
            ClientField::Name => "name",
            ClientField::Description => "description",
            ClientField::Scopes => "scopes",
            ClientField::Audiences => "audiences",
            ClientField::Roles => "roles",
            ClientField::AccessTokenTtl => "access_token_ttl",
            ClientField::RefreshTokenTtl => "refresh_token_ttl",
            ClientField::Active => "active",
            ClientField::AllowedCidrs => "allowed_cidrs",
            ClientField::RateLimitPerMinute => "rate_limit_per_minute",
            ClientField::RefreshRateLimitPerMinute => "refresh_rate_limit_per_minute",
            ClientField::Metadata => "metadata",
            ClientField::AccessTokenFormat => "access_token_format",
            ClientField::ExchangeAudiences => "exchange_audiences",
            ClientField::AuthMethods => "auth_methods",
            ClientField::Jwks => "jwks",
            ClientField::JwksUri => "jwks_uri",
            ClientField::FederatedCredentials => "federated_credentials",
            ClientField::TlsClientAuthSubject(i) => tls_subject::FIELDS[i],
            ClientField::TlsClientCertificateBoundAccessTokens => {
                "tls_client_certificate_bound_access_tokens"
            }
        }
    }

    /// Parses update-mask paths; `*` means every mutable field.
    pub fn parse_mask<S: AsRef<str>>(paths: &[S]) -> Result<Vec<ClientField>> {
        if paths.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "is required: name the fields to change, or \"*\" for all",
            ));
        }
        let mut fields = Vec::new();
        for path in paths {
            let path = path
                .as_ref()
                .strip_prefix("client.")
                .unwrap_or(path.as_ref());
            match path {
                "*" => fields.extend(Self::ALL),
                "client_id" | "tenant" | "create_time" | "update_time" | "last_used_time" => {
                    return Err(Error::invalid(
                        "update_mask",
                        format!("{path:?} cannot be changed"),
                    ));
                }
                _ => match Self::ALL.into_iter().find(|f| f.path() == path) {
                    Some(f) => fields.push(f),
                    None => {
                        let known: Vec<&str> = Self::ALL.iter().map(|f| f.path()).collect();
                        return Err(Error::invalid(
                            "update_mask",
                            format!("unknown path {path:?}; known: {}", known.join(", ")),
                        ));
                    }
                },
            }
        }
        fields.dedup();
        Ok(fields)
    }
}

/// A client's validated, mutable settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSpec {
    pub name: String,
    pub description: String,
    pub scopes: ScopeSet,
    pub audiences: BTreeSet<String>,
    pub roles: BTreeSet<String>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub active: bool,
    pub allowed_cidrs: Vec<IpNet>,
    /// Client-credentials and token-exchange calls a minute (0: none).
    pub rate_limit_per_minute: u32,
    /// Refresh-token grants a minute (0: none), counted apart from the other grants.
    pub refresh_rate_limit_per_minute: u32,
    pub metadata: BTreeMap<String, String>,
    pub access_token_format: TokenFormat,
    /// Audiences this client may exchange other tokens for (RFC 8693); empty: no exchange.
    pub exchange_audiences: BTreeSet<String>,
    /// How the client may authenticate; it has a secret only if one of these uses one.
    pub auth_methods: AuthMethods,
    /// The client's own public keys, for `private_key_jwt` and `self_signed_tls_client_auth`.
    pub jwks: Option<ClientJwks>,
    /// Where the client publishes its public keys, for `private_key_jwt` (instead of `jwks`).
    pub jwks_uri: Option<String>,
    /// Workload identities that may act as this client, for `federated_jwt`.
    pub federated_credentials: Vec<FederatedCredential>,
    /// What a `tls_client_auth` client's certificate must carry.
    pub tls_subject: TlsSubject,
    /// Whether the client's access tokens are bound to its TLS client certificate (RFC 8705
    /// section 3): it then gets tokens only over mTLS.
    pub certificate_bound_tokens: bool,
}

impl ClientSpec {
    /// Validates every field of `input`.
    pub fn from_input(input: &ClientInput) -> Result<Self> {
        let mut spec = Self {
            name: String::new(),
            description: String::new(),
            scopes: ScopeSet::default(),
            audiences: BTreeSet::new(),
            roles: BTreeSet::new(),
            access_token_ttl: DEFAULT_ACCESS_TTL,
            refresh_token_ttl: Duration::ZERO,
            active: true,
            allowed_cidrs: Vec::new(),
            rate_limit_per_minute: 0,
            refresh_rate_limit_per_minute: 0,
            metadata: BTreeMap::new(),
            access_token_format: TokenFormat::Jwt,
            exchange_audiences: BTreeSet::new(),
            auth_methods: AuthMethods::default(),
            jwks: None,
            jwks_uri: None,
            federated_credentials: Vec::new(),
            tls_subject: TlsSubject::default(),
            certificate_bound_tokens: false,
        };
        spec.apply(input, &ClientField::ALL)?;
        Ok(spec)
    }

    /// Validates and sets the named fields from `input`, leaving the others alone. On error
    /// `self` may be partly changed: callers apply to a copy.
    pub fn apply(&mut self, input: &ClientInput, fields: &[ClientField]) -> Result<()> {
        for &field in fields {
            self.set(field, input)?;
        }
        if self.access_token_format == TokenFormat::Jwt && self.access_token_ttl > MAX_ACCESS_TTL {
            return Err(Error::invalid(
                "client.access_token_ttl",
                format!(
                    "JWT access tokens live at most {}s; use access_token_format OPAQUE for \
                     longer-lived tokens",
                    MAX_ACCESS_TTL.as_secs()
                ),
            ));
        }
        if self.jwks.is_some() && self.jwks_uri.is_some() {
            return Err(Error::invalid(
                "client.jwks_uri",
                "cannot be set together with client.jwks (RFC 7591): give the keys or where \
                 they are published, not both",
            ));
        }
        if self.auth_methods.allows(AuthMethod::PrivateKeyJwt)
            && self.jwks.is_none()
            && self.jwks_uri.is_none()
        {
            return Err(Error::invalid(
                "client.jwks",
                "is required with the auth method private_key_jwt (or client.jwks_uri): the \
                 client's public keys verify its assertions",
            ));
        }
        if self.auth_methods.allows(AuthMethod::FederatedJwt)
            && self.federated_credentials.is_empty()
        {
            return Err(Error::invalid(
                "client.federated_credentials",
                "is required with the auth method federated_jwt: name the issuer and subject \
                 of the workload identity that may act as this client",
            ));
        }
        if self
            .auth_methods
            .allows(AuthMethod::SelfSignedTlsClientAuth)
            && self.jwks.is_none()
        {
            return Err(Error::invalid(
                "client.jwks",
                "is required with the auth method self_signed_tls_client_auth: the client's \
                 certificate must hold one of its keys",
            ));
        }
        let required = self.auth_methods.allows(AuthMethod::TlsClientAuth);
        self.tls_subject.check("client.", required)
    }

    fn set(&mut self, field: ClientField, input: &ClientInput) -> Result<()> {
        let path = format!("client.{}", field.path());
        match field {
            ClientField::Name => self.name = text(&path, &input.name, 1, MAX_NAME)?,
            ClientField::Description => {
                self.description = text(&path, &input.description, 0, MAX_DESCRIPTION)?;
            }
            ClientField::Scopes => self.scopes = ScopeSet::parse(&path, &input.scopes)?,
            ClientField::Audiences => self.audiences = tokens(&path, &input.audiences)?,
            ClientField::Roles => self.roles = tokens(&path, &input.roles)?,
            ClientField::AccessTokenTtl => {
                self.access_token_ttl = match input.access_token_ttl {
                    None => DEFAULT_ACCESS_TTL,
                    Some(ttl) => ttl_in(&path, ttl, Duration::from_secs(1), MAX_OPAQUE_ACCESS_TTL)?,
                }
            }
            ClientField::RefreshTokenTtl => {
                self.refresh_token_ttl = match input.refresh_token_ttl {
                    None => Duration::ZERO,
                    Some(ttl) => ttl_in(&path, ttl, Duration::ZERO, MAX_REFRESH_TTL)?,
                }
            }
            ClientField::Active => self.active = input.active.unwrap_or(true),
            ClientField::AllowedCidrs => self.allowed_cidrs = cidrs(&path, &input.allowed_cidrs)?,
            ClientField::RateLimitPerMinute => {
                self.rate_limit_per_minute = input.rate_limit_per_minute;
            }
            ClientField::RefreshRateLimitPerMinute => {
                self.refresh_rate_limit_per_minute = input.refresh_rate_limit_per_minute;
            }
            ClientField::Metadata => self.metadata = metadata(&path, &input.metadata)?,
            ClientField::AccessTokenFormat => {
                self.access_token_format = input.access_token_format.unwrap_or_default();
            }
            ClientField::ExchangeAudiences => {
                self.exchange_audiences = tokens(&path, &input.exchange_audiences)?;
            }
            ClientField::AuthMethods => {
                self.auth_methods = AuthMethods::parse(&path, &input.auth_methods)?;
            }
            ClientField::Jwks => {
                self.jwks = match input.jwks.trim() {
                    "" => None,
                    raw => Some(ClientJwks::parse(&path, raw)?),
                };
            }
            ClientField::JwksUri => {
                self.jwks_uri = match input.jwks_uri.trim() {
                    "" => None,
                    raw => Some(
                        check_url(raw)
                            .map_err(|e| Error::invalid(&path, e.to_string()))?
                            .to_string(),
                    ),
                };
            }
            ClientField::FederatedCredentials => {
                self.federated_credentials =
                    parse_credentials(&path, &input.federated_credentials)?;
            }
            ClientField::TlsClientAuthSubject(i) => {
                self.tls_subject
                    .set(i, &path, &input.tls_client_auth_subject[i])?;
            }
            ClientField::TlsClientCertificateBoundAccessTokens => {
                self.certificate_bound_tokens = input.tls_client_certificate_bound_access_tokens;
            }
        }
        Ok(())
    }
}

fn text(field: &str, raw: &str, min: usize, max: usize) -> Result<String> {
    let n = raw.chars().count();
    if n < min || n > max {
        let need = if min == 0 {
            format!("at most {max} characters")
        } else {
            format!("{min}-{max} characters")
        };
        return Err(Error::invalid(field, format!("must be {need} (got {n})")));
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(raw.to_owned())
}

/// Audiences and roles: non-empty, no whitespace or control characters, deduplicated.
fn tokens(field: &str, raw: &[String]) -> Result<BTreeSet<String>> {
    if raw.len() > MAX_LIST {
        return Err(Error::invalid(field, format!("at most {MAX_LIST} entries")));
    }
    raw.iter()
        .enumerate()
        .map(|(i, item)| {
            let bad = item.chars().any(|c| c.is_whitespace() || c.is_control());
            if item.is_empty() || item.len() > MAX_ITEM || bad {
                Err(Error::invalid(
                    format!("{field}[{i}]"),
                    format!("{item:?}: use 1-{MAX_ITEM} characters without spaces"),
                ))
            } else {
                Ok(item.clone())
            }
        })
        .collect()
}

fn ttl_in(field: &str, ttl: Duration, min: Duration, max: Duration) -> Result<Duration> {
    let whole = Duration::from_secs(ttl.as_secs());
    if whole < min || whole > max {
        return Err(Error::invalid(
            field,
            format!(
                "must be between {}s and {}s (got {}s)",
                min.as_secs(),
                max.as_secs(),
                whole.as_secs()
            ),
        ));
    }
    Ok(whole)
}

fn cidrs(field: &str, raw: &[String]) -> Result<Vec<IpNet>> {
    if raw.len() > MAX_LIST {
        return Err(Error::invalid(field, format!("at most {MAX_LIST} entries")));
    }
    let mut nets = raw
        .iter()
        .enumerate()
        .map(|(i, s)| {
            net(s).ok_or_else(|| {
                Error::invalid(
                    format!("{field}[{i}]"),
                    format!(
                        "{s:?} is not a CIDR range such as 10.0.0.0/8 or 2001:db8::/32, \
                         nor an address such as 10.0.1.5"
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    nets.sort();
    nets.dedup();
    Ok(nets)
}

/// One allow-list entry: a CIDR range (host bits cleared) or a bare address, which means that one
/// address (`10.0.1.5` is `10.0.1.5/32`, `::1` is `::1/128`), as the systems tokend replaces read it.
fn net(raw: &str) -> Option<IpNet> {
    raw.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
        .ok()
}

fn metadata(field: &str, raw: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    if raw.len() > MAX_METADATA {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_METADATA} entries"),
        ));
    }
    for (k, v) in raw {
        if k.is_empty() || k.len() > MAX_METADATA_KEY || k.chars().any(|c| c.is_control()) {
            return Err(Error::invalid(
                field,
                format!("key {k:?}: use 1-{MAX_METADATA_KEY} characters"),
            ));
        }
        if v.len() > MAX_METADATA_VALUE {
            return Err(Error::invalid(
                format!("{field}[{k}]"),
                format!("at most {MAX_METADATA_VALUE} bytes"),
            ));
        }
    }
    Ok(raw.clone())
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
