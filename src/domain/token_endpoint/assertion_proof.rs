//! The verifier of client assertions (`Proof::Assertion`, `private_key_jwt`, RFC 7523 sections
//! 2.2 and 3): a JWT the client signed with one of its registered keys, naming itself as
//! `iss` and `sub` and tokend as `aud`, short-lived, and used once.
//!
//! Every refusal is the same `invalid_client` as a wrong secret; which check failed goes to
//! a debug log line only. A refusal costs at most one signature verification: the size is
//! capped before parsing, the key and algorithm are chosen before the signature is checked,
//! no argon2 runs, and the database is written (the `jti`) only for an assertion whose
//! signature and claims are good.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::client_auth::MAX_ASSERTION_LEN;
use super::service::TokenEndpoint;
#[cfg(test)]
use crate::domain::clients::ClientJwks;
use crate::domain::clients::{AuthMethod, Client, ClientKey};
use crate::domain::clock::to_micros;
use crate::domain::error::{Error, Result};
use crate::domain::ids::ClientId;
use crate::store::StoreError;

/// Path of the token endpoint on tokend's HTTP front end: with `server.public_url` or an
/// http(s) issuer before it, an audience a client assertion may name.
pub const TOKEN_ENDPOINT_PATH: &str = "/oauth2/token";
/// Default longest lifetime of a client assertion (`assertions.max_lifetime_secs`).
pub const DEFAULT_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// Longest `jti` accepted.
const MAX_JTI: usize = 256;

/// How client assertions are judged: the audiences that name tokend, and how long an
/// assertion may live.
#[derive(Debug, Clone)]
pub struct AssertionRules {
    /// An assertion's `aud` must hold one of these.
    pub audiences: Vec<String>,
    /// Longest time from `iat` (or now, without one) to `exp`.
    pub max_lifetime: Duration,
}

impl AssertionRules {
    /// The issuer, and the token endpoint's URL under `public_url` and under the issuer when
    /// that is an http(s) URL. Never a URL built from a request's `Host`: an assertion made
    /// for another server must not pass here because its caller chose the header.
    pub fn new(issuer: &str, public_url: Option<&str>, max_lifetime: Duration) -> Self {
        let mut audiences = vec![issuer.to_owned()];
        let web_issuer = issuer.starts_with("https://") || issuer.starts_with("http://");
        let bases = public_url.into_iter().chain(web_issuer.then_some(issuer));
        for base in bases {
            let url = format!("{}{TOKEN_ENDPOINT_PATH}", base.trim_end_matches('/'));
            if !audiences.contains(&url) {
                audiences.push(url);
            }
        }
        Self {
            audiences,
            max_lifetime,
        }
    }

    /// Checks an assertion's signature with the key it names and then its claims, at `now`
    /// (Unix seconds) with `leeway` of clock skew. Returns what must be spent: its `jti`,
    /// and until when it must be remembered (Unix µs). The error says which check failed,
    /// for a debug log line only.
    #[cfg(test)]
    pub(super) fn check(
        &self,
        jwks: &ClientJwks,
        assertion: &str,
        client_id: &str,
        now: i64,
        leeway: Duration,
    ) -> Result<Spent, &'static str> {
        if assertion.len() > MAX_ASSERTION_LEN {
            return Err("assertion too long");
        }
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| "malformed header")?;
        let key = jwks.select(header.kid.as_deref()).ok_or("no such key")?;
        self.check_with(key, header.alg, assertion, client_id, now, leeway)
    }

    /// [`AssertionRules::check`] with the key already chosen (from the client's `jwks`, or
    /// fetched from its `jwks_uri`) for the header's `alg`.
    pub(super) fn check_with(
        &self,
        key: &ClientKey,
        alg: Algorithm,
        assertion: &str,
        client_id: &str,
        now: i64,
        leeway: Duration,
    ) -> Result<Spent, &'static str> {
        let claims: Claims = verified_claims(key, alg, assertion)?;
        self.check_claims(&claims, client_id, now, leeway.as_secs() as i64)
    }

    fn check_claims(
        &self,
        c: &Claims,
        client_id: &str,
        now: i64,
        leeway: i64,
    ) -> Result<Spent, &'static str> {
        if c.iss.as_deref() != Some(client_id) || c.sub.as_deref() != Some(client_id) {
            return Err("iss or sub is not the client_id");
        }
        if !c.aud.contains_any(&self.audiences) {
            return Err("aud does not name tokend");
        }
        let exp = c.check_times(now, leeway)?;
        let max = i64::try_from(self.max_lifetime.as_secs()).unwrap_or(i64::MAX);
        if exp.saturating_sub(c.iat.unwrap_or(now)) > max {
            return Err("lives longer than assertions.max_lifetime_secs");
        }
        let jti = c.jti.as_deref().unwrap_or_default();
        if jti.is_empty() || jti.len() > MAX_JTI {
            return Err("no jti, or one too long");
        }
        Ok(Spent {
            jti: jti.to_owned(),
            expire_us: exp.saturating_add(leeway).saturating_mul(1_000_000),
        })
    }
}

/// The claims of a JWT signed by `key` with `alg`, the algorithm bound to the key's type
/// first (no HMAC, no `none`, no RSA key used as an EC one). Claims are judged by the caller.
pub(super) fn verified_claims<C: serde::de::DeserializeOwned>(
    key: &ClientKey,
    alg: Algorithm,
    jwt: &str,
) -> Result<C, &'static str> {
    if !key.algorithms.contains(&alg) {
        return Err("algorithm does not fit the key");
    }
    jsonwebtoken::decode::<C>(jwt, &key.key, &signature_only(alg))
        .map(|data| data.claims)
        .map_err(|_| "bad signature or malformed claims")
}

/// The signature check alone: every claim is judged by `check_claims`, on tokend's clock.
fn signature_only(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
}

/// A verified assertion's `jti` and until when (Unix µs) it must be remembered.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Spent {
    pub jti: String,
    pub expire_us: i64,
}

/// The claims RFC 7523 section 3 asks about (and a workload's token carries).
#[derive(Deserialize)]
pub(super) struct Claims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Audience,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
}

impl Claims {
    /// `exp` (required) not passed, `nbf` and `iat` not in the future, at `now` (Unix
    /// seconds) with `leeway`; returns `exp`.
    pub(super) fn check_times(&self, now: i64, leeway: i64) -> Result<i64, &'static str> {
        let exp = self.exp.ok_or("no exp")?;
        if exp.saturating_add(leeway) <= now {
            return Err("expired");
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err("not yet valid (nbf)");
        }
        if self.iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err("issued in the future (iat)");
        }
        Ok(exp)
    }
}

/// `aud`: one string or several.
#[derive(Deserialize, Default)]
#[serde(untagged)]
pub(super) enum Audience {
    #[default]
    Absent,
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub(super) fn contains_any(&self, wanted: &[String]) -> bool {
        match self {
            Audience::Absent => false,
            Audience::One(aud) => wanted.contains(aud),
            Audience::Many(auds) => auds.iter().any(|a| wanted.contains(a)),
        }
    }
}

impl TokenEndpoint {
    /// The verifier of `Proof::Assertion`. An assertion whose `iss` is the client_id is the
    /// client's own (`private_key_jwt`, RFC 7523): checked against the client's keys, its
    /// `jti` then spent in the store, which refuses a second use on any replica. Any other
    /// `iss` makes it a workload's token from a federated issuer (`federated_jwt`, see
    /// `federated_proof`). Returns the client and the method it proved itself by. The client
    /// comes from the replica's view (the store only for one the view does not know yet).
    pub(super) async fn verify_assertion(
        &self,
        client_id: &str,
        assertion: &SecretString,
    ) -> Result<(Arc<Client>, AuthMethod)> {
        let text = assertion.expose_secret();
        if text.len() > MAX_ASSERTION_LEN {
            return Err(refused("assertion too long"));
        }
        let client = self.claimed_client(client_id).await.map_err(|e| match e {
            Error::InvalidClient => refused("unknown or malformed client_id"),
            other => other,
        })?;
        let id = &client.id;
        let header = jsonwebtoken::decode_header(text).map_err(|_| refused("malformed header"))?;
        let issuer = claimed_issuer(text);
        if issuer.as_deref() != Some(id.as_str()) {
            self.verify_federated(&client, &header, text, issuer)
                .await
                .map_err(refused)?;
            return Ok((client, AuthMethod::FederatedJwt));
        }
        if !client.spec.auth_methods.allows(AuthMethod::PrivateKeyJwt) {
            return Err(refused("the client does not list private_key_jwt"));
        }
        let key = match (&client.spec.jwks, &client.spec.jwks_uri) {
            (Some(jwks), _) => jwks
                .select(header.kid.as_deref())
                .cloned()
                .ok_or_else(|| refused("no such key"))?,
            (None, Some(url)) => self
                .client_keys
                .key(url, header.kid.as_deref())
                .await
                .map_err(|err| {
                    tracing::debug!(error = %err, "the client's jwks_uri gave no key");
                    refused("no key at the client's jwks_uri")
                })?,
            (None, None) => return Err(refused("no keys")),
        };
        let now_us = to_micros(self.clock.now());
        let spent = self
            .assertions
            .check_with(
                &key,
                header.alg,
                text,
                id.as_str(),
                now_us.div_euclid(1_000_000),
                self.leeway,
            )
            .map_err(refused)?;
        match self
            .store
            .spend_assertion(id.as_str(), &spent.jti, spent.expire_us)
            .await
        {
            Ok(()) => Ok((client, AuthMethod::PrivateKeyJwt)),
            Err(StoreError::AlreadyExists) => Err(refused("jti used before (a replay)")),
            Err(StoreError::NotFound) => Err(refused("client deleted meanwhile")),
            Err(err) => Err(err.into()),
        }
    }
}

impl TokenEndpoint {
    /// The client a proof without a secret names, for its verifier: from the replica's view
    /// (the store only for one the view does not know yet); a malformed or unknown client_id
    /// is `invalid_client`, like a wrong secret.
    pub(super) async fn claimed_client(&self, client_id: &str) -> Result<Arc<Client>> {
        let id = ClientId::parse("client_id", client_id).map_err(|_| Error::InvalidClient)?;
        self.registry.ensure_fresh()?;
        match self.registry.client(id.as_str()) {
            Some(client) => Ok(client),
            None => Ok(Arc::new(
                self.store
                    .get_client(id.as_str())
                    .await?
                    .ok_or(Error::InvalidClient)?,
            )),
        }
    }
}

/// An assertion refused: `invalid_client`, like a wrong secret; why goes to a debug line only.
pub(super) fn refused(why: &'static str) -> Error {
    tracing::debug!(reason = why, "client assertion refused");
    Error::InvalidClient
}

/// The `iss` a JWT claims, read without verifying anything (the verifier of its kind does).
fn claimed_issuer(jwt: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: Option<String>,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Issuer>(jwt)
        .ok()
        .and_then(|claims| claims.iss)
}

#[cfg(test)]
#[path = "assertion_proof_tests.rs"]
mod tests;
