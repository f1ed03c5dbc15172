//! Authorization at the edge: the verdict on one HTTP request that a proxy (Envoy's
//! `ext_authz`) asks about before letting it through to a backend.
//!
//! The path is brought to its normal form first (`edge_path`): the rules are matched against
//! the path a backend will serve, however the client spelt it, and a path without a normal form
//! is denied whatever the token. The token is judged by the same introspection as `Introspect`
//! (the edge is trusted by deployment, so no tokend caller token is asked for), with the
//! request's source address for the client's allow-list. Then the route rules of the config add
//! what this path needs: the first rule whose path prefix and method match (longest prefix
//! first) names the scopes the token must cover and the audience it must carry; a path no rule
//! matches needs only an active token.
//!
//! A prefix matches at a segment boundary (`/admin` covers `/admin`, `/admin/` and `/admin/x`,
//! not `/administrator`), as backends route a subtree; by default ignoring ASCII case, since
//! some backends route case-insensitively. Methods are compared ignoring case.
//!
//! A request that would pass is then counted against the client's API quotas (`edge_quota`):
//! over one, it is throttled instead.

use std::net::IpAddr;

use super::edge_path::{NormalPath, PathError};
use super::introspector::{ActiveToken, Introspector};
use crate::domain::error::{Error, Result};
use crate::domain::policy::{QuotaReport, RouteQuota, Throttled};
use crate::domain::scope::ScopeSet;

/// Longest path prefix a rule may have.
const MAX_PREFIX_LEN: usize = 1024;

/// One route rule: what requests under `path_prefix` (with one of `methods`, or any method when
/// empty) need from their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeRoute {
    /// In normal form.
    path_prefix: String,
    /// Whether `/Admin` is another path than `/admin`. Off unless the config says every backend
    /// behind the rule tells them apart: otherwise `/ADMIN/x` would pass a rule on `/admin`
    /// and reach an admin page of a backend that ignores case.
    case_sensitive: bool,
    /// Upper-case method names; empty: any.
    methods: Vec<String>,
    /// All required; a token scope covers a required one as `ScopeSet::allows` says
    /// (`read:*` covers `read:orders`).
    scopes: ScopeSet,
    /// An audience the token's `aud` must contain.
    audience: Option<String>,
    /// API calls a minute each client may make under this rule.
    quota: Option<RouteQuota>,
}

impl EdgeRoute {
    /// Parses one rule; `field` (e.g. `ext_authz.routes[2]`) names it in errors. The prefix
    /// must be written in normal form (`edge_path`), so what the config says is what is matched.
    pub fn parse(
        field: &str,
        path_prefix: &str,
        methods: &[String],
        scopes: &[String],
        audience: Option<&str>,
        case_sensitive: bool,
    ) -> Result<Self> {
        let prefix_error = |why: String| Error::invalid(format!("{field}.path_prefix"), why);
        if path_prefix.len() > MAX_PREFIX_LEN {
            return Err(prefix_error(format!(
                "is longer than {MAX_PREFIX_LEN} bytes"
            )));
        }
        let normal = NormalPath::parse(path_prefix)
            .map_err(|e| prefix_error(format!("{path_prefix:?}: {e}")))?;
        if normal.as_str() != path_prefix {
            return Err(prefix_error(format!(
                "{path_prefix:?} is not a path in normal form (no query, `;` parameters, dot or \
                 empty segments; percent-encoding only where needed, in upper case): write {:?}",
                normal.as_str()
            )));
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
            case_sensitive,
            methods,
            scopes,
            audience,
            quota: None,
        })
    }

    /// The rule with a quota of `requests_per_minute` calls per client (`None`: no quota);
    /// `index` is the rule's place in the config, `field` names it in errors. The quota is
    /// named in the RateLimit headers by the rule's methods and prefix (`GET,POST /orders`).
    pub fn with_quota(
        mut self,
        field: &str,
        index: usize,
        requests_per_minute: Option<i64>,
    ) -> Result<Self> {
        let Some(n) = requests_per_minute else {
            return Ok(self);
        };
        let name = if self.methods.is_empty() {
            self.path_prefix.clone()
        } else {
            format!("{} {}", self.methods.join(","), self.path_prefix)
        };
        self.quota = Some(RouteQuota::parse(field, index, n, name)?);
        Ok(self)
    }

    /// Whether the rule applies to `method` on `path`. Methods are compared ignoring case: a
    /// backend that accepts `post` as POST must not see it skip a POST rule.
    fn matches(&self, method: &str, path: &NormalPath) -> bool {
        self.covers(path.as_str())
            && (self.methods.is_empty()
                || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
    }

    /// Whether `path` is the prefix or lies under it: the prefix must end at a segment boundary
    /// of `path` (or itself end with `/`).
    fn covers(&self, path: &str) -> bool {
        let (prefix, path) = (self.path_prefix.as_bytes(), path.as_bytes());
        let Some(head) = path.get(..prefix.len()) else {
            return false;
        };
        let same = if self.case_sensitive {
            head == prefix
        } else {
            head.eq_ignore_ascii_case(prefix)
        };
        same && (prefix.ends_with(b"/") || matches!(path.get(prefix.len()), None | Some(b'/')))
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

    /// The rule that applies to `method` on `path`.
    pub fn rule_for(&self, method: &str, path: &NormalPath) -> Option<&EdgeRoute> {
        self.0.iter().find(|r| r.matches(method, path))
    }
}

/// One HTTP request as the proxy describes it.
#[derive(Debug, Clone, Copy)]
pub struct EdgeRequest<'a> {
    /// `GET`, `POST`...
    pub method: &'a str,
    /// The request target as sent: path and query, in any spelling (normalised here).
    pub path: &'a str,
    /// The bearer token; `None` when the request carries no `Bearer` credentials at all.
    pub bearer: Option<&'a str>,
    /// The downstream client's address as the proxy saw it; `None` when it did not say.
    pub source: Option<IpAddr>,
    /// The `x5t#S256` of the client certificate the proxy saw (Envoy's
    /// `include_peer_certificate`); `None` when it sent none.
    pub certificate: Option<&'a str>,
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
    /// Let it through; the token says who is calling, the report how much of its API quotas
    /// is left (empty when none applies).
    Allow(ActiveToken, QuotaReport),
    /// No bearer credentials (RFC 6750 section 3.1: a challenge without an error code).
    NoToken,
    /// A token that is not active for this caller: malformed, unknown, expired, revoked, of a
    /// disabled client or from outside the client's allow-list (`invalid_token`).
    InvalidToken,
    /// An active token without what the route needs (`insufficient_scope`).
    Insufficient(Insufficient),
    /// A path without a normal form: no rule can be known to apply, so none is skipped. Judged
    /// before the token.
    BadPath(PathError),
    /// Everything else would pass, but the client is over an API quota (HTTP 429).
    Throttled(Throttled),
}

impl Introspector {
    /// The verdict on `request` under `routes`. `Err` only when the answer cannot be known
    /// (the database is down, for an opaque token): the proxy's failure mode then decides.
    /// The span carries the normalised path, never the raw one (which may hold anything).
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(method = request.method, path = tracing::field::Empty)
    )]
    pub async fn authorize_edge(
        &self,
        routes: &EdgeRoutes,
        request: EdgeRequest<'_>,
    ) -> Result<EdgeVerdict> {
        let path = match NormalPath::parse(request.path) {
            Ok(path) => path,
            Err(why) => {
                tracing::debug!(reason = %why, "edge request denied: its path has no normal form");
                return Ok(EdgeVerdict::BadPath(why));
            }
        };
        tracing::Span::current().record("path", path.as_str());
        let Some(token) = request.bearer else {
            return Ok(EdgeVerdict::NoToken);
        };
        let Some(active) = self.answer(None, token, request.source, None).await? else {
            return Ok(EdgeVerdict::InvalidToken);
        };
        // A certificate-bound token passes only with its certificate (RFC 8705 section 3):
        // presented without one, or with another, it is a stolen token.
        if let Some(bound) = active.claims().bound_to()
            && request.certificate != Some(bound)
        {
            tracing::debug!("edge request denied: the token is bound to another certificate");
            return Ok(EdgeVerdict::InvalidToken);
        }
        // An unknown source is never inside a client's allow-list.
        if request.source.is_none() && !active.client.spec.allowed_cidrs.is_empty() {
            return Ok(EdgeVerdict::InvalidToken);
        }
        let rule = routes.rule_for(request.method, &path);
        if let Some(lacking) = rule.and_then(|r| r.lacks(active.scopes(), &active.claims().aud)) {
            return Ok(EdgeVerdict::Insufficient(lacking));
        }
        Ok(self.metered(active, rule.and_then(|r| r.quota.as_ref()), request.source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn route(prefix: &str, methods: &[&str], scopes: &[&str], aud: Option<&str>) -> EdgeRoute {
        EdgeRoute::parse("r", prefix, &strings(methods), &strings(scopes), aud, false).unwrap()
    }

    /// The scopes the rule for `method` on the raw `path` needs; `None` when no rule applies.
    fn required(routes: &EdgeRoutes, method: &str, path: &str) -> Option<String> {
        let path = NormalPath::parse(path).unwrap();
        routes.rule_for(method, &path).map(|r| r.scopes.to_claim())
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
        let required = |method, path| required(&routes, method, path).unwrap();
        assert_eq!(required("GET", "/orders/1"), "orders:read");
        assert_eq!(required("POST", "/orders/1"), "orders:write");
        assert_eq!(required("PUT", "/orders"), "orders:write");
        assert_eq!(required("POST", "/orders/admin/x"), "orders:admin");
        assert_eq!(required("GET", "/health"), "any");
        // The query string is not part of the path.
        assert_eq!(required("GET", "/x?/orders/admin"), "any");
        let none = EdgeRoutes::new(vec![route("/api", &[], &["a"], None)]);
        assert_eq!(self::required(&none, "GET", "/other"), None);
    }

    #[test]
    fn methods_match_in_any_case() {
        let routes = EdgeRoutes::new(vec![
            route("/orders", &[], &["orders:read"], None),
            route("/orders", &["POST"], &["orders:write"], None),
        ]);
        for method in ["POST", "post", "Post", "pOST"] {
            assert_eq!(
                required(&routes, method, "/orders/1").as_deref(),
                Some("orders:write"),
                "{method}"
            );
        }
        assert_eq!(
            required(&routes, "get", "/orders/1").as_deref(),
            Some("orders:read")
        );
    }

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        let routes = EdgeRoutes::new(vec![
            route("/admin", &[], &["admin:all"], None),
            route("/api/", &[], &["api"], None),
        ]);
        for path in ["/admin", "/admin/", "/admin/x", "/admin;x", "/x/../admin"] {
            assert_eq!(
                required(&routes, "GET", path).as_deref(),
                Some("admin:all"),
                "{path}"
            );
        }
        for path in [
            "/administrator",
            "/admin-ui/x",
            "/admin%20x",
            "/api",
            "/apis",
        ] {
            assert_eq!(required(&routes, "GET", path), None, "{path}");
        }
        assert_eq!(required(&routes, "GET", "/api/").as_deref(), Some("api"));
        assert_eq!(required(&routes, "GET", "/api/v1").as_deref(), Some("api"));
    }

    #[test]
    fn case_counts_only_where_a_rule_says_so() {
        let insensitive = EdgeRoutes::new(vec![route("/admin", &[], &["admin:all"], None)]);
        for path in ["/ADMIN/x", "/Admin", "/aDmIn/"] {
            assert_eq!(
                required(&insensitive, "GET", path).as_deref(),
                Some("admin:all"),
                "{path}"
            );
        }
        let strict = EdgeRoute::parse("r", "/Files", &[], &strings(&["f"]), None, true).unwrap();
        let sensitive = EdgeRoutes::new(vec![strict]);
        assert!(required(&sensitive, "GET", "/Files/a").is_some());
        assert_eq!(required(&sensitive, "GET", "/files/a"), None);
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
                false,
            )
            .unwrap_err()
            .to_string()
        };
        assert!(bad("orders", &[], &[], None).contains("routes[0].path_prefix"));
        assert!(bad("/a?b", &[], &[], None).contains("path_prefix"));
        // A prefix is written as it will be matched: in normal form.
        for (prefix, normal) in [
            ("/a/../b", "\"/b\""),
            ("/a;v=1", "\"/a\""),
            ("//a", "\"/a\""),
            ("/caf%c3%a9", "\"/caf%C3%A9\""),
            ("/a b", "\"/a%20b\""),
        ] {
            let msg = bad(prefix, &[], &[], None);
            assert!(msg.contains("routes[0].path_prefix"), "{msg}");
            assert!(msg.ends_with(&format!("write {normal}")), "{msg}");
        }
        assert!(bad("/a%2Fb", &[], &[], None).contains("encoded slash"));
        assert!(bad("/", &["GE T"], &[], None).contains("routes[0].methods[0]"));
        assert!(bad("/", &[], &["a b"], None).contains("routes[0].scopes[0]"));
        assert!(bad("/", &[], &[], Some(" ")).contains("routes[0].audience"));
    }
}
