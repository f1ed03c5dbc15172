//! Token buckets, one per key (a client, a source address): `rate` calls per minute on
//! average, bursts of at most `capacity`. Pure bookkeeping on a clock the caller passes in, so
//! the rules are tested without sleeping.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

/// Buckets kept before idle ones are dropped (a full bucket holds no information).
const SWEEP_AT: usize = 100_000;
const SWEEP_EVERY_US: i64 = 60 * 1_000_000;
const IDLE_US: i64 = 24 * 3600 * 1_000_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// Unix µs of the last refill.
    at_us: i64,
}

/// What a bucket allows: `per_minute` on average, bursts of `capacity`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub per_minute: f64,
    pub capacity: f64,
}

impl Quota {
    /// This replica's share of a deployment-wide limit of `per_minute` calls, with `replicas`
    /// live replicas sharing it. The burst is never below one call, or a limit smaller than
    /// the number of replicas would refuse everything.
    pub fn share(per_minute: u32, replicas: u32) -> Self {
        let rate = f64::from(per_minute) / f64::from(replicas.max(1));
        Self {
            per_minute: rate,
            capacity: rate.max(1.0),
        }
    }
}

/// Buckets by key.
#[derive(Debug)]
pub struct Buckets<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
    last_sweep_us: Mutex<i64>,
}

impl<K: Hash + Eq + Clone> Default for Buckets<K> {
    fn default() -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            last_sweep_us: Mutex::new(i64::MIN / 2),
        }
    }
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// Takes one call from `key`'s bucket at `now_us`. `Err` carries how long until the next
    /// call would pass.
    pub fn take<Q>(&self, key: &Q, quota: Quota, now_us: i64) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.take_counted(key, quota, now_us).map(|_| ())
    }

    /// [`Buckets::take`], saying what the bucket holds after the call. The key is looked up
    /// borrowed: a bucket that exists costs no allocation (a new one copies the key once).
    pub fn take_counted<Q>(&self, key: &Q, quota: Quota, now_us: i64) -> Result<Taken, Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(key) {
            return take_from(bucket, quota, now_us);
        }
        if buckets.len() >= SWEEP_AT {
            // Buckets untouched for a day are full under any quota. Swept at most once a
            // minute; while the map is still full of live buckets, a new key is let through
            // untracked rather than scanning on every call (the periodic `forget_full` and
            // the lockout still hold).
            let mut last = self.last_sweep_us.lock().unwrap_or_else(|e| e.into_inner());
            if now_us.saturating_sub(*last) >= SWEEP_EVERY_US {
                *last = now_us;
                buckets.retain(|_, b| now_us.saturating_sub(b.at_us) < IDLE_US);
            }
            if buckets.len() >= SWEEP_AT {
                return Ok(Taken {
                    remaining: whole(quota.capacity),
                    full_in: Duration::ZERO,
                });
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: quota.capacity,
            at_us: now_us,
        });
        take_from(bucket, quota, now_us)
    }

    /// Puts back one call taken from `key`'s bucket (one that another limit then refused), up
    /// to the bucket's capacity; says what the bucket then holds (`None`: no bucket).
    pub fn give_back<Q>(&self, key: &Q, quota: Quota) -> Option<Taken>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.get_mut(key)?;
        bucket.tokens = (bucket.tokens + 1.0).min(quota.capacity);
        Some(Taken {
            remaining: whole(bucket.tokens),
            full_in: time_for(quota.capacity - bucket.tokens, quota),
        })
    }

    /// Drops buckets that have filled up again (they would start full anyway).
    pub fn forget_full(&self, quota_of: impl Fn(&K) -> Option<Quota>, now_us: i64) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.retain(|key, b| match quota_of(key) {
            Some(q) => refill(*b, q, now_us).tokens < q.capacity,
            None => false,
        });
    }

    /// How many buckets are held.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The bucket at `now_us`, refilled at the quota's rate and clamped to its capacity (which
/// may have shrunk since, when another replica joined).
fn refill(bucket: Bucket, quota: Quota, now_us: i64) -> Bucket {
    let elapsed_us = now_us.saturating_sub(bucket.at_us).max(0) as f64;
    let tokens = bucket.tokens + elapsed_us * quota.per_minute / 60e6;
    Bucket {
        tokens: tokens.min(quota.capacity),
        at_us: now_us.max(bucket.at_us),
    }
}

/// What a bucket holds after a call was taken from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Whole calls left in it.
    pub remaining: u32,
    /// How long until it is full again.
    pub full_in: Duration,
}

/// One call from `bucket` at `now_us`, after its refill; `Err`: how long until one is there.
fn take_from(bucket: &mut Bucket, quota: Quota, now_us: i64) -> Result<Taken, Duration> {
    *bucket = refill(*bucket, quota, now_us);
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        return Ok(Taken {
            remaining: whole(bucket.tokens),
            full_in: time_for(quota.capacity - bucket.tokens, quota),
        });
    }
    Err(time_for(1.0 - bucket.tokens, quota))
}

/// How long the quota takes to refill `calls` calls, rounded up to the µs (a minute when it
/// refills nothing). A thousandth of a µs is forgiven first, so the float error in `calls`
/// never turns a whole 20 s into 20.000001 s (and a whole-second `Retry-After` into 21).
fn time_for(calls: f64, quota: Quota) -> Duration {
    if quota.per_minute > 0.0 {
        let us = calls * 60e6 / quota.per_minute - 1e-3;
        Duration::from_micros(us.ceil().max(0.0) as u64)
    } else {
        Duration::from_secs(60)
    }
}

/// The whole calls in `tokens`.
fn whole(tokens: f64) -> u32 {
    tokens.floor().clamp(0.0, f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000;

    #[test]
    fn a_burst_of_the_limit_then_one_call_per_interval() {
        let buckets = Buckets::default();
        let q = Quota::share(2, 1);
        assert!(buckets.take(&"a", q, 0).is_ok());
        assert!(buckets.take(&"a", q, 0).is_ok());
        let wait = buckets.take(&"a", q, 0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(30));
        // Other keys have their own bucket.
        assert!(buckets.take(&"b", q, 0).is_ok());
        let wait = buckets.take(&"a", q, 20 * SEC).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(buckets.take(&"a", q, 30 * SEC).is_ok());
        assert!(buckets.take(&"a", q, 30 * SEC).is_err());
    }

    #[test]
    fn replicas_share_the_limit_with_a_burst_of_at_least_one() {
        assert_eq!(
            Quota::share(10, 2),
            Quota {
                per_minute: 5.0,
                capacity: 5.0
            }
        );
        let tiny = Quota::share(1, 4);
        assert_eq!(tiny.capacity, 1.0);
        assert_eq!(tiny.per_minute, 0.25);
        let buckets = Buckets::default();
        assert!(buckets.take(&1, tiny, 0).is_ok());
        assert_eq!(
            buckets.take(&1, tiny, 0).unwrap_err(),
            Duration::from_secs(240)
        );
    }

    #[test]
    fn a_smaller_share_clamps_what_a_bucket_holds() {
        let buckets = Buckets::default();
        let alone = Quota::share(10, 1);
        assert!(buckets.take(&"a", alone, 0).is_ok()); // 9 left
        let shared = Quota::share(10, 2); // capacity 5
        for _ in 0..5 {
            assert!(buckets.take(&"a", shared, 0).is_ok());
        }
        assert!(buckets.take(&"a", shared, 0).is_err());
    }

    #[test]
    fn a_call_taken_says_what_is_left_and_can_be_given_back() {
        let buckets = Buckets::<String>::default();
        let q = Quota::share(60, 1); // one a second, bursts of 60
        let taken = buckets.take_counted("a", q, 0).unwrap();
        assert_eq!(
            taken,
            Taken {
                remaining: 59,
                full_in: Duration::from_secs(1)
            }
        );
        buckets.give_back("a", q);
        assert_eq!(buckets.take_counted("a", q, 0).unwrap().remaining, 59);
        // Never more than the capacity, however much is given back.
        buckets.give_back("a", q);
        buckets.give_back("a", q);
        assert_eq!(buckets.take_counted("a", q, 0).unwrap().remaining, 59);
        // A key never taken from has nothing to give back.
        buckets.give_back("b", q);
        assert_eq!(buckets.len(), 1);
        for _ in 0..59 {
            buckets.take("a", q, 0).unwrap();
        }
        assert_eq!(
            buckets.take_counted("a", q, 0).unwrap_err(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let buckets = Buckets::default();
        let q = Quota::share(60, 1);
        buckets.take(&"a", q, 0).unwrap();
        buckets.take(&"b", q, 0).unwrap();
        buckets.take(&"b", q, 0).unwrap();
        // One second later "a" is full again, "b" is not.
        buckets.forget_full(|_| Some(q), SEC);
        assert_eq!(buckets.len(), 1);
        buckets.forget_full(|_| None, SEC);
        assert_eq!(buckets.len(), 0);
    }
}
