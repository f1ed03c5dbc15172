//! Scopes (RFC 6749 section 3.3) and the rules for granting them, wildcards included.

use std::collections::BTreeSet;
use std::fmt;

use crate::domain::error::{Error, Result};

/// Prefix of the scopes that grant power over tokend itself. Wildcards never match them: they
/// must be listed by name, so `*` cannot silently make a client an admin.
pub const RESERVED_PREFIX: &str = "tokend.";
/// Lets a caller use the `ClientService` (and later key and audit services).
pub const ADMIN_SCOPE: &str = "tokend.admin";
/// Lets a caller use `Introspect`.
pub const INTROSPECT_SCOPE: &str = "tokend.introspect";

const MAX_SCOPE_LEN: usize = 128;
/// Most scopes one client or one request may carry.
pub const MAX_SCOPES: usize = 100;

/// One scope token: 1-128 characters of `%x21 / %x23-5B / %x5D-7E` (RFC 6749 section 3.3).
/// A trailing `*` makes it a pattern that covers every scope starting with what precedes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

impl Scope {
    /// Parses one scope; `field` names it in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let ok = |c: char| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c);
        if raw.is_empty() || raw.len() > MAX_SCOPE_LEN || !raw.chars().all(ok) {
            return Err(Error::invalid(
                field,
                format!(
                    "{raw:?} is not a scope: use 1-{MAX_SCOPE_LEN} printable ASCII characters \
                     without spaces, '\"' or '\\'"
                ),
            ));
        }
        if raw.find('*').is_some_and(|i| i != raw.len() - 1) {
            return Err(Error::invalid(
                field,
                format!("{raw:?}: '*' is only allowed as the last character"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The scope as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn wildcard_prefix(&self) -> Option<&str> {
        self.0.strip_suffix('*')
    }

    /// Whether holding `self` allows `other` (which may itself be a pattern).
    pub fn covers(&self, other: &Scope) -> bool {
        if self == other {
            return true;
        }
        match self.wildcard_prefix() {
            Some(_) if other.0.starts_with(RESERVED_PREFIX) => false,
            Some(prefix) => other.0.starts_with(prefix),
            None => false,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of scopes, sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// Parses a list of scopes; duplicates collapse. `field` names the list in errors.
    pub fn parse<S: AsRef<str>>(field: &str, raw: &[S]) -> Result<Self> {
        if raw.len() > MAX_SCOPES {
            return Err(Error::invalid(
                field,
                format!("at most {MAX_SCOPES} scopes"),
            ));
        }
        raw.iter()
            .enumerate()
            .map(|(i, s)| Scope::parse(&format!("{field}[{i}]"), s.as_ref()))
            .collect::<Result<BTreeSet<_>>>()
            .map(Self)
    }

    /// Parses the space-delimited form used in the JWT `scope` claim.
    pub fn parse_claim(claim: &str) -> Result<Self> {
        let parts: Vec<&str> = claim.split(' ').filter(|s| !s.is_empty()).collect();
        Self::parse("scope", &parts)
    }

    /// Whether `scope` is held exactly (no wildcard expansion; used for tokend's own scopes).
    pub fn contains_exact(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }

    /// Whether some scope in the set covers `scope`.
    pub fn allows(&self, scope: &Scope) -> bool {
        self.0.iter().any(|allowed| allowed.covers(scope))
    }

    /// What a client allowed `self` is granted when it asks for `requested`: everything allowed
    /// when the request is empty, else the request itself if every scope in it is allowed.
    pub fn grant(&self, requested: &ScopeSet) -> Result<ScopeSet> {
        if requested.is_empty() {
            return Ok(self.clone());
        }
        let refused: Vec<&str> = requested
            .iter()
            .filter(|s| !self.allows(s))
            .map(Scope::as_str)
            .collect();
        if refused.is_empty() {
            Ok(requested.clone())
        } else {
            Err(Error::InvalidScope(format!(
                "scope not allowed for this client: {}",
                refused.join(" ")
            )))
        }
    }

    /// This set minus the reserved `tokend.*` scopes that `allowed` no longer lists by name.
    pub fn without_revoked_reserved(&self, allowed: &ScopeSet) -> ScopeSet {
        let keep = |s: &&Scope| {
            !s.as_str().starts_with(RESERVED_PREFIX) || allowed.contains_exact(s.as_str())
        };
        Self(self.0.iter().filter(keep).cloned().collect())
    }

    /// Iterates the scopes in order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes as strings.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|s| s.0.clone()).collect()
    }

    /// The space-delimited form for the JWT `scope` claim.
    pub fn to_claim(&self) -> String {
        self.to_strings().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(scopes: &[&str]) -> ScopeSet {
        ScopeSet::parse("scopes", scopes).unwrap()
    }

    #[test]
    fn parse_rejects_bad_characters_and_inner_wildcards() {
        for bad in [
            "",
            "a b",
            "quo\"te",
            "back\\slash",
            "tab\t",
            "ünï",
            "a*b",
            "**",
        ] {
            assert!(Scope::parse("s", bad).is_err(), "{bad:?}");
        }
        assert!(Scope::parse("s", &"x".repeat(129)).is_err());
        for good in ["read", "read:*", "*", "https://api.example.com/orders.read"] {
            assert!(Scope::parse("s", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn wildcards_cover_prefixes_and_narrower_patterns() {
        let allowed = set(&["read:*", "write:orders"]);
        let grant = |req: &[&str]| allowed.grant(&set(req));
        assert_eq!(grant(&["read:users"]).unwrap(), set(&["read:users"]));
        assert_eq!(grant(&["read:users:*"]).unwrap(), set(&["read:users:*"]));
        assert_eq!(grant(&["read:*"]).unwrap(), set(&["read:*"]));
        assert!(matches!(
            grant(&["write:users"]),
            Err(Error::InvalidScope(_))
        ));
        assert!(matches!(grant(&["*"]), Err(Error::InvalidScope(_))));
        assert!(matches!(grant(&["write:*"]), Err(Error::InvalidScope(_))));
    }

    #[test]
    fn empty_request_gets_everything_allowed() {
        let allowed = set(&["a", "b:*"]);
        assert_eq!(allowed.grant(&ScopeSet::default()).unwrap(), allowed);
    }

    #[test]
    fn wildcards_never_grant_reserved_scopes() {
        let allowed = set(&["*"]);
        assert!(allowed.grant(&set(&["tokend.admin"])).is_err());
        assert!(allowed.grant(&set(&["anything"])).is_ok());
        assert!(
            set(&["tokend.admin"])
                .grant(&set(&["tokend.admin"]))
                .is_ok()
        );
    }

    #[test]
    fn reserved_scopes_follow_the_client() {
        let held = set(&["tokend.admin", "tokend.introspect", "read"]);
        let now = set(&["tokend.introspect"]);
        assert_eq!(
            held.without_revoked_reserved(&now),
            set(&["read", "tokend.introspect"])
        );
    }

    #[test]
    fn error_names_refused_scopes() {
        let err = set(&["a"]).grant(&set(&["a", "b", "c"])).unwrap_err();
        assert_eq!(err.to_string(), "scope not allowed for this client: b c");
    }

    #[test]
    fn claim_round_trip() {
        let s = set(&["b", "a", "a"]);
        assert_eq!(s.to_claim(), "a b");
        assert_eq!(ScopeSet::parse_claim("a  b").unwrap(), s);
    }
}

#[cfg(test)]
mod properties {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    /// A valid scope: allowed characters other than `*`, optionally ending in one `*`.
    fn scope_text() -> impl Strategy<Value = String> {
        r"[!#-)+-\[\]-~]{1,127}\*?"
    }

    proptest! {
        #[test]
        fn valid_scopes_parse_unchanged(raw in scope_text()) {
            let scope = Scope::parse("s", &raw).unwrap();
            prop_assert_eq!(scope.as_str(), raw.as_str());
        }

        #[test]
        fn a_forbidden_character_anywhere_is_refused(
            head in "[a-z]{0,10}",
            bad in r#"[ "\\\x00-\x1f\x7f-\x{10ffff}]"#,
            tail in "[a-z]{0,10}",
        ) {
            let raw = format!("{head}{bad}{tail}");
            prop_assert!(Scope::parse("s", &raw).is_err());
        }

        #[test]
        fn an_inner_wildcard_is_refused(head in "[a-z*]{0,10}", tail in "[a-z*]{1,10}") {
            let raw = format!("{head}*{tail}");
            prop_assert!(Scope::parse("s", &raw).is_err());
        }

        #[test]
        fn arbitrary_text_never_panics_and_what_parses_is_short_ascii(raw in any::<String>()) {
            if let Ok(scope) = Scope::parse("s", &raw) {
                prop_assert!(!raw.is_empty() && raw.len() <= MAX_SCOPE_LEN && raw.is_ascii());
                prop_assert_eq!(scope.as_str(), raw.as_str());
            }
        }

        #[test]
        fn a_wildcard_covers_every_extension_outside_tokend(
            prefix in "[a-z:]{0,20}",
            rest in "[a-z.:]{0,20}",
        ) {
            let pattern = Scope::parse("s", &format!("{prefix}*")).unwrap();
            let named = Scope::parse("s", &format!("{prefix}{rest}x")).unwrap();
            let reserved = named.as_str().starts_with(RESERVED_PREFIX);
            prop_assert_eq!(pattern.covers(&named), !reserved);
            prop_assert!(pattern.covers(&pattern));
        }

        #[test]
        fn claims_round_trip(scopes in vec(scope_text(), 0..MAX_SCOPES)) {
            let set = ScopeSet::parse("scopes", &scopes).unwrap();
            prop_assert_eq!(ScopeSet::parse_claim(&set.to_claim()).unwrap(), set);
        }

        #[test]
        fn arbitrary_claims_never_panic_and_reparse_the_same(claim in any::<String>()) {
            if let Ok(set) = ScopeSet::parse_claim(&claim) {
                prop_assert_eq!(ScopeSet::parse_claim(&set.to_claim()).unwrap(), set);
            }
        }

        #[test]
        fn too_many_scopes_are_refused(extra in 1..20usize) {
            let scopes: Vec<String> = (0..MAX_SCOPES + extra).map(|i| format!("s{i}")).collect();
            prop_assert!(ScopeSet::parse("scopes", &scopes).is_err());
        }
    }
}
