//! Against a dev server whose payload limit is lowered to 60 KB (and `[worker.limits]` lowered
//! to match): a generation far past it ends truncated with an exact log — never a heartbeat or
//! result over the limit, a lost event, or a terminal event at a seq a client already holds.

use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::ids::Seq;
use agentflow_shared::llm::FinishReason;
use agentflow_shared::log::{EventLog, check_prefix};
use agentflow_shared::task::TaskStatus;
use agentflow_tests::harness::test_config;
use agentflow_tests::server::dev_server_args;
use agentflow_tests::spawn_app_with;
use agentflow_tests::sse::read_with_reconnects;

async fn count_to_5000(streaming: bool) {
    dev_server_args(&["--dynamic-config-value", "limit.blobSize.error=60000"]);
    let mut config = test_config();
    let limits = &mut config.worker.limits;
    limits.payload_limit_bytes = 60_000;
    limits.max_call_event_bytes = 16 * 1024;
    limits.max_run_log_bytes = 32 * 1024;
    limits.max_conversation_bytes = 8 * 1024;
    limits.max_tool_result_bytes = 4 * 1024;
    config
        .validate()
        .expect("limits that fit the lowered payload limit");
    let app = spawn_app_with(config.clone(), true).await;
    let api = app.spawn_api().await;
    let task = app.run_query("Count to 5000", streaming).await;
    let url = api.url(&format!(
        "/api/v1/agents/assistant/tasks/{task}/events/stream"
    ));
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
