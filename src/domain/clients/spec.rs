//! A client's settings as validated values: input arrives raw (`ClientInput`) and becomes a
//! `ClientSpec` field by field, the same code path serving create (every field) and update
//! (the fields in the mask, `ClientField`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ipnet::IpNet;

use super::auth_methods::{AuthMethod, AuthMethods};
use super::federated::{FederatedCredential, parse_credentials};
#[cfg(test)]
use super::field_rules::{MAX_LIST, net};
use super::field_rules::{cidrs, metadata, text, tokens, ttl_in};
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
    pub api_rate_limit_per_minute: u32,
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
    ApiRateLimitPerMinute,
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
    pub const ALL: [ClientField; 25] = [
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
        ClientField::ApiRateLimitPerMinute,
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
            ClientField::ApiRateLimitPerMinute => "api_rate_limit_per_minute",
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
    /// API calls a minute through the edge (ext_authz `Check`), for the whole deployment
    /// (0: none); see `policy::api_quota`.
    pub api_rate_limit_per_minute: u32,
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
    /// The client's JWK Set as stored and shown (compact JSON); empty without one.
    pub fn jwks_text(&self) -> String {
        self.jwks
            .as_ref()
            .map(|j| j.as_str().to_owned())
            .unwrap_or_default()
    }

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
            api_rate_limit_per_minute: 0,
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
            ClientField::ApiRateLimitPerMinute => {
                self.api_rate_limit_per_minute = input.api_rate_limit_per_minute;
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

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
