//! Requests that used to hurt the worker for everyone: a poison-pill calculator expression, a
//! generation far past Temporal's payload limit, and a worker stopped mid-call. Each ends
//! cleanly, with an exact log, and the worker keeps serving other tasks.

use crate::WORKER;
use agentflow_shared::event::{Event, EventKind, LlmCallCompleted};
use agentflow_shared::ids::Seq;
use agentflow_shared::llm::FinishReason;
use agentflow_shared::log::{EventLog, check_prefix};
use agentflow_shared::task::{TaskResult, TaskStatus};
use agentflow_tests::harness::test_config;
use agentflow_tests::logs::dense_log;
use agentflow_tests::requests::{open, stream_path, task_path};
use agentflow_tests::sse::read_with_reconnects;
use agentflow_tests::{WorkerProcess, spawn_app_with};
use std::time::{Duration, Instant};

fn log_of(result: &TaskResult) -> EventLog {
    EventLog::from_events(Seq::first(), result.events.clone()).expect("a dense log")
}

fn llm_completed(result: &TaskResult) -> Vec<&LlmCallCompleted> {
    result
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmCallCompleted(done) => Some(done),
            _ => None,
        })
        .collect()
}

fn counting_to(n: u32) -> String {
    (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deeply_nested_expression_is_a_failed_tool_result_and_the_worker_lives_on() {
    let config = test_config();
    let app = spawn_app_with(config.clone(), false).await;
    let mut worker = WorkerProcess::spawn(WORKER, &config);
    let parens = format!("What is {}1{}+1?", "(".repeat(30_000), ")".repeat(30_000));
    let task = app.run_query(&parens, false).await;
    let result = app.result(task).await;

    assert_eq!(result.state.status, TaskStatus::Completed);
    let tool = result
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ToolCallCompleted(done) => Some(done),
            _ => None,
        })
        .expect("the calculator was called");
    assert!(!tool.success);
    assert!(
        tool.error
            .as_deref()
            .is_some_and(|e| e.contains("nested too deeply")),
        "{:?}",
        tool.error
    );
    assert!(worker.is_running(), "the worker survived the expression");

    let next = app.run_query("What is 2+3?", false).await;
    let next = app.result(next).await;
    assert_eq!(next.state.status, TaskStatus::Completed);
    assert!(worker.is_running());
    worker.kill().await;
}

/// `Count to 100000` on `scripted-fast` (≈ 590 KB) in one mode, with answers capped at 256 KiB:
/// the answer is truncated at the cap with an exact log over reconnects, and a small task on
/// the same worker completes meanwhile.
async fn long_generation(streaming: bool) {
    let mut config = test_config();
    config.agents.get_mut("assistant").unwrap().model = "scripted-fast".into();
    config.worker.limits.max_answer_bytes = 256 * 1024;
    let app = spawn_app_with(config.clone(), true).await;
    let api = app.spawn_api().await;
    let long = app.run_query("Count to 100000", streaming).await;
    let small = app.run_query("Count to 20", streaming).await;
    let reading = {
        let http = api.http.clone();
        let url = api.url(&stream_path(long));
        tokio::spawn(async move { read_with_reconnects(&http, &url, &[3, 40, 200]).await })
    };
    let small = app.result(small).await;
    assert_eq!(small.state.status, TaskStatus::Completed);
    assert_eq!(llm_completed(&small)[0].content, counting_to(20));

    let result = app.result(long).await;
    let received: Vec<Event> = reading.await.expect("the reader");
    assert_eq!(result.state.status, TaskStatus::Completed);
    let log = log_of(&result);
    assert!(
        log.encoded_bytes() < config.worker.limits.max_run_log_bytes,
        "{} bytes",
        log.encoded_bytes()
    );
    let done = llm_completed(&result)[0];
    assert_eq!(done.finish_reason, FinishReason::Length);
    assert!(!done.content.is_empty());
    assert!(counting_to(100_000).starts_with(&done.content));
    let EventKind::Completed(completed) = &result.events.last().unwrap().kind else {
        panic!("not completed: {:?}", result.events.last());
    };
    assert_eq!(
        completed.final_response, done.content,
        "a truncated answer is still the answer"
    );
    check_prefix(Seq(0), &received, &log).expect("the stream is the log");
    assert_eq!(received.len(), log.len(), "the stream reached the end");
    if streaming {
        app.assert_replays(long, "checkpoints").await;
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn counting_to_100000_streamed_is_truncated_cleanly_while_others_run() {
    long_generation(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn counting_to_100000_in_batch_is_truncated_cleanly_while_others_run() {
    long_generation(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_worker_hands_its_call_over_at_once_with_every_event() {
    let mut config = test_config();
    config.models.get_mut("scripted").unwrap().token_delay_ms = 10;
    // A heartbeat timeout far beyond the test's patience: the call can only move to the next
    // worker in time if the stopping worker fails it itself.
    config.worker.llm_heartbeat_timeout_secs = 600;
    // The heartbeat path, where the stopping worker's details carry every event (the bus
    // variant is in bus.rs).
    config.bus.url.clear();
    let app = spawn_app_with(config.clone(), false).await;
    let first = WorkerProcess::spawn(WORKER, &config);
    let task = app.run_query("Count to 400", true).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let events = app.heartbeat_events(task).await;
        if events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::LlmCallDelta(_)))
            .count()
            >= 5
        {
            break events;
        }
        assert!(Instant::now() < deadline, "no deltas were heartbeated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        first.terminate(Duration::from_secs(60)).await,
        "the worker exited after SIGTERM"
    );
    let second = WorkerProcess::spawn(WORKER, &config);
    let result = app.result(task).await;
    second.kill().await;

    assert_eq!(result.state.status, TaskStatus::Completed);
    let log = log_of(&result);
    let first_seq = seen[0].seq;
    check_prefix(Seq(first_seq.0 - 1), &seen, &log).expect("what was heartbeated is in the log");
    assert!(
        result
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::LlmCallRetrying(_))),
        "the call was resumed on the next worker"
    );
    assert_eq!(llm_completed(&result)[0].content, counting_to(400));
    app.assert_replays(task, "llm-retry").await;
}

fn failure_kind(result: &TaskResult) -> Option<String> {
    match &result.events.last()?.kind {
        EventKind::Failed(failed) => Some(failed.error.kind.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_conversation_drops_its_oldest_turns_and_says_so() {
    let mut config = test_config();
    config.worker.limits.max_conversation_bytes = 4096;
    let app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let mut task = agentflow_client::tasks::NewTask::default();
    task.parameters.conversation = Some(true);
    task.parameters.enable_streaming = Some(false);
    let task = app.create("assistant", task).await.expect("created");
    let mut live = open(&api, task).await;
    for turn in 1..=6 {
        app.execute(task, &format!("Turn {turn}: {}", "words ".repeat(150)))
            .await
            .expect("execute");
        live.until("WorkflowTurnCompleted").await;
    }
    let (status, _) = api
        .post(&task_path(task, "/close"), &serde_json::json!({}))
        .await;
    assert_eq!(status, 202);
    let events = live.rest().await.to_vec();
    let log = dense_log(&events);
    let trims: Vec<_> = log
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ConversationTrimmed(trimmed) => Some(trimmed),
            _ => None,
        })
        .collect();
    assert!(!trims.is_empty(), "the conversation outgrew 4 KiB");
    for trimmed in &trims {
        assert!(trimmed.bytes <= 4096 && trimmed.dropped_messages >= 2);
    }
    let most_messages = log
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmCallStarted(started) => Some(started.message_count),
            _ => None,
        })
        .max()
        .unwrap();
    assert!(
        most_messages <= 4,
        "the model read {most_messages} messages"
    );
    assert_eq!(events.last().unwrap().type_name(), "WorkflowCompleted");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_larger_than_the_conversation_bound_fails_cleanly() {
    let mut config = test_config();
    config.worker.limits.max_conversation_bytes = 4096;
    let app = spawn_app_with(config, true).await;
    let task = app.run_query(&"words ".repeat(1000), false).await;
    let result = app.result(task).await;
    dense_log(&result.events);
    assert_eq!(result.state.status, TaskStatus::Failed);
    assert_eq!(failure_kind(&result).as_deref(), Some("context_limit"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_whose_log_would_outgrow_the_run_fails_with_log_limit() {
    let mut config = test_config();
    let limits = &mut config.worker.limits;
    limits.max_call_event_bytes = 2 * 1024;
    limits.max_answer_bytes = 2 * 1024;
    limits.checkpoint_bytes = 2 * 1024;
    limits.max_tool_result_bytes = 12 * 1024;
    limits.max_run_log_bytes = 14 * 1024;
    config.validate().expect("consistent limits");
    let app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let task = app.run_query("What is 2+3?", true).await;
    let received = read_with_reconnects(&api.http, &api.url(&stream_path(task)), &[2]).await;
    let result = app.result(task).await;
    let log = dense_log(&result.events);
    check_prefix(Seq(0), &received, &log).expect("the stream is the log");
    assert_eq!(received.len(), log.len());
    assert_eq!(result.state.status, TaskStatus::Failed);
    assert_eq!(failure_kind(&result).as_deref(), Some("log_limit"));
    assert!(
        !result
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ToolCallStarted(_))),
        "the tools did not run"
    );
    app.assert_replays(task, "log-limit").await;
    api.stop().await;
}
