//! `[server]`: the API port, how long it drains, who may speak for a client's address, and the
//! URL clients use to reach it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::ConfigError;
use super::tls::{TlsConfig, TlsSettings};

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// gRPC listen address. `TOKEND__SERVER__ADDR`.
    pub addr: SocketAddr,
    /// Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// CIDRs of reverse proxies / mesh sidecars whose `x-forwarded-for` is believed; empty:
    /// the TCP peer is always the client. `TOKEND__SERVER__TRUSTED_PROXIES=10.0.0.0/8,::1/128`.
    pub trusted_proxies: Vec<String>,
    /// IssueToken + RefreshToken calls per minute from one source address (IPv6: per /64),
    /// whatever the client, for the whole deployment; 0: off.
    pub token_endpoint_rate_per_minute: u32,
    /// How clients reach tokend when it sits behind a proxy (`https://auth.example.com`): the
    /// base of the endpoint URLs in the RFC 8414 metadata.
    pub public_url: Option<String>,
    /// TLS on this port; plaintext when unset.
    pub tls: TlsSettings,
    /// A plaintext port serving only `grpc.health.v1.Health` (the same statuses as the API
    /// port), for probes that cannot speak TLS, such as Kubernetes' gRPC probes.
    pub health_addr: Option<SocketAddr>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            shutdown_grace_secs: 10,
            trusted_proxies: Vec::new(),
            token_endpoint_rate_per_minute: 0,
            public_url: None,
            tls: TlsSettings::default(),
            health_addr: None,
        }
    }
}

/// `[server]`, checked: the proxies parsed, the grace period a `Duration`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// How long in-flight calls get to finish once shutdown begins.
    pub shutdown_grace: Duration,
    /// Peers whose `x-forwarded-for` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Token-endpoint calls per minute from one source address; 0: off.
    pub token_endpoint_rate_per_minute: u32,
    pub public_url: Option<String>,
    /// TLS on the API port; `None`: plaintext.
    pub tls: Option<TlsConfig>,
    pub health_addr: Option<SocketAddr>,
}

impl ServerSettings {
    pub(super) fn resolve(&self) -> Result<ServerConfig, ConfigError> {
        let trusted_proxies = self.trusted_proxies()?;
        if let Some(url) = &self.public_url
            && !((url.starts_with("https://") || url.starts_with("http://"))
                && url.len() > 8
                && !url.contains(char::is_whitespace))
        {
            return Err(ConfigError(format!(
                "server.public_url must be an http(s) URL such as https://auth.example.com, not {url:?}"
            )));
        }
        Ok(ServerConfig {
            addr: self.addr,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            trusted_proxies,
            token_endpoint_rate_per_minute: self.token_endpoint_rate_per_minute,
            public_url: self.public_url.clone(),
            tls: self.tls.resolve()?,
            health_addr: self.health_addr,
        })
    }

    /// Each entry as a CIDR, a bare address counting as its own /32 or /128.
    fn trusted_proxies(&self) -> Result<Vec<IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                let raw = raw.trim();
                raw.parse::<IpNet>()
                    .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!(
                            "server.trusted_proxies[{i}]: {raw:?} is not a CIDR (e.g. 10.0.0.0/8) or an address"
                        ))
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_must_be_http() {
        let mut s = ServerSettings {
            public_url: Some("auth.example.com".into()),
            ..ServerSettings::default()
        };
        let err = s.resolve().unwrap_err().to_string();
        assert!(err.contains("server.public_url"), "{err}");
        s.public_url = Some("https://auth.example.com".into());
        assert!(s.resolve().is_ok());
    }

    #[test]
    fn a_bare_address_is_one_host() {
        let s = ServerSettings {
            trusted_proxies: vec![" 10.1.2.3 ".into()],
            ..ServerSettings::default()
        };
        let proxies = s.resolve().unwrap().trusted_proxies;
        assert_eq!(proxies, ["10.1.2.3/32".parse::<IpNet>().unwrap()]);
    }
}
