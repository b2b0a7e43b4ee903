//! Killing the worker (SIGKILL) in the middle of a streaming LLM call on the heartbeat path (no
//! bus: the degraded mode): the task completes on a new worker and its final log holds every
//! event that was heartbeated before the kill. `bus.rs` has the same on the bus.

use crate::WORKER;
use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::ids::Seq;
use agentflow_shared::log::check_prefix;
use agentflow_shared::task::TaskStatus;
use agentflow_tests::harness::test_config;
use agentflow_tests::logs::dense_log;
use agentflow_tests::{WorkerProcess, spawn_app_with};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_loses_no_event_a_client_could_have_seen() {
    let mut config = test_config();
    config.bus.url.clear();
    config.models.get_mut("scripted").unwrap().token_delay_ms = 10;
    let app = spawn_app_with(config.clone(), false).await;
    let first = WorkerProcess::spawn(WORKER, &config);
    let task = app.run_query("Count to 400", true).await;

    // Wait until the pending activity has heartbeated some deltas: these are what the relay
    // would have shown to clients.
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen: Vec<Event> = loop {
        let events = app.heartbeat_events(task).await;
        let deltas = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::LlmCallDelta(_)))
            .count();
        if deltas >= 5 {
            break events;
        }
        assert!(Instant::now() < deadline, "no deltas were heartbeated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    first.kill().await;
    let seen_later = app.heartbeat_events(task).await;
    let second = WorkerProcess::spawn(WORKER, &config);
    let result = app.result(task).await;
    second.kill().await;

    assert_eq!(result.state.status, TaskStatus::Completed);
    let log = dense_log(&result.events);
    for seen in [&seen, &seen_later] {
        let after = Seq(seen[0].seq.0 - 1);
        check_prefix(after, seen, &log).expect("what was heartbeated is in the log");
    }
    let retry = result
        .events
        .iter()
        .position(|e| matches!(e.kind, EventKind::LlmCallRetrying(_)))
        .expect("the call was retried on the new worker");
    assert!(retry as u64 >= seen_later.len().max(seen.len()) as u64);
    let expected = (1..=400)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let retried_text: String = result.events[retry..]
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmCallDelta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        retried_text, expected,
        "the new attempt streams the whole answer"
    );
    let EventKind::Completed(done) = &result.events.last().unwrap().kind else {
        panic!("not completed")
    };
    assert_eq!(done.final_response, expected);
    app.assert_replays(task, "worker-killed").await;
}
