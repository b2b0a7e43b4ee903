//! Generations of a megabyte and more: `Count to 200000` on `scripted-fast` (≈ 1.3 MB of text)
//! completes with an exact log, on the live bus and in degraded mode (heartbeats). The call's
//! events reach the workflow in checkpoints (`checkpoint_call` updates), so no payload —
//! heartbeat, failure details, result — holds more than one checkpoint and the answer.

use crate::WORKER;
use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::event::{Event, EventKind, LlmCallCompleted};
use agentflow_shared::ids::TaskId;
use agentflow_shared::llm::FinishReason;
use agentflow_tests::api::TestApi;
use agentflow_tests::harness::test_config;
use agentflow_tests::logs::dense_log;
use agentflow_tests::requests::{create_idle, execute, open, task_path};
use agentflow_tests::sse::Live;
use agentflow_tests::{WorkerProcess, spawn_app_with};
use serde_json::json;

fn completed(events: &[Event]) -> &LlmCallCompleted {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::LlmCallCompleted(done) => Some(done),
            _ => None,
        })
        .expect("the call completed")
}

/// A task with these parameters, watched from its start, then executing `query`.
async fn watched(api: &TestApi, parameters: serde_json::Value, query: &str) -> (TaskId, Live) {
    let task: TaskId = create_idle(api, parameters).await.parse().unwrap();
    let live = open(api, task).await;
    execute(api, task, query).await;
    (task, live)
}

/// Runs `Count to 200000` watched from its start; checks the exact log, the whole answer, and
/// that it travelled in checkpoints.
async fn count_to_200000(config: AgentflowConfig) {
    let app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let parameters = json!({"enable_streaming": true, "model": "scripted-fast"});
    let (task, mut live) = watched(&api, parameters, "Count to 200000").await;
    let received = live.rest().await.to_vec();
    let log = dense_log(&received);
    assert!(
        matches!(log.events().last().unwrap().kind, EventKind::Completed(_)),
        "{:?}",
        log.events().last()
    );

    let done = completed(&received);
    assert_eq!(done.finish_reason, FinishReason::Stop, "not truncated");
    let expected = (1..=200_000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(expected.len() > 1_000_000);
    assert!(
        done.content == expected,
        "the whole answer: {} bytes, expected {} (first difference at byte {:?})",
        done.content.len(),
        expected.len(),
        done.content
            .bytes()
            .zip(expected.bytes())
            .position(|(a, b)| a != b)
    );
    let deltas: String = received
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmCallDelta(delta) => Some(delta.text.as_str()),
            _ => None,
        })
        .collect();
    assert!(deltas == expected, "the deltas add up to the answer");

    // Durable: once the task closed (its log too large for its result, it is recorded in
    // its history), a fresh api reads the same log from Temporal alone.
    let result = app.result(task).await;
    assert!(!result.events_included);
    let fresh = app.spawn_api().await;
    assert!(
        fresh.paged_events(&task_path(task, "")).await == received,
        "the durable log is the one streamed"
    );
    let history = String::from_utf8(app.history_json(task).await).unwrap();
    assert!(
        history.matches("checkpoint_call").count() >= 2,
        "the call's events reached the workflow in checkpoints"
    );
    fresh.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_megabyte_generation_on_the_bus_completes_with_an_exact_log() {
    count_to_200000(test_config()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_megabyte_generation_on_heartbeats_completes_with_an_exact_log() {
    let mut config = test_config();
    config.bus.url.clear();
    count_to_200000(config).await;
}

/// A worker SIGKILLed mid-call after several checkpoints: the next attempt starts from what
/// the workflow holds (and what the bus stored after it), with no gap and no renumbering.
async fn killed_after_checkpoints(bus: bool) {
    let mut config = test_config();
    if !bus {
        config.bus.url.clear();
    }
    config.models.get_mut("scripted").unwrap().token_delay_ms = 2;
    config.worker.limits.checkpoint_bytes = 16 * 1024;
    let app = spawn_app_with(config.clone(), false).await;
    let api = app.spawn_api().await;
    let first = WorkerProcess::spawn(WORKER, &config);
    let (task, mut live) = watched(&api, json!({"enable_streaming": true}), "Count to 3000").await;
    // Far enough for a few checkpoints of 16 KiB.
    while live
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LlmCallDelta(_)))
        .count()
        < 300
    {
        live.next().await.expect("the stream goes on");
    }
    first.kill().await;
    let seen = live.events.len();
    let second = WorkerProcess::spawn(WORKER, &config);
    let received = live.rest().await.to_vec();
    let result = app.result(task).await;
    second.kill().await;

    let log = dense_log(&received);
    assert!(matches!(
        log.events().last().unwrap().kind,
        EventKind::Completed(_)
    ));
    let retry = received
        .iter()
        .position(|e| matches!(e.kind, EventKind::LlmCallRetrying(_)))
        .expect("the call was retried on the second worker");
    assert!(
        retry >= seen,
        "the retry numbers on after everything a client saw"
    );
    let fresh = app.spawn_api().await;
    assert!(
        fresh.paged_events(&task_path(task, "")).await == received,
        "the durable log is the one streamed"
    );
    let history = String::from_utf8(app.history_json(task).await).unwrap();
    assert!(history.matches("checkpoint_call").count() >= 2);
    assert_eq!(
        result.state.status,
        agentflow_shared::task::TaskStatus::Completed
    );
    fresh.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_after_checkpoints_on_the_bus_is_resumed_exactly() {
    killed_after_checkpoints(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_after_checkpoints_on_heartbeats_is_resumed_exactly() {
    killed_after_checkpoints(false).await;
}
