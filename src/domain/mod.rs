//! The domain: every rule about clients, secrets, scopes, keys and tokens. Front ends (gRPC,
//! the CLI, later HTTP) call into `Tokend`; the domain calls the store. It never sees transport
//! or SQL types.

mod claims;
mod client;
mod clients;
pub mod clock;
mod error;
mod ids;
mod introspection;
mod keys;
pub mod scope;
mod secret;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

pub use claims::AccessClaims;
pub use client::{Client, ClientField, ClientInput, ClientSpec};
pub use clients::{ClientAdmin, ClientPage};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use ids::{ClientId, TenantId};
pub use introspection::{ActiveToken, Caller, Introspector, MAX_TOKEN_LEN};
pub use keys::{Kek, KeyRing, PublicJwk, SigningAlgorithm};
pub use keys::{KeyAdmin, KeyInfo, KeyPolicy, KeyState, KeyTimes, MAX_PREPUBLISH, RotateOptions};
pub use scope::{Scope, ScopeSet};
pub use secret::{ClientSecret, HashParams, SecretHasher};
pub use tokens::{IssuedToken, TokenIssuer, TokenRequest};

use crate::store::Store;

/// Domain settings, taken from the config.
#[derive(Debug, Clone)]
pub struct DomainConfig {
    /// `iss` of every token, and the audience tokend's own callers' tokens must carry.
    pub issuer: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    pub hash_params: HashParams,
    /// How many argon2 computations may run at once.
    pub hash_concurrency: usize,
    pub algorithm: SigningAlgorithm,
    /// Whether `Introspect` needs a caller token with scope `tokend.introspect`.
    pub introspection_requires_auth: bool,
    /// Pre-publication and automatic rotation of signing keys.
    pub key_policy: KeyPolicy,
}

/// The assembled domain services.
pub struct Tokend {
    pub clients: ClientAdmin,
    pub tokens: TokenIssuer,
    pub introspection: Introspector,
    pub keys: KeyAdmin,
}

impl Tokend {
    /// Loads (or on first start creates) the signing keys and wires the services.
    pub async fn open(
        store: Arc<dyn Store>,
        kek: Kek,
        config: DomainConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let keys = Arc::new(
            KeyRing::load_or_create(
                store.as_ref(),
                Arc::new(kek),
                config.algorithm,
                clock.clone(),
            )
            .await?,
        );
        let hasher = SecretHasher::new(config.hash_params, config.hash_concurrency)?;
        Ok(Self {
            clients: ClientAdmin {
                store: store.clone(),
                hasher: hasher.clone(),
                clock: clock.clone(),
            },
            tokens: TokenIssuer {
                store: store.clone(),
                hasher,
                keys: keys.clone(),
                clock: clock.clone(),
                issuer: config.issuer.clone(),
            },
            introspection: Introspector {
                store: store.clone(),
                keys: keys.clone(),
                clock: clock.clone(),
                issuer: config.issuer,
                leeway: config.leeway,
                require_caller: config.introspection_requires_auth,
            },
            keys: KeyAdmin {
                store,
                keys,
                clock,
                algorithm: config.algorithm,
                policy: config.key_policy,
                leeway: config.leeway,
            },
        })
    }
}
