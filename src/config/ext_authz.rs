//! `[ext_authz]`: Envoy external authorization on the gRPC port.
//!
//! Off by default. `Authorization/Check` answers any caller who can reach the port with the
//! client id and tenant of whatever token it is shown, and it asks for no tokend caller token
//! (the proxy calling it has none): turn it on only where the network lets nothing but the mesh
//! (the Envoy sidecars or gateways) reach tokend. TLS and mTLS on tokend's own port come later.

use serde::Deserialize;

use super::ConfigError;
use crate::domain::{EdgeRoute, EdgeRoutes};

/// `[ext_authz]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtAuthzSettings {
    /// Serve `envoy.service.auth.v3.Authorization` (and list it in health). `TOKEND__EXT_AUTHZ__ENABLED`.
    pub enabled: bool,
    /// Serve the same verdict over HTTP at `/edge/verify`, for nginx `auth_request`, Caddy
    /// `forward_auth` and Traefik `ForwardAuth` (same rules and headers).
    /// `TOKEND__EXT_AUTHZ__FORWARD_AUTH`.
    pub forward_auth: bool,
    /// Upstream request header carrying the token's client id.
    pub client_id_header: String,
    /// Upstream request header carrying the token's tenant.
    pub tenant_header: String,
    /// Upstream request header carrying the token's scopes, space-delimited.
    pub scopes_header: String,
    /// Upstream request header carrying the token's `sub`.
    pub subject_header: String,
    /// What each path needs beyond an active token; from the config file only.
    pub routes: Vec<RouteSettings>,
}

impl Default for ExtAuthzSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            forward_auth: false,
            client_id_header: "x-tokend-client-id".into(),
            tenant_header: "x-tokend-tenant".into(),
            scopes_header: "x-tokend-scopes".into(),
            subject_header: "x-tokend-sub".into(),
            routes: Vec::new(),
        }
    }
}

/// One `[[ext_authz.routes]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// Requests whose normalised path is this or lies under it (`/orders` covers `/orders` and
    /// `/orders/7`, not `/orders-archive`); the longest matching prefix applies. Written in
    /// normal form (a prefix that is not says what to write instead).
    pub path_prefix: String,
    /// Whether the prefix matches only in the case written. Off by default: `/admin` then also
    /// covers `/ADMIN/x`, which a case-insensitive backend serves as `/admin/x`. Turn it on
    /// only when every backend behind the rule tells the cases apart.
    #[serde(default)]
    pub case_sensitive: bool,
    /// Methods the rule is for; empty: any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Scopes the token must cover, all of them.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// An audience the token must carry.
    #[serde(default)]
    pub audience: Option<String>,
    /// API calls a minute each client may make under this rule, for the whole deployment (on
    /// top of the client's own `api_rate_limit_per_minute`); left out: no quota. At least 1:
    /// a 0 is refused rather than read as "none" or as "nothing". Over it: HTTP 429.
    #[serde(default)]
    pub requests_per_minute: Option<i64>,
}

/// `[ext_authz]`, checked: the rules parsed in matching order, the header names in the order
/// client id, tenant, scopes, subject. Only when enabled.
#[derive(Debug, Clone)]
pub struct ExtAuthzConfig {
    /// Serve Envoy's gRPC `Authorization/Check`.
    pub grpc: bool,
    /// Serve HTTP forward auth at `/edge/verify`.
    pub forward_auth: bool,
    pub routes: EdgeRoutes,
    /// How many rules were written, for the startup log.
    pub rule_count: usize,
    pub headers: [String; 4],
}

impl ExtAuthzSettings {
    /// Checks the header names and the routes (even when disabled, so a mistake shows before
    /// the day it is turned on); `None` when neither front end is on.
    pub(super) fn resolve(&self) -> Result<Option<ExtAuthzConfig>, ConfigError> {
        self.check_header_names()?;
        let routes = self.routes()?;
        Ok((self.enabled || self.forward_auth).then(|| ExtAuthzConfig {
            grpc: self.enabled,
            forward_auth: self.forward_auth,
            routes,
            rule_count: self.routes.len(),
            headers: self.header_names().map(str::to_owned),
        }))
    }

    /// The rules in matching order; an invalid one names its field.
    fn routes(&self) -> Result<EdgeRoutes, ConfigError> {
        let routes = self
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let field = format!("ext_authz.routes[{i}]");
                EdgeRoute::parse(
                    &field,
                    &r.path_prefix,
                    &r.methods,
                    &r.scopes,
                    r.audience.as_deref(),
                    r.case_sensitive,
                )
                .and_then(|rule| rule.with_quota(&field, i, r.requests_per_minute))
                .map_err(|e| ConfigError(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EdgeRoutes::new(routes))
    }

    fn header_names(&self) -> [&str; 4] {
        [
            &self.client_id_header,
            &self.tenant_header,
            &self.scopes_header,
            &self.subject_header,
        ]
    }

    /// Lower-case tokens, none of them a standard header, none used twice.
    fn check_header_names(&self) -> Result<(), ConfigError> {
        let keys = [
            "client_id_header",
            "tenant_header",
            "scopes_header",
            "subject_header",
        ];
        let names = self.header_names();
        for (key, name) in keys.iter().zip(names) {
            let token = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
            if name.is_empty() || !name.chars().all(token) {
                return Err(ConfigError(format!(
                    "ext_authz.{key} must be a lower-case header name such as x-tokend-client-id, not {name:?}"
                )));
            }
            if matches!(name, "authorization" | "host" | "cookie" | "content-length") {
                return Err(ConfigError(format!(
                    "ext_authz.{key} must not be a standard header ({name})"
                )));
            }
        }
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(ConfigError(format!(
                    "ext_authz.{}: {name} is used twice; each header needs its own name",
                    keys[i]
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str) -> RouteSettings {
        RouteSettings {
            path_prefix: prefix.into(),
            case_sensitive: false,
            methods: vec![],
            scopes: vec!["orders:read".into()],
            audience: None,
            requests_per_minute: None,
        }
    }

    #[test]
    fn defaults_are_valid_and_off() {
        let mut s = ExtAuthzSettings::default();
        assert!(s.resolve().unwrap().is_none());
        assert!(!s.enabled);
        s.enabled = true;
        assert_eq!(
            s.resolve().unwrap().unwrap().headers[0],
            "x-tokend-client-id"
        );
    }

    #[test]
    fn bad_names_and_routes_are_named() {
        let err = |change: fn(&mut ExtAuthzSettings)| {
            let mut s = ExtAuthzSettings::default();
            change(&mut s);
            s.resolve().unwrap_err().to_string()
        };
        assert!(err(|s| s.tenant_header = "X Tenant".into()).contains("ext_authz.tenant_header"));
        assert!(err(|s| s.scopes_header = "authorization".into()).contains("scopes_header"));
        assert!(err(|s| s.subject_header = "x-tokend-tenant".into()).contains("used twice"));
        let msg = err(|s| s.routes = vec![route("/ok"), route("orders")]);
        assert!(msg.contains("ext_authz.routes[1].path_prefix"), "{msg}");
        for bad in [0, -5] {
            let mut quota = route("/api");
            quota.requests_per_minute = Some(bad);
            let msg = ExtAuthzSettings {
                routes: vec![route("/ok"), quota],
                ..Default::default()
            }
            .resolve()
            .unwrap_err()
            .to_string();
            assert!(
                msg.contains("ext_authz.routes[1].requests_per_minute"),
                "{msg}"
            );
        }
    }
}
