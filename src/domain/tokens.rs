//! Issuing access tokens: the client-credentials grant (RFC 6749 section 4.4) producing RFC 9068
//! JWTs.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;

use super::claims::{ACCESS_TOKEN_TYP, AccessClaims};
use super::client::Client;
use super::clock::{Clock, to_micros};
use super::error::{Error, Result};
use super::ids::ClientId;
use super::keys::KeyRing;
use super::scope::ScopeSet;
use super::secret::{ClientSecret, SecretHasher};
use crate::store::Store;

/// A client-credentials request as received. `Debug` redacts the secret.
#[derive(Clone, Default)]
pub struct TokenRequest {
    pub client_id: String,
    /// Wrapped in `ClientSecret` before any use; never logged.
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub audience: Vec<String>,
}

/// A freshly issued access token. `Debug` redacts the token.
#[derive(Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    pub scopes: ScopeSet,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("audience", &self.audience)
            .finish()
    }
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Authenticates clients and signs their tokens.
pub struct TokenIssuer {
    pub(super) store: Arc<dyn Store>,
    pub(super) hasher: SecretHasher,
    pub(super) keys: Arc<KeyRing>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) issuer: String,
}

impl TokenIssuer {
    /// The client-credentials grant: authenticate, check policy, sign.
    #[tracing::instrument(skip_all, fields(client_id = %request.client_id))]
    pub async fn issue(&self, request: &TokenRequest) -> Result<IssuedToken> {
        let requested_scopes = ScopeSet::parse("scopes", &request.scopes)
            .map_err(|e| Error::InvalidScope(e.to_string()))?;
        let client = self
            .authenticate(&request.client_id, &request.client_secret)
            .await?;
        if !client.spec.active {
            return Err(Error::UnauthorizedClient(
                "this client is disabled; an admin can re-enable it".into(),
            ));
        }
        let scopes = client.spec.scopes.grant(&requested_scopes)?;
        let audience = self.grant_audience(&client, &request.audience)?;
        let token = self.sign(&client, &scopes, audience)?;
        self.record_use(&client.id);
        Ok(token)
    }

    /// Checks a client's credentials. Unknown clients and wrong secrets fail alike, after the
    /// same single hash verification.
    pub async fn authenticate(&self, client_id: &str, secret: &str) -> Result<Client> {
        let id = ClientId::parse("client_id", client_id).map_err(|_| Error::InvalidClient)?;
        let secret = ClientSecret::from_presented(secret).ok_or(Error::InvalidClient)?;
        // The same two lookups and one argon2 verification whether or not the client exists.
        let client = self.store.get_client(id.as_str()).await?;
        let now = to_micros(self.clock.now());
        let hash = self
            .store
            .live_secret_hash(id.as_str(), &secret.selector(), now)
            .await?;
        if !self.hasher.verify(&secret, hash).await? {
            return Err(Error::InvalidClient);
        }
        let row = client.ok_or(Error::InvalidClient)?;
        Client::from_row(row)
    }

    fn grant_audience(&self, client: &Client, requested: &[String]) -> Result<Vec<String>> {
        let allowed = &client.spec.audiences;
        if requested.is_empty() {
            return Ok(if allowed.is_empty() {
                vec![self.issuer.clone()]
            } else {
                allowed.iter().cloned().collect()
            });
        }
        let refused: Vec<&str> = requested
            .iter()
            .filter(|a| !allowed.contains(*a))
            .map(String::as_str)
            .collect();
        if !refused.is_empty() {
            return Err(Error::InvalidTarget(format!(
                "audience not allowed for this client: {}",
                refused.join(" ")
            )));
        }
        let mut aud = requested.to_vec();
        aud.sort();
        aud.dedup();
        Ok(aud)
    }

    fn sign(&self, client: &Client, scopes: &ScopeSet, aud: Vec<String>) -> Result<IssuedToken> {
        let key = self.keys.signing_key();
        let now = self.clock.now().unix_timestamp();
        let ttl = i64::try_from(client.spec.access_token_ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: client.id.to_string(),
            aud,
            exp: now.saturating_add(ttl),
            iat: now,
            nbf: now,
            jti: new_jti()?,
            client_id: client.id.to_string(),
            scope: scopes.to_claim(),
            tenant: client.tenant.to_string(),
            roles: client.spec.roles.iter().cloned().collect(),
        };
        let mut header = Header::new(key.jwt_algorithm());
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(key.kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, key.encoding_key())
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("signing failed: {e}")))?;
        Ok(IssuedToken {
            access_token,
            expires_in: ttl,
            scopes: scopes.clone(),
        })
    }

    /// Updates `last_used_time` off the request path; losing one update is harmless.
    fn record_use(&self, id: &ClientId) {
        let store = self.store.clone();
        let id = id.clone();
        let at = to_micros(self.clock.now());
        tokio::spawn(async move {
            if let Err(err) = store.touch_client(id.as_str(), at).await {
                tracing::warn!(client_id = %id, error = %err, "could not record last use");
            }
        });
    }
}

/// A fresh 128-bit token id.
fn new_jti() -> Result<String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| Error::Unexpected(anyhow::anyhow!("system random source failed")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}
