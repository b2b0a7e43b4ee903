//! The live bus end to end: a real `nats-server -js`, a real dev server, workers and the api.
//! Every test checks what subscribers received against the task's final log with
//! `check_prefix` (and the whole length for those that stayed to the end).

use agentflow_bus::{Bus, CallSubject};
use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::ids::{Seq, TaskId};
use agentflow_shared::log::{EventLog, check_prefix};
use agentflow_tests::api::TestApi;
use agentflow_tests::harness::{dense_log, test_config};
use agentflow_tests::sse::{read, read_with_reconnects};
use agentflow_tests::{TestApp, spawn_app_with};
use serde_json::json;
use std::time::Duration;

fn stream_path(task: TaskId) -> String {
    format!("/api/v1/agents/assistant/tasks/{task}/events/stream")
}

/// Creates a streaming task through the api and returns its id (not executed yet).
async fn create(api: &TestApi) -> TaskId {
    let id = TaskId::new();
    api.create_task(
        "assistant",
        json!({"id": id.to_string(), "description": "bus", "task_parameters": {"enable_streaming": true}}),
    )
    .await;
    id
}

async fn execute(api: &TestApi, task: TaskId, query: &str) {
    let (status, body) = api
        .post(
            &format!("/api/v1/agents/assistant/tasks/{task}/execute"),
            &json!({"query": query}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

/// A bus client of the test's NATS server, ready.
async fn bus(app: &TestApp) -> Bus {
    let bus = Bus::start(&app.config.bus)
        .await
        .expect("the bus client")
        .expect("a bus is configured");
    assert!(
        bus.wait_ready(Duration::from_secs(30)).await,
        "the bus is not ready"
    );
    bus
}

/// Each LLM call of the log: its first seq and its events (through its completion).
fn calls(log: &EventLog) -> Vec<(Seq, Vec<Event>)> {
    let mut calls = Vec::new();
    let mut current: Option<(Seq, Vec<Event>)> = None;
    for event in log.events() {
        match &event.kind {
            EventKind::LlmCallStarted(_) => current = Some((event.seq, vec![event.clone()])),
            EventKind::LlmCallCompleted(_) => {
                if let Some((seq, mut events)) = current.take() {
                    events.push(event.clone());
                    calls.push((seq, events));
                }
            }
            _ => {
                if let Some((_, events)) = current.as_mut() {
                    events.push(event.clone());
                }
            }
        }
    }
    calls
}

/// `received` is the whole of `log`.
fn assert_whole(received: &[Event], log: &EventLog) {
    check_prefix(Seq(0), received, log).expect("a prefix of the final log");
    assert_eq!(
        received.len(),
        log.len(),
        "the subscriber stayed to the end"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_calls_travel_on_the_bus_and_subscribers_get_the_exact_log() {
    let app = spawn_app_with(test_config(), true).await;
    let api = app.spawn_api().await;
    let task = create(&api).await;
    let url = api.url(&stream_path(task));
    let straight = {
        let (http, url) = (api.http.clone(), url.clone());
        tokio::spawn(async move { read(&http, &url, None, usize::MAX).await })
    };
    let reconnecting = {
        let (http, url) = (api.http.clone(), url.clone());
        tokio::spawn(async move { read_with_reconnects(&http, &url, &[3, 7, 11, 19]).await })
    };
    execute(&api, task, "What is 6*7? Then count to 40.").await;
    let straight = straight.await.unwrap();
    let reconnecting = reconnecting.await.unwrap();
    let result = app.result(task).await;
    let log = dense_log(&result.events);
    assert_whole(&straight.events, &log);
    assert_whole(&reconnecting, &log);

    // Every call's events are stored on its subject, and the bus's fold of it is exactly the
    // call's part of the final log.
    let bus = bus(&app).await;
    let calls = calls(&log);
    assert!(calls.len() >= 2, "a tool call and an answer: {calls:?}");
    for (seq_base, events) in &calls {
        let read = bus
            .read_call(CallSubject {
                task,
                seq_base: *seq_base,
            })
            .await
            .expect("reading the call");
        assert_eq!(read.fold.events(), &events[..], "call at {seq_base}");
        assert_eq!(read.fold.attempt(), 1);
    }
    // The relay served the deltas from the bus.
    let (_, metrics) = api.get("/metrics").await;
    assert_eq!(metrics["bus"]["state"], "ready", "{metrics}");
    assert!(
        metrics["bus"]["counts"]["followed"].as_u64().unwrap() >= log.len() as u64 / 2,
        "{metrics}"
    );
    api.stop().await;
}
