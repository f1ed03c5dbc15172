//! Verifying tokens and knowing who calls: RFC 7662 introspection and the bearer-token check
//! of tokend's own RPCs (`introspector`), the callers' rules (`caller`), Envoy's verdict on one
//! HTTP request (`edge`, matched on the request path in normal form: `edge_path`, and counted
//! against the client's API quotas: `edge_quota`), and the
//! replica's in-memory view that makes all of it answer without a database read (`registry`:
//! clients, deny list, lockouts, caches, and the sync loop that follows the change log;
//! `token_cache`: tokens already verified).

pub(crate) mod caller;
mod edge;
mod edge_path;
mod edge_quota;
pub(crate) mod introspector;
pub(crate) mod registry;
mod sync;
pub(crate) mod token_cache;

pub use caller::Caller;
pub use edge::{EdgeRequest, EdgeRoute, EdgeRoutes, EdgeVerdict, Insufficient};
pub use edge_path::{NormalPath, PathError};
pub use introspector::{ActiveToken, Introspector, JwtVerifier, MAX_TOKEN_LEN};
pub use registry::{CHANGE_RETENTION, CacheConfig, Registry, RegistrySizes};
pub use sync::{SyncConfig, run_sync};
pub use token_cache::{TokenCache, VerifiedToken, token_key};
