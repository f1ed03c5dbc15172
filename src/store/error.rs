//! Store errors: database failures are classified here (by SQLSTATE or connection state) so
//! that no `sqlx::Error` escapes the store.

/// What went wrong in the store, in terms the domain can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same key exists.
    #[error("already exists")]
    AlreadyExists,
    /// The row to change is gone.
    #[error("not found")]
    NotFound,
    /// A concurrent writer changed the row first.
    #[error("concurrent modification")]
    Conflict,
    /// The database cannot be reached or is overloaded; retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database was found unreachable moments ago and has not answered since: the call
    /// was not attempted (the breaker in `availability` is open).
    #[error("database down: {0}")]
    Down(String),
    /// The database URL is not one tokend can open.
    #[error("{0}")]
    InvalidUrl(String),
    /// Anything else: a bug or corrupt data.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists,
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
            // 40001 serialization_failure, 40P01 deadlock_detected: retryable conflicts.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("40001" | "40P01")) =>
            {
                StoreError::Conflict
            }
            // SQLite: SQLITE_BUSY / SQLITE_LOCKED, including extended codes (BUSY_SNAPSHOT...).
            sqlx::Error::Database(db) if sqlite_busy(db.code().as_deref()) => {
                StoreError::Unavailable("database is busy".into())
            }
            // The database is there but cannot serve now: a full disk, a server shutting down
            // or starting, too many connections, a connection that broke.
            sqlx::Error::Database(db) if out_of_service(db.code().as_deref()) => {
                StoreError::Unavailable(err.to_string())
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
            _ => StoreError::Unexpected(anyhow::Error::new(err)),
        }
    }
}

/// SQLite result codes are numbers of at most 4 digits; Postgres SQLSTATEs always have 5
/// characters, so they never match here.
fn sqlite_busy(code: Option<&str>) -> bool {
    code.filter(|c| c.len() <= 4)
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// Codes that mean "not now" rather than "never": Postgres SQLSTATE class 08 (connection
/// exception), class 53 (insufficient resources: disk full, out of memory, too many
/// connections) and 57P01-57P03 (admin or crash shutdown, cannot connect now); SQLite's
/// SQLITE_FULL (13, the disk or the database file is full).
fn out_of_service(code: Option<&str>) -> bool {
    let Some(code) = code else {
        return false;
    };
    if code.len() == 5 {
        return code.starts_with("08")
            || code.starts_with("53")
            || matches!(code, "57P01" | "57P02" | "57P03");
    }
    code.parse::<i32>().is_ok_and(|c| c & 0xff == 13)
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Unexpected(anyhow::Error::new(err).context("migration failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_unavailable_and_others_are_not() {
        for code in ["08006", "08001", "53100", "53300", "57P01", "57P03", "13"] {
            assert!(out_of_service(Some(code)), "{code}");
        }
        for code in ["23505", "42P01", "40001", "57014", "5", "19", "2067"] {
            assert!(!out_of_service(Some(code)), "{code}");
        }
        assert!(!out_of_service(None));
        assert!(sqlite_busy(Some("5")) && sqlite_busy(Some("517")) && sqlite_busy(Some("6")));
        assert!(!sqlite_busy(Some("53300")));
    }
}
