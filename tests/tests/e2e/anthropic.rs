//! Tasks on an Anthropic model, served by a local fake Messages server: streaming and batch
//! with parallel tool use, usage with cache tokens priced apart, a retry after a mid-stream
//! `overloaded_error` with an exact log, and a cancel that closes the stream.

use agentflow_client::tasks::NewTask;
use agentflow_shared::event::{DeltaKind, EventKind};
use agentflow_shared::llm::Usage;
use agentflow_shared::task::{TaskResult, TaskStatus};
use agentflow_tests::fake_anthropic::{
    AnthropicTurn, CACHE_READ_TOKENS, CACHE_WRITE_TOKENS, FakeAnthropic, INPUT_TOKENS,
    OUTPUT_TOKENS,
};
use agentflow_tests::harness::test_config;
use agentflow_tests::logs::dense_log;
use agentflow_tests::spawn_app_with;
use serde_json::json;

fn task(query: &str, streaming: bool) -> NewTask {
    let mut task = NewTask {
        query: Some(query.into()),
        ..Default::default()
    };
    task.parameters.model = Some("claude-fake".into());
    task.parameters.enable_streaming = Some(streaming);
    task
}

fn tool_use_then_answer() -> Vec<AnthropicTurn> {
    vec![
        AnthropicTurn::ToolUse(
            "Let me compute.".into(),
            vec![
                (
                    "toolu_a".into(),
                    "calculator".into(),
                    vec![r#"{"expres"#.into(), r#"sion": "6*7"}"#.into()],
                ),
                ("toolu_b".into(), "current_time".into(), Vec::new()),
            ],
        ),
        AnthropicTurn::Text(vec!["The answer ".into(), "is 42.".into()]),
    ]
}

/// What one answer of the fake server costs at its model's prices.
fn one_call_cost(fake: &FakeAnthropic) -> f64 {
    let usage = Usage::new(
        INPUT_TOKENS + CACHE_WRITE_TOKENS + CACHE_READ_TOKENS,
        OUTPUT_TOKENS,
    )
    .with_cache(CACHE_WRITE_TOKENS, CACHE_READ_TOKENS);
    fake.model().cost_usd(usage)
}

fn check_tool_run(result: &TaskResult, fake: &FakeAnthropic) {
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
    assert_eq!(tools.len(), 2, "parallel tool use");
    assert_eq!(tools[0].result, Some(json!(42)));
    let EventKind::Completed(done) = &result.events.last().unwrap().kind else {
        panic!("not completed")
    };
    assert_eq!(done.final_response, "The answer is 42.");
    let calls: Vec<_> = result
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmCallCompleted(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 2);
    let usage = calls[0].usage;
    assert_eq!(
        usage.input_tokens,
        INPUT_TOKENS + CACHE_WRITE_TOKENS + CACHE_READ_TOKENS,
        "our input counts cache tokens too"
    );
    assert_eq!(usage.cache_creation_input_tokens, CACHE_WRITE_TOKENS);
    assert_eq!(usage.cache_read_input_tokens, CACHE_READ_TOKENS);
    assert_eq!(usage.output_tokens, OUTPUT_TOKENS, "message_delta's count");
    let cost = one_call_cost(fake);
    assert!(
        (calls[0].cost_usd - cost).abs() < 1e-12,
        "cache prices: {} vs {cost}",
        calls[0].cost_usd
    );
    assert!((done.total_cost_usd - 2.0 * cost).abs() < 1e-12);

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let (headers, first) = &requests[0];
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(first["model"], "claude-fake");
    assert_eq!(first["max_tokens"], 1024);
    assert!(first["system"][0]["text"].is_string(), "system on top");
    assert_eq!(first["system"][0]["cache_control"]["type"], "ephemeral");
    assert!(
        first["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] != "system")
    );
    let second = requests[1].1["messages"].as_array().unwrap();
    let assistant = &second[second.len() - 2];
    assert_eq!(assistant["content"][1]["type"], "tool_use");
    assert_eq!(
        assistant["content"][1]["input"],
        json!({"expression": "6*7"})
    );
    let results = second.last().unwrap()["content"].as_array().unwrap();
    assert_eq!(results.len(), 2, "every tool_use answered in one user turn");
    assert_eq!(results[0]["type"], "tool_result");
    assert_eq!(results[0]["tool_use_id"], "toolu_a");
    assert_eq!(results[0]["content"], "42");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_task_uses_tools_and_prices_cache_tokens_apart() {
    let fake = FakeAnthropic::start(tool_use_then_answer()).await;
    let mut app = spawn_app_with(fake.config(test_config()), true).await;
    let id = app
        .create("assistant", task("What is 6*7?", true))
        .await
        .unwrap();
    let result = app.result(id).await;
    check_tool_run(&result, &fake);
    let deltas: String = result
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmCallDelta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, "Let me compute.The answer is 42.");
    assert_eq!(fake.requests()[0].1["stream"], true);
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_task_uses_tools_and_prices_cache_tokens_apart() {
    let fake = FakeAnthropic::start(tool_use_then_answer()).await;
    let mut app = spawn_app_with(fake.config(test_config()), true).await;
    let id = app
        .create("assistant", task("What is 6*7?", false))
        .await
        .unwrap();
    let result = app.result(id).await;
    check_tool_run(&result, &fake);
    assert_eq!(fake.requests()[0].1["stream"], false);
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overloaded_error_mid_stream_is_retried_with_an_exact_log() {
    let fake = FakeAnthropic::start(vec![
        AnthropicTurn::Overloaded(vec!["Hel".into(), "lo".into()]),
        AnthropicTurn::Text(vec!["Hello ".into(), "again.".into()]),
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
    let deltas: Vec<&str> = result
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmCallDelta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        deltas.concat().starts_with("Hello"),
        "what the first attempt streamed stays in the log: {deltas:?}"
    );
    let EventKind::Completed(done) = &result.events.last().unwrap().kind else {
        unreachable!()
    };
    assert_eq!(done.final_response, "Hello again.");
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_mid_stream_closes_the_vendor_stream() {
    use agentflow_tests::requests::{create_idle, execute, open, post, task_path};
    let fake = FakeAnthropic::start(vec![AnthropicTurn::Endless]).await;
    let app = spawn_app_with(fake.config(test_config()), true).await;
    let api = app.spawn_api().await;
    let task = create_idle(
        &api,
        json!({"model": "claude-fake", "enable_streaming": true}),
    )
    .await;
    let mut live = open(&api, &task).await;
    execute(&api, &task, "talk forever").await;
    live.until("WorkflowLLMCallDelta").await;
    let cancelled = post(&api, &task_path(&task, "/cancel"), json!({})).await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.body);
    live.until("WorkflowCancelled").await;
    fake.stream_closed().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_is_retried_after_the_vendors_retry_after() {
    let fake = FakeAnthropic::start(vec![
        AnthropicTurn::RateLimited(2),
        AnthropicTurn::Text(vec!["Done.".into()]),
    ])
    .await;
    let mut app = spawn_app_with(fake.config(test_config()), true).await;
    let id = app.create("assistant", task("hello", true)).await.unwrap();
    let result = app.result(id).await;
    assert_eq!(result.state.status, TaskStatus::Completed);
    assert_eq!(fake.requests().len(), 2, "one retry");
    // The workflow's retry timer is the vendor's 2 s, not the 100 ms backoff of the tests'
    // config.
    let history = String::from_utf8(app.history_json(id).await).unwrap();
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    let timers: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            e["attributes"]["TimerStartedEventAttributes"]["start_to_fire_timeout"].as_str()
        })
        .collect();
    assert!(timers.contains(&"2.000000000s"), "{timers:?}");
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn thinking_streams_as_its_own_deltas_and_goes_back_verbatim_with_the_tool_results() {
    let fake = FakeAnthropic::start(vec![
        AnthropicTurn::ThinkingToolUse(
            vec!["Six times ".into(), "seven.".into()],
            "sig-abc".into(),
            (
                "toolu_t".into(),
                "calculator".into(),
                r#"{"expression": "6*7"}"#.into(),
            ),
        ),
        AnthropicTurn::Text(vec!["42.".into()]),
    ])
    .await;
    let mut config = fake.config(test_config());
    config
        .models
        .get_mut("claude-fake")
        .unwrap()
        .thinking_budget_tokens = Some(512);
    let mut app = spawn_app_with(config, true).await;
    let id = app
        .create("assistant", task("What is 6*7?", true))
        .await
        .unwrap();
    let result = app.result(id).await;
    assert_eq!(result.state.status, TaskStatus::Completed);
    dense_log(&result.events);
    let thinking: String = result
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmCallDelta(d) if d.kind == DeltaKind::Thinking => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(thinking, "Six times seven.");
    let EventKind::Completed(done) = &result.events.last().unwrap().kind else {
        unreachable!()
    };
    assert_eq!(done.final_response, "42.", "thinking is never the answer");

    let requests = fake.requests();
    assert_eq!(
        requests[0].1["thinking"],
        json!({"type": "enabled", "budget_tokens": 512})
    );
    let second = requests[1].1["messages"].as_array().unwrap();
    let assistant = &second[second.len() - 2];
    assert_eq!(
        assistant["content"][0],
        json!({"type": "thinking", "thinking": "Six times seven.", "signature": "sig-abc"}),
        "the thinking block goes back first, verbatim"
    );
    assert_eq!(assistant["content"][1]["type"], "tool_use");
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_turn_is_continued_within_the_same_call() {
    for streaming in [true, false] {
        let fake = FakeAnthropic::start(vec![
            AnthropicTurn::Paused(vec!["Working ".into(), "on it. ".into()]),
            AnthropicTurn::Text(vec!["Done.".into()]),
        ])
        .await;
        let mut app = spawn_app_with(fake.config(test_config()), true).await;
        let id = app
            .create("assistant", task("hello", streaming))
            .await
            .unwrap();
        let result = app.result(id).await;
        assert_eq!(result.state.status, TaskStatus::Completed);
        dense_log(&result.events);
        let calls: Vec<_> = result
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::LlmCallCompleted(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(calls.len(), 1, "one call, continued");
        assert_eq!(calls[0].content, "Working on it. Done.");
        assert_eq!(
            calls[0].usage.output_tokens,
            2 * OUTPUT_TOKENS,
            "both requests"
        );
        let requests = fake.requests();
        assert_eq!(requests.len(), 2);
        let messages = requests[1].1["messages"].as_array().unwrap();
        let last = messages.last().unwrap();
        assert_eq!(last["role"], "assistant");
        assert_eq!(last["content"][0]["text"], "Working on it. ");
        app.stop_worker().await;
    }
}
