//! What every front end (gRPC, HTTP, Envoy's ext_authz) shares in reading a request and
//! writing an error, so they cannot disagree: the one presentation of a domain error
//! (`presentation`: gRPC code, HTTP status, OAuth 2.0 code, retry-after, challenge) and the
//! request's caller facts (`request`: the bearer token of an `authorization` value, the
//! client's address behind trusted proxies). Calls `domain` only for its types and rules.

mod presentation;
mod request;

pub use presentation::{Challenge, Presentation, error_body};
pub use request::{bearer_token, client_address};
