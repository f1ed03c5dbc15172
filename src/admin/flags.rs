//! The client flags of `tokend admin clients create|update`, named as the README's client
//! fields, and the field mask built from the flags given (update sends only what was given).

use std::path::PathBuf;
use std::time::Duration;

use super::clients::parse_duration;
use super::output::AdminError;
use crate::proto::{AccessTokenFormat, Client, FederatedCredential};

/// Every settable client field; each is optional so that an update changes only what is given.
/// A list flag given empty (`--audiences ''`) clears the list.
#[derive(Debug, Default, clap::Args)]
pub struct ClientFlags {
    /// Human-readable name.
    #[arg(long)]
    pub name: Option<String>,
    /// Free text for operators.
    #[arg(long)]
    pub description: Option<String>,
    /// Allowed scopes, comma-separated (`read:*,write:orders`).
    #[arg(long, value_delimiter = ',')]
    pub scopes: Option<Vec<String>>,
    /// Audiences its tokens may carry, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub audiences: Option<Vec<String>>,
    /// Roles its tokens carry, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub roles: Option<Vec<String>>,
    /// Access-token lifetime: `900`, `15m`, `1h`.
    #[arg(long, value_parser = parse_duration)]
    pub access_token_ttl: Option<Duration>,
    /// Refresh-token lifetime (`0`: no refresh tokens): `7d`.
    #[arg(long, value_parser = parse_duration)]
    pub refresh_token_ttl: Option<Duration>,
    /// Addresses and networks it may call from, comma-separated (`10.0.0.0/8,192.0.2.7/32`).
    #[arg(long, value_delimiter = ',')]
    pub allowed_cidrs: Option<Vec<String>>,
    /// Token-endpoint calls per minute, refreshes apart (0: no limit).
    #[arg(long = "rate-limit", value_name = "PER_MINUTE")]
    pub rate_limit_per_minute: Option<u32>,
    /// RefreshToken calls per minute (0: no limit), counted apart from --rate-limit.
    #[arg(long = "refresh-rate-limit", value_name = "PER_MINUTE")]
    pub refresh_rate_limit_per_minute: Option<u32>,
    /// API calls per minute through the edge (ext_authz Check; 0: no limit).
    #[arg(long = "api-rate-limit", value_name = "PER_MINUTE")]
    pub api_rate_limit_per_minute: Option<u32>,
    /// A metadata entry KEY=VALUE; repeatable (given at all, it replaces all entries).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub metadata: Option<Vec<(String, String)>>,
    /// `jwt` (default) or `opaque`.
    #[arg(long, value_parser = ["jwt", "opaque"])]
    pub access_token_format: Option<String>,
    /// Audiences it may exchange other tokens for (RFC 8693), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub exchange_audiences: Option<Vec<String>>,
    /// How it authenticates, comma-separated: client_secret_basic, client_secret_post,
    /// private_key_jwt, federated_jwt, tls_client_auth, self_signed_tls_client_auth.
    #[arg(long, value_delimiter = ',')]
    pub auth_methods: Option<Vec<String>>,
    /// A file holding its public keys as a JWK Set (`''` as the file name clears them).
    #[arg(long, value_name = "FILE")]
    pub jwks_file: Option<PathBuf>,
    /// Where it publishes its JWK Set.
    #[arg(long, value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// A workload identity that may act as it (`federated_jwt`), ISSUER=SUBJECT (e.g.
    /// `https://kubernetes.default.svc.cluster.local=system:serviceaccount:pay:billing`; the
    /// issuer must be one of `[[federation.issuers]]`); repeatable.
    #[arg(long = "federated", value_name = "ISSUER=SUBJECT", value_parser = parse_federated)]
    pub federated_credentials: Option<Vec<(String, String)>>,
    /// `tls_client_auth`: the subject DN its certificate must have.
    #[arg(long, value_name = "DN")]
    pub tls_client_auth_subject_dn: Option<String>,
    /// `tls_client_auth`: a DNS name its certificate must carry.
    #[arg(long, value_name = "NAME")]
    pub tls_client_auth_san_dns: Option<String>,
    /// `tls_client_auth`: a URI its certificate must carry (a SPIFFE ID).
    #[arg(long, value_name = "URI")]
    pub tls_client_auth_san_uri: Option<String>,
    /// `tls_client_auth`: an IP address its certificate must carry.
    #[arg(long, value_name = "IP")]
    pub tls_client_auth_san_ip: Option<String>,
    /// `tls_client_auth`: an e-mail address its certificate must carry.
    #[arg(long, value_name = "EMAIL")]
    pub tls_client_auth_san_email: Option<String>,
    /// Bind its access tokens to its TLS client certificate (RFC 8705 `cnf`): alone or
    /// `true`, or `false`.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
}

/// `KEY=VALUE`, split at the first `=`.
fn parse_pair(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{raw:?}: give KEY=VALUE")),
    }
}

/// `ISSUER=SUBJECT`, split at the first `=` (an OpenID issuer URL has no query, so no `=`).
fn parse_federated(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((issuer, subject)) if !issuer.is_empty() && !subject.is_empty() => {
            Ok((issuer.to_owned(), subject.to_owned()))
        }
        _ => Err(format!(
            "{raw:?}: give ISSUER=SUBJECT, e.g. \
             https://kubernetes.default.svc.cluster.local=system:serviceaccount:pay:billing"
        )),
    }
}

fn list(values: Vec<String>) -> Vec<String> {
    values.into_iter().filter(|v| !v.is_empty()).collect()
}

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

impl ClientFlags {
    /// The client these flags describe, and the API paths they set (the update mask).
    pub fn client(self) -> Result<(Client, Vec<&'static str>), AdminError> {
        let mut c = Client::default();
        let mut paths = Vec::new();
        let mut set = |path: &'static str, given: bool| {
            if given {
                paths.push(path);
            }
        };
        set("name", self.name.is_some());
        c.name = self.name.unwrap_or_default();
        set("description", self.description.is_some());
        c.description = self.description.unwrap_or_default();
        set("scopes", self.scopes.is_some());
        c.scopes = list(self.scopes.unwrap_or_default());
        set("audiences", self.audiences.is_some());
        c.audiences = list(self.audiences.unwrap_or_default());
        set("roles", self.roles.is_some());
        c.roles = list(self.roles.unwrap_or_default());
        set("access_token_ttl", self.access_token_ttl.is_some());
        c.access_token_ttl = self.access_token_ttl.map(duration);
        set("refresh_token_ttl", self.refresh_token_ttl.is_some());
        c.refresh_token_ttl = self.refresh_token_ttl.map(duration);
        set("allowed_cidrs", self.allowed_cidrs.is_some());
        c.allowed_cidrs = list(self.allowed_cidrs.unwrap_or_default());
        set(
            "rate_limit_per_minute",
            self.rate_limit_per_minute.is_some(),
        );
        c.rate_limit_per_minute = self.rate_limit_per_minute.unwrap_or_default();
        set(
            "refresh_rate_limit_per_minute",
            self.refresh_rate_limit_per_minute.is_some(),
        );
        c.refresh_rate_limit_per_minute = self.refresh_rate_limit_per_minute.unwrap_or_default();
        set(
            "api_rate_limit_per_minute",
            self.api_rate_limit_per_minute.is_some(),
        );
        c.api_rate_limit_per_minute = self.api_rate_limit_per_minute.unwrap_or_default();
        set("metadata", self.metadata.is_some());
        c.metadata = self.metadata.unwrap_or_default().into_iter().collect();
        set("access_token_format", self.access_token_format.is_some());
        c.access_token_format = match self.access_token_format.as_deref() {
            Some("opaque") => AccessTokenFormat::Opaque,
            Some(_) => AccessTokenFormat::Jwt,
            None => AccessTokenFormat::Unspecified,
        }
        .into();
        set("exchange_audiences", self.exchange_audiences.is_some());
        c.exchange_audiences = list(self.exchange_audiences.unwrap_or_default());
        set("auth_methods", self.auth_methods.is_some());
        c.auth_methods = list(self.auth_methods.unwrap_or_default());
        set("jwks", self.jwks_file.is_some());
        c.jwks = match &self.jwks_file {
            Some(path) if path.as_os_str().is_empty() => String::new(),
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| AdminError::usage(format!("--jwks-file {}: {e}", path.display())))?,
            None => String::new(),
        };
        set("jwks_uri", self.jwks_uri.is_some());
        c.jwks_uri = self.jwks_uri.unwrap_or_default();
        set(
            "federated_credentials",
            self.federated_credentials.is_some(),
        );
        c.federated_credentials = self
            .federated_credentials
            .unwrap_or_default()
            .into_iter()
            .map(|(issuer, subject)| FederatedCredential { issuer, subject })
            .collect();
        let subjects = [
            (
                "tls_client_auth_subject_dn",
                self.tls_client_auth_subject_dn,
            ),
            ("tls_client_auth_san_dns", self.tls_client_auth_san_dns),
            ("tls_client_auth_san_uri", self.tls_client_auth_san_uri),
            ("tls_client_auth_san_ip", self.tls_client_auth_san_ip),
            ("tls_client_auth_san_email", self.tls_client_auth_san_email),
        ];
        for (path, value) in subjects {
            set(path, value.is_some());
            let value = value.unwrap_or_default();
            match path {
                "tls_client_auth_subject_dn" => c.tls_client_auth_subject_dn = value,
                "tls_client_auth_san_dns" => c.tls_client_auth_san_dns = value,
                "tls_client_auth_san_uri" => c.tls_client_auth_san_uri = value,
                "tls_client_auth_san_ip" => c.tls_client_auth_san_ip = value,
                _ => c.tls_client_auth_san_email = value,
            }
        }
        set(
            "tls_client_certificate_bound_access_tokens",
            self.tls_client_certificate_bound_access_tokens.is_some(),
        );
        c.tls_client_certificate_bound_access_tokens = self
            .tls_client_certificate_bound_access_tokens
            .unwrap_or_default();
        Ok((c, paths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_given_flags_enter_the_mask_and_empty_lists_clear() {
        let flags = ClientFlags {
            rate_limit_per_minute: Some(5000),
            allowed_cidrs: Some(vec!["10.0.1.5/32".into(), "10.0.1.6/32".into()]),
            audiences: Some(vec![String::new()]),
            access_token_ttl: Some(Duration::from_secs(900)),
            ..ClientFlags::default()
        };
        let (client, paths) = flags.client().unwrap();
        assert_eq!(
            paths,
            [
                "audiences",
                "access_token_ttl",
                "allowed_cidrs",
                "rate_limit_per_minute"
            ]
        );
        assert!(client.audiences.is_empty());
        assert_eq!(client.rate_limit_per_minute, 5000);
        assert_eq!(client.access_token_ttl.unwrap().seconds, 900);
    }
}
