//! `AppState`: what every handler shares.

use crate::auth::AuthState;
use crate::relay::Registry;
use crate::temporal::RpcCounters;
use agentflow_shared::config::AgentflowConfig;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use temporalio_client::Client;

/// Shared state of the api.
#[derive(Clone)]
pub struct AppState {
    /// The Temporal client.
    pub client: Client,
    /// The configuration (agents, models, api settings).
    pub config: Arc<AgentflowConfig>,
    /// The per-task relays.
    pub relays: Arc<Registry>,
    /// Temporal RPCs made by request handlers (not relays).
    pub handler_rpcs: Arc<RpcCounters>,
    /// Becomes `true` when the server shuts down; open streams then end so clients reconnect.
    pub shutting_down: tokio::sync::watch::Receiver<bool>,
    /// Keys, token signing and per-tenant usage.
    pub auth: AuthState,
    /// HTTP connections open now (kept by the accept loop).
    pub connections: Arc<AtomicUsize>,
}
