//! The server: everything between a checked [`Config`](crate::config::Config) and a serving
//! port. `application` builds and runs the [`Application`]; `routing` puts the gRPC and HTTP
//! front ends on one port inside the `metrics` and `limits` layers, over `tls` or plaintext,
//! taking the connections `connections` admits (how many, how soon a first request);
//! `tasks` are the loops beside it (keys, health, heartbeats, last-use writes).
//!
//! Calls flow `cli` -> `server` -> `grpc`/`http` (the front ends) -> `domain` -> `store`; the
//! layers here ask `transport` what a request is, never a front end.

mod application;
pub mod connections;
pub mod limits;
pub mod metrics;
mod routing;
mod tasks;
pub mod tls;

use std::sync::Arc;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;

pub use application::Application;

use crate::config::DatabaseConfig;
use crate::store::{self, ConnectOptions, Store};

/// Connects to the configured database and, unless disabled, applies migrations. Also what
/// `tokend migrate` and the operator commands open.
pub async fn open_store(database: &DatabaseConfig) -> anyhow::Result<Arc<dyn Store>> {
    let options = ConnectOptions {
        url: database.url.expose_secret().to_owned(),
        max_connections: database.max_connections,
    };
    let store = store::connect(&options)
        .await
        .context("opening the database")?;
    if database.migrate_on_start {
        store.migrate().await.context("migrating the database")?;
    }
    tracing::info!(backend = store.backend(), "database ready");
    Ok(store)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
