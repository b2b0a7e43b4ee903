//! `/healthz`, `/readyz`, `/metrics`.

use crate::error::ApiError;
use crate::state::AppState;
use crate::temporal::{self, RpcCounts};
use axum::Json;
use axum::extract::State;
use serde::Serialize;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Temporal is reachable.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Temporal answers"),
    (status = 503, description = "Temporal is unreachable", body = crate::error::Problem)))]
#[tracing::instrument(skip_all)]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    if temporal::reachable(&state.client).await {
        Ok("ready")
    } else {
        Err(ApiError::Unavailable("Temporal is unreachable".into()))
    }
}

/// Relay and request counters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Metrics {
    /// Temporal RPCs made by relays (independent of the number of subscribers).
    pub relay_rpcs: RpcCounts,
    /// Temporal RPCs made by request handlers.
    pub handler_rpcs: RpcCounts,
    /// Relays running now.
    pub relays: usize,
    /// SSE subscribers connected now.
    pub subscribers: usize,
}

/// Counters of Temporal RPCs, relays and subscribers.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, body = Metrics)))]
pub async fn metrics(State(state): State<AppState>) -> Json<Metrics> {
    let (relays, subscribers) = state.relays.active();
    Json(Metrics {
        relay_rpcs: state.relays.counters().snapshot(),
        handler_rpcs: state.handler_rpcs.snapshot(),
        relays,
        subscribers,
    })
}
