//! Brute force contained: failed client authentications are counted per client_id and per
//! source address; past the threshold, further attempts are refused before any argon2 work.
//!
//! - An address is locked for the failure window, doubling with each further lock (up to
//!   [`MAX_ADDRESS_LOCK`]): this is what stops an attacker.
//! - A client_id is locked for one window, never longer, so an attacker cannot keep a client
//!   it does not own locked beyond the window after it stops. During that lock the addresses
//!   the client authenticated from recently ([`KNOWN_GOOD`]) keep working: an honest client
//!   under attack from elsewhere is not locked out. A new address of that client is refused
//!   until the lock ends; that is the trade-off.
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
/// How long a successful authentication exempts its address from its client's lock.
pub const KNOWN_GOOD: Duration = Duration::from_secs(24 * 3600);
/// Counters and known-good pairs kept before idle ones are swept.
const SWEEP_AT: usize = 100_000;
const DAY_US: i64 = 24 * 3600 * 1_000_000;

/// What is counted and locked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Client(String),
    /// An IPv4 address, or the /64 of an IPv6 address.
    Address(IpNet),
}

impl Subject {
    /// The subject for a source address: IPv6 addresses count per /64.
    pub fn address(addr: IpAddr) -> Self {
        let net = match addr.to_canonical() {
            v4 @ IpAddr::V4(_) => IpNet::from(v4),
            IpAddr::V6(v6) => Ipv6Net::new(v6, 64)
                .map_or_else(|_| IpNet::from(IpAddr::V6(v6)), |n| IpNet::V6(n.trunc())),
        };
        Subject::Address(net)
    }

    /// The change-log subject: `client:<id>` or `address:<net>`.
    pub fn encode(&self) -> String {
        match self {
            Subject::Client(id) => format!("client:{id}"),
            Subject::Address(net) => format!("address:{net}"),
        }
    }

    /// The inverse of [`Subject::encode`].
    pub fn decode(raw: &str) -> Option<Self> {
        match raw.split_once(':')? {
            ("client", id) => Some(Subject::Client(id.to_owned())),
            ("address", net) => net.parse().ok().map(Subject::Address),
            _ => None,
        }
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
}

impl Locks {
    fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.addresses.is_empty()
    }
}

/// Failure counters, the locks in force (begun here or on another replica) and the addresses
/// each client authenticated from.
#[derive(Debug)]
pub struct Lockout {
    config: LockoutConfig,
    counters: Mutex<HashMap<Subject, Counter>>,
    locks: RwLock<Locks>,
    /// client id -> the addresses it authenticated from and until when they count (at most
    /// [`KNOWN_PER_CLIENT`], the oldest dropped first).
    known_good: Mutex<HashMap<String, Vec<(Subject, i64)>>>,
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
            known_good: Mutex::new(HashMap::new()),
        }
    }

    /// How long until `client_id` may try again from `addr`, if it is locked now. Cheap when
    /// nothing is locked, as on the hot path of every token request.
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
        let address = addr.map(Subject::address);
        let by_address = match &address {
            Some(Subject::Address(net)) => live(locks.addresses.get(net)),
            _ => None,
        };
        let by_client = client_id.and_then(|id| {
            live(locks.clients.get(id)).filter(|_| {
                !address
                    .as_ref()
                    .is_some_and(|a| self.is_known_good(id, a, now_us))
            })
        });
        by_address
            .into_iter()
            .chain(by_client)
            .max()
            .map(|u| Duration::from_micros(u64::try_from(u - now_us).unwrap_or(0)))
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

    /// How long a lock of `subject` lasts after `strikes` earlier locks: a client_id one
    /// window, an address one window doubled per strike, up to [`MAX_ADDRESS_LOCK`].
    pub fn lock_length_us(&self, subject: &Subject, strikes: u32) -> i64 {
        let window_us = micros(self.config.window);
        match subject {
            Subject::Client(_) => window_us,
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

    /// Notes that `client_id` authenticated from `addr`: that address keeps working while
    /// the client_id is locked by failures from elsewhere. Counts are not reset: a valid
    /// secret must not buy an attacker more guesses.
    pub fn succeeded(&self, client_id: &str, addr: Option<IpAddr>, now_us: i64) {
        let Some(addr) = addr else { return };
        let subject = Subject::address(addr);
        let until = now_us.saturating_add(micros(KNOWN_GOOD));
        let mut known = self.known_good.lock().unwrap_or_else(|e| e.into_inner());
        let list = match known.get_mut(client_id) {
            Some(list) => list,
            None => known.entry(client_id.to_owned()).or_default(),
        };
        list.retain(|(s, u)| *u > now_us && *s != subject);
        if list.len() >= KNOWN_PER_CLIENT {
            list.remove(0);
        }
        list.push((subject, until));
    }

    /// Applies a lock (begun here, or announced by another replica) until `until_us`.
    pub fn lock(&self, subject: Subject, until_us: i64) {
        let mut locks = self.locks.write().unwrap_or_else(|e| e.into_inner());
        let entry = match subject {
            Subject::Client(id) => locks.clients.entry(id).or_insert(until_us),
            Subject::Address(net) => locks.addresses.entry(net).or_insert(until_us),
        };
        *entry = (*entry).max(until_us);
    }

    /// Drops ended locks, idle counters and expired known-good pairs.
    pub fn forget_expired(&self, now_us: i64) {
        let window_us = micros(self.config.window);
        {
            let mut locks = self.locks.write().unwrap_or_else(|e| e.into_inner());
            locks.clients.retain(|_, until| *until > now_us);
            locks.addresses.retain(|_, until| *until > now_us);
        }
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, c| idle(c, window_us, now_us).is_none());
        self.known_good
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, list| {
                list.retain(|(_, until)| *until > now_us);
                !list.is_empty()
            });
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
        locks.clients.values().filter(live).count() + locks.addresses.values().filter(live).count()
    }

    fn is_known_good(&self, client_id: &str, addr: &Subject, now_us: i64) -> bool {
        let known = self.known_good.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(client_id)
            .is_some_and(|list| list.iter().any(|(s, u)| s == addr && *u > now_us))
    }
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
