//! The scenarios. Each returns a [`Report`] with its figures and its correctness check.

use crate::stats::{Percentiles, Report};
use crate::target::{Received, Target, check};
use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::llm::FinishReason;
use futures::StreamExt;
use futures::future::join_all;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The query of the streaming scenarios: a tool call, then a streamed answer.
pub const STREAM_QUERY: &str = "What is 6*7? Then count to 100";

/// Runs `tasks` streaming tasks watched by `subscribers` clients in all (spread evenly), opening
/// the streams before execute; checks every client against the final logs.
async fn watched_run(
    target: &Target,
    tasks: usize,
    subscribers: usize,
    streaming: bool,
    query: &str,
) -> anyhow::Result<(
    Vec<String>,
    Vec<(usize, Received)>,
    Vec<Vec<Event>>,
    Vec<f64>,
    Duration,
)> {
    let ids: Vec<String> = futures::stream::iter(0..tasks)
        .map(|_| target.create(streaming, None, None))
        .buffered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let before = target.metrics().await?["subscribers"].as_u64().unwrap_or(0) as usize;
    let readers: Vec<_> = (0..subscribers)
        .map(|i| {
            let (target, id) = (target.clone(), ids[i % tasks].clone());
            tokio::spawn(async move { (i % tasks, target.subscribe(&id, "").await) })
        })
        .collect();
    target.wait_subscribers(before + subscribers).await?;
    let started = Instant::now();
    let executed: Vec<Instant> = join_all(
        ids.iter()
            .map(|id| async move { target.execute(id, query).await.map(|()| Instant::now()) }),
    )
    .await
    .into_iter()
    .collect::<anyhow::Result<_>>()?;
    let mut received = Vec::new();
    for reader in readers {
        let (task, result) = reader.await?;
        received.push((task, result?));
    }
    let elapsed = started.elapsed();
    let logs: Vec<Vec<Event>> = join_all(ids.iter().map(|id| target.log(id)))
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let first_event_ms = executed
        .iter()
        .enumerate()
        .filter_map(|(task, at)| {
            received
                .iter()
                .filter(|(t, _)| *t == task)
                .filter_map(|(_, r)| r.first_after(*at))
                .min()
                .map(|d| d.as_secs_f64() * 1000.0)
        })
        .collect();
    Ok((ids, received, logs, first_event_ms, elapsed))
}

impl Received {
    /// How long after `at` (execute returned) the first event arrived; 0 if it came earlier.
    fn first_after(&self, at: Instant) -> Option<Duration> {
        let wall_at = chrono::Utc::now() - chrono::Duration::from_std(at.elapsed()).ok()?;
        let first = self.arrived.first()?;
        Some((*first - wall_at).to_std().unwrap_or(Duration::ZERO))
    }
}

fn violations(received: &[(usize, Received)], logs: &[Vec<Event>]) -> Vec<String> {
    received
        .iter()
        .enumerate()
        .filter_map(|(i, (task, r))| {
            check(&r.events, &logs[*task]).map(|v| format!("subscriber {i}: {v}"))
        })
        .collect()
}

/// Latencies of the LLM deltas (heartbeat path) if `deltas`, else of the other events (query
/// path).
fn of_kind(received: &[(usize, Received)], deltas: bool) -> Vec<f64> {
    received
        .iter()
        .flat_map(|(_, r)| {
            r.latencies_ms_of(|e| matches!(e.kind, EventKind::LlmCallDelta(_)) == deltas)
        })
        .collect()
}

/// Scenario 1: `tasks` running streaming tasks, `subscribers` clients spread over them.
pub async fn latency(target: &Target, tasks: usize, subscribers: usize) -> anyhow::Result<Report> {
    let before = target.metrics().await?;
    let (_, received, logs, first, elapsed) =
        watched_run(target, tasks, subscribers.max(tasks), true, STREAM_QUERY).await?;
    let after = target.metrics().await?;
    let rpcs_per_task: serde_json::Map<String, serde_json::Value> =
        ["describe", "query", "history_poll", "result", "total"]
            .into_iter()
            .map(|kind| {
                let used = after["relay_rpcs"][kind].as_f64().unwrap_or(0.0)
                    - before["relay_rpcs"][kind].as_f64().unwrap_or(0.0);
                (kind.to_string(), json!(used / tasks as f64))
            })
            .collect();
    let latencies: Vec<f64> = received
        .iter()
        .flat_map(|(_, r)| r.latencies_ms())
        .collect();
    let delivered = latencies.len();
    Ok(Report {
        scenario: "latency".into(),
        parameters: json!({"tasks": tasks, "subscribers": subscribers.max(tasks), "query": STREAM_QUERY}),
        metrics: json!({
            "event_latency_ms": Percentiles::of(latencies),
            "delta_latency_ms": Percentiles::of(of_kind(&received, true)),
            "workflow_event_latency_ms": Percentiles::of(of_kind(&received, false)),
            "time_to_first_event_ms": Percentiles::of(first),
            "events_delivered": delivered,
            "events_per_second": delivered as f64 / elapsed.as_secs_f64(),
            "relay_rpcs_per_task": rpcs_per_task,
        }),
        violations: violations(&received, &logs),
    })
}

/// What the team scenario asks: all three members of `panel` named, so they discuss.
const PANEL_QUERY: &str = "Plume, Mimir and Sage: tell me about the old lighthouse";
/// What the single agent of the team scenario answers.
const ALONE_QUERY: &str = "Tell me about the old lighthouse";

/// A three-member discussion (team `panel`, three member turns in round robin) next to one
/// agent (`plume`) answering alone: `tasks` streaming tasks of each at once, one subscriber
/// each; event latency (all, deltas, the rest), time to first event, and each log checked.
pub async fn team(target: &Target, tasks: usize) -> anyhow::Result<Report> {
    let mut metrics = serde_json::Map::new();
    let mut all_violations = Vec::new();
    for (name, agent, query) in [
        ("single_agent", "plume", ALONE_QUERY),
        ("three_member_discussion", "panel", PANEL_QUERY),
    ] {
        let target = target.with_agent(agent);
        let (_, received, logs, first, elapsed) =
            watched_run(&target, tasks, tasks, true, query).await?;
        let latencies: Vec<f64> = received
            .iter()
            .flat_map(|(_, r)| r.latencies_ms())
            .collect();
        let events = latencies.len();
        metrics.insert(
            name.into(),
            json!({
                "agent": agent,
                "events_per_task": events as f64 / tasks as f64,
                "event_latency_ms": Percentiles::of(latencies),
                "delta_latency_ms": Percentiles::of(of_kind(&received, true)),
                "workflow_event_latency_ms": Percentiles::of(of_kind(&received, false)),
                "time_to_first_event_ms": Percentiles::of(first),
                "wall_s": elapsed.as_secs_f64(),
            }),
        );
        all_violations.extend(
            violations(&received, &logs)
                .into_iter()
                .map(|v| format!("{name}: {v}")),
        );
    }
    Ok(Report {
        scenario: "team".into(),
        parameters: json!({"tasks": tasks, "panel_query": PANEL_QUERY, "alone_query": ALONE_QUERY}),
        metrics: serde_json::Value::Object(metrics),
        violations: all_violations,
    })
}

/// Scenario 2: one streaming task watched by each of `counts` subscribers in turn.
pub async fn fanout(target: &Target, counts: &[usize]) -> anyhow::Result<Report> {
    let mut rows = serde_json::Map::new();
    let mut all_violations = Vec::new();
    let mut rpcs = HashMap::new();
    for &count in counts {
        let before = target.relay_rpcs().await?;
        let (_, received, logs, _, elapsed) =
            watched_run(target, 1, count, true, STREAM_QUERY).await?;
        let used = target.relay_rpcs().await? - before;
        rpcs.insert(count, used);
        let latencies: Vec<f64> = received
            .iter()
            .flat_map(|(_, r)| r.latencies_ms())
            .collect();
        rows.insert(
            format!("subscribers_{count}"),
            json!({
                "events_per_second": latencies.len() as f64 / elapsed.as_secs_f64(),
                "latency_ms": Percentiles::of(latencies),
                "relay_rpcs": used,
                "relay_rpcs_per_second": used as f64 / elapsed.as_secs_f64(),
            }),
        );
        all_violations.extend(
            violations(&received, &logs)
                .into_iter()
                .map(|v| format!("{count} subscribers: {v}")),
        );
    }
    if let (Some(first), Some(last)) = (counts.first(), counts.last()) {
        rows.insert(
            format!("rpc_ratio_{last}_over_{first}"),
            json!(rpcs[last] as f64 / rpcs[first].max(1) as f64),
        );
    }
    Ok(Report {
        scenario: "fanout".into(),
        parameters: json!({"counts": counts, "query": STREAM_QUERY}),
        metrics: serde_json::Value::Object(rows),
        violations: all_violations,
    })
}

/// Scenario 3: `streams` streams held open on `tasks` waiting tasks for `hold`.
pub async fn idle(
    target: &Target,
    tasks: usize,
    streams: usize,
    hold: Duration,
) -> anyhow::Result<Report> {
    let ids: Vec<String> = futures::stream::iter(0..tasks)
        .map(|_| target.create(true, None, None))
        .buffered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = target.metrics().await?;
    let (release, released) = tokio::sync::watch::channel(false);
    let holders: Vec<_> = (0..streams)
        .map(|i| {
            let (target, id, mut released) =
                (target.clone(), ids[i % tasks].clone(), released.clone());
            tokio::spawn(async move {
                target
                    .hold(&id, async move {
                        let _ = released.wait_for(|r| *r).await;
                    })
                    .await
            })
        })
        .collect();
    target
        .wait_subscribers(base["subscribers"].as_u64().unwrap_or(0) as usize + streams)
        .await?;
    let held = target.metrics().await?;
    tokio::time::sleep(hold).await;
    let after = target.metrics().await?;
    release.send_replace(true);
    let mut errors = Vec::new();
    for holder in holders {
        if let Err(e) = holder.await? {
            errors.push(e.to_string());
        }
    }
    target
        .wait_subscribers_gone(base["subscribers"].as_u64().unwrap_or(0) as usize)
        .await?;
    let rss = |m: &serde_json::Value| m["process"]["rss_bytes"].as_f64().unwrap_or(0.0);
    let cpu = |m: &serde_json::Value| m["process"]["cpu_seconds"].as_f64().unwrap_or(0.0);
    let rpc = |m: &serde_json::Value| m["relay_rpcs"]["total"].as_f64().unwrap_or(0.0);
    Ok(Report {
        scenario: "idle".into(),
        parameters: json!({"tasks": tasks, "streams": streams, "hold_seconds": hold.as_secs()}),
        metrics: json!({
            "rss_bytes_before": rss(&base),
            "rss_bytes_held": rss(&held),
            "rss_kib_per_stream": (rss(&held) - rss(&base)) / 1024.0 / streams as f64,
            "cpu_percent_while_idle": (cpu(&after) - cpu(&held)) / hold.as_secs_f64() * 100.0,
            "relay_rpcs_per_second_while_idle": (rpc(&after) - rpc(&held)) / hold.as_secs_f64(),
            "stream_errors": errors.len(),
        }),
        violations: errors
            .into_iter()
            .take(5)
            .map(|e| format!("a stream failed: {e}"))
            .collect(),
    })
}

/// Scenario 4: `tasks` tasks created→completed on the zero-delay model, `concurrency` at a
/// time, next to the bare-Temporal baseline on the same server.
pub async fn throughput(
    target: &Target,
    temporal_address: &str,
    tasks: usize,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let outcomes: Vec<anyhow::Result<Option<String>>> = futures::stream::iter(0..tasks)
        .map(|_| async move {
            let id = target
                .create(false, Some("scripted-fast"), Some("Hello"))
                .await?;
            let received = target.subscribe(&id, "?types=WorkflowCompleted").await?;
            let terminal = received.events.last().map(|e| e.type_name());
            Ok((terminal != Some(EventKind::COMPLETED))
                .then(|| format!("task {id} ended with {terminal:?}")))
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let ours = tasks as f64 / started.elapsed().as_secs_f64();
    let mut violations = Vec::new();
    for outcome in outcomes {
        if let Some(v) = outcome? {
            violations.push(v);
        }
    }
    let baseline = crate::baseline::run(temporal_address, tasks, concurrency, &[0]).await?;
    Ok(Report {
        scenario: "throughput".into(),
        parameters: json!({"tasks": tasks, "concurrency": concurrency, "model": "scripted-fast"}),
        metrics: json!({
            "tasks_per_second": ours,
            "baseline_workflows_per_second": baseline,
            "ratio_to_baseline": ours / baseline,
        }),
        violations,
    })
}

/// Scenario 5: the same workload in batch and in streaming mode, alternating for `rounds`
/// rounds so drift on a shared machine hits both modes alike; compares the medians.
pub async fn streaming_cost(
    target: &Target,
    tasks: usize,
    rounds: usize,
) -> anyhow::Result<Report> {
    let mut all_violations = Vec::new();
    let mut wall: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut rpcs: HashMap<&str, Vec<f64>> = HashMap::new();
    for _ in 0..rounds.max(1) {
        for (mode, streaming) in [("batch", false), ("streaming", true)] {
            let before = target.relay_rpcs().await?;
            let (_, received, logs, _, elapsed) =
                watched_run(target, tasks, tasks, streaming, STREAM_QUERY).await?;
            let per_task = (target.relay_rpcs().await? - before) as f64 / tasks as f64;
            wall.entry(mode).or_default().push(elapsed.as_secs_f64());
            rpcs.entry(mode).or_default().push(per_task);
            all_violations.extend(
                violations(&received, &logs)
                    .into_iter()
                    .map(|v| format!("{mode}: {v}")),
            );
        }
    }
    let median = |values: &[f64]| Percentiles::of(values.to_vec()).p50;
    let mut figures = serde_json::Map::new();
    for mode in ["batch", "streaming"] {
        figures.insert(
            mode.into(),
            json!({
                "wall_seconds": median(&wall[mode]),
                "wall_seconds_each_round": wall[mode],
                "relay_rpcs_per_task": median(&rpcs[mode]),
            }),
        );
    }
    figures.insert(
        "wall_ratio_streaming_over_batch".into(),
        json!(median(&wall["streaming"]) / median(&wall["batch"])),
    );
    figures.insert(
        "rpc_ratio_streaming_over_batch".into(),
        json!(median(&rpcs["streaming"]) / median(&rpcs["batch"]).max(1.0)),
    );
    Ok(Report {
        scenario: "streaming_cost".into(),
        parameters: json!({"tasks": tasks, "rounds": rounds.max(1), "query": STREAM_QUERY}),
        metrics: serde_json::Value::Object(figures),
        violations: all_violations,
    })
}

/// The long generation of the neighbours scenario.
pub const LONG_QUERY: &str = "Count to 100000";
/// The small task of the neighbours scenario.
pub const SMALL_QUERY: &str = "Count to 20";

/// Runs `tasks` small streaming tasks one after another; returns every event's latency and
/// the violations of their streams against their logs.
async fn small_tasks(target: &Target, tasks: usize) -> anyhow::Result<(Vec<f64>, Vec<String>)> {
    let mut latencies = Vec::new();
    let mut found = Vec::new();
    for _ in 0..tasks {
        let id = target.create(true, None, None).await?;
        let reader = tokio::spawn(Target::read(target.open(&id, "").await?));
        target.execute(&id, SMALL_QUERY).await?;
        let received = reader.await??;
        latencies.extend(received.latencies_ms());
        if let Some(v) = check(&received.events, &target.log(&id).await?) {
            found.push(format!("small task {id}: {v}"));
        }
    }
    Ok((latencies, found))
}

/// The worker's peak resident memory (`VmHWM`), if its pid is known.
fn peak_rss_bytes(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One `Count to 100000` task on `scripted-fast`, watched to its end: (events, finish reason,
/// violation).
async fn long_task(
    target: &Target,
) -> anyhow::Result<(usize, Option<FinishReason>, Option<String>)> {
    let long = target.create(true, Some("scripted-fast"), None).await?;
    let watcher = tokio::spawn(Target::read(target.open(&long, "").await?));
    target.execute(&long, LONG_QUERY).await?;
    let received = watcher.await??;
    let log = target.log(&long).await?;
    let finish_reason = log.iter().find_map(|e| match &e.kind {
        EventKind::LlmCallCompleted(done) => Some(done.finish_reason),
        _ => None,
    });
    let violation = check(&received.events, &log).map(|v| format!("long task {long}: {v}"));
    Ok((log.len(), finish_reason, violation))
}

/// Scenario 6: `tasks` small streaming tasks alone, then the same while `Count to 100000`
/// streams on `scripted-fast` on the same worker (one long task after another, each watched
/// and checked against its log).
pub async fn neighbours(
    target: &Target,
    tasks: usize,
    worker_pid: Option<u32>,
) -> anyhow::Result<Report> {
    let (solo, mut found) = small_tasks(target, tasks).await?;
    let (done, mut until_done) = tokio::sync::watch::channel(false);
    let longs = {
        let target = target.clone();
        tokio::spawn(async move {
            let mut runs = Vec::new();
            while !*until_done.borrow_and_update() {
                runs.push(long_task(&target).await?);
            }
            anyhow::Ok(runs)
        })
    };
    let (loaded, loaded_found) = small_tasks(target, tasks).await?;
    done.send_replace(true);
    let runs = longs.await??;
    found.extend(loaded_found);
    found.extend(runs.iter().filter_map(|(_, _, v)| v.clone()));
    let (solo, loaded) = (Percentiles::of(solo), Percentiles::of(loaded));
    Ok(Report {
        scenario: "neighbours".into(),
        parameters: json!({"tasks": tasks, "small": SMALL_QUERY, "long": LONG_QUERY, "long_model": "scripted-fast"}),
        metrics: json!({
            "solo_latency_ms": solo,
            "loaded_latency_ms": loaded,
            "p99_ratio_loaded_over_solo": loaded.p99 / solo.p99.max(0.001),
            "long_tasks_run": runs.len(),
            "long_task_events": runs.first().map(|r| r.0),
            "long_task_finish_reason": runs.first().and_then(|r| r.1),
            "worker_peak_rss_bytes": peak_rss_bytes(worker_pid),
        }),
        violations: found,
    })
}
