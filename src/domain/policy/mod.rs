//! Client policy, enforced the same way for every front end (gRPC now, HTTP and ext_authz
//! later): the caller's address and a client's allow-list, rate limits on the token endpoint,
//! the brute-force lockout, and the API quotas the edge counts (`api_quota`). Everything here
//! is in memory: a token request or an API call that passes costs no database round trip for it.
//!
//! Deployment-wide rate limits: each replica heartbeats into the store and learns how many
//! replicas are live; it then enforces its share (`limit / replicas`) of each limit. With an
//! even spread of calls the deployment grants the configured limit; with any spread it never
//! grants more than `max(limit, replicas)` in a burst and `limit` per minute sustained, except
//! for up to one heartbeat period after a replica joins (the others still take the larger
//! share until their next heartbeat).

pub mod address;
mod api_quota;
mod bucket;
mod lockout;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipnet::IpNet;

pub use api_quota::{ApiCall, QuotaName, QuotaReport, QuotaState, RouteQuota, Throttled};
pub use bucket::{Buckets, Quota, Taken};
pub use lockout::{
    KNOWN_GOOD, Lockout, LockoutConfig, MAX_ADDRESS_LOCK, Subject, TrustedAddress, network,
    network_of,
};

use crate::domain::clients::Client;
use crate::domain::error::{Error, Result};

/// Policy settings, from the config.
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    /// Peers whose `x-forwarded-for` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Token-endpoint calls per minute from one source address, whatever the client; 0: off.
    pub address_rate_per_minute: u32,
}

/// Which of a client's own token-endpoint limits a call counts against: each grant type has
/// its own, as in the systems tokend replaces (say 10 tokens and 30 refreshes a minute), so a
/// busy refresher never starves the client's new tokens, nor the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientLimit {
    /// `rate_limit_per_minute`: client_credentials and token exchange.
    Tokens,
    /// `refresh_rate_limit_per_minute`: the refresh_token grant.
    Refreshes,
    /// `api_rate_limit_per_minute`: the client's API calls through the edge (ext_authz
    /// `Check`), see `api_quota`.
    Api,
}

impl ClientLimit {
    /// Both limits, for sweeping their buckets.
    pub const ALL: [Self; 3] = [Self::Tokens, Self::Refreshes, Self::Api];

    /// The client's calls a minute under this limit (0: none).
    pub fn of(self, client: &Client) -> u32 {
        match self {
            Self::Tokens => client.spec.rate_limit_per_minute,
            Self::Refreshes => client.spec.refresh_rate_limit_per_minute,
            Self::Api => client.spec.api_rate_limit_per_minute,
        }
    }

    /// The name an audit event's `limit` detail gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tokens => "client",
            Self::Refreshes => "refresh",
            Self::Api => "api",
        }
    }

    fn calls(self) -> &'static str {
        match self {
            Self::Tokens => "token requests",
            Self::Refreshes => "refreshes",
            Self::Api => "API calls",
        }
    }
}

/// The per-replica state of the rules: rate-limit buckets and the live replica count.
#[derive(Debug)]
pub struct Policy {
    config: PolicyConfig,
    replicas: AtomicU32,
    clients: Buckets<String>,
    refreshes: Buckets<String>,
    addresses: Buckets<Subject>,
    /// API calls at the edge: per client (`api_rate_limit_per_minute`), and per client and
    /// route rule (`requests_per_minute`; see `api_quota::RouteKey`).
    api_clients: Buckets<String>,
    api_routes: Buckets<api_quota::RouteKey>,
}

impl Policy {
    /// Rules with no calls counted yet, as if this replica were alone.
    pub fn new(config: PolicyConfig) -> Self {
        Self {
            config,
            replicas: AtomicU32::new(1),
            clients: Buckets::default(),
            refreshes: Buckets::default(),
            addresses: Buckets::default(),
            api_clients: Buckets::default(),
            api_routes: Buckets::default(),
        }
    }

    /// The client's address, from the TCP peer and, behind a trusted proxy, the raw
    /// `x-forwarded-for` header values in the order received (see [`address::resolve`]). Bytes
    /// that are not UTF-8 become U+FFFD: commas stay commas, so the hops a trusted proxy
    /// appended on the right still read, and a client's garbage on the left is never parsed.
    pub fn client_address<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<IpAddr> {
        let values: Vec<std::borrow::Cow<'_, str>> = forwarded_for
            .into_iter()
            .map(String::from_utf8_lossy)
            .collect();
        address::resolve(
            peer,
            values.iter().map(|v| v.as_ref()),
            &self.config.trusted_proxies,
        )
    }

    /// Whether the TCP `peer` is one of `server.trusted_proxies`: only such a peer's
    /// forwarded headers (`x-forwarded-for`, `x-forwarded-client-cert`) are believed.
    pub fn is_trusted_proxy(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.config.trusted_proxies.iter().any(|n| n.contains(&ip)))
    }

    /// Live replicas sharing the limits (at least 1).
    pub fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Relaxed).max(1)
    }

    /// Sets the live replica count, as the latest heartbeat saw it.
    pub fn set_replicas(&self, n: u32) {
        let old = self.replicas.swap(n.max(1), Ordering::Relaxed);
        if old != n.max(1) {
            tracing::info!(
                replicas = n.max(1),
                "live replicas changed; limits re-divided"
            );
        }
    }

    /// The server-wide per-address limit on the token endpoint, checked before the client
    /// authenticates (so it also spares argon2 work).
    pub fn take_address_call(&self, addr: Option<IpAddr>, now_us: i64) -> Result<()> {
        let limit = self.config.address_rate_per_minute;
        if limit == 0 {
            return Ok(());
        }
        let quota = Quota::share(limit, self.replicas());
        self.addresses
            .take(&Subject::address(addr), quota, now_us)
            .map_err(|wait| Error::RateLimited {
                message: format!(
                    "too many token requests from this address (at most {limit} a minute)"
                ),
                retry_after: wait,
            })
    }

    /// The client's allow-list: refused unless `addr` is in it (an unknown address is never in
    /// a non-empty list). The list itself is never named.
    pub fn check_address(&self, client: &Client, addr: Option<IpAddr>) -> Result<()> {
        let cidrs = &client.spec.allowed_cidrs;
        match addr {
            _ if cidrs.is_empty() => Ok(()),
            Some(addr) if address::allowed(cidrs, addr) => Ok(()),
            Some(addr) => Err(Error::UnauthorizedClient(format!(
                "address {} is not allowed for this client",
                address::canonical(addr)
            ))),
            None => Err(Error::UnauthorizedClient(
                "this client may only be used from allowed addresses, and the caller's address \
                 is unknown"
                    .into(),
            )),
        }
    }

    /// The client's own rate limit on the token endpoint for this kind of call
    /// (`rate_limit_per_minute` or `refresh_rate_limit_per_minute`, 0: none).
    pub fn take_client_call(&self, client: &Client, kind: ClientLimit, now_us: i64) -> Result<()> {
        let limit = kind.of(client);
        if limit == 0 {
            return Ok(());
        }
        let quota = Quota::share(limit, self.replicas());
        self.buckets(kind)
            .take(client.id.as_str(), quota, now_us)
            .map_err(|wait| Error::RateLimited {
                message: format!(
                    "this client's rate limit is exceeded (at most {limit} {} a minute)",
                    kind.calls()
                ),
                retry_after: wait,
            })
    }

    fn buckets(&self, kind: ClientLimit) -> &Buckets<String> {
        match kind {
            ClientLimit::Tokens => &self.clients,
            ClientLimit::Refreshes => &self.refreshes,
            ClientLimit::Api => &self.api_clients,
        }
    }

    /// Drops buckets that are full again; `client_limit` answers a client's limit of a kind
    /// as it is now (`None`: the client is gone).
    pub fn forget_idle(
        &self,
        client_limit: impl Fn(&str, ClientLimit) -> Option<u32>,
        now_us: i64,
    ) {
        let replicas = self.replicas();
        for kind in ClientLimit::ALL {
            self.buckets(kind).forget_full(
                |id| {
                    client_limit(id, kind)
                        .filter(|l| *l > 0)
                        .map(|l| Quota::share(l, replicas))
                },
                now_us,
            );
        }
        // A route's quota is in its key; the bucket goes with its client.
        self.api_routes.forget_full(
            |key| {
                client_limit(key.client(), ClientLimit::Api)
                    .map(|_| Quota::share(key.per_minute(), replicas))
            },
            now_us,
        );
        let limit = self.config.address_rate_per_minute;
        self.addresses.forget_full(
            |_| (limit > 0).then(|| Quota::share(limit, replicas)),
            now_us,
        );
    }
}

/// The refusal for a locked client or address.
pub fn locked_error(wait: Duration) -> Error {
    Error::RateLimited {
        message: "too many failed authentications for this client_id or from this address; \
                  attempts are refused until the lock ends"
            .into(),
        retry_after: wait,
    }
}
