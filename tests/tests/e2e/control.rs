//! Control and human-in-the-loop end to end (real dev server, worker and api over HTTP): pause,
//! resume, cancel, approvals, budget raises, conversations across continue-as-new, and the
//! one-request stream.

use agentflow_shared::event::{Event, EventKind};
use agentflow_tests::fake_openai::{FakeOpenAi, Turn};
use agentflow_tests::harness::{slow_config, test_config};
use agentflow_tests::logs::{assert_dense, final_log};
use agentflow_tests::requests::{
    TASKS, create_idle, execute, open, post, problem, send, task_path,
};
use agentflow_tests::spawn_app_with;
use agentflow_tests::sse::Live;
use serde_json::{Value, json};

/// The index of the first event of type `name`.
fn index_of(events: &[Event], name: &str) -> usize {
    events
        .iter()
        .position(|e| e.type_name() == name)
        .unwrap_or_else(|| panic!("no {name} in the log"))
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_during_a_streaming_call_takes_effect_after_it_then_resume() {
    let mut app = spawn_app_with(slow_config(20), true).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({"enable_streaming": true})).await;
    let mut live = open(&api, &task).await;
    execute(&api, &task, "Count to 60").await;
    live.until("WorkflowLLMCallDelta").await;

    let paused = post(
        &api,
        &task_path(&task, "/pause"),
        json!({"reason": "lunch", "requested_by": "ann"}),
    )
    .await;
    assert_eq!(paused.status, 202, "{}", paused.body);
    let again = post(&api, &task_path(&task, "/pause"), json!({})).await;
    assert!(problem(&again, 409).contains("already paused"));

    let event = live.until("WorkflowPaused").await;
    let EventKind::Paused(reason) = &event.kind else {
        unreachable!()
    };
    assert_eq!(reason.reason, "lunch");
    assert_eq!(reason.requested_by.as_deref(), Some("ann"));
    let before = &live.events;
    assert_eq!(
        before[before.len() - 2].type_name(),
        "WorkflowLLMCallCompleted",
        "the pause waits for the running LLM call, then takes effect"
    );
    let (_, shown) = api.get(&task_path(&task, "")).await;
    assert_eq!(shown["status"], "paused");
    assert_eq!(shown["state"]["paused"], true);

    let resumed = send(
        &api,
        reqwest::Method::POST,
        &task_path(&task, "/resume"),
        None,
    )
    .await;
    assert_eq!(resumed.status, 202, "{}", resumed.body);
    let events = live.rest().await.to_vec();
    let paused_at = index_of(&events, "WorkflowPaused");
    assert_eq!(events[paused_at + 1].type_name(), "WorkflowResumed");
    assert_eq!(events.last().unwrap().type_name(), "WorkflowCompleted");
    assert_dense(&events);
    assert_eq!(events, final_log(&app, &task).await);

    let late = post(&api, &task_path(&task, "/resume"), json!({})).await;
    assert!(problem(&late, 409).contains("completed"));
    app.assert_replays(task.parse().unwrap(), "pause").await;
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_during_a_streaming_call_stops_the_provider_stream() {
    let fake = FakeOpenAi::start(vec![Turn::Endless]).await;
    let mut app = spawn_app_with(fake.config(test_config()), true).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({"enable_streaming": true, "model": "fake"})).await;
    let mut live = open(&api, &task).await;
    execute(&api, &task, "Talk forever").await;
    live.until("WorkflowLLMCallDelta").await;

    let cancelled = post(
        &api,
        &task_path(&task, "/cancel"),
        json!({"reason": "enough", "requested_by": "bob"}),
    )
    .await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.body);
    let events = live.rest().await.to_vec();
    tokio::time::timeout(std::time::Duration::from_secs(30), fake.stream_closed())
        .await
        .expect("the provider stream was not closed");

    let last = events.last().unwrap();
    let EventKind::Cancelled(reason) = &last.kind else {
        panic!("the log must end cancelled: {:?}", live.types())
    };
    assert_eq!(reason.reason, "enough");
    assert_eq!(reason.requested_by.as_deref(), Some("bob"));
    assert!(!live.types().contains(&"WorkflowLLMCallCompleted"));
    assert!(live.types().contains(&"WorkflowLLMCallDelta"));
    assert_dense(&events);
    assert_eq!(
        events,
        final_log(&app, &task).await,
        "partial output stays in the log"
    );
    let (_, shown) = api.get(&task_path(&task, "")).await;
    assert_eq!(shown["status"], "cancelled");

    let again = post(&api, &task_path(&task, "/cancel"), json!({})).await;
    problem(&again, 409);
    app.assert_replays(task.parse().unwrap(), "cancel").await;
    let deleted = send(&api, reqwest::Method::DELETE, &task_path(&task, ""), None).await;
    problem(&deleted, 409);
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_between_llm_attempts_keeps_the_failed_attempts_events() {
    let fake = FakeOpenAi::start(vec![
        Turn::Error(500, "overloaded".into()),
        Turn::Text(vec!["never".into()]),
    ])
    .await;
    let mut config = fake.config(test_config());
    config.worker.llm_retry_initial_ms = 60_000;
    let mut app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({"enable_streaming": true, "model": "fake"})).await;
    let mut live = open(&api, &task).await;
    execute(&api, &task, "Hello").await;
    fake.answered(1).await;
    let cancelled = post(&api, &task_path(&task, "/cancel"), json!({})).await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.body);
    let events = live.rest().await.to_vec();
    assert_eq!(
        live.types(),
        [
            "WorkflowStarted",
            "WorkflowStepStarted",
            "WorkflowLLMCallStarted",
            "WorkflowCancelled"
        ],
        "the failed attempt's event stays in the log"
    );
    assert_eq!(events, final_log(&app, &task).await);
    assert_eq!(fake.requests().len(), 1, "no attempt after the cancel");
    app.assert_replays(task.parse().unwrap(), "cancel-in-backoff")
        .await;
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_cancels_a_waiting_task_and_the_cli_can_cancel_too() {
    let mut app = spawn_app_with(test_config(), true).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({})).await;
    let mut live = open(&api, &task).await;
    let deleted = send(&api, reqwest::Method::DELETE, &task_path(&task, ""), None).await;
    assert_eq!(deleted.status, 202, "{}", deleted.body);
    let events = live.rest().await.to_vec();
    assert_eq!(
        live.types(),
        ["WorkflowCancelled"],
        "a task that never ran only ends"
    );
    assert_eq!(events, final_log(&app, &task).await);

    let other = create_idle(&api, json!({})).await;
    let mut live = open(&api, &other).await;
    let output = tokio::process::Command::new("temporal")
        .args([
            "workflow",
            "cancel",
            "--workflow-id",
            &format!("agent-task-{other}"),
            "--address",
            agentflow_tests::server::temporal_address(),
        ])
        .output()
        .await
        .expect("running the temporal CLI");
    assert!(output.status.success(), "{output:?}");
    let events = live.rest().await.to_vec();
    assert_eq!(live.types(), ["WorkflowCancelled"]);
    assert_eq!(events, final_log(&app, &other).await);
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn approvals_approve_with_edits_reject_and_decide_twice() {
    let mut app = spawn_app_with(test_config(), true).await;
    let api = app.spawn_api().await;

    let task = create_idle(
        &api,
        json!({"require_approval": ["calculator", "current_time"]}),
    )
    .await;
    let mut live = open(&api, &task).await;
    execute(&api, &task, "What is 6*7 and what time is it?").await;
    let mut requests = Vec::new();
    for _ in 0..2 {
        let requested = live.until("WorkflowApprovalRequested").await;
        let EventKind::ApprovalRequested(request) = requested.kind else {
            unreachable!()
        };
        requests.push(request);
    }
    let calculator = requests
        .iter()
        .find(|r| r.tool_name == "calculator")
        .expect("the calculator call waits");
    let clock = requests
        .iter()
        .find(|r| r.tool_name == "current_time")
        .expect("the clock call waits");
    let (_, shown) = api.get(&task_path(&task, "")).await;
    assert_eq!(shown["status"], "waiting_approval");
    assert_eq!(
        shown["state"]["pending_approvals"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let path = task_path(&task, &format!("/approvals/{}", calculator.approval_id));
    let decision = json!({"decision": "approve", "comment": "use 6*8",
        "arguments": {"expression": "6*8"}, "requested_by": "ann"});
    let first = post(&api, &path, decision.clone()).await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(
        first.body["pending_approvals"][0]["approval_id"],
        clock.approval_id.as_str(),
        "one decision is still awaited"
    );
    let retried = post(&api, &path, decision).await;
    assert_eq!(retried.status, 202, "the same decision again is idempotent");
    let different = post(&api, &path, json!({"decision": "reject"})).await;
    assert!(problem(&different, 409).contains("already decided"));
    let unknown = post(
        &api,
        &task_path(&task, "/approvals/nope"),
        json!({"decision": "approve"}),
    )
    .await;
    problem(&unknown, 404);
    let not_object = post(
        &api,
        &task_path(&task, &format!("/approvals/{}", clock.approval_id)),
        json!({"decision": "approve", "arguments": [1]}),
    )
    .await;
    problem(&not_object, 422);
    let second = post(
        &api,
        &task_path(&task, &format!("/approvals/{}", clock.approval_id)),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(second.status, 202, "{}", second.body);

    let events = live.rest().await.to_vec();
    let received: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ApprovalReceived(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(received.len(), 2, "one event per decision");
    let edited = received
        .iter()
        .find(|r| r.approval_id == calculator.approval_id)
        .unwrap();
    assert!(edited.edited);
    assert_eq!(edited.arguments, json!({"expression": "6*8"}));
    let tool = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ToolCallCompleted(t) if t.tool_name == "calculator" => Some(t),
            _ => None,
        })
        .expect("the tool ran");
    assert!(tool.success);
    assert_eq!(tool.result, Some(json!(48)));
    assert_eq!(events.last().unwrap().type_name(), "WorkflowCompleted");
    assert_eq!(events, final_log(&app, &task).await);

    let rejected = create_idle(&api, json!({"require_approval": ["*"]})).await;
    let mut live = open(&api, &rejected).await;
    execute(&api, &rejected, "What is 2+2?").await;
    let requested = live.until("WorkflowApprovalRequested").await;
    let EventKind::ApprovalRequested(request) = &requested.kind else {
        unreachable!()
    };
    // A pause asked for while a decision is awaited takes effect at the next safe point.
    let pause = post(
        &api,
        &task_path(&rejected, "/pause"),
        json!({"requested_by": "ann"}),
    )
    .await;
    assert_eq!(pause.status, 202, "{}", pause.body);
    let path = task_path(&rejected, &format!("/approvals/{}", request.approval_id));
    let no = post(
        &api,
        &path,
        json!({"decision": "reject", "comment": "not now"}),
    )
    .await;
    assert_eq!(no.status, 202, "{}", no.body);
    live.until("WorkflowPaused").await;
    let (_, shown) = api.get(&task_path(&rejected, "")).await;
    assert_eq!(shown["status"], "paused");
    let resume = post(&api, &task_path(&rejected, "/resume"), json!({})).await;
    assert_eq!(resume.status, 202, "{}", resume.body);
    let events = live.rest().await.to_vec();
    let order: Vec<usize> = [
        "WorkflowApprovalReceived",
        "WorkflowToolCallCompleted",
        "WorkflowPaused",
        "WorkflowResumed",
        "WorkflowCompleted",
    ]
    .iter()
    .map(|name| index_of(&events, name))
    .collect();
    assert!(order.is_sorted(), "{order:?}");
    let tool = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ToolCallCompleted(t) => Some(t),
            _ => None,
        })
        .expect("the rejected call has a result");
    assert!(!tool.success);
    assert!(tool.error.as_deref().unwrap().contains("not now"));
    let answer = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Completed(c) => Some(c.final_response.clone()),
            _ => None,
        })
        .expect("the model answers after a rejection");
    assert!(answer.contains("not now"), "{answer}");
    assert_eq!(events, final_log(&app, &rejected).await);
    app.assert_replays(task.parse().unwrap(), "approvals").await;
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn budget_pause_then_raise() {
    let mut app = spawn_app_with(test_config(), true).await;
    let api = app.spawn_api().await;
    let task = create_idle(
        &api,
        json!({"budget_usd": 0.000001, "on_budget_exceeded": "pause"}),
    )
    .await;
    let mut live = open(&api, &task).await;
    execute(&api, &task, "What is 6*7?").await;
    live.until("WorkflowBudgetExceeded").await;
    let paused = live.until("WorkflowPaused").await;
    let EventKind::Paused(reason) = &paused.kind else {
        unreachable!()
    };
    assert_eq!(reason.reason, "budget");

    let resume = post(&api, &task_path(&task, "/resume"), json!({})).await;
    assert!(problem(&resume, 409).contains("budget"));
    let lower = post(
        &api,
        &task_path(&task, "/budget"),
        json!({"budget_usd": 0.0000001}),
    )
    .await;
    problem(&lower, 422);
    let raised = post(
        &api,
        &task_path(&task, "/budget"),
        json!({"budget_usd": 5.0, "requested_by": "ann"}),
    )
    .await;
    assert_eq!(raised.status, 202, "{}", raised.body);

    let events = live.rest().await.to_vec();
    let paused_at = index_of(&events, "WorkflowPaused");
    assert_eq!(events[paused_at + 1].type_name(), "WorkflowBudgetRaised");
    assert_eq!(events[paused_at + 2].type_name(), "WorkflowResumed");
    assert_eq!(events.last().unwrap().type_name(), "WorkflowCompleted");
    assert_eq!(events, final_log(&app, &task).await);
    let result = app.result(task.parse().unwrap()).await;
    assert_eq!(result.state.budget_limit_usd, 5.0);
    app.assert_replays(task.parse().unwrap(), "budget").await;
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_300_turn_conversation_continues_as_new_with_a_whole_log() {
    let mut config = test_config();
    config.worker.max_events_per_run = 200;
    let mut app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let task = create_idle(
        &api,
        json!({"conversation": true, "enable_streaming": false, "model": "scripted-fast",
            "budget_usd": 100.0}),
    )
    .await;
    let mut live = open(&api, &task).await;
    for turn in 1..=300u32 {
        execute(&api, &task, &format!("Turn {turn}: hello")).await;
        let event = live.until("WorkflowTurnCompleted").await;
        let EventKind::TurnCompleted(done) = &event.kind else {
            unreachable!()
        };
        assert_eq!(done.turn, turn);
    }
    let closed = post(&api, &task_path(&task, "/close"), json!({})).await;
    assert_eq!(closed.status, 202, "{}", closed.body);
    let events = live.rest().await.to_vec();
    assert_dense(&events);
    assert_eq!(events.last().unwrap().type_name(), "WorkflowCompleted");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.type_name() == "WorkflowTurnCompleted")
            .count(),
        300
    );

    let result = app.result(task.parse().unwrap()).await;
    assert!(
        result.state.first_seq.0 > 1,
        "the conversation continued as new"
    );
    assert_eq!(result.state.turn, 300);
    app.assert_replays(task.parse().unwrap(), "conversation")
        .await;
    assert_eq!(
        result.events,
        events[result.state.first_seq.0 as usize - 1..],
        "the last run holds the log's tail"
    );

    let fresh = app.spawn_api().await;
    let mut replayed = open(&fresh, &task).await;
    assert_eq!(
        replayed.rest().await,
        &events[..],
        "a new api serves the whole log"
    );
    let mut paged = Vec::new();
    loop {
        let (status, page) = fresh
            .get(&format!(
                "{}?after={}&limit=1000",
                task_path(&task, "/events"),
                paged.len()
            ))
            .await;
        assert_eq!(status, 200);
        let batch: Vec<Event> = serde_json::from_value(page["events"].clone()).unwrap();
        paged.extend(batch);
        if page["has_more"] == false {
            break;
        }
    }
    assert_eq!(paged, events, "…/events pages through every run");
    fresh.stop().await;
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_request_streaming_with_both_disconnect_policies() {
    let mut app = spawn_app_with(slow_config(20), true).await;
    let api = app.spawn_api().await;
    let stream_url = api.url(&format!("{TASKS}/stream"));

    let response = api
        .http
        .post(&stream_url)
        .json(&json!({"query": "What is 6*7?", "enable_streaming": true}))
        .send()
        .await
        .unwrap();
    let mut live = Live::from_response(response);
    let task = live.headers["x-task-id"].to_str().unwrap().to_owned();
    let events = live.rest().await.to_vec();
    assert_dense(&events);
    assert_eq!(events.last().unwrap().type_name(), "WorkflowCompleted");
    assert_eq!(events, final_log(&app, &task).await);
    let mut again = open(&api, &task).await;
    assert_eq!(again.rest().await, &events[..], "same events as GET stream");

    for (policy, status) in [("continue", "completed"), ("cancel", "cancelled")] {
        let response = api
            .http
            .post(&stream_url)
            .json(&json!({"query": "Count to 80", "enable_streaming": true,
                "on_disconnect": policy}))
            .send()
            .await
            .unwrap();
        let mut live = Live::from_response(response);
        let task = live.headers["x-task-id"].to_str().unwrap().to_owned();
        live.until("WorkflowLLMCallDelta").await;
        drop(live);
        let result = app.result(task.parse().unwrap()).await;
        assert_eq!(
            result.state.status.as_str(),
            status,
            "on_disconnect {policy}"
        );
    }

    let empty = post(&api, &format!("{TASKS}/stream"), json!({"query": " "})).await;
    problem(&empty, 422);
    let policy = post(
        &api,
        &format!("{TASKS}/stream"),
        json!({"query": "hi", "on_disconnect": "explode"}),
    )
    .await;
    problem(&policy, 422);
    let conversation = post(
        &api,
        &format!("{TASKS}/stream"),
        json!({"query": "hi", "task_parameters": {"conversation": true}}),
    )
    .await;
    problem(&conversation, 422);
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_invalid_transition_answers_409_problem_json() {
    let mut app = spawn_app_with(test_config(), true).await;
    let api = app.spawn_api().await;

    let idle = create_idle(&api, json!({})).await;
    let pause = post(&api, &task_path(&idle, "/pause"), json!({})).await;
    assert!(problem(&pause, 409).contains("not running"));
    let resume = post(&api, &task_path(&idle, "/resume"), json!({})).await;
    assert!(problem(&resume, 409).contains("not paused"));
    let close = post(&api, &task_path(&idle, "/close"), json!({})).await;
    assert!(problem(&close, 409).contains("not a conversation"));
    let fresh = create_idle(&api, json!({"conversation": true})).await;
    let unused = post(&api, &task_path(&fresh, "/close"), json!({})).await;
    assert!(problem(&unused, 409).contains("no turn yet"));
    let approval = post(
        &api,
        &task_path(&idle, "/approvals/s1c1"),
        json!({"decision": "approve"}),
    )
    .await;
    problem(&approval, 404);
    let bad_budget = post(
        &api,
        &task_path(&idle, "/budget"),
        json!({"budget_usd": -1}),
    )
    .await;
    problem(&bad_budget, 422);
    let unknown_field = post(&api, &task_path(&idle, "/pause"), json!({"why": "x"})).await;
    problem(&unknown_field, 422);
    let bad_json = api
        .http
        .post(api.url(&task_path(&idle, "/pause")))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status().as_u16(), 400);
    let bad_decision = post(
        &api,
        &task_path(&idle, "/approvals/s1c1"),
        json!({"decision": "maybe"}),
    )
    .await;
    problem(&bad_decision, 422);
    let no_task = post(&api, &task_path(uuid::Uuid::new_v4(), "/pause"), json!({})).await;
    problem(&no_task, 404);

    let conversation = create_idle(&api, json!({"conversation": true})).await;
    let mut live = open(&api, &conversation).await;
    execute(&api, &conversation, "Hello").await;
    live.until("WorkflowTurnCompleted").await;
    let closed = post(&api, &task_path(&conversation, "/close"), json!({})).await;
    assert_eq!(closed.status, 202, "{}", closed.body);
    live.rest().await;
    assert_eq!(live.types().last(), Some(&"WorkflowCompleted"));

    for (path, body) in [
        ("/pause", json!({})),
        ("/resume", json!({})),
        ("/cancel", json!({})),
        ("/close", json!({})),
        ("/budget", json!({"budget_usd": 9.0})),
        ("/approvals/s1c1", json!({"decision": "approve"})),
        ("/execute", json!({"query": "again"})),
    ] {
        let answer = post(&api, &task_path(&conversation, path), body).await;
        assert!(
            problem(&answer, 409).contains("completed"),
            "{path} on a finished task"
        );
    }
    let deleted = send(
        &api,
        reqwest::Method::DELETE,
        &task_path(&conversation, ""),
        None,
    )
    .await;
    problem(&deleted, 409);
    api.stop().await;
    app.stop_worker().await;
}

/// Runs `temporal workflow update execute` on the task; returns whether it succeeded and what
/// it printed.
async fn cli_update(task: &str, name: &str, input: Value) -> (bool, String) {
    let output = tokio::process::Command::new("temporal")
        .args(["workflow", "update", "execute", "--workflow-id"])
        .arg(format!("agent-task-{task}"))
        .args(["--name", name, "--input", &input.to_string(), "--address"])
        .arg(agentflow_tests::server::temporal_address())
        .output()
        .await
        .expect("running the temporal CLI");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_temporal_cli_drives_the_controls() {
    let mut app = spawn_app_with(test_config(), true).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({"require_approval": ["calculator"]})).await;
    let mut live = open(&api, &task).await;

    let (ok, printed) = cli_update(&task, "execute", json!({"query": "What is 6*7?"})).await;
    assert!(ok, "{printed}");
    let requested = live.until("WorkflowApprovalRequested").await;
    let EventKind::ApprovalRequested(request) = requested.kind else {
        unreachable!()
    };
    let (ok, printed) = cli_update(&task, "resume", json!({})).await;
    assert!(!ok, "a task waiting for approval is not paused");
    assert!(printed.contains("not paused"), "{printed}");
    let (ok, printed) = cli_update(
        &task,
        "decide_approval",
        json!({"approval_id": request.approval_id, "decision": "approve", "requested_by": "cli"}),
    )
    .await;
    assert!(ok, "{printed}");
    let events = live.rest().await.to_vec();
    let received = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ApprovalReceived(r) => Some(r),
            _ => None,
        })
        .expect("the CLI's decision is an event");
    assert_eq!(received.requested_by.as_deref(), Some("cli"));
    assert_eq!(events.last().unwrap().type_name(), "WorkflowCompleted");

    let (ok, printed) = cli_update(&task, "raise_budget", json!({"budget_usd": 3.0})).await;
    assert!(!ok && printed.contains("completed"), "{printed}");
    api.stop().await;
    app.stop_worker().await;
}
