//! Workload identity federation: the issuers the operator trusts (`[[federation.issuers]]`: a
//! Kubernetes cluster's service-account issuer, a SPIFFE trust domain's JWT-SVID issuer, any
//! OIDC issuer), where their keys come from, which audiences and token ages they may use, and
//! which tenants may bind clients to them. A client names workload identities of these
//! issuers in its `federated_credentials`; the verifier (`token_endpoint::federated_proof`)
//! checks a workload's token against the issuer's keys and rules here.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::clients::{ClientKey, FederatedCredential};
use crate::domain::error::{Error, Result};
use crate::domain::key_sets::{
    Freshness, KeySetError, KeySetSource, KeySets, NoKeySets, check_url,
};

/// Default oldest token accepted from an issuer (`max_token_age_secs`): a Kubernetes projected
/// token's default lifetime; the kubelet replaces it at 80 % of that.
pub const DEFAULT_MAX_TOKEN_AGE: Duration = Duration::from_secs(3600);

/// Where an issuer's public keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLocation {
    /// `<issuer>/.well-known/openid-configuration`, whose `jwks_uri` is then fetched.
    Discovery,
    /// A JWK Set at this URL.
    Url(String),
    /// A JWK Set in this file.
    File(PathBuf),
}

/// One issuer the operator trusts, as configured.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    /// The exact `iss` of its tokens.
    pub issuer: String,
    pub keys: KeyLocation,
    /// A token's `aud` must hold one of these; empty: tokend's own (its issuer and token
    /// endpoint URLs, as for client assertions).
    pub audiences: Vec<String>,
    /// Oldest token accepted, by its `iat`.
    pub max_token_age: Duration,
    /// Tenants whose clients may name this issuer; empty: every tenant.
    pub tenants: BTreeSet<String>,
}

/// The fetchers of key sets: one for clients' `jwks_uri`, one per federated issuer (each with
/// its own CA and token for the fetch). The default fetches nothing.
#[derive(Clone)]
pub struct KeySources {
    pub clients: Arc<dyn KeySetSource>,
    /// By issuer; an issuer without one gets nothing.
    pub issuers: HashMap<String, Arc<dyn KeySetSource>>,
}

impl Default for KeySources {
    fn default() -> Self {
        Self {
            clients: Arc::new(NoKeySets),
            issuers: HashMap::new(),
        }
    }
}

impl fmt::Debug for KeySources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySources")
            .field("issuers", &self.issuers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A trusted issuer with its keys.
pub struct Issuer {
    pub rules: TrustedIssuer,
    keys: KeySets,
}

/// The trusted issuers.
pub struct Federation {
    issuers: HashMap<String, Issuer>,
}

impl Federation {
    /// `default_audiences` serve an issuer configured without its own.
    pub fn new(
        issuers: Vec<TrustedIssuer>,
        sources: &KeySources,
        default_audiences: &[String],
    ) -> Self {
        let issuers = issuers
            .into_iter()
            .map(|mut rules| {
                if rules.audiences.is_empty() {
                    rules.audiences = default_audiences.to_vec();
                }
                let source = sources
                    .issuers
                    .get(&rules.issuer)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(NoKeySets));
                let issuer = Issuer {
                    rules,
                    keys: KeySets::new(source),
                };
                (issuer.rules.issuer.clone(), issuer)
            })
            .collect();
        Self { issuers }
    }

    /// The issuer named `iss`, if trusted.
    pub fn issuer(&self, iss: &str) -> Option<&Issuer> {
        self.issuers.get(iss)
    }

    /// Whether clients of `tenant` may accept tokens of each credential's issuer; the error
    /// names the first entry that may not.
    pub fn check_credentials(
        &self,
        field: &str,
        tenant: &str,
        credentials: &[FederatedCredential],
    ) -> Result<()> {
        for (i, credential) in credentials.iter().enumerate() {
            let allowed = self
                .issuer(&credential.issuer)
                .is_some_and(|issuer| issuer.allows_tenant(tenant));
            if !allowed {
                let mut known: Vec<&str> = self
                    .issuers
                    .values()
                    .filter(|i| i.allows_tenant(tenant))
                    .map(|i| i.rules.issuer.as_str())
                    .collect();
                known.sort_unstable();
                let known = if known.is_empty() {
                    "none is configured for this tenant ([[federation.issuers]] in tokend's \
                     config)"
                        .to_owned()
                } else {
                    format!("trusted for this tenant: {}", known.join(", "))
                };
                return Err(Error::invalid(
                    format!("{field}[{i}].issuer"),
                    format!(
                        "{:?} is not an issuer this tenant may use; {known}",
                        credential.issuer
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Issuer {
    /// Whether clients of `tenant` may name this issuer.
    pub fn allows_tenant(&self, tenant: &str) -> bool {
        self.rules.tenants.is_empty() || self.rules.tenants.contains(tenant)
    }

    /// The key `kid` names, from the issuer's current keys (one refetch when they lack it).
    pub async fn key(&self, kid: Option<&str>) -> std::result::Result<ClientKey, KeySetError> {
        let url = match &self.rules.keys {
            KeyLocation::Url(url) => url.clone(),
            KeyLocation::File(path) => path.display().to_string(),
            KeyLocation::Discovery => self.discovered_jwks_uri().await?,
        };
        self.keys.key(&url, kid).await
    }

    /// The `jwks_uri` of the issuer's OpenID discovery document, which must name this very
    /// issuer (OpenID Connect Discovery section 4.3).
    async fn discovered_jwks_uri(&self) -> std::result::Result<String, KeySetError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = discovery_url(&self.rules.issuer);
        let text = self.keys.document(&url, Freshness::Cached).await?;
        let doc: Discovery = serde_json::from_str(&text).map_err(|e| {
            KeySetError::Unusable(format!("{url}: not an OpenID discovery document: {e}"))
        })?;
        if doc.issuer != self.rules.issuer {
            return Err(KeySetError::Unusable(format!(
                "{url} names the issuer {:?}, not {:?}",
                doc.issuer, self.rules.issuer
            )));
        }
        check_url(&doc.jwks_uri)?;
        Ok(doc.jwks_uri)
    }
}

/// Where an issuer's OpenID discovery document is.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}
