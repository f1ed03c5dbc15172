//! Black-box tests: the real server over gRPC, on SQLite and on Postgres.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;
mod helpers;
mod key_server;

mod admin_apply;
mod admin_cli;
mod assertions;
mod attacks;
mod audit;
mod bench;
mod caches;
mod clients;
mod connections;
mod exchange;
mod ext_authz;
mod federation;
mod forward_auth;
mod introspection;
mod kek;
mod keys;
mod last_use;
mod lifecycle;
mod limits;
mod lockout;
mod metrics;
mod mtls_clients;
mod oauth2_client;
mod oauth_http;
mod operations;
mod outage;
mod policy;
mod refresh_limit;
mod refusals;
mod tls;
mod tokens;
