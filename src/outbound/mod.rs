//! What tokend fetches from other servers, for the domain's traits: today the public key sets
//! (JWKS) of clients and federated issuers (`key_sets`). Outbound calls get a timeout, a size
//! cap, no redirects, and TLS with the same aws-lc-rs provider as everything else.

mod key_sets;

pub use key_sets::{HttpKeySets, KeySetLimits};

/// Makes aws-lc-rs the process's default rustls provider. tokend's own TLS configs name their
/// provider; this is for code that asks rustls for the default (reqwest's own builder panics
/// without one, since tokend's build of it brings no provider of its own). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
