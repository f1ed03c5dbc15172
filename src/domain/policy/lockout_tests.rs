//! The lockout's unit tests: locks, their lengths, trusted addresses; and its properties.

mod unit {
    use super::super::*;

    impl Lockout {
        /// A failure of `client_id` from `addr`, every subject it counts against counted: the
        /// locks begun.
        fn failed(
            &self,
            client_id: Option<&str>,
            addr: Option<IpAddr>,
            threshold: u32,
            now_us: i64,
        ) -> Vec<(Subject, i64)> {
            let subjects = self.failure_subjects(client_id, addr, now_us);
            subjects
                .into_iter()
                .filter_map(|s| Some((s.clone(), self.failed_locally(&s, threshold, now_us)?)))
                .collect()
        }
    }

    const SEC: i64 = 1_000_000;
    const ID: &str = "0190f0c8-0000-7000-8000-000000000001";

    fn lockout() -> Lockout {
        Lockout::new(LockoutConfig {
            max_failures: 3,
            window: Duration::from_secs(60),
            delay: Duration::ZERO,
        })
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_threshold_locks_both_the_client_and_the_address() {
        let l = lockout();
        assert!(l.failed(Some(ID), ip("192.0.2.1"), 3, 0).is_empty());
        assert!(l.failed(Some(ID), ip("192.0.2.1"), 3, SEC).is_empty());
        assert_eq!(l.locked(Some(ID), ip("192.0.2.1"), SEC), None);
        let begun = l.failed(Some(ID), ip("192.0.2.1"), 3, 2 * SEC);
        assert_eq!(begun.len(), 2);
        assert_eq!(
            l.locked(Some(ID), ip("192.0.2.1"), 2 * SEC),
            Some(Duration::from_secs(60))
        );
        // Another client from the locked address is refused too.
        assert!(l.locked(Some("other"), ip("192.0.2.1"), 2 * SEC).is_some());
        // The locked client from an unknown address is refused; all is over after the window.
        assert!(l.locked(Some(ID), ip("198.51.100.1"), 2 * SEC).is_some());
        assert_eq!(l.locked(Some(ID), ip("198.51.100.1"), 62 * SEC), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let l = lockout();
        let addr = ip("192.0.2.1");
        l.failed(Some(ID), addr, 3, 0);
        l.failed(Some(ID), addr, 3, 10 * SEC);
        assert!(l.failed(Some(ID), addr, 3, 61 * SEC).is_empty());
        assert!(l.failed(Some(ID), addr, 3, 62 * SEC).is_empty());
        assert_eq!(l.failed(Some(ID), addr, 3, 63 * SEC).len(), 2);
    }

    #[test]
    fn address_locks_grow_and_client_locks_do_not() {
        let l = lockout();
        let addr = ip("192.0.2.1");
        let mut now = 0;
        let mut lengths = Vec::new();
        for _ in 0..3 {
            let mut begun = Vec::new();
            for _ in 0..3 {
                begun = l.failed(Some(ID), addr, 3, now);
            }
            let by_addr = begun
                .iter()
                .find(|(s, _)| matches!(s, Subject::Address(_)))
                .unwrap();
            let by_client = begun
                .iter()
                .find(|(s, _)| matches!(s, Subject::Client(_)))
                .unwrap();
            assert_eq!(by_client.1 - now, 60 * SEC);
            lengths.push((by_addr.1 - now) / SEC);
            now = by_addr.1;
        }
        assert_eq!(lengths, vec![60, 120, 240]);
    }

    #[test]
    fn trusted_addresses_pass_client_and_address_locks() {
        let l = lockout();
        l.succeeded(ID, ip("10.1.1.1"), 0);
        l.succeeded("neighbour", ip("203.0.113.5"), 0);
        for _ in 0..3 {
            l.failed(Some(ID), ip("203.0.113.5"), 3, SEC);
        }
        // The client_id is locked except where it is trusted...
        assert_eq!(l.locked(Some(ID), ip("10.1.1.1"), SEC), None);
        assert!(l.locked(Some(ID), ip("10.1.1.2"), SEC).is_some());
        assert!(l.locked(Some(ID), None, SEC).is_some());
        // ...and the address for every client not trusted there: the guesser's neighbour
        // keeps working, a stranger waits for the lock to end.
        assert_eq!(l.locked(Some("neighbour"), ip("203.0.113.5"), SEC), None);
        assert!(l.locked(Some("stranger"), ip("203.0.113.5"), SEC).is_some());
        assert!(l.locked(None, ip("203.0.113.5"), SEC).is_some());
    }

    #[test]
    fn guessing_a_trusted_client_from_its_own_address_locks_the_pair() {
        let l = lockout();
        let shared = ip("127.0.0.6");
        l.succeeded(ID, shared, 0);
        l.succeeded("neighbour", shared, 0);
        l.succeeded(ID, ip("10.1.1.1"), 0);
        let subjects = l.failure_subjects(Some(ID), shared, SEC);
        assert!(subjects.contains(&Subject::Pair(ID.into(), network(shared.unwrap()))));
        let mut begun = Vec::new();
        for _ in 0..3 {
            begun.extend(l.failed(Some(ID), shared, 3, SEC));
        }
        assert_eq!(begun.len(), 3, "client, address and pair: {begun:?}");
        // At most three guesses: the pair is locked, right secret or not...
        assert!(l.locked(Some(ID), shared, SEC).is_some());
        // ...while the neighbour sharing the address, and the client's other trusted address,
        // keep working; the pair lock lasts one window.
        assert_eq!(l.locked(Some("neighbour"), shared, SEC), None);
        assert_eq!(l.locked(Some(ID), ip("10.1.1.1"), SEC), None);
        assert_eq!(l.locked(Some(ID), shared, 61 * SEC), None);
    }

    #[test]
    fn trust_is_renewed_once_half_of_it_is_left() {
        let l = lockout();
        let half = micros(KNOWN_GOOD) / 2;
        let first = l
            .succeeded(ID, ip("10.1.1.1"), 0)
            .expect("new: to be stored");
        assert_eq!(first.until_us, micros(KNOWN_GOOD));
        assert_eq!(l.succeeded(ID, ip("10.1.1.1"), half - SEC), None);
        let renewed = l
            .succeeded(ID, ip("10.1.1.1"), half + SEC)
            .expect("renewed");
        assert_eq!(renewed.until_us, half + SEC + micros(KNOWN_GOOD));
        // A pair that could not be stored is tried again a minute later, not at once.
        let t = renewed.until_us - micros(KNOWN_GOOD);
        l.announcement_failed(&renewed);
        assert_eq!(l.succeeded(ID, ip("10.1.1.1"), t + SEC), None);
        assert!(l.succeeded(ID, ip("10.1.1.1"), t + 61 * SEC).is_some());
        // Trust announced by another replica counts the same; ended trust does not.
        l.trust(
            &TrustedAddress::decode(&format!("other@{}", network(ip("10.2.2.2").unwrap())), 100)
                .unwrap(),
            50,
        );
        assert!(l.is_trusted("other", network(ip("10.2.2.2").unwrap()), 99));
        assert!(!l.is_trusted("other", network(ip("10.2.2.2").unwrap()), 100));
        assert_eq!(TrustedAddress::decode("no-address", 1), None);
    }

    #[test]
    fn trusted_addresses_are_bounded_per_client() {
        let l = lockout();
        for i in 0..(KNOWN_PER_CLIENT as u32 + 4) {
            let addr = std::net::Ipv4Addr::from(0xc000_0200 + i);
            l.succeeded(ID, Some(addr.into()), 0);
        }
        l.lock(Subject::Client(ID.into()), 10 * SEC);
        // The oldest were dropped; the newest still pass the client lock.
        assert!(l.locked(Some(ID), ip("192.0.2.0"), SEC).is_some());
        assert_eq!(l.locked(Some(ID), ip("192.0.2.19"), SEC), None);
        assert_eq!(l.trusted.lock().unwrap()[ID].len(), KNOWN_PER_CLIENT);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let l = lockout();
        l.failed(Some("a"), ip("2001:db8:1:2::1"), 3, 0);
        l.failed(Some("b"), ip("2001:db8:1:2::ffff"), 3, 0);
        let begun = l.failed(Some("c"), ip("2001:db8:1:2:aaaa::9"), 3, 0);
        assert_eq!(begun.len(), 1);
        assert!(l.locked(Some("d"), ip("2001:db8:1:2::77"), 0).is_some());
        assert_eq!(l.locked(Some("d"), ip("2001:db8:1:3::77"), 0), None);
    }

    #[test]
    fn announced_locks_apply_and_subjects_round_trip() {
        let l = lockout();
        for s in [
            Subject::Client(ID.into()),
            Subject::address(ip("2001:db8::1")),
            Subject::address(ip("::ffff:192.0.2.1")),
            Subject::Pair(ID.into(), "2001:db8::/64".parse().unwrap()),
        ] {
            assert_eq!(Subject::decode(&s.encode()), Some(s.clone()));
            l.lock(s, 10 * SEC);
        }
        assert_eq!(Subject::decode("address:nonsense"), None);
        assert_eq!(Subject::decode("other:x"), None);
        assert!(l.locked(Some(ID), None, SEC).is_some());
        assert!(l.locked(Some("x"), ip("192.0.2.1"), SEC).is_some());
        assert_eq!(Subject::decode("pair:no-address"), None);
        assert_eq!(l.active_locks(SEC), 4);
        l.forget_expired(10 * SEC);
        assert_eq!(l.active_locks(SEC), 0);
    }

    #[test]
    fn callers_of_unknown_address_are_counted_together() {
        let l = lockout();
        for id in ["a", "b", "c"] {
            l.failed(Some(id), None, 3, 0);
        }
        // Every caller whose address cannot be known shares the lock, not a known address.
        assert!(l.locked(Some("d"), None, SEC).is_some());
        assert_eq!(l.locked(Some("d"), ip("192.0.2.1"), SEC), None);
        assert_eq!(
            Subject::address(None).encode(),
            "address:::/128",
            "a key no caller's address has"
        );
    }

    #[test]
    fn zero_max_failures_turns_it_off() {
        let l = Lockout::new(LockoutConfig {
            max_failures: 0,
            window: Duration::from_secs(60),
            delay: Duration::ZERO,
        });
        for _ in 0..100 {
            assert!(l.failed(Some(ID), ip("192.0.2.1"), 1, 0).is_empty());
        }
        assert_eq!(l.locked(Some(ID), ip("192.0.2.1"), 0), None);
        // Locks announced while it was on no longer count either.
        l.lock(Subject::Client(ID.into()), 10 * SEC);
        assert_eq!(l.locked(Some(ID), None, 0), None);
    }
}

mod properties {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::super::*;

    proptest! {
        #[test]
        fn subjects_round_trip(v4 in any::<u32>(), v6 in any::<u128>(), id in "[a-z0-9-]{1,40}") {
            for s in [
                Subject::address(Some(IpAddr::V4(Ipv4Addr::from(v4)))),
                Subject::address(Some(IpAddr::V6(Ipv6Addr::from(v6)))),
                Subject::Client(id.clone()),
                Subject::Pair(id.clone(), network(IpAddr::V6(Ipv6Addr::from(v6)))),
            ] {
                prop_assert_eq!(Subject::decode(&s.encode()), Some(s));
            }
        }

        #[test]
        fn arbitrary_subjects_never_panic(raw in any::<String>()) {
            if let Some(s) = Subject::decode(&raw) {
                prop_assert_eq!(Subject::decode(&s.encode()), Some(s));
            }
        }
    }
}
