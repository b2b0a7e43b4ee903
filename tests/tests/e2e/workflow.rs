//! The agent workflow end to end on a real dev server with a real worker: batch and streaming
//! runs, tools, budget, `execute` validation, the idle timeout, and the replay of every history.

use agentflow_client::tasks::NewTask;
use agentflow_shared::config::ModelConfig;
use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::ids::Seq;
use agentflow_shared::llm::{ChatMessage, Role};
use agentflow_shared::task::TaskStatus;
use agentflow_tests::harness::{replayer, test_config};
use agentflow_tests::logs::{assert_dense, types};
use agentflow_tests::{TestApp, spawn_app, spawn_app_with};
use agentflow_worker::llm::{LlmRequest, scripted_response};
use serde_json::json;
use temporalio_client::WorkflowHistory;

fn final_response(events: &[Event]) -> String {
    match &events.last().expect("a log").kind {
        EventKind::Completed(done) => done.final_response.clone(),
        other => panic!("expected WorkflowCompleted last, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_mode_runs_to_completion_with_the_expected_events() {
    let mut app = spawn_app().await;
    let task = app.run_query("Tell me about durable agents", false).await;
    let result = app.result(task).await;

    assert_eq!(
        types(&result.events),
        [
            "WorkflowStarted",
            "WorkflowStepStarted",
            "WorkflowLLMCallStarted",
            "WorkflowLLMCallCompleted",
            "WorkflowStepCompleted",
            "WorkflowCompleted",
        ]
    );
    assert_dense(&result.events);
    assert_eq!(result.state.status, TaskStatus::Completed);
    let response = final_response(&result.events);
    assert!(response.contains("durable agents"));
    assert_eq!(result.state.final_response.as_deref(), Some(&*response));
    assert_eq!(
        app.events(task, 2).await,
        result.events,
        "paged query = result log"
    );
    let state = app.state(task).await;
    assert_eq!(state.status, TaskStatus::Completed);
    assert_eq!(state.last_seq, Seq(6));
    app.assert_replays(task, "batch").await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_mode_adds_deltas_that_add_up_to_the_answer() {
    let mut app = spawn_app().await;
    let task = app.run_query("Count to 60", true).await;
    let result = app.result(task).await;
    assert_dense(&result.events);

    let kinds = types(&result.events);
    assert_eq!(
        &kinds[..3],
        [
            "WorkflowStarted",
            "WorkflowStepStarted",
            "WorkflowLLMCallStarted"
        ]
    );
    assert_eq!(
        &kinds[kinds.len() - 3..],
        [
            "WorkflowLLMCallCompleted",
            "WorkflowStepCompleted",
            "WorkflowCompleted"
        ]
    );
    let deltas: Vec<_> = result
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LlmCallDelta(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert!(
        deltas.len() >= 3,
        "coalesced into several deltas, got {}",
        deltas.len()
    );
    assert_eq!(
        kinds[3..kinds.len() - 3].len(),
        deltas.len(),
        "only deltas in between"
    );
    let indices: Vec<u32> = deltas.iter().map(|d| d.chunk_index).collect();
    assert_eq!(indices, (0..deltas.len() as u32).collect::<Vec<_>>());
    let expected = (1..=60)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        deltas.iter().map(|d| d.text.as_str()).collect::<String>(),
        expected
    );
    assert_eq!(final_response(&result.events), expected);
    let EventKind::Started(started) = &result.events[0].kind else {
        unreachable!()
    };
    assert_eq!(started.mode, agentflow_shared::event::Mode::Streaming);
    app.assert_replays(task, "streaming").await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_calls_run_in_parallel_and_feed_the_answer() {
    let mut app = spawn_app().await;
    let task = app
        .run_query("What is (2+3)*4, and what time is it?", false)
        .await;
    let result = app.result(task).await;
    assert_dense(&result.events);
    assert_eq!(
        types(&result.events),
        [
            "WorkflowStarted",
            "WorkflowStepStarted",
            "WorkflowLLMCallStarted",
            "WorkflowLLMCallCompleted",
            "WorkflowToolCallStarted",
            "WorkflowToolCallStarted",
            "WorkflowToolCallCompleted",
            "WorkflowToolCallCompleted",
            "WorkflowStepCompleted",
            "WorkflowStepStarted",
            "WorkflowLLMCallStarted",
            "WorkflowLLMCallCompleted",
            "WorkflowStepCompleted",
            "WorkflowCompleted",
        ]
    );
    let EventKind::ToolCallCompleted(calc) = &result.events[6].kind else {
        unreachable!()
    };
    assert_eq!(
        (calc.tool_name.as_str(), calc.success),
        ("calculator", true)
    );
    assert_eq!(calc.result, Some(json!(20)));
    let EventKind::ToolCallCompleted(clock) = &result.events[7].kind else {
        unreachable!()
    };
    assert_eq!(clock.tool_name, "current_time");
    assert!(clock.result.as_ref().unwrap()["utc"].is_string());
    assert!(final_response(&result.events).contains("20"));
    assert_eq!(result.events[9].step, 2);
    assert_eq!(result.state.step, 2);
    app.assert_replays(task, "tools").await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_expression_is_a_failed_tool_result_fed_back_to_the_model() {
    let mut app = spawn_app().await;
    let task = app.run_query("What is 4 / 0?", false).await;
    let result = app.result(task).await;
    let failed = result
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ToolCallCompleted(t) => Some(t.clone()),
            _ => None,
        })
        .expect("a tool call");
    assert!(!failed.success);
    assert_eq!(failed.error.as_deref(), Some("division by zero"));
    assert!(final_response(&result.events).contains("division by zero"));
    assert_eq!(result.state.status, TaskStatus::Completed);
    app.stop_worker().await;
}

/// The cost of the scripted model's first answer to `query` with the default instructions.
fn first_call_cost(app: &TestApp, query: &str) -> f64 {
    let agent = &app.config.agents["assistant"];
    let model: &ModelConfig = &app.config.models["scripted"];
    let response = scripted_response(&LlmRequest {
        model: "scripted".into(),
        messages: vec![
            ChatMessage::text(Role::System, agent.instructions.clone()),
            ChatMessage::text(Role::User, query),
        ],
        tools: Vec::new(),
        stream: false,
    });
    model.cost_usd(response.usage)
}

#[tokio::test(flavor = "multi_thread")]
async fn budget_warning_then_budget_exceeded() {
    let mut app = spawn_app().await;
    let query = "Summarise the design";
    let cost = first_call_cost(&app, query);

    let mut warned = NewTask {
        query: Some(query.into()),
        ..Default::default()
    };
    warned.parameters.budget_usd = Some(cost / 0.9);
    let task = app.create("assistant", warned).await.unwrap();
    let result = app.result(task).await;
    let warning = result
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::BudgetWarning(w) => Some(w.clone()),
            _ => None,
        })
        .expect("a budget warning at 90 %");
    assert!((warning.usage_pct - 90.0).abs() < 0.01, "{warning:?}");
    assert_eq!(result.state.status, TaskStatus::Completed);

    let mut exceeded = NewTask {
        query: Some(query.into()),
        ..Default::default()
    };
    exceeded.parameters.budget_usd = Some(cost / 2.0);
    let task = app.create("assistant", exceeded).await.unwrap();
    let result = app.result(task).await;
    let kinds = types(&result.events);
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["WorkflowBudgetExceeded", "WorkflowFailed"]
    );
    let EventKind::Failed(failed) = &result.events.last().unwrap().kind else {
        unreachable!()
    };
    assert_eq!(failed.error.kind, "budget_exceeded");
    assert!(!failed.retryable);
    assert_eq!(result.state.status, TaskStatus::Failed);
    assert_dense(&result.events);
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn execute_is_validated_and_runs_a_created_task() {
    let mut app = spawn_app().await;
    let task = app.create("assistant", NewTask::default()).await.unwrap();
    assert_eq!(app.state(task).await.status, TaskStatus::Created);

    let empty = app.execute(task, "   ").await.unwrap_err();
    assert!(
        format!("{empty:?}").contains("must not be empty"),
        "{empty:?}"
    );

    let accepted = app.execute(task, "Count to 200").await.unwrap();
    assert_eq!(accepted.task_id, task);
    let again = app.execute(task, "Count to 3").await.unwrap_err();
    assert!(
        format!("{again:?}").contains("already running"),
        "{again:?}"
    );

    let result = app.result(task).await;
    assert_eq!(result.state.status, TaskStatus::Completed);
    let after = app.execute(task, "Count to 3").await.unwrap_err();
    assert!(
        format!("{after:?}").contains("already completed"),
        "{after:?}"
    );
    assert_eq!(
        app.result(task).await.events,
        result.events,
        "rejected updates add nothing"
    );
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_task_ends_after_the_idle_timeout() {
    let mut config = test_config();
    config.worker.idle_timeout_secs = 1;
    let mut app = spawn_app_with(config, true).await;
    let task = app.create("assistant", NewTask::default()).await.unwrap();
    let result = app.result(task).await;
    assert_eq!(types(&result.events), ["WorkflowCancelled"]);
    let EventKind::Cancelled(reason) = &result.events[0].kind else {
        unreachable!()
    };
    assert!(reason.reason.contains("idle timeout"));
    assert_eq!(result.state.status, TaskStatus::Cancelled);
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recorded_histories_replay_with_the_current_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/histories");
    let mut histories = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            histories.push(WorkflowHistory::from_json(&std::fs::read(&path).unwrap()).unwrap());
        }
    }
    assert!(
        histories.len() >= 3,
        "recorded histories in {}",
        dir.display()
    );
    let count = histories.len();
    let results = replayer().replay_workflows(histories).await.unwrap();
    assert_eq!(results.len(), count);
    for result in results {
        assert!(
            result.replay_failure.is_none(),
            "{:?} does not replay: {:?}",
            result.history.workflow_id(),
            result.replay_failure
        );
    }
}
