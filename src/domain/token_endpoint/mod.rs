//! The token endpoint: one service that every front end (gRPC `TokenService`, the HTTP
//! `/oauth2/token` and `/oauth2/revoke`, HTTP introspection's client authentication) calls.
//!
//! It owns:
//! - `client_auth`: who is calling ([`ClientAuth`]: client_id, [`Proof`], address);
//! - `gate`: the one gate every call passes: lockout and per-address limit before any hash
//!   work, the proof checked by the verifier of its kind (`secret_proof`, `assertion_proof`
//!   for RFC 7523 client assertions, `federated_proof` for workload tokens, `certificate_proof`
//!   for RFC 8705 TLS client certificates), then the client's allow-list, state and rate limit,
//!   refusals counted for the audit trail;
//! - `grant`: the typed [`GrantRequest`] every front end builds, and [`IssuedToken`];
//! - `service`: [`TokenEndpoint`] and its one entry, [`TokenEndpoint::grant`], which
//!   dispatches to `client_credentials`, `refresh` (rotation with reuse detection) or
//!   `exchange` (RFC 8693);
//! - `records`: what is kept between calls (refresh families and tokens, opaque tokens);
//! - `revocation`: RFC 7009, with its `token_type_hint` rule;
//! - `mint`: claims, signing and opaque tokens for every grant; `claims` (the RFC 9068
//!   access-token claims) and `opaque` (opaque tokens and refresh tokens) are the token
//!   formats introspection reads too.
//!
//! Calls flow down from here to introspection (an exchanged token's subject, a revoked JWT),
//! policy, the registry and the store; nothing below calls back up.

mod assertion_proof;
mod certificate_proof;
pub(crate) mod claims;
mod client_auth;
mod client_credentials;
mod exchange;
mod federated_proof;
mod gate;
mod grant;
mod mint;
pub(crate) mod opaque;
mod records;
mod refresh;
mod revocation;
mod secret_proof;
mod service;

pub use assertion_proof::{AssertionRules, DEFAULT_ASSERTION_LIFETIME, TOKEN_ENDPOINT_PATH};
pub use claims::{AccessClaims, Actor, Confirmation, Origin};
pub use client_auth::{
    ClientAuth, Endpoint, JWT_BEARER_ASSERTION, MAX_ASSERTION_LEN, Presented, Proof,
};
pub use exchange::{ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, MAX_CHAIN};
pub use gate::MAX_HELD_REFUSALS;
pub use grant::{Exchange, Grant, GrantRequest, GrantType, IssuedToken, TOKEN_EXCHANGE_GRANT};
pub use opaque::{OpaqueKind, OpaqueToken};
pub use records::{OpaqueRecord, RefreshClaim, RefreshFamily, RefreshRecord};
pub use revocation::{RevokeRequest, TokenTypeHint};
pub use service::TokenEndpoint;
