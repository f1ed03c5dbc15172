//! `[[federation.issuers]]`: the workload-identity issuers whose tokens clients may present in
//! place of a secret (a Kubernetes cluster's service-account issuer, a SPIFFE trust domain, any
//! OIDC issuer), where their keys come from, and what is accepted of them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::TenantId;
use crate::domain::federation::{DEFAULT_MAX_TOKEN_AGE, KeyLocation, TrustedIssuer};
use crate::domain::key_sets::check_url;

/// Most trusted issuers.
const MAX_ISSUERS: usize = 64;
/// Oldest token age an issuer may be allowed: a day (a workload token is meant to be short).
const MAX_TOKEN_AGE_SECS: u64 = 24 * 3600;

/// `[federation]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationSettings {
    pub issuers: Vec<IssuerSettings>,
}

/// One `[[federation.issuers]]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerSettings {
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// Find the keys through `<issuer>/.well-known/openid-configuration`.
    pub discovery: bool,
    /// Or: the JWK Set's URL.
    pub jwks_uri: Option<String>,
    /// Or: a file holding the JWK Set.
    pub jwks_file: Option<PathBuf>,
    /// PEM CA certificates trusted for the fetch, besides the public web's.
    pub ca_file: Option<PathBuf>,
    /// A file holding a bearer token sent with the fetch (a pod's service-account token).
    pub token_file: Option<PathBuf>,
    /// Accepted `aud` values; empty: tokend's issuer and token endpoint URL.
    pub audiences: Vec<String>,
    /// Oldest token accepted, by its `iat`, seconds (60-86400; default 3600).
    pub max_token_age_secs: Option<u64>,
    /// Tenants whose clients may name this issuer; empty: every tenant.
    pub tenants: Vec<String>,
}

/// One checked issuer, with what its fetches need.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub rules: TrustedIssuer,
    pub ca_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
}

impl FederationSettings {
    pub(super) fn resolve(&self) -> Result<Vec<IssuerConfig>, ConfigError> {
        ConfigError::unless(
            self.issuers.len() <= MAX_ISSUERS,
            "federation",
            &format!("issuers: at most {MAX_ISSUERS}"),
        )?;
        let mut seen = BTreeSet::new();
        let mut issuers = Vec::with_capacity(self.issuers.len());
        for (i, settings) in self.issuers.iter().enumerate() {
            let section = format!("federation.issuers[{i}]");
            let issuer = settings.resolve(&section)?;
            ConfigError::unless(
                seen.insert(issuer.rules.issuer.clone()),
                &section,
                &format!("issuer {:?} is configured twice", issuer.rules.issuer),
            )?;
            issuers.push(issuer);
        }
        Ok(issuers)
    }
}

impl IssuerSettings {
    fn resolve(&self, section: &str) -> Result<IssuerConfig, ConfigError> {
        let fail = |message: String| ConfigError(format!("{section}.{message}"));
        let issuer = self.issuer.trim();
        if issuer.is_empty() || issuer.len() > 1024 || issuer.chars().any(char::is_whitespace) {
            return Err(fail(
                "issuer must be the exact `iss` of the issuer's tokens (1-1024 characters, no \
                 spaces)"
                    .into(),
            ));
        }
        let keys = match (self.discovery, &self.jwks_uri, &self.jwks_file) {
            (true, None, None) => {
                check_url(issuer).map_err(|e| {
                    fail(format!(
                        "discovery needs an https issuer (its keys are found at \
                         <issuer>/.well-known/openid-configuration): {e}"
                    ))
                })?;
                KeyLocation::Discovery
            }
            (false, Some(url), None) => {
                check_url(url).map_err(|e| fail(format!("jwks_uri: {e}")))?;
                KeyLocation::Url(url.clone())
            }
            (false, None, Some(file)) => KeyLocation::File(file.clone()),
            _ => {
                return Err(fail(
                    "keys: set exactly one of discovery = true, jwks_uri or jwks_file".into(),
                ));
            }
        };
        if matches!(keys, KeyLocation::File(_))
            && (self.ca_file.is_some() || self.token_file.is_some())
        {
            return Err(fail(
                "ca_file and token_file are for fetching keys over HTTPS; with jwks_file there \
                 is no fetch"
                    .into(),
            ));
        }
        for audience in &self.audiences {
            if audience.is_empty() || audience.chars().any(char::is_whitespace) {
                return Err(fail(format!(
                    "audiences: {audience:?} must be non-empty, without spaces"
                )));
            }
        }
        let age = self
            .max_token_age_secs
            .unwrap_or(DEFAULT_MAX_TOKEN_AGE.as_secs());
        if !(60..=MAX_TOKEN_AGE_SECS).contains(&age) {
            return Err(fail(format!(
                "max_token_age_secs must be between 60 and {MAX_TOKEN_AGE_SECS}"
            )));
        }
        let tenants = self
            .tenants
            .iter()
            .map(|t| {
                TenantId::parse("tenants", t)
                    .map(|t| t.to_string())
                    .map_err(|e| fail(e.to_string()))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(IssuerConfig {
            rules: TrustedIssuer {
                issuer: issuer.to_owned(),
                keys,
                audiences: self.audiences.clone(),
                max_token_age: Duration::from_secs(age),
                tenants,
            },
            ca_file: self.ca_file.clone(),
            token_file: self.token_file.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(change: impl FnOnce(&mut IssuerSettings)) -> FederationSettings {
        let mut one = IssuerSettings {
            issuer: "https://kubernetes.default.svc.cluster.local".into(),
            discovery: true,
            ..IssuerSettings::default()
        };
        change(&mut one);
        FederationSettings { issuers: vec![one] }
    }

    fn error(s: &FederationSettings) -> String {
        s.resolve().unwrap_err().to_string()
    }

    #[test]
    fn a_discovered_issuer_resolves_with_defaults() {
        let resolved = issuer(|_| {}).resolve().unwrap();
        let rules = &resolved[0].rules;
        assert_eq!(rules.keys, KeyLocation::Discovery);
        assert_eq!(rules.max_token_age, Duration::from_secs(3600));
        assert!(rules.tenants.is_empty() && rules.audiences.is_empty());
    }

    #[test]
    fn bad_issuers_are_named() {
        let both = issuer(|i| i.jwks_uri = Some("https://k/keys".into()));
        assert!(error(&both).contains("federation.issuers[0].keys: set exactly one"));
        let none = issuer(|i| i.discovery = false);
        assert!(error(&none).contains("exactly one"));
        let spiffe = issuer(|i| i.issuer = "spiffe://prod.example".into());
        assert!(error(&spiffe).contains("discovery needs an https issuer"));
        let plain = issuer(|i| {
            i.discovery = false;
            i.jwks_uri = Some("http://keys.example/jwks".into());
        });
        assert!(error(&plain).contains("jwks_uri"), "{}", error(&plain));
        let old = issuer(|i| i.max_token_age_secs = Some(90_000));
        assert!(error(&old).contains("max_token_age_secs"));
        let tenant = issuer(|i| i.tenants = vec!["bad tenant".into()]);
        assert!(error(&tenant).contains("federation.issuers[0].tenants"));
        let file_and_ca = issuer(|i| {
            i.discovery = false;
            i.jwks_file = Some("keys.json".into());
            i.ca_file = Some("ca.pem".into());
        });
        assert!(error(&file_and_ca).contains("no fetch"));
        let mut twice = issuer(|_| {});
        twice.issuers.push(twice.issuers[0].clone());
        assert!(error(&twice).contains("configured twice"));
    }
}
