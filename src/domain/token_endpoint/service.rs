//! The token endpoint service: its parts, and the one entry every grant goes through.

use std::sync::Arc;
use std::time::Duration;

use super::assertion_proof::AssertionRules;
use super::client_auth::Endpoint;
use super::grant::{Grant, GrantRequest, IssuedToken};
use crate::domain::audit::UsageRecorder;
use crate::domain::audit::usage::Counter;
use crate::domain::clients::ClientCa;
use crate::domain::clients::secret::SecretHasher;
use crate::domain::clock::Clock;
use crate::domain::error::{Error, Result};
use crate::domain::federation::Federation;
use crate::domain::introspection::introspector::{Introspector, JwtVerifier};
use crate::domain::introspection::registry::Registry;
use crate::domain::key_sets::KeySets;
use crate::domain::keys::{KeyRing, MacKey};
use crate::domain::policy::Policy;
use crate::domain::scope::ScopeSet;
use crate::domain::stats::Stats;
use crate::store::Store;

/// Authenticates clients, grants, refreshes, exchanges and revokes their tokens.
pub struct TokenEndpoint {
    pub(in crate::domain) store: Arc<dyn Store>,
    pub(in crate::domain) hasher: SecretHasher,
    pub(in crate::domain) keys: Arc<KeyRing>,
    /// Derives refresh successors; the same on every replica and across KEK rotations.
    pub(in crate::domain) mac: Arc<MacKey>,
    pub(in crate::domain) jwt: Arc<JwtVerifier>,
    /// Judges the tokens presented for exchange.
    pub(in crate::domain) introspection: Arc<Introspector>,
    pub(in crate::domain) registry: Arc<Registry>,
    pub(in crate::domain) clock: Arc<dyn Clock>,
    pub(in crate::domain) issuer: String,
    pub(in crate::domain) leeway: Duration,
    /// Which audiences and lifetimes client assertions may have.
    pub(in crate::domain) assertions: AssertionRules,
    /// Key sets clients publish at their `jwks_uri`, fetched and parsed.
    pub(in crate::domain) client_keys: Arc<KeySets>,
    /// The workload-identity issuers the operator trusts.
    pub(in crate::domain) federation: Arc<Federation>,
    /// The CA a forwarded `tls_client_auth` certificate must chain to, when configured.
    pub(in crate::domain) client_ca: Option<Arc<dyn ClientCa>>,
    /// How long a spent refresh token may be presented again for the same successor.
    pub(in crate::domain) refresh_retry_window: Duration,
    /// Last uses and refusals, written in batches.
    pub(in crate::domain) usage: Arc<UsageRecorder>,
    /// Allow-lists, rate limits and the lockout.
    pub(in crate::domain) policy: Arc<Policy>,
    /// Tokens issued, reuse detected, cache hits, for Prometheus.
    pub(in crate::domain) stats: Arc<Stats>,
}

impl TokenEndpoint {
    /// The token endpoint's one entry: checks the request's form, passes the client through
    /// the gate (authentication and policy), and runs the grant. (Its span is at debug level:
    /// every call already has the request's span, and this path is hot.)
    #[tracing::instrument(level = "debug", skip_all, fields(
        client_id = %request.client.logged_id(),
        grant_type = request.grant.grant_type().as_str(),
    ))]
    pub async fn grant(&self, request: &GrantRequest) -> Result<IssuedToken> {
        if let Grant::TokenExchange(exchange) = &request.grant {
            exchange.check_shape()?;
        }
        let scopes = ScopeSet::parse(request.grant.scope_field(), &request.scopes)
            .map_err(|e| Error::InvalidScope(e.to_string()))?;
        let client = self
            .admit(&request.client, Endpoint::Token(request.grant.grant_type()))
            .await?;
        let cnf = self.binding(&client, &request.client)?;
        let (issued, counter) = match &request.grant {
            Grant::ClientCredentials { audience } => (
                self.client_credentials(&client, &scopes, audience, cnf)
                    .await?,
                Counter::TokensIssued,
            ),
            Grant::RefreshToken { refresh_token } => (
                self.refresh(&client, refresh_token, &scopes, &request.client, cnf)
                    .await?,
                Counter::Refreshes,
            ),
            Grant::TokenExchange(exchange) => (
                self.exchange(&client, exchange, &scopes, cnf).await?,
                Counter::TokensIssued,
            ),
        };
        self.record_use(&client.id, request.client.address, counter);
        Ok(issued)
    }
}
