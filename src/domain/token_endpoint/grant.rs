//! The typed grant request every front end builds (gRPC's three token RPCs, the HTTP token
//! endpoint's form), and what a granted request returns. The grant type's name is parsed
//! here, so `unsupported_grant_type` is the domain's answer on every front end.

use std::fmt;

use super::client_auth::ClientAuth;
use super::opaque::OpaqueToken;
use crate::domain::error::{Error, Result};
use crate::domain::scope::ScopeSet;

/// RFC 8693 section 2.1: the token-exchange grant's name.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The grants tokend supports, by their RFC 6749 / RFC 8693 `grant_type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    ClientCredentials,
    RefreshToken,
    TokenExchange,
}

impl GrantType {
    /// Every grant tokend supports, as the RFC 8414 metadata lists them.
    pub const ALL: [Self; 3] = [
        Self::ClientCredentials,
        Self::RefreshToken,
        Self::TokenExchange,
    ];

    /// A `grant_type` value; any other is `unsupported_grant_type` (RFC 6749 section 5.2).
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "client_credentials" => Ok(Self::ClientCredentials),
            "refresh_token" => Ok(Self::RefreshToken),
            TOKEN_EXCHANGE_GRANT => Ok(Self::TokenExchange),
            other => Err(Error::UnsupportedGrantType(format!(
                "grant_type {other} is not supported: use client_credentials, refresh_token or \
                 {TOKEN_EXCHANGE_GRANT}"
            ))),
        }
    }

    /// The `grant_type` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
            Self::TokenExchange => TOKEN_EXCHANGE_GRANT,
        }
    }
}

/// What the client asks for, grant by grant. `Debug` never prints a token.
pub enum Grant {
    /// RFC 6749 section 4.4: tokens for the client itself, for `audience` (none: all the
    /// client's audiences).
    ClientCredentials { audience: Vec<String> },
    /// RFC 6749 section 6: a successor for a refresh token.
    RefreshToken { refresh_token: String },
    /// RFC 8693: a token on another's behalf, for another audience.
    TokenExchange(Exchange),
}

impl Grant {
    /// Which grant this is.
    pub fn grant_type(&self) -> GrantType {
        match self {
            Grant::ClientCredentials { .. } => GrantType::ClientCredentials,
            Grant::RefreshToken { .. } => GrantType::RefreshToken,
            Grant::TokenExchange(_) => GrantType::TokenExchange,
        }
    }

    /// The field a scope error names: the token RPCs' `scopes`, RFC 8693's `scope`.
    pub(super) fn scope_field(&self) -> &'static str {
        match self {
            Grant::TokenExchange(_) => "scope",
            _ => "scopes",
        }
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::ClientCredentials { audience } => f
                .debug_struct("ClientCredentials")
                .field("audience", audience)
                .finish(),
            Grant::RefreshToken { .. } => f.debug_struct("RefreshToken").finish_non_exhaustive(),
            Grant::TokenExchange(exchange) => exchange.fmt(f),
        }
    }
}

/// The token-exchange grant's parameters (RFC 8693 section 2.1; the scopes are the grant
/// request's). `Debug` redacts the tokens.
#[derive(Clone, Default)]
pub struct Exchange {
    pub subject_token: String,
    pub subject_token_type: String,
    /// Empty: the exchanging client itself is the actor.
    pub actor_token: String,
    pub actor_token_type: String,
    /// Empty, or the access-token type: tokend issues access tokens only.
    pub requested_token_type: String,
    pub audience: Vec<String>,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("subject_token_type", &self.subject_token_type)
            .field("actor_token_type", &self.actor_token_type)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// One request to the token endpoint: who asks, the scopes it asks for (empty: the grant's
/// default), and the grant.
#[derive(Debug)]
pub struct GrantRequest {
    pub client: ClientAuth,
    pub scopes: Vec<String>,
    pub grant: Grant,
}

/// Freshly issued tokens. `Debug` redacts them.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    pub scopes: ScopeSet,
    /// Present when the client may refresh.
    pub refresh_token: Option<OpaqueToken>,
    /// Seconds until the refresh token expires (0 without one).
    pub refresh_expires_in: i64,
    /// RFC 8693 `issued_token_type`, for an exchanged token.
    pub issued_token_type: Option<&'static str>,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("issued_token_type", &self.issued_token_type)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_types_round_trip_and_others_are_unsupported() {
        for t in GrantType::ALL {
            assert_eq!(GrantType::parse(t.as_str()).unwrap(), t);
        }
        let err = GrantType::parse("password").unwrap_err();
        assert_eq!(err.oauth2_code(), Some("unsupported_grant_type"));
        assert!(err.to_string().contains("password"), "{err}");
    }

    #[test]
    fn debug_never_prints_a_refresh_token() {
        let grant = Grant::RefreshToken {
            refresh_token: "tkd_rt_secret-value".into(),
        };
        assert!(!format!("{grant:?}").contains("secret-value"));
    }
}
