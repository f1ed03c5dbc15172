//! The load loop. A phase runs one closed-loop task per in-flight request (send, await, record,
//! repeat); after the warm-up a shared flag turns recording on, and a deadline or a request
//! budget ends it. Each worker keeps its own histogram and error counts, merged at the end, so
//! the only shared writes per request are two relaxed counters for the progress line.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::{JoinHandle, JoinSet};
use tonic::transport::Channel;

use super::BenchOptions;
use super::calls::{Call, Step};
use super::report::{RpcReport, thousands};
use super::setup::{self, Fixtures, status_error};
use crate::proto::IssueTokenRequest;
use crate::proto::token_service_client::TokenServiceClient;

/// When a phase stops measuring.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    Duration(Duration),
    Requests(u64),
}

/// A deadline that never comes, for phases that end by their request budget.
const NEVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The largest latency the histograms resolve: 10 minutes, in microseconds.
const MAX_LATENCY_US: u64 = 600_000_000;

/// One phase: its report name, warm-up and limit.
pub(crate) struct PhaseSpec {
    pub name: String,
    pub warmup: Duration,
    pub limit: Limit,
    pub progress: bool,
}

/// What a worker measured: latencies of correct answers in microseconds, errors by kind.
pub(crate) struct Tally {
    pub latency_us: Histogram<u64>,
    pub requests: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            // 1 µs to 10 min at three significant digits (0.1% resolution); slower answers
            // are recorded as 10 min, which no one will mistake for fast.
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("valid histogram bounds"),
            requests: 0,
            errors: BTreeMap::new(),
        }
    }

    /// Adds another worker's tally into this one.
    pub fn merge(&mut self, other: Tally) {
        let _ = self.latency_us.add(&other.latency_us);
        self.requests += other.requests;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }
}

/// State the workers of one phase share.
#[derive(Default)]
struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Measured requests started, for a `--requests` budget.
    tickets: AtomicU64,
    counters: Arc<Counters>,
}

/// What the progress line shows.
#[derive(Default)]
pub(crate) struct Counters {
    pub done: AtomicU64,
    pub errors: AtomicU64,
}

/// Runs one phase of `calls` and reports it. With `background`, its wrong-secret call rate over
/// the measured interval is reported beside the result.
pub(crate) async fn run_phase(
    spec: &PhaseSpec,
    calls: Vec<Call>,
    background: Option<&Background>,
) -> RpcReport {
    let shared = Arc::new(Shared::default());
    let budget = match spec.limit {
        Limit::Requests(n) => Some(n),
        Limit::Duration(_) => None,
    };
    shared.measuring.store(spec.warmup.is_zero(), Relaxed);
    let mut workers = JoinSet::new();
    for call in calls {
        workers.spawn(worker(call, shared.clone(), budget));
    }
    tokio::time::sleep(spec.warmup).await;
    shared.measuring.store(true, Relaxed);
    let started = Instant::now();
    let background_before = background.map(Background::count);
    let progress = Progress::phase(&spec.name, spec.progress, shared.counters.clone());
    let (tally, elapsed) = collect(&mut workers, &shared, spec.limit, started).await;
    progress.finish();
    let bad_secret_rps = background
        .zip(background_before)
        .map(|(bg, before)| (bg.count() - before) as f64 / elapsed.as_secs_f64());
    RpcReport::from_tally(&spec.name, tally, elapsed, bad_secret_rps)
}

/// Waits for the workers, stopping them at the deadline; returns the merged tally and the
/// measured time (to the deadline, or to the last worker's end when they ran out first).
async fn collect(
    workers: &mut JoinSet<Tally>,
    shared: &Shared,
    limit: Limit,
    started: Instant,
) -> (Tally, Duration) {
    let window = match limit {
        Limit::Duration(d) => d,
        Limit::Requests(_) => NEVER,
    };
    let deadline = tokio::time::sleep(window);
    tokio::pin!(deadline);
    let mut total = Tally::new();
    let mut elapsed = None;
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(Ok(tally)) => total.merge(tally),
                Some(Err(err)) => std::panic::resume_unwind(err.into_panic()),
                None => break,
            },
            () = &mut deadline, if elapsed.is_none() => {
                shared.stop.store(true, Relaxed);
                elapsed = Some(started.elapsed());
            }
        }
    }
    (total, elapsed.unwrap_or_else(|| started.elapsed()))
}

/// A closed loop: send, await, judge, record (only if sent while measuring and answered
/// before the stop), repeat.
async fn worker(mut call: Call, shared: Arc<Shared>, budget: Option<u64>) -> Tally {
    let mut tally = Tally::new();
    while !shared.stop.load(Relaxed) {
        let measuring = shared.measuring.load(Relaxed);
        if measuring && budget.is_some_and(|n| shared.tickets.fetch_add(1, Relaxed) >= n) {
            break;
        }
        let sent = Instant::now();
        let step = call.once(measuring).await;
        let took = sent.elapsed();
        let counted = measuring && !shared.stop.load(Relaxed);
        match step {
            Step::Exhausted => break,
            Step::Ok if counted => {
                tally.requests += 1;
                tally.latency_us.saturating_record(took.as_micros() as u64);
                shared.counters.done.fetch_add(1, Relaxed);
            }
            Step::Ok => {}
            Step::Failed(kind) => {
                if counted {
                    tally.requests += 1;
                    *tally.errors.entry(kind).or_default() += 1;
                    shared.counters.done.fetch_add(1, Relaxed);
                    shared.counters.errors.fetch_add(1, Relaxed);
                }
                call.recover().await;
            }
        }
    }
    tally
}

/// Issues `size` access tokens with `request`, `concurrency` calls in flight over `channels`.
pub(crate) async fn fill(
    channels: &[Channel],
    concurrency: usize,
    size: usize,
    request: IssueTokenRequest,
    progress: &Progress,
) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for i in 0..concurrency.min(size) {
        let mut client = TokenServiceClient::new(channels[i % channels.len()].clone());
        let (next, request) = (next.clone(), request.clone());
        let done = progress.counters.clone();
        tasks.spawn(async move {
            let mut tokens = Vec::new();
            while next.fetch_add(1, Relaxed) < size {
                let issued = client.issue_token(request.clone()).await;
                let issued =
                    issued.map_err(|s| status_error("IssueToken for the cold pool", &s))?;
                let token = issued.into_inner().access_token;
                anyhow::ensure!(
                    !token.is_empty(),
                    "IssueToken answered an empty access token"
                );
                tokens.push(token);
                done.done.fetch_add(1, Relaxed);
            }
            Ok(tokens)
        });
    }
    let mut pool = Vec::with_capacity(size);
    while let Some(joined) = tasks.join_next().await {
        pool.extend(joined??);
    }
    Ok(pool)
}

/// Wrong-secret IssueToken calls kept in flight on their own connection until dropped.
pub(crate) struct Background {
    done: Arc<AtomicU64>,
    _tasks: JoinSet<()>,
}

impl Background {
    /// Starts `options.background_bad_secrets` closed loops presenting a well-formed but wrong
    /// secret for the JWT client (or the neighbour, when asked): each costs the server one argon2id verification until the
    /// lockout refuses them (RESOURCE_EXHAUSTED, before any hashing), which counts as refused
    /// too.
    pub async fn start(fixtures: &Fixtures, options: &BenchOptions) -> anyhow::Result<Self> {
        let channel = setup::connect_from(
            &options.target,
            1,
            options.bad_secrets_from,
            options.ca_cert.as_deref(),
        )
        .await?
        .remove(0);
        let creds = match &fixtures.neighbour {
            Some(neighbour) => neighbour,
            None => fixtures
                .jwt
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("no JWT client"))?,
        };
        let mut request = creds.issue_request(&[]);
        request.client_secret = format!("tkd_cs_{}", "x".repeat(43));
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for _ in 0..options.background_bad_secrets {
            let mut call = Call::BadSecret {
                client: TokenServiceClient::new(channel.clone()),
                request: request.clone(),
            };
            let done = done.clone();
            tasks.spawn(async move {
                loop {
                    if let Step::Ok = call.once(true).await {
                        done.fetch_add(1, Relaxed);
                    }
                }
            });
        }
        Ok(Self {
            done,
            _tasks: tasks,
        })
    }

    /// Wrong secrets refused so far.
    fn count(&self) -> u64 {
        self.done.load(Relaxed)
    }
}

/// A once-a-second line on stderr: redrawn with `\r` on a terminal, plain lines otherwise.
pub(crate) struct Progress {
    pub counters: Arc<Counters>,
    ticker: Option<JoinHandle<()>>,
    tty: bool,
}

impl Progress {
    /// Progress of a measured phase: elapsed time, rate over the last second, errors.
    pub fn phase(name: &str, enabled: bool, counters: Arc<Counters>) -> Self {
        let name = name.to_owned();
        Self::spawn(enabled, counters, move |secs, _, rate, errors| {
            format!(
                "{name}: {secs:.1}s  {} req/s  errors {errors}",
                thousands(rate)
            )
        })
    }

    /// Progress towards `total`, e.g. issuing the cold pool.
    pub fn start(label: &str, enabled: bool, total: usize) -> Self {
        let label = label.to_owned();
        let total = thousands(total as u64);
        Self::spawn(enabled, Arc::default(), move |_, done, rate, _| {
            format!("{label} {}/{total}  {}/s", thousands(done), thousands(rate))
        })
    }

    fn spawn(
        enabled: bool,
        counters: Arc<Counters>,
        line: impl Fn(f64, u64, u64, u64) -> String + Send + 'static,
    ) -> Self {
        let tty = std::io::stderr().is_terminal();
        let ticker = enabled.then(|| {
            let counters = counters.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.tick().await;
                let mut last = 0;
                loop {
                    tick.tick().await;
                    let done = counters.done.load(Relaxed);
                    let errors = counters.errors.load(Relaxed);
                    let text = line(started.elapsed().as_secs_f64(), done, done - last, errors);
                    last = done;
                    if tty {
                        eprint!("\r\x1b[2K{text}");
                        let _ = std::io::stderr().flush();
                    } else {
                        eprintln!("{text}");
                    }
                }
            })
        });
        Self {
            counters,
            ticker,
            tty,
        }
    }

    /// Stops the line (dropping does the same, also when a run is interrupted).
    pub fn finish(self) {}
}

impl Drop for Progress {
    /// Stops the ticker; on a terminal, clears its line.
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
            if self.tty {
                eprint!("\r\x1b[2K");
            }
        }
    }
}
