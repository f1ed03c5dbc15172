//! Whether the database is reachable, as the last attempt to read it found: a circuit breaker.
//!
//! While the database is down every store call fails at once with `Unavailable` instead of
//! waiting for the pool's acquire timeout (sqlx retries a refused connection until then), so
//! writes answer UNAVAILABLE in microseconds and callers retry elsewhere or later. Only
//! [`Store::ping`](super::Store::ping) gets through meanwhile: the sync loop pings until the
//! database answers again, then lets calls through, catches up on the change log and only then
//! reports the database up (health turns SERVING once the replica knows what it missed).
//!
//! The breaker opens when the sync loop cannot read the change log (a connection-class
//! failure, not a constraint or a busy SQLite file), so it reflects the database as a whole,
//! not one slow statement.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use super::{StoreError, StoreResult};

/// The breaker: shared by the store (which consults it before every call) and whoever watches
/// the database (the sync loop, health).
#[derive(Debug)]
pub struct Availability {
    state: watch::Sender<State>,
    /// Why the database was last found down, for the error callers get.
    reason: Mutex<String>,
}

/// Where the database stands, as the sync loop last found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Unreachable: calls fail at once.
    Down,
    /// Answering again; calls go through while the replica catches up.
    Recovering,
    /// Reachable and caught up.
    Up,
}

impl Default for Availability {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(State::Up),
            reason: Mutex::new(String::new()),
        }
    }
}

impl Availability {
    /// `Unavailable` while the database is down.
    pub fn check(&self) -> StoreResult<()> {
        if *self.state.borrow() != State::Down {
            return Ok(());
        }
        let reason = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        Err(StoreError::Down(format!(
            "the database is unreachable ({reason}); waiting for it to return"
        )))
    }

    /// The current state.
    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// Opens the breaker: calls fail fast from now until [`Availability::set_recovering`].
    pub fn set_down(&self, reason: &str) {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = reason.to_owned();
        self.set(State::Down);
    }

    /// Closes the breaker: the database answered; calls go through again.
    pub fn set_recovering(&self) {
        self.set(State::Recovering);
    }

    /// The database answers and the replica has caught up.
    pub fn set_up(&self) {
        self.set(State::Up);
    }

    fn set(&self, to: State) {
        self.state
            .send_if_modified(|state| std::mem::replace(state, to) != to);
    }

    /// Changes of the state, for health.
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.state.subscribe()
    }
}

/// Opens a connection of its own (not one of the pool's, which may all be busy) and pings the
/// database over it, for at most `timeout`.
pub(super) async fn ping<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    timeout: Duration,
) -> StoreResult<()> {
    use sqlx::Connection as _;
    let options = pool.connect_options();
    let probe = async move {
        let mut conn = DB::Connection::connect_with(&options).await?;
        conn.ping().await?;
        let _ = conn.close().await;
        Ok::<(), sqlx::Error>(())
    };
    match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.into()),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_fast_while_down_and_reports_each_change_once() {
        let availability = Availability::default();
        let mut changes = availability.subscribe();
        assert!(availability.check().is_ok());
        availability.set_down("connection refused");
        availability.set_down("connection refused");
        let err = availability.check().unwrap_err();
        assert!(matches!(err, StoreError::Down(ref m) if m.contains("connection refused")));
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), State::Down);
        availability.set_recovering();
        assert!(availability.check().is_ok());
        assert_eq!(*changes.borrow_and_update(), State::Recovering);
        availability.set_up();
        availability.set_up();
        assert_eq!(*changes.borrow_and_update(), State::Up);
        assert!(!changes.has_changed().unwrap());
    }
}
