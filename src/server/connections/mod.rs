//! Which connections the API and health ports keep: at most `limits.max_connections` open on a
//! port and `limits.max_connections_per_address` from one source address (a connection beyond
//! either is closed as soon as it is accepted, before any byte is read), and none that has not
//! completed its first request head or HTTP/2 preface within
//! `limits.first_request_timeout_secs` of being accepted.
//!
//! The HTTP server (tonic's, over hyper) offers neither: hyper's 30 s header timeout starts only
//! once a byte has arrived, and nothing bounds how many sockets a peer may hold. So the limits
//! sit where tonic takes its connections: [`ConnectionGate::admit`] when one is accepted, and
//! [`Admitted`] around its stream, which counts it open until hyper drops it and ends it if
//! the first request is late (`first_request`).
//!
//! The address is the TCP peer's, never `x-forwarded-for`: these limits protect the socket
//! table, which the proxy in front does not share.

mod first_request;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

pub use first_request::Admitted;

use crate::config::LimitsConfig;

/// Counts a port's open connections and decides whether a new one may stay.
pub struct ConnectionGate {
    /// Open connections from one address; 0: no limit.
    per_address: usize,
    /// Open connections on the port; 0: no limit.
    total: usize,
    first_request: Duration,
    open: Mutex<Open>,
    counters: Counters,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// The connection metrics, kept whether or not a metrics port serves them (plain atomics).
#[derive(Clone)]
struct Counters {
    open: IntGauge,
    refused: IntCounterVec,
    timed_out: IntCounter,
}

impl Counters {
    fn new() -> Self {
        Self {
            open: IntGauge::new(
                "tokend_connections_open",
                "Connections open on the API port.",
            )
            .expect("a valid metric"),
            refused: IntCounterVec::new(
                Opts::new(
                    "tokend_connections_refused_total",
                    "Connections to the API port closed as soon as they were accepted, by the limit they crossed.",
                ),
                &["limit"],
            )
            .expect("a valid metric"),
            timed_out: IntCounter::new(
                "tokend_connections_first_request_timeouts_total",
                "Connections to the API port closed for not completing a first request head or HTTP/2 preface within limits.first_request_timeout_secs.",
            )
            .expect("a valid metric"),
        }
    }
}

/// A connection the gate let in: counted open until this drops.
pub struct Permit {
    gate: Arc<ConnectionGate>,
    address: Option<IpAddr>,
    /// When it was accepted: the first request is due `first_request_timeout` later.
    accepted: Instant,
}

impl ConnectionGate {
    /// A gate with the connection limits of `limits`.
    pub fn new(limits: &LimitsConfig) -> Arc<Self> {
        Self::with_limits(
            limits.max_connections_per_address,
            limits.max_connections,
            limits.first_request_timeout,
        )
    }

    fn with_limits(per_address: usize, total: usize, first_request: Duration) -> Arc<Self> {
        Arc::new(Self {
            per_address,
            total,
            first_request,
            open: Mutex::default(),
            counters: Counters::new(),
        })
    }

    /// The connection metrics, for the replica's registry (the API port's gate only).
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        let c = self.counters.clone();
        vec![Box::new(c.open), Box::new(c.refused), Box::new(c.timed_out)]
    }

    /// Lets a connection from `address` in, or says which limit it would cross. `None` (a
    /// peer address the socket could not tell) counts toward the total only.
    pub fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Permit, &'static str> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if self.total > 0 && open.total >= self.total {
            return Err(self.refuse("max_connections"));
        }
        if let Some(address) = address {
            let from_here = open.by_address.entry(address).or_default();
            if self.per_address > 0 && *from_here >= self.per_address {
                return Err(self.refuse("max_connections_per_address"));
            }
            *from_here += 1;
        }
        open.total += 1;
        self.counters.open.inc();
        Ok(Permit {
            gate: self.clone(),
            address,
            accepted: Instant::now(),
        })
    }

    fn refuse(&self, limit: &'static str) -> &'static str {
        self.counters.refused.with_label_values(&[limit]).inc();
        limit
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(address) = self.address
            && let Some(from_here) = open.by_address.get_mut(&address)
        {
            *from_here -= 1;
            if *from_here == 0 {
                open.by_address.remove(&address);
            }
        }
        self.gate.counters.open.dec();
    }
}

impl Permit {
    /// `io`, counted open while it lives and closed if its first request comes too late.
    pub fn wrap<IO>(self, io: IO) -> Admitted<IO> {
        let due = self.accepted + self.gate.first_request;
        let timed_out = self.gate.counters.timed_out.clone();
        Admitted::new(io, self, due, timed_out)
    }
}

/// Accepts a TCP connection on `listener` and lets the gate judge it; a refused one is closed
/// at once (logged at debug: a flood must not flood the log too). Errors accepting (out of
/// file descriptors and the like) are logged and retried after a pause.
pub async fn accept(listener: &TcpListener, gate: &Arc<ConnectionGate>) -> (TcpStream, Permit) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match gate.admit(Some(peer.ip())) {
            Ok(permit) => {
                let _ = stream.set_nodelay(true);
                return (stream, permit);
            }
            Err(limit) => tracing::debug!(%peer, limit, "connection refused"),
        }
    }
}

/// Plaintext connections accepted on `listener` and admitted by `gate`, for the HTTP server.
/// The listener closes when the server drops the stream (shutdown).
pub fn plaintext(
    listener: TcpListener,
    gate: Arc<ConnectionGate>,
) -> impl Stream<Item = std::io::Result<Admitted<TcpStream>>> {
    futures::stream::unfold((listener, gate), |(listener, gate)| async move {
        let (stream, permit) = accept(&listener, &gate).await;
        Some((Ok(permit.wrap(stream)), (listener, gate)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(per_address: usize, total: usize) -> Arc<ConnectionGate> {
        ConnectionGate::with_limits(per_address, total, Duration::from_secs(10))
    }

    #[test]
    fn limits_count_open_connections_and_free_on_drop() {
        let gate = gate(2, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = gate.admit(Some(a)).unwrap();
        let _second = gate.admit(Some(a)).unwrap();
        assert_eq!(
            gate.admit(Some(a)).err(),
            Some("max_connections_per_address")
        );
        let _third = gate.admit(Some(b)).unwrap();
        assert_eq!(gate.admit(Some(b)).err(), Some("max_connections"));
        drop(first);
        let _again = gate.admit(Some(a)).unwrap();
        assert_eq!(gate.counters.open.get(), 3);
    }

    #[test]
    fn zero_is_no_limit() {
        let gate = gate(0, 0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..100).map(|_| gate.admit(Some(a)).unwrap()).collect();
        assert_eq!(held.len(), 100);
        drop(held);
        assert!(gate.open.lock().unwrap().by_address.is_empty());
    }
}
