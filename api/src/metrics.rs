//! What `/metrics` serves: the api's counters and this process's resource use, as JSON or in the
//! Prometheus text format.
//!
//! The counters stay atomics where they are counted ([`crate::temporal::RpcCounters`], the
//! relays', the bus's); [`ApiCounts::prometheus`] publishes a snapshot of them into a recorder of
//! its own (`metrics-exporter-prometheus`, never a process-global one: tests run several apis in
//! one process), adds the standard process metrics of `metrics-process`, and renders it. The
//! JSON's resident memory and CPU time come from `metrics-process` too.

use crate::state::AppState;
use crate::temporal::RpcCounts;
use agentflow_bus::BusState;
use agentflow_bus::counters::BusCounts;
use metrics_exporter_prometheus::PrometheusBuilder;
use serde::Serialize;
use std::sync::atomic::Ordering;

/// The content type of the Prometheus text exposition format (version 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

/// The api's counters at one moment: everything `/metrics` shows but the process.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiCounts {
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
    /// The bus, when one is configured.
    pub bus: Option<BusMetrics>,
}

/// `/metrics` as JSON: the api's counters and this process's resource use.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Metrics {
    /// The api's counters.
    #[serde(flatten)]
    pub counts: ApiCounts,
    /// This process's resident memory and CPU time (absent where `metrics-process` cannot tell).
    pub process: Option<ProcessStats>,
}

/// Resource use of the api process, as `metrics-process` reads it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProcessStats {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// User + system CPU time in seconds.
    pub cpu_seconds: f64,
}

impl ProcessStats {
    /// This process's now; `None` where either figure is unknown.
    pub fn now() -> Option<Self> {
        let process = metrics_process::collector::collect();
        Some(Self {
            rss_bytes: process.resident_memory_bytes?,
            cpu_seconds: process.cpu_seconds_total?,
        })
    }
}

impl ApiCounts {
    /// What `state` has counted so far, and what runs now.
    pub fn of(state: &AppState) -> Self {
        let (relays, subscribers) = state.relays.active();
        Self {
            relay_rpcs: state.relays.counters().snapshot(),
            handler_rpcs: state.handler_rpcs.snapshot(),
            relays,
            subscribers,
            connections: state.connections.load(Ordering::Relaxed),
            bus: state.relays.bus().map(|bus| BusMetrics {
                state: bus.state(),
                counts: bus.counters().snapshot(),
            }),
        }
    }

    /// The JSON answer: these counts with the process's resource use now.
    pub fn into_json(self) -> Metrics {
        Metrics {
            counts: self,
            process: ProcessStats::now(),
        }
    }

    /// These counts and the standard process metrics in the Prometheus text format.
    pub fn prometheus(&self) -> String {
        let recorder = PrometheusBuilder::new().build_recorder();
        ::metrics::with_local_recorder(&recorder, || self.record());
        // The exporter ends each metric family with a blank line; the format allows it, but
        // `/metrics` has always been one `name value` (or `#` comment) per line.
        let text = recorder.handle().render();
        text.lines()
            .filter(|line| !line.is_empty())
            .flat_map(|line| [line, "\n"])
            .collect()
    }

    /// Publishes these counts, and the process's metrics, to the current (local) recorder.
    fn record(&self) {
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
            ::metrics::describe_counter!(name, help);
            for (kind, value) in [
                ("describe", counts.describe),
                ("query", counts.query),
                ("history_poll", counts.history_poll),
                ("result", counts.result),
                ("update", counts.update),
            ] {
                ::metrics::counter!(name, "kind" => kind).absolute(value);
            }
        }
        for (name, help, value) in [
            ("agentflow_relays", "Relays running now.", self.relays),
            (
                "agentflow_subscribers",
                "SSE subscribers connected now.",
                self.subscribers,
            ),
            (
                "agentflow_connections",
                "HTTP connections open now.",
                self.connections,
            ),
        ] {
            ::metrics::describe_gauge!(name, help);
            ::metrics::gauge!(name).set(value as f64);
        }
        if let Some(bus) = &self.bus {
            ::metrics::describe_gauge!(
                "agentflow_bus_ready",
                "1 when the bus is ready, else 0 (live events then use heartbeats)."
            );
            ::metrics::gauge!("agentflow_bus_ready")
                .set(f64::from(u8::from(bus.state == BusState::Ready)));
            for (name, help, value) in [
                (
                    "agentflow_bus_messages_followed_total",
                    "Bus messages the relays received.",
                    bus.counts.followed,
                ),
                (
                    "agentflow_bus_messages_dropped_total",
                    "Bus messages the relays' folds voided (superseded attempts) or dropped.",
                    bus.counts.dropped,
                ),
            ] {
                ::metrics::describe_counter!(name, help);
                ::metrics::counter!(name).absolute(value);
            }
        }
        let process = metrics_process::Collector::default();
        process.describe();
        process.collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpcs(query: u64) -> RpcCounts {
        RpcCounts {
            describe: 1,
            query,
            history_poll: 0,
            result: 0,
            update: 0,
            total: 1 + query,
        }
    }

    fn counts(query: u64, subscribers: usize) -> ApiCounts {
        ApiCounts {
            relay_rpcs: rpcs(query),
            handler_rpcs: rpcs(0),
            relays: 1,
            subscribers,
            connections: 3,
            bus: Some(BusMetrics {
                state: BusState::Ready,
                counts: BusCounts {
                    followed: 7,
                    ..BusCounts::default()
                },
            }),
        }
    }

    /// `name value` of each sample line; panics on a line that is neither that nor a comment.
    fn samples(text: &str) -> Vec<(&str, f64)> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| {
                let (name, value) = line.rsplit_once(' ').expect("`name value`");
                (name, value.parse().expect("a number"))
            })
            .collect()
    }

    fn sample(text: &str, name: &str) -> f64 {
        samples(text)
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .1
    }

    #[test]
    fn prometheus_text_has_every_metric_and_the_counts() {
        let text = counts(5, 2).prometheus();
        assert_eq!(
            sample(&text, "agentflow_relay_rpcs_total{kind=\"query\"}"),
            5.0
        );
        assert_eq!(
            sample(&text, "agentflow_relay_rpcs_total{kind=\"describe\"}"),
            1.0
        );
        assert_eq!(
            sample(&text, "agentflow_handler_rpcs_total{kind=\"update\"}"),
            0.0
        );
        assert_eq!(sample(&text, "agentflow_relays"), 1.0);
        assert_eq!(sample(&text, "agentflow_subscribers"), 2.0);
        assert_eq!(sample(&text, "agentflow_connections"), 3.0);
        assert_eq!(sample(&text, "agentflow_bus_ready"), 1.0);
        assert_eq!(sample(&text, "agentflow_bus_messages_followed_total"), 7.0);
        assert_eq!(sample(&text, "agentflow_bus_messages_dropped_total"), 0.0);
        assert!(sample(&text, "process_resident_memory_bytes") > 0.0);
        assert!(sample(&text, "process_cpu_seconds_total") >= 0.0);
        for declaration in [
            "# TYPE agentflow_relay_rpcs_total counter",
            "# TYPE agentflow_handler_rpcs_total counter",
            "# TYPE agentflow_subscribers gauge",
            "# TYPE agentflow_bus_messages_followed_total counter",
            "# HELP agentflow_relays Relays running now.",
            "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        ] {
            assert!(
                text.lines().any(|line| line == declaration),
                "no `{declaration}` in\n{text}"
            );
        }
    }

    #[test]
    fn each_rendering_has_its_own_recorder() {
        let (first, second) = (counts(5, 2).prometheus(), counts(9, 0).prometheus());
        let query = "agentflow_relay_rpcs_total{kind=\"query\"}";
        assert_eq!(sample(&first, query), 5.0);
        assert_eq!(sample(&second, query), 9.0);
        assert_eq!(sample(&second, "agentflow_subscribers"), 0.0);
        let without_bus = ApiCounts {
            bus: None,
            ..counts(0, 0)
        }
        .prometheus();
        assert!(!without_bus.contains("agentflow_bus_"), "{without_bus}");
    }

    #[test]
    fn json_keeps_the_fields_the_benchmark_reads() {
        let json = serde_json::to_value(counts(5, 2).into_json()).unwrap();
        assert_eq!(json["relay_rpcs"]["total"], 6);
        assert_eq!(json["relay_rpcs"]["query"], 5);
        assert_eq!(json["subscribers"], 2);
        assert_eq!(json["bus"]["state"], "ready");
        assert_eq!(json["bus"]["counts"]["followed"], 7);
        assert!(json["process"]["rss_bytes"].as_u64().unwrap() > 0, "{json}");
        assert!(json["process"]["cpu_seconds"].as_f64().is_some(), "{json}");
    }
}
