//! What every front end (gRPC, HTTP, Envoy's ext_authz) and every layer of the API port
//! (limits, metrics) shares in reading a request and writing an error, so they cannot disagree
//! and none reaches sideways into another: whether a request is gRPC (`content`), the one
//! presentation of a domain error
//! (`presentation`: gRPC code, HTTP status, OAuth 2.0 code, retry-after, challenge), the IETF
//! RateLimit headers of an API quota (`rate_limit`) and the
//! request's caller facts (`request`: the one `authorization` field and its bearer token, the
//! client's address behind trusted proxies; `client_cert`: the client certificate a trusted
//! proxy forwards in Envoy's `x-forwarded-client-cert`; `edge`: the edge verdict as Envoy's
//! ext_authz and HTTP forward auth both show it). Calls `domain` only for its types and
//! rules.

pub mod client_cert;
mod content;
mod edge;
mod presentation;
pub mod rate_limit;
mod request;

pub use client_cert::client_certificate;
pub use content::is_grpc;
pub use edge::{EdgeAnswer, edge_answer};
pub use presentation::{Challenge, Presentation, error_body};
pub use request::{authorization, bearer_token, client_address};
