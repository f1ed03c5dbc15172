//! The connection pool's occupancy, for metrics: connections in use and idle (sqlx tells),
//! and calls waiting for one (counted here, around each acquire).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Occupancy of a connection pool at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections handed out.
    pub in_use: usize,
    /// Connections open and free.
    pub idle: usize,
    /// Calls waiting for a connection.
    pub waiting: usize,
    /// The most connections the pool opens.
    pub max: u32,
}

impl PoolStats {
    pub(super) fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, waiting: &Waiting) -> Self {
        let idle = pool.num_idle();
        Self {
            in_use: (pool.size() as usize).saturating_sub(idle),
            idle,
            waiting: waiting.0.load(Ordering::Relaxed),
            max: pool.options().get_max_connections(),
        }
    }
}

/// Calls waiting for a pooled connection.
#[derive(Debug, Default)]
pub(super) struct Waiting(AtomicUsize);

impl Waiting {
    /// Counts one waiter until the guard is dropped.
    pub(super) fn enter(&self) -> WaitGuard<'_> {
        self.0.fetch_add(1, Ordering::Relaxed);
        WaitGuard(self)
    }
}

pub(super) struct WaitGuard<'a>(&'a Waiting);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}
