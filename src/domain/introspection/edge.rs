//! Authorization at the edge: the verdict on one HTTP request that a proxy (Envoy's
//! `ext_authz`) asks about before letting it through to a backend.
//!
//! The token is judged by the same introspection as `Introspect` (the edge is trusted by
//! deployment, so no tokend caller token is asked for), with the request's source address for
//! the client's allow-list. Then the route rules of the config add what this path needs: the
//! first rule whose path prefix and method match (longest prefix first) names the scopes the
//! token must cover and the audience it must carry; a path no rule matches needs only an
//! active token.

use std::net::IpAddr;

use super::introspector::{ActiveToken, Introspector};
use crate::domain::error::{Error, Result};
use crate::domain::scope::ScopeSet;

/// Longest path prefix a rule may have.
const MAX_PREFIX_LEN: usize = 1024;

/// One route rule: what requests under `path_prefix` (with one of `methods`, or any method when
/// empty) need from their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeRoute {
    path_prefix: String,
    /// Upper-case method names; empty: any.
    methods: Vec<String>,
    /// All required; a token scope covers a required one as `ScopeSet::allows` says
    /// (`read:*` covers `read:orders`).
    scopes: ScopeSet,
    /// An audience the token's `aud` must contain.
    audience: Option<String>,
}

impl EdgeRoute {
    /// Parses one rule; `field` (e.g. `ext_authz.routes[2]`) names it in errors.
    pub fn parse(
        field: &str,
        path_prefix: &str,
        methods: &[String],
        scopes: &[String],
        audience: Option<&str>,
    ) -> Result<Self> {
        if !path_prefix.starts_with('/')
            || path_prefix.len() > MAX_PREFIX_LEN
            || path_prefix.contains(['?', '#'])
            || path_prefix.contains(|c: char| c.is_ascii_control() || c == ' ')
        {
            return Err(Error::invalid(
                format!("{field}.path_prefix"),
                format!(
                    "{path_prefix:?} must be a path starting with '/', without query or spaces"
                ),
            ));
        }
        let methods = methods
            .iter()
            .enumerate()
            .map(|(i, m)| method(&format!("{field}.methods[{i}]"), m))
            .collect::<Result<Vec<_>>>()?;
        let scopes = ScopeSet::parse(&format!("{field}.scopes"), scopes)?;
        let audience = match audience.map(str::trim) {
            Some("") => {
                return Err(Error::invalid(
                    format!("{field}.audience"),
                    "must not be empty (leave it out for none)",
                ));
            }
            other => other.map(str::to_owned),
        };
        Ok(Self {
            path_prefix: path_prefix.to_owned(),
            methods,
            scopes,
            audience,
        })
    }

    /// Whether the rule applies to `method` on `path` (its query string already cut off).
    fn matches(&self, method: &str, path: &str) -> bool {
        path.starts_with(&self.path_prefix)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
    }

    /// What a token with `scopes` and audiences `aud` lacks for this rule, if anything.
    fn lacks(&self, scopes: &ScopeSet, aud: &[String]) -> Option<Insufficient> {
        let missing: Vec<&str> = self
            .scopes
            .iter()
            .filter(|s| !scopes.allows(s))
            .map(|s| s.as_str())
            .collect();
        let description = if !missing.is_empty() {
            format!("the token lacks scope {}", missing.join(" "))
        } else if let Some(audience) = self.audience.as_ref().filter(|a| !aud.contains(a)) {
            format!("the token's audience does not include {audience}")
        } else {
            return None;
        };
        Some(Insufficient {
            required: self.scopes.to_claim(),
            description,
        })
    }
}

/// An HTTP method token, upper-cased (RFC 9110 section 9: methods are case-sensitive and the
/// standard ones upper case; a lower-case `get` in a config file means `GET`).
fn method(field: &str, raw: &str) -> Result<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 32 || !raw.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(Error::invalid(
            field,
            format!("{raw:?} is not an HTTP method such as GET"),
        ));
    }
    Ok(raw.to_ascii_uppercase())
}

/// The route rules, longest prefix first; among equal prefixes, rules naming methods before
/// rules for any method, then in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeRoutes(Vec<EdgeRoute>);

impl EdgeRoutes {
    /// Orders the rules for matching.
    pub fn new(mut routes: Vec<EdgeRoute>) -> Self {
        routes.sort_by_key(|r| (std::cmp::Reverse(r.path_prefix.len()), r.methods.is_empty()));
        Self(routes)
    }

    /// The rule that applies to `method` on `path` (which may carry a query string).
    pub fn rule_for(&self, method: &str, path: &str) -> Option<&EdgeRoute> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        self.0.iter().find(|r| r.matches(method, path))
    }
}

/// One HTTP request as the proxy describes it.
#[derive(Debug, Clone, Copy)]
pub struct EdgeRequest<'a> {
    /// `GET`, `POST`...
    pub method: &'a str,
    /// The request target as sent: path and query.
    pub path: &'a str,
    /// The bearer token; `None` when the request carries no `Bearer` credentials at all.
    pub bearer: Option<&'a str>,
    /// The downstream client's address as the proxy saw it; `None` when it did not say.
    pub source: Option<IpAddr>,
}

/// Why a token with the right identity still may not pass (RFC 6750 `insufficient_scope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insufficient {
    /// The scopes the rule needs, space-delimited (RFC 6750 section 3 `scope` attribute).
    pub required: String,
    /// Safe to show to the caller.
    pub description: String,
}

/// The edge's answer.
#[derive(Debug)]
pub enum EdgeVerdict {
    /// Let it through; the token says who is calling.
    Allow(ActiveToken),
    /// No bearer credentials (RFC 6750 section 3.1: a challenge without an error code).
    NoToken,
    /// A token that is not active for this caller: malformed, unknown, expired, revoked, of a
    /// disabled client or from outside the client's allow-list (`invalid_token`).
    InvalidToken,
    /// An active token without what the route needs (`insufficient_scope`).
    Insufficient(Insufficient),
}

impl Introspector {
    /// The verdict on `request` under `routes`. `Err` only when the answer cannot be known
    /// (the database is down, for an opaque token): the proxy's failure mode then decides.
    #[tracing::instrument(level = "debug", skip_all, fields(method = request.method))]
    pub async fn authorize_edge(
        &self,
        routes: &EdgeRoutes,
        request: EdgeRequest<'_>,
    ) -> Result<EdgeVerdict> {
        let Some(token) = request.bearer else {
            return Ok(EdgeVerdict::NoToken);
        };
        let Some(active) = self.answer(None, token, request.source).await? else {
            return Ok(EdgeVerdict::InvalidToken);
        };
        // An unknown source is never inside a client's allow-list.
        if request.source.is_none() && !active.client.spec.allowed_cidrs.is_empty() {
            return Ok(EdgeVerdict::InvalidToken);
        }
        let rule = routes.rule_for(request.method, request.path);
        Ok(
            match rule.and_then(|r| r.lacks(active.scopes(), &active.claims().aud)) {
                Some(lacking) => EdgeVerdict::Insufficient(lacking),
                None => EdgeVerdict::Allow(active),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn route(prefix: &str, methods: &[&str], scopes: &[&str], aud: Option<&str>) -> EdgeRoute {
        EdgeRoute::parse("r", prefix, &strings(methods), &strings(scopes), aud).unwrap()
    }

    fn scopes(items: &[&str]) -> ScopeSet {
        ScopeSet::parse("s", items).unwrap()
    }

    #[test]
    fn longest_prefix_wins_then_method_specific_rules() {
        let routes = EdgeRoutes::new(vec![
            route("/", &[], &["any"], None),
            route("/orders", &[], &["orders:read"], None),
            route("/orders", &["post", "PUT"], &["orders:write"], None),
            route("/orders/admin", &[], &["orders:admin"], None),
        ]);
        let required = |method, path| routes.rule_for(method, path).unwrap().scopes.to_claim();
        assert_eq!(required("GET", "/orders/1"), "orders:read");
        assert_eq!(required("POST", "/orders/1"), "orders:write");
        assert_eq!(required("PUT", "/orders"), "orders:write");
        assert_eq!(required("POST", "/orders/admin/x"), "orders:admin");
        assert_eq!(required("GET", "/health"), "any");
        // The query string is not part of the path.
        assert_eq!(required("GET", "/x?/orders/admin"), "any");
        let none = EdgeRoutes::new(vec![route("/api", &[], &["a"], None)]);
        assert!(none.rule_for("GET", "/other").is_none());
    }

    #[test]
    fn token_scopes_must_cover_every_required_scope() {
        let rule = route("/", &[], &["orders:read", "orders:list"], None);
        assert_eq!(rule.lacks(&scopes(&["orders:*"]), &[]), None);
        assert_eq!(
            rule.lacks(&scopes(&["orders:read", "orders:list", "x"]), &[]),
            None
        );
        let lacking = rule.lacks(&scopes(&["orders:read"]), &[]).unwrap();
        assert_eq!(lacking.required, "orders:list orders:read");
        assert!(lacking.description.contains("orders:list"), "{lacking:?}");
        // Wildcards never reach tokend's own scopes.
        let reserved = route("/", &[], &["tokend.admin"], None);
        assert!(reserved.lacks(&scopes(&["*"]), &[]).is_some());
    }

    #[test]
    fn audience_must_be_in_the_token() {
        let rule = route("/", &[], &[], Some("https://orders"));
        assert_eq!(
            rule.lacks(&scopes(&[]), &strings(&["https://orders"])),
            None
        );
        let lacking = rule.lacks(&scopes(&[]), &strings(&["urn:tokend"])).unwrap();
        assert!(lacking.description.contains("https://orders"));
        assert_eq!(lacking.required, "");
    }

    #[test]
    fn bad_rules_name_their_field() {
        let bad = |prefix: &str, methods: &[&str], scopes: &[&str], aud: Option<&str>| {
            EdgeRoute::parse(
                "routes[0]",
                prefix,
                &strings(methods),
                &strings(scopes),
                aud,
            )
            .unwrap_err()
            .to_string()
        };
        assert!(bad("orders", &[], &[], None).contains("routes[0].path_prefix"));
        assert!(bad("/a?b", &[], &[], None).contains("path_prefix"));
        assert!(bad("/", &["GE T"], &[], None).contains("routes[0].methods[0]"));
        assert!(bad("/", &[], &["a b"], None).contains("routes[0].scopes[0]"));
        assert!(bad("/", &[], &[], Some(" ")).contains("routes[0].audience"));
    }
}
