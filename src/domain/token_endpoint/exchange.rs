//! Token exchange (RFC 8693): a client trades a token it received (the subject token) for a
//! narrower one meant for another audience, acting on the subject's behalf (delegation: the
//! new token names the actor in `act`, section 4.1). The new token lives no longer than the
//! subject token and dies with it: it carries the chain it came from (`src`), and
//! introspection checks every link with the same in-memory live checks as the token itself.

use super::claims::{AccessClaims, Actor, Confirmation, Origin};
use super::grant::{Exchange, IssuedToken};
use super::mint::chosen_audience;
use super::opaque::OpaqueKind;
use super::service::TokenEndpoint;
use crate::domain::clients::Client;
use crate::domain::error::{Error, Result};
use crate::domain::introspection::introspector::ActiveToken;
use crate::domain::scope::{RESERVED_PREFIX, ScopeSet};

/// RFC 8693 section 3: an OAuth 2.0 access token (JWT or opaque).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 section 3: a JWT.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Most tokens one exchanged token may descend from: the live checks run for each of them.
pub const MAX_CHAIN: usize = 8;

impl Exchange {
    /// The request's form: token types tokend knows, a subject token, an actor token only
    /// with its type; checked before the client is authenticated.
    pub(super) fn check_shape(&self) -> Result<()> {
        check_shape(self)
    }
}

impl TokenEndpoint {
    /// The token-exchange grant. The exchanging client authenticates as at the token endpoint
    /// (allow-list, rate limit, lockout) and must have `exchange_audiences`; the subject token
    /// (and the actor token, if any) must be active and of the client's tenant. The new token
    /// has the subject's `sub` and roles, the client's `client_id`, the requested audience
    /// (one of `exchange_audiences`; none asked: all of them), scopes that both the subject
    /// token holds and the client is allowed (never a `tokend.*` scope), and an `exp` no later
    /// than the subject token's.
    #[tracing::instrument(skip_all, fields(client_id = %client.id))]
    /// The new token is bound to the exchanging client's certificate (`cnf`) when its client
    /// has `tls_client_certificate_bound_access_tokens`, never to the subject token's.
    pub(super) async fn exchange(
        &self,
        client: &Client,
        request: &Exchange,
        requested: &ScopeSet,
        cnf: Option<String>,
    ) -> Result<IssuedToken> {
        if client.spec.exchange_audiences.is_empty() {
            return Err(Error::UnauthorizedClient(
                "this client may not exchange tokens: its exchange_audiences is empty".into(),
            ));
        }
        let subject = self
            .party(client, &request.subject_token, "subject_token")
            .await?;
        let actor = match request.actor_token.as_str() {
            "" => None,
            token => Some(self.party(client, token, "actor_token").await?),
        };
        let mut src: Vec<Origin> = Origin::chain_of(subject.claims()).collect();
        if let Some(actor) = &actor {
            src.extend(Origin::chain_of(actor.claims()));
        }
        if src.len() > MAX_CHAIN {
            return Err(Error::InvalidGrant(format!(
                "the token descends from more than {MAX_CHAIN} exchanges; get a token at the source"
            )));
        }
        let audience = chosen_audience(
            &client.spec.exchange_audiences,
            &request.audience,
            "for exchange by this client",
        )?;
        let scopes = carried_scopes(client, subject.scopes(), requested)?;
        let claims = self.exchanged_claims(client, &subject, actor.as_ref(), audience, &scopes)?;
        let cnf = cnf.map(|x5t_s256| Confirmation { x5t_s256 });
        let claims = AccessClaims { src, cnf, ..claims };
        let mut issued = self.mint_claims(client, claims, &scopes).await?;
        issued.issued_token_type = Some(ACCESS_TOKEN_TYPE);
        Ok(issued)
    }

    /// The subject or actor token, active and of the client's own tenant; else `invalid_grant`
    /// (the same answer either way: another tenant's token is none of this client's business).
    async fn party(&self, client: &Client, token: &str, field: &str) -> Result<ActiveToken> {
        match self.introspection.verify(token).await? {
            Some(active) if active.tenant() == &client.tenant => Ok(active),
            _ => Err(Error::InvalidGrant(format!(
                "the {field} is not active (expired, revoked, malformed, or not issued by this \
                 tokend to a client of this tenant)"
            ))),
        }
    }

    fn exchanged_claims(
        &self,
        client: &Client,
        subject: &ActiveToken,
        actor: Option<&ActiveToken>,
        aud: Vec<String>,
        scopes: &ScopeSet,
    ) -> Result<AccessClaims> {
        let s = subject.claims();
        // The client's own claims for these scopes and audience, then what the subject brings:
        // its `sub` and roles, an `exp` no later than its own, and the actor chain.
        let own = self.claims(client, scopes, aud, None)?;
        let acting = actor.map_or_else(|| client.id.to_string(), |a| a.claims().sub.clone());
        Ok(AccessClaims {
            sub: s.sub.clone(),
            exp: own.exp.min(s.exp),
            roles: s.roles.clone(),
            act: Some(Actor {
                sub: acting,
                act: s.act.clone().map(Box::new),
            }),
            ..own
        })
    }
}

/// The request's form: token types tokend knows, a subject token, an actor token only with
/// its type.
fn check_shape(request: &Exchange) -> Result<()> {
    if request.subject_token.is_empty() {
        return Err(Error::invalid("subject_token", "is required"));
    }
    token_type(
        "subject_token_type",
        &request.subject_token_type,
        &request.subject_token,
    )?;
    match (
        request.actor_token.is_empty(),
        request.actor_token_type.is_empty(),
    ) {
        (true, true) => {}
        (false, false) => token_type(
            "actor_token_type",
            &request.actor_token_type,
            &request.actor_token,
        )?,
        (false, true) => {
            return Err(Error::invalid(
                "actor_token_type",
                "is required with actor_token",
            ));
        }
        (true, false) => {
            return Err(Error::invalid(
                "actor_token_type",
                "must be empty without actor_token",
            ));
        }
    }
    if !matches!(
        request.requested_token_type.as_str(),
        "" | ACCESS_TOKEN_TYPE
    ) {
        return Err(Error::invalid(
            "requested_token_type",
            format!("tokend issues access tokens only: use {ACCESS_TOKEN_TYPE} or leave it out"),
        ));
    }
    Ok(())
}

/// A token type tokend accepts for `token`: any access token, or `jwt` for a JWT.
fn token_type(field: &str, raw: &str, token: &str) -> Result<()> {
    let opaque = token.starts_with(OpaqueKind::Access.prefix());
    match raw {
        "" => Err(Error::invalid(
            field,
            format!("is required: use {ACCESS_TOKEN_TYPE}"),
        )),
        ACCESS_TOKEN_TYPE => Ok(()),
        JWT_TOKEN_TYPE if !opaque => Ok(()),
        JWT_TOKEN_TYPE => Err(Error::invalid(
            field,
            format!("the token is an opaque access token, not a JWT: use {ACCESS_TOKEN_TYPE}"),
        )),
        other => Err(Error::invalid(
            field,
            format!(
                "{other:?} is not a token type tokend exchanges: use {ACCESS_TOKEN_TYPE} or \
                 {JWT_TOKEN_TYPE}"
            ),
        )),
    }
}

/// The scopes carried over: what the subject token holds and the client is allowed, never a
/// `tokend.*` scope. Requested scopes must be covered by both (else `invalid_scope`); none
/// requested: every scope of the subject token the client is allowed.
fn carried_scopes(client: &Client, subject: &ScopeSet, requested: &ScopeSet) -> Result<ScopeSet> {
    let reserved = |s: &str| s.starts_with(RESERVED_PREFIX);
    if let Some(s) = requested.iter().find(|s| reserved(s.as_str())) {
        return Err(Error::InvalidScope(format!(
            "{s} cannot be carried over by token exchange: tokend's own scopes are never delegated"
        )));
    }
    let carried = if requested.is_empty() {
        let kept: Vec<&str> = subject
            .iter()
            .filter(|s| !reserved(s.as_str()) && client.spec.scopes.allows(s))
            .map(|s| s.as_str())
            .collect();
        ScopeSet::parse("scope", &kept)?
    } else {
        subject.grant(requested).map_err(|_| {
            Error::InvalidScope(
                "a requested scope is not held by the subject token: exchange never widens".into(),
            )
        })?;
        client.spec.scopes.grant(requested)?
    };
    if carried.is_empty() {
        return Err(Error::InvalidScope(
            "none of the subject token's scopes may be carried over by this client (its own \
             allowed scopes limit what it may carry)"
                .into(),
        ));
    }
    Ok(carried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_types() {
        assert!(token_type("t", ACCESS_TOKEN_TYPE, "eyJ").is_ok());
        assert!(token_type("t", JWT_TOKEN_TYPE, "eyJ").is_ok());
        assert!(token_type("t", JWT_TOKEN_TYPE, "tkd_at_x").is_err());
        let err = token_type("t", "urn:ietf:params:oauth:token-type:saml2", "x").unwrap_err();
        assert_eq!(err.oauth2_code(), Some("invalid_request"));
        assert!(token_type("t", "", "x").is_err());
    }

    #[test]
    fn shape() {
        let ok = Exchange {
            subject_token: "eyJ".into(),
            subject_token_type: ACCESS_TOKEN_TYPE.into(),
            ..Default::default()
        };
        assert!(check_shape(&ok).is_ok());
        let no_actor_type = Exchange {
            actor_token: "eyJ".into(),
            ..ok.clone()
        };
        assert!(check_shape(&no_actor_type).is_err());
        let id_token = Exchange {
            requested_token_type: "urn:ietf:params:oauth:token-type:id_token".into(),
            ..ok.clone()
        };
        assert!(check_shape(&id_token).is_err());
        assert!(
            check_shape(&Exchange {
                subject_token: String::new(),
                ..ok
            })
            .is_err()
        );
    }
}
