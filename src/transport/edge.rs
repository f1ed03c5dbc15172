//! The edge verdict as every front end presents it: Envoy's `ext_authz` Check (gRPC) and the
//! HTTP forward-auth endpoint `/edge/verify` (nginx `auth_request`, Caddy `forward_auth`,
//! Traefik `ForwardAuth`) ask the same domain function and show its answer through this one
//! mapping, so they cannot disagree: the identity an allowed request carries upstream, or the
//! error, its status and its RFC 6750 challenge.

use crate::domain::policy::QuotaReport;
use crate::domain::{ActiveToken, EdgeVerdict, Error};
use crate::transport::{Challenge, Presentation};

/// What the edge answers.
#[derive(Debug)]
pub enum EdgeAnswer {
    /// Let it through with the token's client id, tenant, scopes (space-delimited) and `sub`,
    /// in that order (an empty value: the token has none), and what is left of the API quotas
    /// that applied (the `RateLimit` header once one runs low).
    Allow([String; 4], QuotaReport),
    /// Refuse, as the presentation of the error says (status, challenge, retry delay); over an
    /// API quota, with the quotas for the `RateLimit-Policy` and `RateLimit` headers (empty for
    /// every other refusal).
    Deny(Box<Presentation>, Error, QuotaReport),
}

/// The answer to `verdict`.
pub fn edge_answer(verdict: EdgeVerdict) -> EdgeAnswer {
    let (err, scope) = match verdict {
        EdgeVerdict::Allow(active, quotas) => return EdgeAnswer::Allow(identity(&active), quotas),
        EdgeVerdict::Throttled(throttled) => {
            let shown = Presentation::of(&throttled.error);
            return EdgeAnswer::Deny(Box::new(shown), throttled.error, throttled.report);
        }
        EdgeVerdict::NoToken => {
            let err = Error::Unauthenticated("the request carries no bearer token".into());
            // RFC 6750 section 3.1: no error code when no credentials were sent.
            let mut shown = Presentation::of(&err);
            shown.challenge = Some(Challenge::Bearer {
                error: None,
                scope: None,
            });
            return EdgeAnswer::Deny(Box::new(shown), err, QuotaReport::default());
        }
        EdgeVerdict::BadPath(why) => {
            let err = Error::PermissionDenied(format!("{why}: the request is refused"));
            // No token could change this answer: no challenge, and the body says the request
            // itself is at fault.
            let mut shown = Presentation::of(&err);
            shown.challenge = None;
            shown.oauth2 = Some("invalid_request");
            return EdgeAnswer::Deny(Box::new(shown), err, QuotaReport::default());
        }
        EdgeVerdict::InvalidToken => (
            Error::Unauthenticated(
                "the bearer token is not valid (expired, revoked, malformed or not issued by \
                 this tokend)"
                    .into(),
            ),
            None,
        ),
        EdgeVerdict::Insufficient(lacking) => (
            Error::PermissionDenied(lacking.description),
            Some(lacking.required),
        ),
    };
    let mut shown = Presentation::of(&err);
    if let (Some(Challenge::Bearer { scope: slot, .. }), Some(scope)) =
        (&mut shown.challenge, scope)
    {
        *slot = Some(scope);
    }
    EdgeAnswer::Deny(Box::new(shown), err, QuotaReport::default())
}

/// The identity an allowed request carries upstream.
pub fn identity(active: &ActiveToken) -> [String; 4] {
    let claims = active.claims();
    [
        claims.client_id.clone(),
        active.tenant().as_str().to_owned(),
        active.scopes().to_claim(),
        claims.sub.clone(),
    ]
}
