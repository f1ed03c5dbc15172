//! The verifier of a workload's own identity token sent as a client assertion
//! (`federated_jwt`): a Kubernetes service-account token, a SPIFFE JWT-SVID, any OIDC
//! issuer's token, from an issuer the operator trusts (`domain::federation`), whose `iss` and
//! `sub` are one of the client's `federated_credentials`.
//!
//! Unlike a client's own assertion, such a token is not single-use: a projected
//! service-account token is reused for its whole life by design. It is accepted until its
//! `exp`, and only while younger than the issuer's `max_token_age` (by its `iat`).

use jsonwebtoken::Header;

use super::assertion_proof::{Claims, verified_claims};
use super::service::TokenEndpoint;
use crate::domain::clients::{AuthMethod, Client};
use crate::domain::clock::to_micros;
use crate::domain::federation::TrustedIssuer;

impl TokenEndpoint {
    /// Checks a workload token for `client`: the method listed, the issuer trusted for the
    /// client's tenant, the signature by one of the issuer's keys, then the claims. The error
    /// says which check failed, for a debug log line only.
    pub(super) async fn verify_federated(
        &self,
        client: &Client,
        header: &Header,
        jwt: &str,
        issuer: Option<String>,
    ) -> Result<(), &'static str> {
        if !client.spec.auth_methods.allows(AuthMethod::FederatedJwt) {
            return Err("iss is not the client_id, and the client does not list federated_jwt");
        }
        let iss = issuer.ok_or("no iss")?;
        let credentials = &client.spec.federated_credentials;
        if !credentials.iter().any(|c| c.issuer == iss) {
            return Err("no federated credential of the client names this issuer");
        }
        let issuer = self
            .federation
            .issuer(&iss)
            .ok_or("the issuer is not trusted (federation.issuers)")?;
        if !issuer.allows_tenant(client.tenant.as_str()) {
            return Err("the issuer is not trusted for the client's tenant");
        }
        let key = issuer.key(header.kid.as_deref()).await.map_err(|err| {
            tracing::debug!(issuer = %iss, error = %err, "no key for a workload token");
            "no key of the issuer verifies it (unknown kid, or its keys unavailable)"
        })?;
        let claims: Claims = verified_claims(&key, header.alg, jwt)?;
        let now = to_micros(self.clock.now()).div_euclid(1_000_000);
        let subject = check_claims(&issuer.rules, &claims, now, self.leeway.as_secs() as i64)?;
        if !credentials
            .iter()
            .any(|c| c.issuer == iss && c.subject == subject)
        {
            return Err("sub is not a federated credential of the client");
        }
        Ok(())
    }
}

/// The signed claims against the issuer's rules at `now` (Unix seconds); returns the `sub`.
fn check_claims<'c>(
    rules: &TrustedIssuer,
    c: &'c Claims,
    now: i64,
    leeway: i64,
) -> Result<&'c str, &'static str> {
    if c.iss.as_deref() != Some(rules.issuer.as_str()) {
        return Err("iss is not the issuer");
    }
    let subject = c.sub.as_deref().filter(|s| !s.is_empty()).ok_or("no sub")?;
    if !c.aud.contains_any(&rules.audiences) {
        return Err("aud names none of the issuer's accepted audiences");
    }
    let exp = c.check_times(now, leeway)?;
    let max_age = i64::try_from(rules.max_token_age.as_secs()).unwrap_or(i64::MAX);
    match c.iat {
        Some(iat) if now.saturating_sub(iat) > max_age.saturating_add(leeway) => {
            Err("older than the issuer's max_token_age_secs")
        }
        // Without `iat` its age is unknown: it may not outlive the limit from now.
        None if exp.saturating_sub(now) > max_age => {
            Err("no iat, and it lives longer than max_token_age_secs")
        }
        _ => Ok(subject),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;
    use crate::domain::federation::KeyLocation;

    const NOW: i64 = 1_800_000_000;

    fn rules() -> TrustedIssuer {
        TrustedIssuer {
            issuer: "https://k8s.example".into(),
            keys: KeyLocation::Url("https://k8s.example/keys".into()),
            audiences: vec!["tokend".into()],
            max_token_age: Duration::from_secs(3600),
            tenants: BTreeSet::new(),
        }
    }

    fn claims(change: impl FnOnce(&mut serde_json::Value)) -> Claims {
        let mut c = serde_json::json!({
            "iss": "https://k8s.example", "sub": "system:serviceaccount:pay:billing",
            "aud": ["tokend", "https://kubernetes.default.svc"], "iat": NOW - 60,
            "exp": NOW + 3000, "jti": "k1",
        });
        change(&mut c);
        serde_json::from_value(c).unwrap()
    }

    fn check(c: &Claims) -> Result<&str, &'static str> {
        check_claims(&rules(), c, NOW, 5)
    }

    #[test]
    fn a_fresh_token_for_tokend_passes() {
        let c = claims(|_| {});
        assert_eq!(check(&c).unwrap(), "system:serviceaccount:pay:billing");
    }

    #[test]
    fn every_claim_is_checked() {
        use serde_json::json;
        type Change = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: [(&str, Change); 8] = [
            ("iss is not", Box::new(|c| c["iss"] = json!("https://evil"))),
            ("no sub", Box::new(|c| c["sub"] = json!(""))),
            ("aud", Box::new(|c| c["aud"] = json!("other"))),
            ("no exp", Box::new(|c| c["exp"] = json!(null))),
            ("expired", Box::new(|c| c["exp"] = json!(NOW - 10))),
            ("nbf", Box::new(|c| c["nbf"] = json!(NOW + 60))),
            ("older", Box::new(|c| c["iat"] = json!(NOW - 3700))),
            ("future", Box::new(|c| c["iat"] = json!(NOW + 60))),
        ];
        for (want, change) in cases {
            let c = claims(change);
            let err = check(&c).unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn without_iat_it_may_not_outlive_the_age_limit() {
        let short = claims(|c| {
            c["iat"] = serde_json::Value::Null;
            c["exp"] = serde_json::json!(NOW + 600);
        });
        check(&short).unwrap();
        let long = claims(|c| {
            c["iat"] = serde_json::Value::Null;
            c["exp"] = serde_json::json!(NOW + 7200);
        });
        assert!(check(&long).unwrap_err().contains("no iat"));
    }
}
