//! A client's federated credentials: the workload identities (`iss` + `sub` of a token from an
//! issuer the operator trusts: a Kubernetes service account, a SPIFFE ID) that may act as this
//! client with no tokend secret (auth method `federated_jwt`). Which issuers exist, and for
//! which tenants, is the operator's (`[[federation.issuers]]`, `domain::federation`); here only
//! the shape of each entry.

use std::collections::BTreeSet;

use crate::domain::error::{Error, Result};

/// Most federated credentials per client.
pub const MAX_CREDENTIALS: usize = 20;
const MAX_ISSUER: usize = 1024;
const MAX_SUBJECT: usize = 1024;

/// One workload identity a client accepts: a token whose `iss` and `sub` are exactly these.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct FederatedCredential {
    /// The `iss` of the workload's token: one of the operator's trusted issuers.
    pub issuer: String,
    /// The exact `sub` (`system:serviceaccount:payments:billing`,
    /// `spiffe://prod.example/ns/payments/sa/billing`); no patterns.
    pub subject: String,
}

/// Checks each entry's shape, refuses duplicates; `field` names the list in errors.
pub fn parse_credentials(
    field: &str,
    raw: &[FederatedCredential],
) -> Result<Vec<FederatedCredential>> {
    if raw.len() > MAX_CREDENTIALS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_CREDENTIALS} entries"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, credential) in raw.iter().enumerate() {
        let at = |member: &str| format!("{field}[{i}].{member}");
        value(&at("issuer"), &credential.issuer, MAX_ISSUER)?;
        value(&at("subject"), &credential.subject, MAX_SUBJECT)?;
        if !seen.insert(credential) {
            return Err(Error::invalid(format!("{field}[{i}]"), "is listed twice"));
        }
    }
    Ok(raw.to_vec())
}

fn value(field: &str, raw: &str, max: usize) -> Result<()> {
    if raw.is_empty() || raw.len() > max {
        return Err(Error::invalid(
            field,
            format!("must be 1-{max} bytes, the exact value of the token's claim"),
        ));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(issuer: &str, subject: &str) -> FederatedCredential {
        FederatedCredential {
            issuer: issuer.into(),
            subject: subject.into(),
        }
    }

    #[test]
    fn entries_are_checked_and_named() {
        let good = credential("https://k8s.example", "system:serviceaccount:pay:billing");
        assert_eq!(
            parse_credentials("f", std::slice::from_ref(&good)).unwrap(),
            std::slice::from_ref(&good)
        );
        let err = parse_credentials("f", &[good.clone(), good.clone()])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f[1]:") && err.contains("twice"), "{err}");
        let err = parse_credentials("f", &[credential("", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f[0].issuer:"), "{err}");
        let err = parse_credentials("f", &[credential("https://i", "a\nb")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f[0].subject:"), "{err}");
    }
}
