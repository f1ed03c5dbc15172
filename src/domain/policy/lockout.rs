//! Brute force contained: failed client authentications are counted per client_id and per
//! source address; past the threshold, further attempts are refused before any argon2 work.
//!
//! - An address is locked for the failure window, doubling with each further lock (up to
//!   [`MAX_ADDRESS_LOCK`]): this is what stops an attacker.
//! - A client_id is locked for one window, never longer, so an attacker cannot keep a client
//!   it does not own locked beyond the window after it stops.
//! - Trust: a client that authenticated from an address is trusted there for [`KNOWN_GOOD`]
//!   after its latest success. Neither a lock of its client_id nor a lock of the address
//!   refuses it there: the locks stop guessing, not the honest callers that share an address
//!   with the guesser (behind a mesh sidecar or a node's SNAT, every caller does). Guesses at
//!   a client_id from an address it is trusted at count apart, as a *pair*, and lock that
//!   pair for one window: still at most `max_failures` guesses per window per client_id, and
//!   no argon2 beyond them. The trade-off: while an address is locked, a client that never
//!   authenticated from it is refused there until the lock ends.
//! - Trust is shared: a new (or renewed) trusted pair is stored and announced through the
//!   change log like a lock, so every replica knows it; a replica loads the live ones at start.
//! - IPv6 addresses count per /64, the block one host can trivially rotate through.
//! - Failures are counted by the store for the whole deployment (one counter per subject,
//!   whichever replica saw the failure; failures are slow anyway: each cost an argon2
//!   verification), so `max_failures` holds exactly across replicas. A lock that begins is
//!   announced to every replica through the change log; each checks locks in memory. While the
//!   database cannot count, a replica counts in memory alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use ipnet::{IpNet, Ipv6Net};

/// Longest lock of an address, however often it was locked before.
pub const MAX_ADDRESS_LOCK: Duration = Duration::from_secs(3600);
/// How long a successful authentication makes its client trusted at its address (renewed by
/// later successes; stored again once less than half of it is left).
pub const KNOWN_GOOD: Duration = Duration::from_secs(24 * 3600);
/// How long after a failed attempt to store a trusted address the next one is made.
pub const ANNOUNCE_RETRY: Duration = Duration::from_secs(60);
/// Counters and known-good pairs kept before idle ones are swept.
const SWEEP_AT: usize = 100_000;
const DAY_US: i64 = 24 * 3600 * 1_000_000;

/// What is counted and locked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Client(String),
    /// An IPv4 address, or the /64 of an IPv6 address.
    Address(IpNet),
    /// A client_id at an address it is trusted at.
    Pair(String, IpNet),
}

/// What a caller's address counts as: [`network`], or when it cannot be known (a trusted
/// proxy wrote an unreadable `x-forwarded-for`, or there is no peer) one shared key, `::/128`
/// (no caller has that address): such calls are counted and limited together, never not at
/// all.
pub fn network_of(addr: Option<IpAddr>) -> IpNet {
    addr.map_or_else(
        || IpNet::V6(Ipv6Net::new(std::net::Ipv6Addr::UNSPECIFIED, 128).expect("a valid prefix")),
        network,
    )
}

/// What a source address counts as: itself, or for IPv6 its /64.
pub fn network(addr: IpAddr) -> IpNet {
    match addr.to_canonical() {
        v4 @ IpAddr::V4(_) => IpNet::from(v4),
        IpAddr::V6(v6) => Ipv6Net::new(v6, 64)
            .map_or_else(|_| IpNet::from(IpAddr::V6(v6)), |n| IpNet::V6(n.trunc())),
    }
}

impl Subject {
    /// The subject for a caller's address (see [`network_of`]).
    pub fn address(addr: Option<IpAddr>) -> Self {
        Subject::Address(network_of(addr))
    }

    /// The change-log subject: `client:<id>`, `address:<net>` or `pair:<id>@<net>`.
    pub fn encode(&self) -> String {
        match self {
            Subject::Client(id) => format!("client:{id}"),
            Subject::Address(net) => format!("address:{net}"),
            Subject::Pair(id, net) => format!("pair:{id}@{net}"),
        }
    }

    /// The inverse of [`Subject::encode`].
    pub fn decode(raw: &str) -> Option<Self> {
        match raw.split_once(':')? {
            ("client", id) => Some(Subject::Client(id.to_owned())),
            ("address", net) => net.parse().ok().map(Subject::Address),
            ("pair", pair) => {
                let (id, net) = pair.split_once('@')?;
                Some(Subject::Pair(id.to_owned(), net.parse().ok()?))
            }
            _ => None,
        }
    }
}

/// A client trusted at an address (see the module docs), as stored and announced:
/// `<client_id>@<net>` in the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedAddress {
    pub client_id: String,
    pub address: IpNet,
    /// Unix µs.
    pub until_us: i64,
}

impl TrustedAddress {
    /// The change-log subject.
    pub fn subject(&self) -> String {
        format!("{}@{}", self.client_id, self.address)
    }

    /// The pair a change-log subject names, trusted until `until_us`.
    pub fn decode(subject: &str, until_us: i64) -> Option<Self> {
        let (id, net) = subject.split_once('@')?;
        Some(Self {
            client_id: id.to_owned(),
            address: net.parse().ok()?,
            until_us,
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    window_start_us: i64,
    failures: u32,
    /// Locks so far; each doubles the next address lock.
    strikes: u32,
    locked_until_us: i64,
}

/// Lockout settings.
#[derive(Debug, Clone, Copy)]
pub struct LockoutConfig {
    /// Failures within the window that lock (the deployment's total); 0 turns lockout off,
    /// locks announced earlier included.
    pub max_failures: u32,
    pub window: Duration,
    /// How long a refusal of a locked client_id or address is held before it is answered
    /// (never longer than the lock itself): an attacker's loop slows to a crawl for the cost
    /// of a timer.
    pub delay: Duration,
}

/// Locks in force, by kind of subject, so the hot path looks a client up by `&str` without
/// building a key.
#[derive(Debug, Default)]
struct Locks {
    clients: HashMap<String, i64>,
    addresses: HashMap<IpNet, i64>,
    pairs: HashMap<(String, IpNet), i64>,
}

impl Locks {
    fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.addresses.is_empty() && self.pairs.is_empty()
    }
}

/// Failure counters, the locks in force (begun here or on another replica) and the addresses
/// each client is trusted at (seen here or announced by another replica).
#[derive(Debug)]
pub struct Lockout {
    config: LockoutConfig,
    counters: Mutex<HashMap<Subject, Counter>>,
    locks: RwLock<Locks>,
    /// client id -> the addresses it is trusted at and until when (at most
    /// [`KNOWN_PER_CLIENT`], the one ending first dropped first).
    trusted: Mutex<HashMap<String, Vec<(IpNet, i64)>>>,
    /// Held while one failure is accounted for (see [`Lockout::accounting`]).
    accounting: tokio::sync::Mutex<()>,
}

/// Addresses remembered per client: enough for a service's nodes, bounded however many
/// addresses a holder of a valid secret calls from.
pub const KNOWN_PER_CLIENT: usize = 16;

impl Lockout {
    /// An empty lockout table.
    pub fn new(config: LockoutConfig) -> Self {
        Self {
            config,
            counters: Mutex::new(HashMap::new()),
            locks: RwLock::new(Locks::default()),
            trusted: Mutex::new(HashMap::new()),
            accounting: tokio::sync::Mutex::new(()),
        }
    }

    /// How long until `client_id` may try again from `addr`, if it is locked now: by a lock
    /// of the address or of the client_id (unless the client is trusted at the address), or
    /// of the pair. Cheap when nothing is locked, as on the hot path of every token request.
    pub fn locked(
        &self,
        client_id: Option<&str>,
        addr: Option<IpAddr>,
        now_us: i64,
    ) -> Option<Duration> {
        let locks = self.locks.read().unwrap_or_else(|e| e.into_inner());
        if locks.is_empty() || self.config.max_failures == 0 {
            return None;
        }
        let live = |until: Option<&i64>| until.copied().filter(|u| *u > now_us);
        let net = Some(network_of(addr));
        let by_address = net.and_then(|net| live(locks.addresses.get(&net)));
        let by_client = client_id.and_then(|id| live(locks.clients.get(id)));
        let (by_pair, trusted) = match (client_id, net) {
            (Some(id), Some(net)) => {
                let pair = (!locks.pairs.is_empty())
                    .then(|| live(locks.pairs.get(&(id.to_owned(), net))))
                    .flatten();
                let shared = by_address.is_some() || by_client.is_some();
                (pair, shared && self.is_trusted(id, net, now_us))
            }
            _ => (None, false),
        };
        let shared = by_address.into_iter().chain(by_client).max();
        shared
            .filter(|_| !trusted)
            .into_iter()
            .chain(by_pair)
            .max()
            .map(|u| Duration::from_micros(u64::try_from(u - now_us).unwrap_or(0)))
    }

    /// What one failed authentication of `client_id` from `addr` counts against: the
    /// client_id, the address, and the pair when the client is trusted at the address.
    pub fn failure_subjects(
        &self,
        client_id: Option<&str>,
        addr: Option<IpAddr>,
        now_us: i64,
    ) -> Vec<Subject> {
        let net = Some(network_of(addr));
        let pair = match (client_id, net) {
            (Some(id), Some(net)) if self.is_trusted(id, net, now_us) => {
                Some(Subject::Pair(id.to_owned(), net))
            }
            _ => None,
        };
        client_id
            .map(|id| Subject::Client(id.to_owned()))
            .into_iter()
            .chain(net.map(Subject::Address))
            .chain(pair)
            .collect()
    }

    /// One subject's failure counted in this replica's memory, with `threshold` failures
    /// locking; the end of the lock it begins, if it does (applied here already). The store
    /// normally counts for the whole deployment (`PolicyStore::count_failure`); this is the
    /// fallback while it cannot.
    pub fn failed_locally(&self, subject: &Subject, threshold: u32, now_us: i64) -> Option<i64> {
        if self.config.max_failures == 0 {
            return None;
        }
        let window_us = micros(self.config.window);
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if counters.len() >= SWEEP_AT && !counters.contains_key(subject) {
            counters.retain(|_, c| idle(c, window_us, now_us).is_none());
            if counters.len() >= SWEEP_AT {
                return None; // full of live counters: the store's count still holds
            }
        }
        let counter = counters.entry(subject.clone()).or_default();
        if now_us >= counter.window_start_us.saturating_add(window_us) {
            counter.window_start_us = now_us;
            counter.failures = 0;
        }
        counter.failures += 1;
        if counter.failures < threshold.max(1) {
            return None;
        }
        let until = now_us.saturating_add(self.lock_length_us(subject, counter.strikes));
        counter.strikes = counter.strikes.saturating_add(1);
        counter.locked_until_us = until;
        counter.failures = 0;
        counter.window_start_us = until;
        drop(counters);
        self.lock(subject.clone(), until);
        Some(until)
    }

    /// How long a lock of `subject` lasts after `strikes` earlier locks: a client_id or a
    /// pair one window, an address one window doubled per strike, up to [`MAX_ADDRESS_LOCK`].
    pub fn lock_length_us(&self, subject: &Subject, strikes: u32) -> i64 {
        let window_us = micros(self.config.window);
        match subject {
            Subject::Client(_) | Subject::Pair(..) => window_us,
            Subject::Address(_) => {
                let grown = window_us.saturating_mul(1 << strikes.min(20));
                grown.min(micros(MAX_ADDRESS_LOCK).max(window_us))
            }
        }
    }

    /// The failure-counting window, µs.
    pub fn window_us(&self) -> i64 {
        micros(self.config.window)
    }

    /// Notes that `client_id` authenticated from `addr`: it is trusted there for
    /// [`KNOWN_GOOD`] from now. Returns the pair when it is new or when less than half of its
    /// trust was left, for the caller to store and announce (so a busy client costs one write
    /// per address per half-day, not one per call). Counts are not reset: a valid secret must
    /// not buy an attacker more guesses.
    pub fn succeeded(
        &self,
        client_id: &str,
        addr: Option<IpAddr>,
        now_us: i64,
    ) -> Option<TrustedAddress> {
        let net = network_of(addr);
        let until_us = now_us.saturating_add(micros(KNOWN_GOOD));
        let mut trusted = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        let known = trusted
            .get(client_id)
            .and_then(|list| list.iter().find(|(n, _)| *n == net))
            .map(|(_, until)| *until);
        if known.is_some_and(|until| until - now_us > micros(KNOWN_GOOD) / 2) {
            return None;
        }
        insert_trust(&mut trusted, client_id, net, until_us, now_us);
        Some(TrustedAddress {
            client_id: client_id.to_owned(),
            address: net,
            until_us,
        })
    }

    /// Notes that `pair`, returned by [`Lockout::succeeded`], could not be stored: it stays
    /// trusted here, and the client's first success there after [`ANNOUNCE_RETRY`] tries to
    /// store it again (not every success: while the database is down, each would try and
    /// log).
    pub fn announcement_failed(&self, pair: &TrustedAddress) {
        let retry_at = pair
            .until_us
            .saturating_sub(micros(KNOWN_GOOD) / 2)
            .saturating_add(micros(ANNOUNCE_RETRY));
        let mut trusted = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = trusted.get_mut(&pair.client_id) {
            for (_, until) in list.iter_mut().filter(|(n, _)| *n == pair.address) {
                *until = (*until).min(retry_at);
            }
        }
    }

    /// Trusts a client at an address until `until_us` (announced by another replica, or
    /// loaded at start); a later end wins over an earlier one.
    pub fn trust(&self, pair: &TrustedAddress, now_us: i64) {
        if pair.until_us <= now_us {
            return;
        }
        let mut trusted = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        insert_trust(
            &mut trusted,
            &pair.client_id,
            pair.address,
            pair.until_us,
            now_us,
        );
    }

    /// Applies a lock (begun here, or announced by another replica) until `until_us`.
    pub fn lock(&self, subject: Subject, until_us: i64) {
        let mut locks = self.locks.write().unwrap_or_else(|e| e.into_inner());
        let entry = match subject {
            Subject::Client(id) => locks.clients.entry(id).or_insert(until_us),
            Subject::Address(net) => locks.addresses.entry(net).or_insert(until_us),
            Subject::Pair(id, net) => locks.pairs.entry((id, net)).or_insert(until_us),
        };
        *entry = (*entry).max(until_us);
    }

    /// Drops ended locks, idle counters and ended trust.
    pub fn forget_expired(&self, now_us: i64) {
        let window_us = micros(self.config.window);
        {
            let mut locks = self.locks.write().unwrap_or_else(|e| e.into_inner());
            locks.clients.retain(|_, until| *until > now_us);
            locks.addresses.retain(|_, until| *until > now_us);
            locks.pairs.retain(|_, until| *until > now_us);
        }
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, c| idle(c, window_us, now_us).is_none());
        self.trusted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, list| {
                list.retain(|(_, until)| *until > now_us);
                !list.is_empty()
            });
    }

    /// Serialises the accounting of failed authentications on this replica: the holder
    /// looks at the locks, then counts (and may lock), before the next failure looks. Only
    /// failures take it, and each has already cost an argon2 verification.
    pub async fn accounting(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.accounting.lock().await
    }

    /// The deployment-wide failure threshold (0: lockout off).
    pub fn max_failures(&self) -> u32 {
        self.config.max_failures
    }

    /// How long to hold the refusal of a call locked for `wait` more.
    pub fn refusal_delay(&self, wait: Duration) -> Duration {
        self.config.delay.min(wait)
    }

    /// Locks in force at `now_us`.
    pub fn active_locks(&self, now_us: i64) -> usize {
        let locks = self.locks.read().unwrap_or_else(|e| e.into_inner());
        let live = |u: &&i64| **u > now_us;
        locks.clients.values().filter(live).count()
            + locks.addresses.values().filter(live).count()
            + locks.pairs.values().filter(live).count()
    }

    /// Whether `client_id` is trusted at `net` now.
    pub fn is_trusted(&self, client_id: &str, net: IpNet, now_us: i64) -> bool {
        let trusted = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        trusted
            .get(client_id)
            .is_some_and(|list| list.iter().any(|(n, u)| *n == net && *u > now_us))
    }
}

/// Trusts `client_id` at `net` until `until_us` (or later, if it already was), keeping at
/// most [`KNOWN_PER_CLIENT`] live addresses per client: past that, the one ending first goes.
fn insert_trust(
    trusted: &mut HashMap<String, Vec<(IpNet, i64)>>,
    client_id: &str,
    net: IpNet,
    until_us: i64,
    now_us: i64,
) {
    let list = match trusted.get_mut(client_id) {
        Some(list) => list,
        None => trusted.entry(client_id.to_owned()).or_default(),
    };
    let until_us = list
        .iter()
        .find(|(n, _)| *n == net)
        .map_or(until_us, |(_, u)| until_us.max(*u));
    list.retain(|(n, u)| *u > now_us && *n != net);
    if list.len() >= KNOWN_PER_CLIENT
        && let Some(first) = list
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, u))| *u)
            .map(|(i, _)| i)
    {
        list.remove(first);
    }
    list.push((net, until_us));
}

/// `Some(())` when a counter holds nothing worth keeping: its window has passed and its last
/// lock ended over a day ago (so its strikes are forgiven).
fn idle(c: &Counter, window_us: i64, now_us: i64) -> Option<()> {
    (now_us >= c.window_start_us.saturating_add(window_us)
        && now_us >= c.locked_until_us.saturating_add(DAY_US))
    .then_some(())
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "lockout_tests.rs"]
mod tests;
