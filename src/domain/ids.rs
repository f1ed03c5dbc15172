//! Identifier newtypes: parsed once at the edge, trusted everywhere after.

use std::fmt;

use crate::domain::error::{Error, Result};

/// A client's id: a UUID (v7 when tokend generates it, so ids sort by creation time).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// Parses a client id as given in a request; `field` names it in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        if raw.len() > 64 {
            return Err(Error::invalid(field, "is not a client id (too long)"));
        }
        uuid::Uuid::parse_str(raw)
            .map(|u| Self(u.hyphenated().to_string()))
            .map_err(|_| Error::invalid(field, "is not a client id (expected a UUID)"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant name: 1-64 characters of `[a-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// The reserved tenant whose admins manage every tenant.
    pub const SYSTEM: &'static str = "system";

    /// Parses a tenant name; `field` names it in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
        if raw.is_empty() || raw.len() > 64 || !raw.chars().all(ok_char) {
            return Err(Error::invalid(
                field,
                format!(
                    "{raw:?} is not a tenant name: use 1-64 characters of a-z, 0-9, '.', '_', '-'"
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The `system` tenant.
    pub fn system() -> Self {
        Self(Self::SYSTEM.to_owned())
    }

    /// Whether this is the `system` tenant.
    pub fn is_system(&self) -> bool {
        self.0 == Self::SYSTEM
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_client_ids_parse_and_sort_by_time() {
        let a = ClientId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ClientId::generate();
        assert_eq!(ClientId::parse("client_id", a.as_str()).unwrap(), a);
        assert!(a < b);
    }

    #[test]
    fn client_id_rejects_garbage_and_normalises_case() {
        assert!(ClientId::parse("client_id", "").is_err());
        assert!(ClientId::parse("client_id", "not-a-uuid").is_err());
        let upper = "0192F0C6-0000-7000-8000-000000000000";
        assert_eq!(
            ClientId::parse("client_id", upper).unwrap().as_str(),
            upper.to_lowercase()
        );
    }

    #[test]
    fn tenant_names() {
        assert!(TenantId::parse("tenant", "acme-prod.eu_1").is_ok());
        for bad in ["", "Acme", "a b", "ä", &"x".repeat(65)] {
            assert!(TenantId::parse("tenant", bad).is_err(), "{bad:?}");
        }
        assert!(TenantId::system().is_system());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn every_uuid_spelling_parses_to_the_lowercase_hyphenated_id(bytes in any::<[u8; 16]>()) {
            let uuid = uuid::Uuid::from_bytes(bytes);
            let id = uuid.hyphenated().to_string();
            for spelling in [
                id.clone(),
                id.to_uppercase(),
                uuid.simple().to_string(),
                uuid.braced().to_string(),
                uuid.urn().to_string(),
            ] {
                let parsed = ClientId::parse("client_id", &spelling).unwrap();
                prop_assert_eq!(parsed.as_str(), id.as_str());
            }
        }

        #[test]
        fn arbitrary_client_ids_never_panic_and_what_parses_is_canonical(raw in any::<String>()) {
            if let Ok(id) = ClientId::parse("client_id", &raw) {
                prop_assert!(raw.len() <= 64);
                let canonical = uuid::Uuid::parse_str(id.as_str()).unwrap().hyphenated();
                let canonical = canonical.to_string();
                prop_assert_eq!(id.as_str(), canonical.as_str());
            }
        }

        #[test]
        fn valid_tenant_names_parse_unchanged(raw in "[a-z0-9._-]{1,64}") {
            let tenant = TenantId::parse("tenant", &raw).unwrap();
            prop_assert_eq!(tenant.as_str(), raw.as_str());
        }

        #[test]
        fn arbitrary_tenant_names_parse_only_within_the_alphabet(raw in any::<String>()) {
            let allowed = !raw.is_empty()
                && raw.len() <= 64
                && raw.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
            prop_assert_eq!(TenantId::parse("tenant", &raw).is_ok(), allowed);
        }
    }
}
