//! The RateLimit header fields of the IETF httpapi working group's draft
//! (draft-ietf-httpapi-ratelimit-headers-10, "RateLimit header fields for HTTP"): each a
//! Structured Field list (RFC 9651) with one member per quota policy, named by a string.
//!
//! - `RateLimit-Policy: "client";q=1000;w=60` — the quota `q` per window `w` (seconds).
//! - `RateLimit: "client";r=997;t=1` — `r` units remaining, `t` seconds until the quota is
//!   whole again (when refused: until the next call passes).
//!
//! tokend's quotas are token buckets refilled continuously, written as a quota per 60 s
//! window; `r` is what the answering replica's share still grants. Front ends (Envoy's
//! ext_authz, HTTP) write these from the domain's [`QuotaReport`]; `None` when no quota
//! applied.

use std::fmt::Write as _;
use std::time::Duration;

use crate::domain::policy::QuotaReport;

/// The `RateLimit-Policy` value.
pub fn rate_limit_policy(report: &QuotaReport) -> Option<String> {
    list(report, |out, state| {
        let _ = write!(out, ";q={};w=60", state.per_minute);
    })
}

/// The `RateLimit` value.
pub fn rate_limit(report: &QuotaReport) -> Option<String> {
    list(report, |out, state| {
        let _ = write!(
            out,
            ";r={};t={}",
            state.remaining,
            whole_seconds(state.reset)
        );
    })
}

/// A wait in whole seconds, rounded up: a client that waits that long gets through.
pub fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn list(
    report: &QuotaReport,
    params: impl Fn(&mut String, &crate::domain::policy::QuotaState),
) -> Option<String> {
    let mut out = String::new();
    for state in report.iter() {
        if !out.is_empty() {
            out.push_str(", ");
        }
        sf_string(&mut out, state.name.as_str());
        params(&mut out, state);
    }
    (!out.is_empty()).then_some(out)
}

/// A Structured Field string (RFC 9651 section 3.3.3): printable ASCII in quotes, `"` and `\`
/// escaped; anything else (never in a path prefix in normal form) becomes `?`.
fn sf_string(out: &mut String, raw: &str) {
    out.push('"');
    for c in raw.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::policy::{QuotaName, QuotaState};

    fn state(name: QuotaName, per_minute: u32, remaining: u32, reset_ms: u64) -> QuotaState {
        QuotaState {
            name,
            per_minute,
            remaining,
            reset: Duration::from_millis(reset_ms),
        }
    }

    #[test]
    fn one_member_per_quota_the_clients_first() {
        assert_eq!(rate_limit(&QuotaReport::default()), None);
        assert_eq!(rate_limit_policy(&QuotaReport::default()), None);
        let report = QuotaReport {
            client: Some(state(QuotaName::Client, 1000, 997, 180)),
            route: Some(state(
                QuotaName::Route(Arc::from("GET,POST /orders")),
                10,
                0,
                29_500,
            )),
        };
        assert_eq!(
            rate_limit_policy(&report).unwrap(),
            "\"client\";q=1000;w=60, \"GET,POST /orders\";q=10;w=60"
        );
        assert_eq!(
            rate_limit(&report).unwrap(),
            "\"client\";r=997;t=1, \"GET,POST /orders\";r=0;t=30"
        );
        let only_route = QuotaReport {
            client: None,
            route: Some(state(QuotaName::Route(Arc::from("/a\"b\\c")), 5, 4, 0)),
        };
        assert_eq!(rate_limit(&only_route).unwrap(), "\"/a\\\"b\\\\c\";r=4;t=0");
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_micros(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_millis(30_001)), 31);
        assert_eq!(whole_seconds(Duration::ZERO), 0);
    }
}
