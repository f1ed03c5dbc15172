//! What tokend fetches from other servers, for the domain's traits: today the public key sets
//! (JWKS) of clients and federated issuers (`key_sets`). Outbound calls get a timeout, a size
//! cap, no redirects, and TLS with the same aws-lc-rs provider as everything else.

mod key_sets;

pub use key_sets::{HttpKeySets, KeySetLimits};
