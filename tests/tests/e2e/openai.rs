//! Tasks on an OpenAI-compatible model, served by a local fake Chat Completions server.

use agentflow_client::tasks::NewTask;
use agentflow_shared::event::EventKind;
use agentflow_shared::task::TaskStatus;
use agentflow_tests::fake_openai::{FakeOpenAi, Turn};
use agentflow_tests::harness::test_config;
use agentflow_tests::logs::{dense_log, types};
use agentflow_tests::spawn_app_with;
use serde_json::json;

fn task(query: &str, streaming: bool) -> NewTask {
    let mut task = NewTask {
        query: Some(query.into()),
        ..Default::default()
    };
    task.parameters.model = Some("fake".into());
    task.parameters.enable_streaming = Some(streaming);
    task
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_tool_calls_and_text_from_an_openai_compatible_server() {
    let fake = FakeOpenAi::start(vec![
        Turn::ToolCalls(vec![
            (
                "call_a".into(),
                "calculator".into(),
                r#"{"expression": "6*7"}"#.into(),
            ),
            ("call_b".into(), "current_time".into(), "{}".into()),
        ]),
        Turn::Text(vec!["The answer ".into(), "is ".into(), "42.".into()]),
    ])
    .await;
    let mut app = spawn_app_with(fake.config(test_config()), true).await;
    let id = app
        .create("assistant", task("What is 6*7?", true))
        .await
        .unwrap();
    let result = app.result(id).await;

    assert_eq!(
        result.state.status,
        TaskStatus::Completed,
        "{:#?}",
        result.events
    );
    dense_log(&result.events);
    let tools: Vec<_> = result
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolCallCompleted(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0].result, Some(json!(42)));
    assert!(tools[1].success);
    let deltas: String = result
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmCallDelta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, "The answer is 42.");
    let EventKind::Completed(done) = &result.events.last().unwrap().kind else {
        panic!("not completed")
    };
    assert_eq!(done.final_response, "The answer is 42.");
    assert_eq!(done.usage.total_tokens, 30, "usage chunks of both calls");

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["model"], "gpt-fake");
    assert_eq!(requests[0]["stream"], true);
    assert_eq!(requests[0]["stream_options"]["include_usage"], true);
    assert_eq!(requests[0]["tools"][0]["function"]["name"], "calculator");
    let second = requests[1]["messages"].as_array().unwrap();
    let tool_messages: Vec<_> = second.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(tool_messages.len(), 2);
    assert_eq!(tool_messages[0]["tool_call_id"], "call_a");
    assert_eq!(tool_messages[0]["content"], "42");
    let assistant = second.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(
        assistant["tool_calls"][0]["function"]["arguments"],
        r#"{"expression":"6*7"}"#
    );
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_error_fails_the_task_at_once_with_the_vendor_message() {
    let fake = FakeOpenAi::start(vec![Turn::Error(
        400,
        "Invalid model 'gpt-fake': the model does not exist".into(),
    )])
    .await;
    let mut app = spawn_app_with(fake.config(test_config()), true).await;
    let id = app.create("assistant", task("hello", false)).await.unwrap();
    let result = app.result(id).await;
    assert_eq!(
        types(&result.events),
        [
            "WorkflowStarted",
            "WorkflowStepStarted",
            "WorkflowLLMCallStarted",
            "WorkflowFailed"
        ]
    );
    let EventKind::Failed(failed) = &result.events[3].kind else {
        unreachable!()
    };
    assert_eq!(failed.error.kind, "llm_error");
    assert!(
        failed.error.message.contains("the model does not exist"),
        "{failed:?}"
    );
    assert!(failed.error.message.contains("400"));
    assert!(!failed.retryable);
    assert_eq!(fake.requests().len(), 1, "a 4xx is not retried");
    assert_eq!(result.state.status, TaskStatus::Failed);
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_error_is_retried_and_the_log_stays_dense() {
    let fake = FakeOpenAi::start(vec![
        Turn::Error(503, "overloaded".into()),
        Turn::Text(vec!["Fine ".into(), "now.".into()]),
    ])
    .await;
    let mut app = spawn_app_with(fake.config(test_config()), true).await;
    let id = app.create("assistant", task("hello", true)).await.unwrap();
    let result = app.result(id).await;
    assert_eq!(result.state.status, TaskStatus::Completed);
    assert_eq!(fake.requests().len(), 2, "one retry");
    dense_log(&result.events);
    let completed = result
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LlmCallCompleted(_)))
        .count();
    assert_eq!(completed, 1);
    let EventKind::Completed(done) = &result.events.last().unwrap().kind else {
        unreachable!()
    };
    assert_eq!(done.final_response, "Fine now.");
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_longer_than_the_request_timeout_completes_while_it_keeps_sending() {
    // 25 chunks 100 ms apart: 2.5 s of streaming against a 1 s request timeout, which bounds
    // the model's silences, not the whole stream.
    let chunks: Vec<String> = (0..25).map(|i| format!("w{i} ")).collect();
    let fake = FakeOpenAi::start(vec![Turn::Paced(
        chunks.clone(),
        std::time::Duration::from_millis(100),
    )])
    .await;
    let mut config = fake.config(test_config());
    config.models.get_mut("fake").unwrap().request_timeout_secs = 1;
    let mut app = spawn_app_with(config, true).await;
    let id = app.create("assistant", task("hello", true)).await.unwrap();
    let result = app.result(id).await;
    assert_eq!(result.state.status, TaskStatus::Completed);
    assert_eq!(fake.requests().len(), 1, "no retry");
    let EventKind::Completed(done) = &result.events.last().unwrap().kind else {
        unreachable!()
    };
    assert_eq!(done.final_response, chunks.concat());
    app.stop_worker().await;
}
