//! The report: serialisable for `--json`, and rendered as a table for people. Throughput counts
//! correct answers only and latency percentiles are of correct answers, so a server that fails
//! fast never looks fast; errors are counted beside them by kind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::load::Tally;
use super::{BenchOptions, Rpc};

/// One bench run: where, how, and what came out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    /// The URL measured.
    pub target: String,
    /// The options that shape the numbers.
    pub settings: BenchSettings,
    /// One entry per measured phase, `health` first.
    pub results: Vec<RpcReport>,
    /// Bare JWT signature verification on one client thread; `None` when no JWT was at hand.
    pub verify_baseline: Option<VerifyBaseline>,
}

/// The settings a reader needs to compare two reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchSettings {
    pub rpcs: Vec<String>,
    pub concurrency: usize,
    pub connections: usize,
    /// Measured seconds per phase; `None` when `requests` bounds the phases instead.
    pub duration_secs: Option<f64>,
    pub requests: Option<u64>,
    pub warmup_secs: f64,
    pub cold_tokens: usize,
    pub background_bad_secrets: usize,
}

/// One measured phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcReport {
    /// The RPC's `--rpc` name, with `+bad-secrets` for the round under wrong-secret load.
    pub name: String,
    /// Measured requests, errors included.
    pub requests: u64,
    /// Errors by gRPC code name (`Unavailable`) or wrong answer (`inactive`).
    pub errors: BTreeMap<String, u64>,
    /// Measured time.
    pub duration_secs: f64,
    /// Correct answers per second.
    pub rps: f64,
    /// Latency of correct answers.
    pub latency_us: Latency,
    /// `rps` over health's `rps` in the same run: steadier than absolute numbers.
    pub ratio_to_health: Option<f64>,
    /// For `introspect-cold`: `rps` over one client thread's bare signature verifications/s.
    pub ratio_to_verify: Option<f64>,
    /// Wrong-secret IssueToken calls per second kept up in the background, if any.
    pub bad_secret_rps: Option<f64>,
}

/// Latency percentiles in microseconds (0 when nothing succeeded).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// How fast one thread verifies a tokend JWT with the published JWKS, as a yardstick for
/// what Introspect costs beyond the signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyBaseline {
    pub per_sec_one_thread: f64,
    pub algorithm: String,
}

impl RpcReport {
    /// The report of one phase from its merged tally; ratios are filled in by `BenchReport::new`.
    pub(crate) fn from_tally(
        name: &str,
        tally: Tally,
        elapsed: Duration,
        bad_secret_rps: Option<f64>,
    ) -> Self {
        let errors: u64 = tally.errors.values().sum();
        let secs = elapsed.as_secs_f64();
        let h = &tally.latency_us;
        let latency_us = Latency {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        };
        Self {
            name: name.to_owned(),
            requests: tally.requests,
            errors: tally.errors,
            duration_secs: secs,
            rps: if secs > 0.0 {
                (tally.requests - errors) as f64 / secs
            } else {
                0.0
            },
            latency_us,
            ratio_to_health: None,
            ratio_to_verify: None,
            bad_secret_rps,
        }
    }
}

impl BenchReport {
    /// Assembles the report and computes each phase's ratios.
    pub(crate) fn new(
        options: &BenchOptions,
        mut results: Vec<RpcReport>,
        verify_baseline: Option<VerifyBaseline>,
    ) -> Self {
        let health = results
            .iter()
            .find(|r| r.name == Rpc::Health.name())
            .map(|r| r.rps)
            .filter(|rps| *rps > 0.0);
        let verify = verify_baseline.as_ref().map(|v| v.per_sec_one_thread);
        for result in &mut results {
            result.ratio_to_health = health.map(|h| result.rps / h);
            if result.name.starts_with(Rpc::IntrospectCold.name()) {
                result.ratio_to_verify = verify.filter(|v| *v > 0.0).map(|v| result.rps / v);
            }
        }
        let settings = BenchSettings {
            rpcs: options.plan().iter().map(|r| r.to_string()).collect(),
            concurrency: options.concurrency,
            connections: options.connections,
            duration_secs: options
                .requests
                .is_none()
                .then_some(options.duration.as_secs_f64()),
            requests: options.requests,
            warmup_secs: options.warmup.as_secs_f64(),
            cold_tokens: options.cold_pool_size(),
            background_bad_secrets: options.background_bad_secrets,
        };
        Self {
            target: options.target.clone(),
            settings,
            results,
            verify_baseline,
        }
    }
}

/// The report as a fixed-width table: latencies in ms with 3 decimals, then the errors and notes.
pub fn render_table(report: &BenchReport) -> String {
    let s = &report.settings;
    let limit = match (s.requests, s.duration_secs) {
        (Some(n), _) => format!("requests {}", thousands(n)),
        (None, secs) => format!("duration {}s", secs.unwrap_or_default()),
    };
    let mut out = format!(
        "target {}  concurrency {}  connections {}  {limit}  warmup {}s\n\n",
        report.target, s.concurrency, s.connections, s.warmup_secs
    );
    let w = report
        .results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "{:<w$} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
        "rpc", "requests", "req/s", "x health", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for r in &report.results {
        let _ = writeln!(out, "{}", row(r, w));
    }
    if let Some(v) = &report.verify_baseline {
        let per_sec = thousands(v.per_sec_one_thread.round() as u64);
        let _ = writeln!(
            out,
            "\nverify baseline: {per_sec} {} verifications/s on one thread",
            v.algorithm
        );
    }
    out
}

/// One phase's line, its name padded to `w`.
fn row(r: &RpcReport, w: usize) -> String {
    let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
    let ratio = r.ratio_to_health.map_or("-".into(), |x| format!("{x:.3}"));
    let l = &r.latency_us;
    format!(
        "{:<w$} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  {}{}",
        r.name,
        thousands(r.requests),
        thousands(r.rps.round() as u64),
        ratio,
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.p999),
        ms(l.max),
        errors_text(&r.errors),
        notes(r),
    )
}

fn errors_text(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "0".into();
    }
    let parts: Vec<String> = errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
    format!("ERRORS {}", parts.join(" "))
}

fn notes(r: &RpcReport) -> String {
    let mut notes = String::new();
    if let Some(x) = r.ratio_to_verify {
        let _ = write!(notes, "  x verify {x:.3}");
    }
    if let Some(rate) = r.bad_secret_rps {
        let _ = write!(notes, "  bad secrets {}/s", thousands(rate.round() as u64));
    }
    notes
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
