//! Batched `last_used_time`: issuing a token records the time in memory; a background task
//! writes each client's latest time once per flush interval, and once more on a graceful
//! shutdown. So the token path never waits for (or loads) the database.
//!
//! What a crash may lose: the last uses recorded since the previous flush (at most one flush
//! interval, 10 s by default). `last_used_time` is informational; nothing depends on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::ids::ClientId;
use crate::store::Store;

/// Last uses not yet written.
#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<ClientId, i64>>,
}

impl UsageRecorder {
    /// Notes that `client` obtained a token at `at_us`.
    pub fn record(&self, client: &ClientId, at_us: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get_mut(client) {
            Some(t) => *t = (*t).max(at_us),
            None => {
                pending.insert(client.clone(), at_us);
            }
        }
    }

    /// Writes every pending last use; returns how many clients were written. A failed write
    /// is put back for the next flush.
    pub async fn flush(&self, store: &Arc<dyn Store>) -> usize {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let mut written = 0;
        for (client, at_us) in batch {
            match store.touch_client(client.as_str(), at_us).await {
                Ok(()) => written += 1,
                Err(err) => {
                    tracing::warn!(client_id = %client, error = %err, "could not record last use; will retry");
                    self.record(&client, at_us);
                }
            }
        }
        written
    }

    /// Number of clients with a last use not yet written.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_use_per_client() {
        let usage = UsageRecorder::default();
        let a = ClientId::generate();
        let b = ClientId::generate();
        usage.record(&a, 5);
        usage.record(&a, 3);
        usage.record(&b, 1);
        assert_eq!(usage.pending(), 2);
        let pending = usage.pending.lock().unwrap();
        assert_eq!(pending.get(&a), Some(&5));
    }
}
