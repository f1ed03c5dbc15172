//! Registered clients: the entity (`client`), what is kept of its secrets (`stored`), its validated settings
//! with the input rules and field masks (`spec`), the admin
//! service that creates, changes, lists and deletes them and rotates their secrets (`admin`),
//! client secrets and their argon2id hashing (`secret`), and each replica's memory of secrets
//! it verified recently (`secret_cache`).

mod admin;
pub(crate) mod client;
pub(crate) mod secret;
pub(crate) mod secret_cache;
pub(crate) mod spec;
mod stored;

pub use admin::{ClientAdmin, ClientPage};
pub use client::Client;
pub use secret::{ClientSecret, HashParams, SecretHasher};
pub use spec::{ClientField, ClientInput, ClientSpec, MAX_ACCESS_TTL, TokenFormat};
pub use stored::{LiveSecret, StoredSecret};
