//! The live path under issue #11's workload, on a private stack (dev server, nats-server,
//! worker, api): a fake OpenAI-compatible model streams 20 tokens 10 ms apart, calls the
//! calculator, then streams 50 more; each token carries the moment the model sent it, so the
//! per-token latency (model → SSE client) includes coalescing. For each concurrency C, runs go
//! C at a time; the same runs are made with the bus and on the heartbeat path (worker and api
//! restarted without the bus) in one run of the scenario, so the two compare on one machine.
//!
//! Measured per mode and C: per-token latency, first event (execute sent → first frame), runs
//! per second, the dev server's own request counters per streaming call
//! (`RecordActivityTaskHeartbeat`, `DescribeWorkflowExecution`, …), CPU seconds per process,
//! and runs per second as a ratio to a bare-Temporal workflow of the same shape on the same
//! server (three activities that only wait: 200 ms, 0, 500 ms). Every subscriber is checked
//! against the task's final log.

use crate::chaos::{Binaries, Stack, TemporalStore};
use crate::fake_llm::{FakeLlm, Script, Turn, emitted_at};
use crate::stats::{Percentiles, Report};
use crate::target::{Target, check};
use agentflow_shared::event::EventKind;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Concurrency levels (C).
    pub concurrency: Vec<usize>,
    /// Runs at each level: at least this many, and at least 3 × C.
    pub runs: usize,
    /// The programs of the private stack.
    pub binaries: Binaries,
    /// Measure the heartbeat path too (the path the bus replaced).
    pub heartbeat_path: bool,
}

/// The issue's workload: 20 tokens → a calculator call → 50 tokens, 10 ms apart.
struct Workload {
    calls: AtomicU64,
}

impl Script for Workload {
    fn chat(&self, request: &Value) -> Turn {
        let asks_forever = request["messages"]
            .as_array()
            .and_then(|messages| messages.last())
            .and_then(|message| message["content"].as_str())
            .is_some_and(|text| text.contains("forever"));
        if asks_forever {
            return Turn::Endless;
        }
        let after_tool = request["messages"]
            .as_array()
            .and_then(|messages| messages.last())
            .is_some_and(|message| message["role"] == "tool");
        let every = Duration::from_millis(10);
        if after_tool {
            Turn::Timed {
                tokens: 50,
                every,
                then_tools: Vec::new(),
            }
        } else {
            let n = self.calls.fetch_add(1, Ordering::Relaxed);
            Turn::Timed {
                tokens: 20,
                every,
                then_tools: vec![(
                    format!("call-{n}"),
                    "calculator".into(),
                    r#"{"expression": "6*7"}"#.into(),
                )],
            }
        }
    }

    fn lookup(&self, _arguments: &Value) -> Result<Value, u16> {
        Ok(json!({}))
    }
}

/// The bare-Temporal workflow of the workload's shape: the two streaming calls' 20 and 50
/// tokens 10 ms apart, and the calculator between them.
const BARE_SHAPE: [u64; 3] = [200, 0, 500];

/// What one run measured.
struct Run {
    token_ms: Vec<f64>,
    first_event_ms: Option<f64>,
    violation: Option<String>,
}

async fn one_run(target: &Target) -> anyhow::Result<Run> {
    let id = target.create(true, None, None).await?;
    let reader = tokio::spawn(Target::read(target.open(&id, "").await?));
    let sent = chrono::Utc::now();
    target
        .execute(&id, "Stream, compute 6*7, stream again.")
        .await?;
    let received = reader.await??;
    let mut token_ms = Vec::new();
    for (event, at) in received.events.iter().zip(&received.arrived) {
        if let EventKind::LlmCallDelta(delta) = &event.kind {
            let arrived = at.timestamp_micros() as f64;
            for emitted in emitted_at(&delta.text) {
                token_ms.push((arrived - emitted as f64) / 1000.0);
            }
        }
    }
    let first_event_ms = received
        .arrived
        .first()
        .map(|at| (*at - sent).num_microseconds().unwrap_or(0) as f64 / 1000.0);
    let violation =
        check(&received.events, &target.log(&id).await?).map(|v| format!("task {id}: {v}"));
    Ok(Run {
        token_ms,
        first_event_ms,
        violation,
    })
}

/// The api's relay RPC counters by kind (`/metrics`: `relay_rpcs`).
async fn relay_rpcs(http: &reqwest::Client, api: &str) -> BTreeMap<String, f64> {
    let metrics: Value = match http.get(format!("{api}/metrics")).send().await {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => Value::Null,
    };
    metrics["relay_rpcs"]
        .as_object()
        .map(|kinds| {
            kinds
                .iter()
                .filter(|(kind, _)| kind.as_str() != "total")
                .filter_map(|(kind, n)| Some((kind.clone(), n.as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The dev server's request counters by operation (`service_requests`).
async fn temporal_requests(http: &reqwest::Client, port: u16) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    let Ok(response) = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
    else {
        return counts;
    };
    let text = response.text().await.unwrap_or_default();
    // The frontend's counters only: the requests clients made (the history and matching
    // services count the same requests again as they pass them on).
    for line in text
        .lines()
        .filter(|l| l.starts_with("service_requests{") && l.contains("service_name=\"frontend\""))
    {
        let Some(operation) = line
            .split("operation=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        else {
            continue;
        };
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *counts.entry(operation.to_owned()).or_default() += value;
    }
    counts
}

/// User + system CPU seconds of a process (Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn cpu(stack: &Stack) -> BTreeMap<&'static str, f64> {
    stack
        .pids()
        .into_iter()
        .map(|(name, pid)| (name, cpu_seconds(pid)))
        .collect()
}

/// One concurrency level in one mode.
async fn level(
    stack: &Stack,
    concurrency: usize,
    runs: usize,
) -> anyhow::Result<(Value, Vec<String>)> {
    let target = Target::new(&stack.api_base(), "assistant");
    let http = reqwest::Client::new();
    // Warm up (connections, caches, the first workflow task).
    one_run(&target).await?;
    let runs = runs.max(3 * concurrency);
    let requests_before = temporal_requests(&http, stack.temporal_metrics_port()).await;
    let relay_before = relay_rpcs(&http, &stack.api_base()).await;
    let cpu_before = cpu(stack);
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (target, next) = (target.clone(), next.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < runs as u64 {
                    done.push(one_run(&target).await);
                }
                done
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await?);
    }
    let wall = started.elapsed();
    let cpu_after = cpu(stack);
    let requests_after = temporal_requests(&http, stack.temporal_metrics_port()).await;
    let relay_after = relay_rpcs(&http, &stack.api_base()).await;
    let mut token_ms = Vec::new();
    let mut first_ms = Vec::new();
    let mut violations = Vec::new();
    let mut failed = Vec::new();
    for run in all {
        match run {
            Ok(run) => {
                token_ms.extend(run.token_ms);
                first_ms.extend(run.first_event_ms);
                violations.extend(run.violation);
            }
            // A refused request (e.g. a 503 from a saturated Temporal) is counted, not hidden.
            Err(error) => failed.push(error.to_string()),
        }
    }
    let streaming_calls = (2 * runs) as f64;
    let per_call: BTreeMap<&String, f64> = requests_after
        .iter()
        .map(|(op, after)| (op, after - requests_before.get(op).copied().unwrap_or(0.0)))
        .filter(|(_, delta)| *delta > 0.0)
        .map(|(op, delta)| (op, (delta / streaming_calls * 100.0).round() / 100.0))
        .collect();
    let heartbeats_and_describes = ["RecordActivityTaskHeartbeat", "DescribeWorkflowExecution"]
        .iter()
        .map(|op| per_call.get(&op.to_string()).copied().unwrap_or(0.0))
        .sum::<f64>();
    let cpu_used: BTreeMap<&str, f64> = cpu_after
        .iter()
        .map(|(name, after)| {
            let used = after - cpu_before.get(name).copied().unwrap_or(0.0);
            (*name, (used * 100.0).round() / 100.0)
        })
        .collect();
    let metrics = json!({
        "runs": runs,
        "failed_runs": failed.len(),
        "first_failure": failed.first(),
        "token_latency_ms": Percentiles::of(token_ms),
        "first_event_ms": Percentiles::of(first_ms),
        "runs_per_sec": ((runs - failed.len()) as f64 / wall.as_secs_f64() * 100.0).round() / 100.0,
        "temporal_requests_per_streaming_call": per_call,
        "relay_rpcs_per_streaming_call": relay_after
            .iter()
            .map(|(kind, after)| {
                let delta = after - relay_before.get(kind).copied().unwrap_or(0.0);
                (kind.clone(), (delta / streaming_calls * 100.0).round() / 100.0)
            })
            .collect::<BTreeMap<_, _>>(),
        "heartbeat_plus_describe_per_streaming_call": (heartbeats_and_describes * 100.0).round() / 100.0,
        "cpu_seconds": cpu_used,
        "wall_secs": (wall.as_secs_f64() * 10.0).round() / 10.0,
    });
    Ok((metrics, violations))
}

/// Cancel latency: `runs` tasks streaming forever, one at a time; each is cancelled after its
/// first delta, and the time from the cancel's 202 to the model seeing its stream closed is
/// measured.
async fn cancel_latency(stack: &Stack, fake: &FakeLlm, runs: usize) -> anyhow::Result<Value> {
    let target = Target::new(&stack.api_base(), "assistant");
    let mut latencies = Vec::new();
    for _ in 0..runs {
        let closed_before = fake.closed_streams();
        let id = target.create(true, None, None).await?;
        let mut stream = target.open(&id, "").await?;
        target.execute(&id, "Stream forever.").await?;
        // The first delta: the call streams.
        let mut seen = String::new();
        while !seen.contains(EventKind::LLM_CALL_DELTA) {
            match stream.chunk().await? {
                Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                None => anyhow::bail!("the stream ended before a delta"),
            }
        }
        target.cancel(&id).await?;
        let accepted = Instant::now();
        tokio::time::timeout(
            Duration::from_secs(30),
            fake.streams_closed(closed_before + 1),
        )
        .await?;
        latencies.push(accepted.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(json!({"runs": runs, "cancel_202_to_stream_closed_ms": Percentiles::of(latencies)}))
}

/// Runs the scenario: every concurrency level on the bus, then (if asked) on the heartbeat
/// path, on one private stack.
pub async fn live(options: &LiveOptions) -> anyhow::Result<Report> {
    let fake = FakeLlm::start_with(Arc::new(Workload {
        calls: AtomicU64::new(0),
    }))
    .await?;
    let mut stack = Stack::start(
        options.binaries.clone(),
        TemporalStore::Memory,
        &fake.base_url,
        &fake.lookup_url(),
    )
    .await?;
    println!("live: stack up, logs in {}", stack.dir().display());
    let mut metrics = serde_json::Map::new();
    let mut violations = Vec::new();
    // (name, bus, progress hints): the bus as relays read it before hints, then with them.
    let mut modes = vec![("bus_without_hints", true, false), ("bus", true, true)];
    if options.heartbeat_path {
        modes.push(("heartbeat_path", false, false));
    }
    let outcome: anyhow::Result<()> = async {
        let mut bare = BTreeMap::new();
        for &c in &options.concurrency {
            let runs = options.runs.max(3 * c);
            let per_sec =
                crate::baseline::run(&stack.temporal_address(), runs, c, &BARE_SHAPE).await?;
            println!("live: bare Temporal C={c}: {per_sec:.2} runs/s");
            bare.insert(c, per_sec);
        }
        metrics.insert(
            "bare_temporal_runs_per_sec".into(),
            json!(
                bare.iter()
                    .map(|(c, r)| (format!("c{c}"), (r * 100.0).round() / 100.0))
                    .collect::<BTreeMap<_, _>>()
            ),
        );
        for (mode, on, hints) in &modes {
            stack.set_bus_with(*on, *hints).await?;
            let mut levels = serde_json::Map::new();
            for &c in &options.concurrency {
                let (mut figures, found) = level(&stack, c, options.runs).await?;
                let ratio = figures["runs_per_sec"].as_f64().unwrap_or(0.0) / bare[&c];
                figures["runs_per_sec_ratio_to_bare_temporal"] =
                    json!((ratio * 100.0).round() / 100.0);
                println!("live: {mode} C={c}: {figures}");
                levels.insert(format!("c{c}"), figures);
                violations.extend(found.into_iter().map(|v| format!("{mode} C={c}: {v}")));
            }
            let cancel = cancel_latency(&stack, &fake, 10).await?;
            println!("live: {mode} cancel: {cancel}");
            levels.insert("cancel".into(), cancel);
            metrics.insert((*mode).to_owned(), Value::Object(levels));
        }
        Ok(())
    }
    .await;
    let stopped = stack.stop().await;
    outcome?;
    stopped?;
    Ok(Report {
        scenario: "live".into(),
        parameters: json!({"concurrency": options.concurrency, "runs": options.runs,
            "workload": "20 tokens → calculator → 50 tokens, 10 ms apart"}),
        metrics: Value::Object(metrics),
        violations,
    })
}
