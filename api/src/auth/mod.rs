//! Who may call the api, and how much.
//!
//! - [`keys`]: API keys (minted, hashed, looked up in constant time) and the [`KeyStore`].
//! - [`token`]: signed stream tokens and page sessions, with rotatable secrets.
//! - [`access`]: the scope each route needs (one table), and the [`Caller`] a request
//!   authenticates as.
//! - [`guard`]: the middleware that authenticates, checks the scope and refuses cross-site
//!   writes.
//! - [`usage`]: per-tenant request rates and open streams.

pub mod access;
pub mod guard;
pub mod keys;
pub mod token;
pub mod usage;

pub use access::{Access, Caller};
pub use keys::KeyStore;
pub use token::Signer;
pub use usage::TenantUsage;

use agentflow_shared::security::{AuthSettings, LimitsSettings};

/// Everything authentication and tenant limits need, shared by every request.
#[derive(Clone)]
pub struct AuthState {
    /// The keys in force.
    pub keys: KeyStore,
    /// Signs stream tokens and sessions.
    pub signer: Signer,
    /// Per-tenant rates and streams.
    pub usage: TenantUsage,
}

impl AuthState {
    /// Reads the keys (config and keys file) and starts watching the keys file.
    pub fn start(auth: &AuthSettings, limits: &LimitsSettings) -> Result<Self, keys::KeysError> {
        Ok(Self {
            keys: KeyStore::start(
                auth.keys.clone(),
                auth.keys_file.clone(),
                auth.keys_reload(),
            )?,
            signer: Signer::new(&auth.token_secrets),
            usage: TenantUsage::new(limits.clone()),
        })
    }
}
