//! What tokend fetches from other servers, for the domain's traits: today the public key sets
//! (JWKS) of clients and federated issuers (`key_sets`). Outbound calls get a timeout, a size
//! cap, no redirects, and TLS with the same aws-lc-rs provider as everything else.

mod key_sets;

pub use key_sets::{FileKeySet, HttpKeySets, KeySetLimits};

/// Makes aws-lc-rs the process's default rustls provider. tokend's own TLS configs name their
/// provider; this is for code that asks rustls for the default (reqwest's own builder panics
/// without one, since tokend's build of it brings no provider of its own). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The fetchers of key sets for the domain: one for clients' `jwks_uri` (the public web's CAs),
/// and one per federated issuer, with its own `ca_file` and `token_file`, or its `jwks_file`.
/// Fails when a CA file cannot be read: a bad `ca_file` is a startup error, not a refusal of
/// every workload later.
pub fn key_sources(
    issuers: &[crate::config::IssuerConfig],
    refetch_interval: std::time::Duration,
) -> anyhow::Result<crate::domain::federation::KeySources> {
    use std::sync::Arc;

    use anyhow::Context as _;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    use crate::domain::federation::{KeyLocation, KeySources};
    use crate::domain::key_sets::KeySetSource;

    let limits = KeySetLimits {
        refetch_interval,
        ..KeySetLimits::default()
    };
    let mut sources = KeySources {
        clients: Arc::new(HttpKeySets::new(limits.clone(), Vec::new())?),
        ..KeySources::default()
    };
    for issuer in issuers {
        let name = &issuer.rules.issuer;
        let source: Arc<dyn KeySetSource> = match &issuer.rules.keys {
            KeyLocation::File(path) => {
                Arc::new(FileKeySet::new(path.clone(), limits.refetch_interval))
            }
            KeyLocation::Url(_) | KeyLocation::Discovery => {
                let roots = match &issuer.ca_file {
                    Some(file) => CertificateDer::pem_file_iter(file)
                        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                        .with_context(|| {
                            format!("federation issuer {name}: ca_file {}", file.display())
                        })?,
                    None => Vec::new(),
                };
                let fetcher = HttpKeySets::new(limits.clone(), roots)
                    .with_context(|| format!("federation issuer {name}"))?;
                Arc::new(match &issuer.token_file {
                    Some(file) => fetcher.with_bearer_token_file(file.clone()),
                    None => fetcher,
                })
            }
        };
        sources.issuers.insert(name.clone(), source);
    }
    Ok(sources)
}
