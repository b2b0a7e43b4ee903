//! `/healthz`, `/readyz`, `/metrics`.

use crate::error::ApiError;
use crate::state::AppState;
use crate::temporal::{self, RpcCounts};
use agentflow_bus::counters::BusCounts;
use agentflow_bus::{Bus, BusState};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

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

/// The bus as `/metrics` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BusMetrics {
    /// `connecting`, `ready` or `misconfigured`.
    #[schema(value_type = String)]
    pub state: BusState,
    /// What relays did on it.
    #[schema(value_type = Object)]
    pub counts: BusCounts,
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
    /// HTTP connections open now.
    pub connections: usize,
    /// This process's resident memory and CPU time (Linux; absent elsewhere).
    pub process: Option<ProcessStats>,
    /// The bus, when one is configured.
    pub bus: Option<BusMetrics>,
}

/// Resource use of the api process, from `/proc/self`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProcessStats {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// User + system CPU time in seconds.
    pub cpu_seconds: f64,
}

/// Reads `/proc/self/statm` (pages of 4 KiB) and `/proc/self/stat` (ticks of 1/100 s).
fn process_stats() -> Option<ProcessStats> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(ProcessStats {
        rss_bytes: resident * 4096,
        cpu_seconds: (utime + stime) as f64 / 100.0,
    })
}

/// Counters of Temporal RPCs, relays and subscribers: JSON, or the Prometheus text format when
/// the client accepts `text/plain` or OpenMetrics (as a Prometheus scrape does).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "The counters", content(
        (Metrics = "application/json"),
        (String = "text/plain; version=0.0.4")))))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (relays, subscribers) = state.relays.active();
    let metrics = Metrics {
        relay_rpcs: state.relays.counters().snapshot(),
        handler_rpcs: state.handler_rpcs.snapshot(),
        relays,
        subscribers,
        connections: state.connections.load(std::sync::atomic::Ordering::Relaxed),
        process: process_stats(),
        bus: state.relays.bus().map(|bus| BusMetrics {
            state: bus.state(),
            counts: bus.counters().snapshot(),
        }),
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("text/plain") || accept.contains("application/openmetrics-text") {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics.prometheus(),
        )
            .into_response()
    } else {
        Json(metrics).into_response()
    }
}

impl Metrics {
    /// The counters in the Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        for (name, help, counts) in [
            (
                "agentflow_relay_rpcs_total",
                "Temporal RPCs made by relays, by kind (independent of the number of subscribers).",
                &self.relay_rpcs,
            ),
            (
                "agentflow_handler_rpcs_total",
                "Temporal RPCs made by request handlers, by kind.",
                &self.handler_rpcs,
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (kind, value) in [
                ("describe", counts.describe),
                ("query", counts.query),
                ("history_poll", counts.history_poll),
                ("result", counts.result),
                ("update", counts.update),
            ] {
                out.push_str(&format!("{name}{{kind=\"{kind}\"}} {value}\n"));
            }
        }
        let mut samples = vec![
            (
                "agentflow_relays",
                "gauge",
                "Relays running now.",
                self.relays.to_string(),
            ),
            (
                "agentflow_subscribers",
                "gauge",
                "SSE subscribers connected now.",
                self.subscribers.to_string(),
            ),
            (
                "agentflow_connections",
                "gauge",
                "HTTP connections open now.",
                self.connections.to_string(),
            ),
        ];
        if let Some(process) = &self.process {
            samples.push((
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                process.rss_bytes.to_string(),
            ));
            samples.push((
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                process.cpu_seconds.to_string(),
            ));
        }
        if let Some(bus) = &self.bus {
            samples.push((
                "agentflow_bus_ready",
                "gauge",
                "1 when the bus is ready, else 0 (live events then use heartbeats).",
                u8::from(bus.state == BusState::Ready).to_string(),
            ));
            samples.push((
                "agentflow_bus_messages_followed_total",
                "counter",
                "Bus messages the relays received.",
                bus.counts.followed.to_string(),
            ));
            samples.push((
                "agentflow_bus_messages_dropped_total",
                "counter",
                "Bus messages the relays' folds voided (superseded attempts) or dropped.",
                bus.counts.dropped.to_string(),
            ));
        }
        for (name, kind, help, value) in samples {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
        out
    }
}
