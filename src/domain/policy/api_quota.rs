//! API quotas at the edge: how many API calls (ext_authz `Check`s that would pass) a client may
//! make a minute, in all (`api_rate_limit_per_minute`) and on one route rule
//! (`[[ext_authz.routes]] requests_per_minute`, counted per client). The same token buckets and
//! the same sharing across replicas as the token endpoint's limits (see the module above): each
//! replica grants its share, `limit / live replicas`, from memory, with no database round trip.
//!
//! When both apply, a call must fit in both: it is taken from both buckets or from neither (a
//! bucket that had room gets its call back), and the refusal asks for the longer of the waits.

use std::sync::Arc;
use std::time::Duration;

use super::bucket::{Quota, Taken};
use super::{ClientLimit, Policy};
use crate::domain::clients::Client;
use crate::domain::error::{Error, Result};

/// The quota of one route rule: `per_minute` calls for each client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteQuota {
    /// The rule's place in the config, so two rules never share a bucket.
    index: u32,
    per_minute: u32,
    /// The policy's name in the RateLimit headers: the rule's methods and prefix
    /// (`GET,POST /orders`), shared by every answer that names it.
    name: Arc<str>,
}

impl RouteQuota {
    /// The quota of the rule at `index` (named `field` in errors), called `name`. A quota is at
    /// least one request a minute: a rule without one leaves `requests_per_minute` out, and a 0
    /// (which elsewhere means "none") is refused rather than guessed at.
    pub fn parse(
        field: &str,
        index: usize,
        requests_per_minute: i64,
        name: String,
    ) -> Result<Self> {
        let per_minute = u32::try_from(requests_per_minute)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                Error::invalid(
                    format!("{field}.requests_per_minute"),
                    format!(
                        "{requests_per_minute} is not a quota: give 1 to {} requests a minute \
                         per client, or leave it out for none",
                        u32::MAX
                    ),
                )
            })?;
        Ok(Self {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            per_minute,
            name: name.into(),
        })
    }

    /// Calls a minute per client, for the whole deployment.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }
}

/// A route bucket's key: the rule, with its quota (fixed for the life of the process, and kept
/// here so idle buckets are swept without the rules at hand), and the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RouteKey {
    route: u32,
    per_minute: u32,
    client: String,
}

impl RouteKey {
    pub(super) fn client(&self) -> &str {
        &self.client
    }

    pub(super) fn per_minute(&self) -> u32 {
        self.per_minute
    }
}

/// Which quota a state is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaName {
    /// The client's `api_rate_limit_per_minute`.
    Client,
    /// A route rule's `requests_per_minute`.
    Route(Arc<str>),
}

impl QuotaName {
    /// The policy's name in the RateLimit headers: `client`, or the rule's methods and prefix.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Client => "client",
            Self::Route(name) => name,
        }
    }
}

/// One quota as it stands after a call, for the caller to pace itself by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaState {
    pub name: QuotaName,
    /// The quota: calls a minute for the whole deployment.
    pub per_minute: u32,
    /// Calls this replica's share still grants now.
    pub remaining: u32,
    /// Until the share is whole again; when refused, until the next call passes.
    pub reset: Duration,
}

/// The quotas that applied to a call (none, one or both).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaReport {
    pub client: Option<QuotaState>,
    pub route: Option<QuotaState>,
}

impl QuotaReport {
    /// Each quota that applied: the client's first.
    pub fn iter(&self) -> impl Iterator<Item = &QuotaState> {
        self.client.iter().chain(self.route.iter())
    }

    /// Whether no quota applied.
    pub fn is_empty(&self) -> bool {
        self.client.is_none() && self.route.is_none()
    }

    /// Whether a quota that applied has a tenth or less of it left: the point from which a
    /// caller pacing itself needs to know.
    pub fn running_low(&self) -> bool {
        self.iter()
            .any(|s| u64::from(s.remaining) * 10 <= u64::from(s.per_minute))
    }
}

/// A call over a quota.
#[derive(Debug)]
pub struct Throttled {
    pub report: QuotaReport,
    /// `Error::RateLimited`, saying which quota refused and how long to wait (the longer wait
    /// when both did).
    pub error: Error,
    /// Which quota that is (`client` or `route`), for the audit trail.
    pub by: &'static str,
}

/// The answer to an API call.
#[derive(Debug)]
pub enum ApiCall {
    /// Within every quota that applies (the call is counted).
    Allowed(QuotaReport),
    /// Over a quota: nothing is counted against either.
    Throttled(Throttled),
}

impl Policy {
    /// Takes one API call of `client` at `now_us` from its quota and from `route`'s, if each is
    /// set: both or neither.
    pub fn take_api_call(
        &self,
        client: &Client,
        route: Option<&RouteQuota>,
        now_us: i64,
    ) -> ApiCall {
        let replicas = self.replicas();
        let own = ClientLimit::Api.of(client);
        let id = client.id.as_str();
        let mut on_client = (own > 0).then(|| {
            let quota = Quota::share(own, replicas);
            (quota, self.api_clients.take_counted(id, quota, now_us))
        });
        let mut on_route = route.map(|r| {
            let key = RouteKey {
                route: r.index,
                per_minute: r.per_minute,
                client: id.to_owned(),
            };
            let quota = Quota::share(r.per_minute, replicas);
            let taken = self.api_routes.take_counted(&key, quota, now_us);
            (key, quota, taken)
        });
        let refused =
            matches!(on_client, Some((_, Err(_)))) || matches!(on_route, Some((_, _, Err(_))));
        let client_wait = on_client
            .as_ref()
            .and_then(|(_, t)| t.as_ref().err().copied());
        let route_wait = on_route
            .as_ref()
            .and_then(|(_, _, t)| t.as_ref().err().copied());
        if refused {
            // What the buckets hold once their calls are back.
            if let Some((quota, taken @ Ok(_))) = &mut on_client
                && let Some(back) = self.api_clients.give_back(id, *quota)
            {
                *taken = Ok(back);
            }
            if let Some((key, quota, taken @ Ok(_))) = &mut on_route
                && let Some(back) = self.api_routes.give_back(key, *quota)
            {
                *taken = Ok(back);
            }
        }
        let report = QuotaReport {
            client: on_client.map(|(_, taken)| state(QuotaName::Client, own, taken)),
            route: on_route.zip(route).map(|((_, _, taken), r)| {
                state(QuotaName::Route(r.name.clone()), r.per_minute, taken)
            }),
        };
        let Some((message, retry_after, by)) = refusal(own, client_wait, route, route_wait) else {
            return ApiCall::Allowed(report);
        };
        ApiCall::Throttled(Throttled {
            report,
            error: Error::RateLimited {
                message,
                retry_after,
            },
            by,
        })
    }
}

/// The refusal, when a quota refused: the stricter speaks (the longer wait, the client's on
/// a tie). The message, the wait and which quota (`client` or `route`).
fn refusal(
    own: u32,
    client_wait: Option<Duration>,
    route: Option<&RouteQuota>,
    route_wait: Option<Duration>,
) -> Option<(String, Duration, &'static str)> {
    match (client_wait, route, route_wait) {
        (Some(c), _, r) if r.is_none_or(|r| c >= r) => Some((
            format!("this client's API quota is used up (at most {own} calls a minute)"),
            c,
            "client",
        )),
        (_, Some(rule), Some(r)) => Some((
            format!(
                "this client's quota on {} is used up (at most {} calls a minute)",
                rule.name, rule.per_minute
            ),
            r,
            "route",
        )),
        _ => None,
    }
}

/// A quota's state from what its bucket answered.
fn state(
    name: QuotaName,
    per_minute: u32,
    taken: std::result::Result<Taken, Duration>,
) -> QuotaState {
    let (remaining, reset) = match taken {
        Ok(t) => (t.remaining, t.full_in),
        Err(wait) => (0, wait),
    };
    QuotaState {
        name,
        per_minute,
        remaining,
        reset,
    }
}

#[cfg(test)]
#[path = "api_quota_tests.rs"]
mod tests;
