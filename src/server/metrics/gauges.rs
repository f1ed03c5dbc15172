//! Gauges read from the replica's state when Prometheus scrapes (deny list, caches, change-log
//! staleness, the database and its pool, signing keys), rather than kept up to date on every
//! change.

use prometheus::{Gauge, IntGauge, IntGaugeVec, Opts};

use super::registry::Register;
use crate::domain::{KeyState, Tokend};
use crate::store::DatabaseState;

/// The scrape-time gauges.
pub(super) struct Gauges {
    deny_list: IntGauge,
    clients: IntGauge,
    cache_entries: IntGaugeVec,
    staleness: Gauge,
    database: IntGaugeVec,
    pool: IntGaugeVec,
    pool_max: IntGauge,
    keys: IntGaugeVec,
}

impl Gauges {
    /// Registers the gauges, and `tokend_build_info` (set once, here).
    pub(super) fn new(register: &Register<'_>, tokend: &Tokend) -> anyhow::Result<Self> {
        let gauge = |name: &str, help: &str| -> anyhow::Result<IntGauge> {
            let g = IntGauge::new(name, help)?;
            register(Box::new(g.clone()))?;
            Ok(g)
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntGaugeVec> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            register(Box::new(g.clone()))?;
            Ok(g)
        };
        let deny_list = gauge(
            "tokend_deny_list_entries",
            "Revoked access tokens and refresh families this replica holds in memory.",
        )?;
        let clients = gauge(
            "tokend_clients",
            "Clients this replica holds in memory (every tenant).",
        )?;
        let cache_entries = gauges(
            "tokend_cache_entries",
            "Entries in the verified-token and verified-secret caches.",
            &["cache"],
        )?;
        let staleness = Gauge::new(
            "tokend_changelog_staleness_seconds",
            "Seconds since this replica last read the change log in full: how far behind the database its view may be.",
        )?;
        register(Box::new(staleness.clone()))?;
        let database = gauges(
            "tokend_database_state",
            "1 for the state the database is in as this replica's sync loop last found: up, recovering (answering again, catching up) or down.",
            &["state"],
        )?;
        let pool = gauges(
            "tokend_db_pool_connections",
            "Database connections in use and idle, and calls waiting for one.",
            &["state"],
        )?;
        let pool_max = gauge(
            "tokend_db_pool_max_connections",
            "The most connections the pool opens (database.max_connections).",
        )?;
        let keys = gauges(
            "tokend_signing_keys",
            "Signing keys this replica holds, by state.",
            &["state"],
        )?;
        let build = gauges(
            "tokend_build_info",
            "1, labelled with the version and the database backend.",
            &["version", "backend"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), tokend.backend()])
            .set(1);
        Ok(Self {
            deny_list,
            clients,
            cache_entries,
            staleness,
            database,
            pool,
            pool_max,
            keys,
        })
    }

    /// Reads every gauge from `tokend` now.
    pub(super) fn refresh(&self, tokend: &Tokend) {
        let sizes = tokend.registry.sizes();
        self.deny_list.set(count(sizes.revocations));
        self.clients.set(count(sizes.clients));
        let cache =
            |name: &str, n: usize| self.cache_entries.with_label_values(&[name]).set(count(n));
        cache("verified_token", sizes.cached_tokens);
        cache("verified_secret", sizes.cached_secrets);
        self.staleness
            .set(tokend.registry.staleness().as_secs_f64());
        self.refresh_database(tokend);
        let states = tokend.key_states();
        for (name, state) in [
            ("pending", KeyState::Pending),
            ("active", KeyState::Active),
            ("retiring", KeyState::Retiring),
            ("retired", KeyState::Retired),
        ] {
            let n = states.iter().filter(|s| **s == state).count();
            self.keys.with_label_values(&[name]).set(count(n));
        }
    }

    fn refresh_database(&self, tokend: &Tokend) {
        let state = tokend.database_state();
        for (name, value) in [
            ("up", DatabaseState::Up),
            ("recovering", DatabaseState::Recovering),
            ("down", DatabaseState::Down),
        ] {
            self.database
                .with_label_values(&[name])
                .set(i64::from(state == value));
        }
        let pool = tokend.pool_stats();
        for (name, n) in [
            ("in_use", pool.in_use),
            ("idle", pool.idle),
            ("waiting", pool.waiting),
        ] {
            self.pool.with_label_values(&[name]).set(count(n));
        }
        self.pool_max.set(i64::from(pool.max));
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
