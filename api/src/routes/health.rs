//! `/healthz`, `/readyz`, `/metrics`.

use crate::error::ApiError;
use crate::metrics::{ApiCounts, Metrics, PROMETHEUS_CONTENT_TYPE};
use crate::state::AppState;
use crate::temporal;
use agentflow_bus::{Bus, BusState};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Temporal is reachable. The body also tells where the bus stands: `ready` (bus ready, or
/// none configured), or `ready; bus connecting …` (live events use heartbeats meanwhile).
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Temporal answers"),
    (status = 503, description = "Temporal is unreachable", body = crate::error::Problem)))]
#[tracing::instrument(skip_all)]
pub async fn readyz(State(state): State<AppState>) -> Result<String, ApiError> {
    if !temporal::reachable(&state.client).await {
        return Err(ApiError::Unavailable("Temporal is unreachable".into()));
    }
    Ok(match state.relays.bus().map(Bus::state) {
        None | Some(BusState::Ready) => "ready".into(),
        Some(bus) => format!(
            "ready; bus {}: live events use Temporal heartbeats until it is ready",
            serde_json::to_value(bus)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
    })
}

/// Counters of Temporal RPCs, relays and subscribers, and the process's resource use: JSON, or
/// the Prometheus text format when the client accepts `text/plain` or OpenMetrics (as a
/// Prometheus scrape does).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "The counters", content(
        (Metrics = "application/json"),
        (String = "text/plain; version=0.0.4")))))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let counts = ApiCounts::of(&state);
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("text/plain") || accept.contains("application/openmetrics-text") {
        (
            [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
            counts.prometheus(),
        )
            .into_response()
    } else {
        Json(counts.into_json()).into_response()
    }
}
