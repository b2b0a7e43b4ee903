//! Against a dev server whose payload limit is lowered to 60 KB (and `[worker.limits]` lowered
//! to match): a generation far past it ends truncated with an exact log — never a heartbeat or
//! result over the limit, a lost event, or a terminal event at a seq a client already holds;
//! a conversation whose runs' logs outgrow the limit is served whole.

use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::ids::Seq;
use agentflow_shared::ids::TaskId;
use agentflow_shared::llm::FinishReason;
use agentflow_shared::log::{EventLog, check_prefix};
use agentflow_shared::task::TaskStatus;
use agentflow_tests::harness::test_config;
use agentflow_tests::logs::dense_log;
use agentflow_tests::requests::{create_idle, open, stream_path, task_path};
use agentflow_tests::sse::read_with_reconnects;
use agentflow_tests::{DevServer, spawn_app_on};
use serde_json::json;

/// A dev server of the test's own whose payload limit is lowered to 60 KB.
fn lowered_server() -> DevServer {
    DevServer::start(&["--dynamic-config-value", "limit.blobSize.error=60000"])
}

/// The test config with `[worker.limits]` lowered to the dev server's 60 KB payload limit.
fn lowered(max_run_log_bytes: usize) -> AgentflowConfig {
    let mut config = test_config();
    let limits = &mut config.worker.limits;
    limits.payload_limit_bytes = 60_000;
    limits.max_call_event_bytes = 16 * 1024;
    limits.max_answer_bytes = 16 * 1024;
    limits.checkpoint_bytes = 16 * 1024;
    limits.max_run_log_bytes = max_run_log_bytes;
    limits.max_conversation_bytes = 8 * 1024;
    limits.max_tool_result_bytes = 4 * 1024;
    limits.max_handed_event_bytes = 4 * 1024;
    config
        .validate()
        .expect("limits that fit the lowered payload limit");
    config
}

async fn count_to_5000(streaming: bool) {
    let server = lowered_server();
    let config = lowered(32 * 1024);
    let app = spawn_app_on(server.address(), config.clone(), true).await;
    let api = app.spawn_api().await;
    let task = app.run_query("Count to 5000", streaming).await;
    let url = api.url(&stream_path(task));
    let received: Vec<Event> = read_with_reconnects(&api.http, &url, &[2, 10, 30]).await;
    let result = app.result(task).await;

    assert_eq!(result.state.status, TaskStatus::Completed);
    let log = EventLog::from_events(Seq::first(), result.events.clone()).expect("a dense log");
    check_prefix(Seq(0), &received, &log).expect("the stream is the log");
    assert_eq!(received.len(), log.len());
    let done = result
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::LlmCallCompleted(done) => Some(done),
            _ => None,
        })
        .expect("the call completed");
    assert_eq!(done.finish_reason, FinishReason::Length);
    assert!(!done.content.is_empty());
    assert!(
        !result
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::LlmCallRetrying(_))),
        "no attempt failed on a payload limit"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_generation_past_a_lowered_payload_limit_is_truncated_exactly() {
    count_to_5000(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_generation_past_a_lowered_payload_limit_is_truncated_exactly() {
    count_to_5000(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_whose_run_logs_outgrow_the_payload_limit_is_served_whole() {
    // Runs may hold more log than one payload: it then rides in neither the workflow result nor
    // the input of the next run, and is read from the run itself.
    let server = lowered_server();
    let app = spawn_app_on(server.address(), lowered(200 * 1024), true).await;
    let api = app.spawn_api().await;
    let task: TaskId = create_idle(
        &api,
        json!({"conversation": true, "enable_streaming": false, "model": "scripted-fast",
            "budget_usd": 100.0}),
    )
    .await
    .parse()
    .unwrap();
    let mut live = open(&api, task).await;
    let mut continued_at = None;
    for turn in 1..=40u32 {
        let (status, body) = api
            .post(
                &task_path(task, "/execute"),
                &json!({"query": "Count to 5000"}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        live.until("WorkflowTurnCompleted").await;
        if continued_at.is_none() {
            let (_, view) = api.get(&task_path(task, "")).await;
            if view["state"]["first_seq"].as_u64() > Some(1) {
                continued_at = Some(turn);
            }
        }
        // Five more turns: the last run's log is past the payload limit too.
        if continued_at.is_some_and(|at| turn >= at + 5) {
            break;
        }
    }
    assert!(continued_at.is_some(), "the conversation continued as new");
    let (status, body) = api.post(&task_path(task, "/close"), &json!({})).await;
    assert_eq!(status, 202, "{body}");
    let events = live.rest().await.to_vec();
    let log = dense_log(&events);
    assert!(matches!(
        log.events().last().unwrap().kind,
        EventKind::Completed(_)
    ));

    let result = app.result(task).await;
    assert!(result.state.first_seq.0 > 1);
    assert!(
        !result.events_included,
        "the last run's log is not in its result"
    );
    let fresh = app.spawn_api().await;
    let mut replayed = open(&fresh, task).await;
    assert_eq!(
        replayed.rest().await,
        &events[..],
        "a new api streams the whole log"
    );
    assert_eq!(
        fresh.paged_events(&task_path(task, "")).await,
        events,
        "and pages it"
    );
    fresh.stop().await;
    api.stop().await;
}
