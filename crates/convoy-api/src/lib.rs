//! The wire contract of Convoy: request and response bodies shared by `convoyd`, the agent and
//! the CLI, and a typed HTTP client over them.

pub mod agent;
pub mod alarms;
pub mod auth;
pub mod client;
pub mod dc;
pub mod error;
pub mod hosts;
pub mod patches;
pub mod prestage;
pub mod software;
pub mod strategies;
pub mod trust;
pub mod users;

pub use client::{Client, ClientError};
pub use error::{ErrorBody, ErrorDetail};
pub use trust::{Trust, TrustError};

/// Header that carries a user's token or an agent's host credential.
pub const AUTH_HEADER: &str = "X-Auth-Token";
/// Header in which `POST /v3/auth/tokens` returns the new token (Keystone's name).
pub const SUBJECT_TOKEN_HEADER: &str = "X-Subject-Token";

/// Installs the one TLS crypto provider Convoy uses (ring). Every binary calls this first;
/// rustls refuses to pick between providers on its own. Calling it twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
