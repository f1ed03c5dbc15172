//! Registered clients: the entity with its input rules and field masks (`client`), the admin
//! service that creates, changes, lists and deletes them and rotates their secrets (`admin`),
//! client secrets and their argon2id hashing (`secret`), and each replica's memory of secrets
//! it verified recently (`secret_cache`).

mod admin;
pub(crate) mod client;
pub(crate) mod secret;
pub(crate) mod secret_cache;

pub use admin::{ClientAdmin, ClientPage};
pub use client::{Client, ClientField, ClientInput, ClientSpec, MAX_ACCESS_TTL, TokenFormat};
pub use secret::{ClientSecret, HashParams, SecretHasher};
