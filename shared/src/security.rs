//! `[auth]` and `[limits]`: API keys and their scopes, tenants, stream tokens, and the bounds
//! an operator sets on what a request may ask for (models, budgets, steps, rates).

use crate::ids::{KeyId, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What a key may do. `admin` may do everything.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Scope {
    /// Read agents, tools, tasks, their events and streams; mint stream tokens.
    #[serde(rename = "tasks:read")]
    TasksRead,
    /// Create tasks and run queries on them.
    #[serde(rename = "tasks:write")]
    TasksWrite,
    /// Pause, resume, cancel, close, decide approvals, raise budgets.
    #[serde(rename = "tasks:control")]
    TasksControl,
    /// Everything, and `/metrics`.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope, in order.
    pub const ALL: [Scope; 4] = [
        Scope::TasksRead,
        Scope::TasksWrite,
        Scope::TasksControl,
        Scope::Admin,
    ];

    /// The name used in config files and problem details.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TasksRead => "tasks:read",
            Scope::TasksWrite => "tasks:write",
            Scope::TasksControl => "tasks:control",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a scope (tasks:read, tasks:write, tasks:control, admin)")
            })
    }
}

/// One API key as stored: its SHA-256, never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// The key's public id (the key reads `af_<id>_<secret>`).
    pub id: KeyId,
    /// Who uses it: the tasks' `user_id` and every control's `requested_by`.
    pub identity: String,
    /// The tenant whose tasks it sees.
    pub tenant: TenantId,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// SHA-256 of the whole key, lowercase hex.
    pub sha256: String,
    /// When it was minted (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it was revoked; a revoked key is refused and ends its streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl KeyRecord {
    /// Checks the identity's characters, the hash's form and that it has a scope.
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.id.0;
        if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "key `{id}`: its id must be 1 to 32 letters or digits"
            ));
        }
        let identity_ok = (1..=128).contains(&self.identity.len())
            && self
                .identity
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.@:-".contains(c));
        if !identity_ok {
            return Err(format!(
                "key `{id}`: identity must be 1 to 128 letters, digits or `_.@:-`"
            ));
        }
        if self.sha256.len() != 64 || !self.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("key `{id}`: sha256 must be 64 hex digits"));
        }
        if self.scopes.is_empty() {
            return Err(format!("key `{id}`: give it at least one scope"));
        }
        Ok(())
    }
}

/// A keys file (`auth.keys_file`): `[[keys]]` tables, written by `agentflow-api keys …`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    /// The keys, revoked ones included.
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
}

/// `[auth]`: who may call the api. Its `Debug` leaves the token secrets out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Require an API key (or a stream token, or a page session) on every `/api` route.
    pub enabled: bool,
    /// Keys written in the config file itself.
    pub keys: Vec<KeyRecord>,
    /// A keys file, re-read when it changes (revocation takes effect within
    /// `keys_reload_ms`).
    pub keys_file: Option<PathBuf>,
    /// How often the keys file is checked for changes.
    pub keys_reload_ms: u64,
    /// The tenant of tasks created before tenancy (no `TenantId`) and of every request while
    /// auth is off.
    pub default_tenant: TenantId,
    /// Secrets that sign stream tokens and page sessions, each at least 32 bytes: the first
    /// signs, every one verifies (add a new one first to rotate, drop the old one later).
    /// Every api process must share them.
    pub token_secrets: Vec<String>,
    /// How long a stream token admits a connection.
    pub stream_token_ttl_secs: u64,
    /// How long a page session (the login cookie) lasts.
    pub session_ttl_secs: u64,
    /// Mark the session cookie `Secure` (set it when the api is served over HTTPS, e.g. behind
    /// a TLS-terminating proxy).
    pub secure_cookie: bool,
    /// With auth off, listen on a non-loopback address anyway (anyone who can reach it may
    /// do anything).
    pub allow_unauthenticated_network: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            keys: Vec::new(),
            keys_file: None,
            keys_reload_ms: 1000,
            default_tenant: TenantId::try_from("default".to_owned()).expect("a valid tenant"),
            token_secrets: Vec::new(),
            stream_token_ttl_secs: 900,
            session_ttl_secs: 8 * 3600,
            secure_cookie: false,
            allow_unauthenticated_network: false,
        }
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("enabled", &self.enabled)
            .field("keys", &self.keys.len())
            .field("keys_file", &self.keys_file)
            .field("default_tenant", &self.default_tenant)
            .field(
                "token_secrets",
                &format_args!("<{} redacted>", self.token_secrets.len()),
            )
            .field("stream_token_ttl_secs", &self.stream_token_ttl_secs)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .finish_non_exhaustive()
    }
}

/// The least length of a token secret.
pub const MIN_SECRET_BYTES: usize = 32;

impl AuthSettings {
    /// Checks the keys and, with auth on, that tokens can be signed (never echoing a secret).
    pub fn validate(&self) -> Result<(), String> {
        for key in &self.keys {
            key.validate().map_err(|e| format!("[auth] {e}"))?;
        }
        if let Some(short) = self
            .token_secrets
            .iter()
            .position(|s| s.len() < MIN_SECRET_BYTES)
        {
            return Err(format!(
                "[auth] token_secrets[{short}] is shorter than {MIN_SECRET_BYTES} bytes"
            ));
        }
        if self.enabled && self.token_secrets.is_empty() {
            return Err(
                "[auth] enabled needs token_secrets (e.g. AGENTFLOW_AUTH__TOKEN_SECRETS='[\"…\"]' \
                 with 32 or more random bytes) to sign stream tokens and sessions"
                    .into(),
            );
        }
        if self.stream_token_ttl_secs == 0 || self.session_ttl_secs == 0 || self.keys_reload_ms == 0
        {
            return Err(
                "[auth] stream_token_ttl_secs, session_ttl_secs and keys_reload_ms must be above 0"
                    .into(),
            );
        }
        Ok(())
    }

    /// [`AuthSettings::keys_reload_ms`] as a duration.
    pub fn keys_reload(&self) -> Duration {
        Duration::from_millis(self.keys_reload_ms)
    }
}

/// What one tenant may use at once, per api process for rates and streams.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// Tasks open at once (created, running or paused), counted in Temporal visibility.
    pub max_open_tasks: u64,
    /// SSE streams open at once, per api process.
    pub max_streams: usize,
    /// Requests per second, per api process (a token bucket).
    pub requests_per_sec: u32,
    /// Requests allowed in a burst above the rate.
    pub request_burst: u32,
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            max_open_tasks: 1000,
            max_streams: 2000,
            requests_per_sec: 200,
            request_burst: 400,
        }
    }
}

/// What a request for one agent or team may ask for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLimits {
    /// Models a request may choose (`*`: any configured one); empty: only the agent's own.
    pub models: Vec<String>,
    /// The largest `budget_usd` a request (or a budget raise) may ask for; absent: the
    /// agent's (or team's) own `budget_usd`.
    pub max_budget_usd: Option<f64>,
    /// The largest `max_steps` a request may ask for; absent: the agent's own `max_steps`.
    pub max_steps: Option<u32>,
}

/// `[limits]`: the bounds an operator sets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// Every tenant's limits, unless `tenants` names it.
    pub tenant: TenantLimits,
    /// Limits of named tenants.
    pub tenants: BTreeMap<TenantId, TenantLimits>,
    /// What requests may ask for, by agent or team id (absent: the defaults above).
    pub agents: BTreeMap<String, RequestLimits>,
}

impl LimitsSettings {
    /// The limits of `tenant`.
    pub fn of_tenant(&self, tenant: &TenantId) -> TenantLimits {
        self.tenants.get(tenant).copied().unwrap_or(self.tenant)
    }

    /// Checks every bound is usable.
    pub fn validate(&self) -> Result<(), String> {
        for (name, limits) in std::iter::once(("tenant", &self.tenant))
            .chain(self.tenants.iter().map(|(t, l)| (t.as_str(), l)))
        {
            if limits.max_open_tasks == 0
                || limits.max_streams == 0
                || limits.requests_per_sec == 0
                || limits.request_burst == 0
            {
                return Err(format!("[limits] {name}: every limit must be above 0"));
            }
        }
        for (id, limits) in &self.agents {
            if limits
                .max_budget_usd
                .is_some_and(|b| !(b.is_finite() && b > 0.0))
            {
                return Err(format!(
                    "[limits.agents.{id}] max_budget_usd must be positive"
                ));
            }
            if limits.max_steps == Some(0) {
                return Err(format!("[limits.agents.{id}] max_steps must be at least 1"));
            }
        }
        Ok(())
    }
}
