//! Teams: the shipped duo `scribe` (Plume and Mimir, routed by name) and pipeline `newsroom`
//! (planner → researcher → writer → critic, a checkpoint before the writer), on their scripted
//! models — every routing case, a discussion to its stop phrase, the critic's loop back, a
//! checkpoint approved with an edit and one rejected, budgets, pause and cancel between member
//! turns, a worker killed mid-turn, a conversation across turns, and the log over reconnects.

use crate::WORKER;
use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::task::TaskStatus;
use agentflow_tests::api::TestApi;
use agentflow_tests::harness::{TestApp, WorkerProcess, spawn_app_with, test_config};
use agentflow_tests::requests::{post, problem};
use agentflow_tests::sse::{Live, read_with_reconnects};
use serde_json::{Value, json};

/// The test config, with the team members' scripted models streaming every `delay_ms`.
fn team_config(delay_ms: u64) -> AgentflowConfig {
    let mut config = test_config();
    for (name, model) in config.models.iter_mut() {
        if name.starts_with("scripted-") && !model.script.is_empty() {
            model.token_delay_ms = delay_ms;
        }
    }
    config
}

/// The path of `team`'s task `task`, then `action`.
fn path(team: &str, task: &str, action: &str) -> String {
    format!("/api/v1/agents/{team}/tasks/{task}{action}")
}

/// Creates a task of `team` with this body (a description added); returns its id.
async fn create(api: &TestApi, team: &str, mut body: Value) -> String {
    body["description"] = json!("a team test");
    let task = api.create_task(team, body).await;
    task["id"].as_str().expect("an id").to_owned()
}

/// Opens the task's stream from its start.
async fn open(api: &TestApi, team: &str, task: &str) -> Live {
    Live::open(&api.http, &api.url(&path(team, task, "/events/stream"))).await
}

/// Runs `query` on `team` to the end (with these task parameters); returns the log as
/// streamed.
async fn run(api: &TestApi, team: &str, query: &str, parameters: Value) -> Vec<Event> {
    let task = create(
        api,
        team,
        json!({"query": query, "task_parameters": parameters}),
    )
    .await;
    let mut live = open(api, team, &task).await;
    live.rest().await.to_vec()
}

/// The routing of the log's first `WorkflowRouted`: speakers and reason.
fn routed(log: &[Event]) -> (Vec<String>, String) {
    log.iter()
        .find_map(|e| match &e.kind {
            EventKind::Routed(routed) => {
                Some((routed.speakers.clone(), routed.routing_reason.clone()))
            }
            _ => None,
        })
        .expect("a WorkflowRouted event")
}

/// Who said each `WorkflowMemberMessage`, in order.
fn speakers(log: &[Event]) -> Vec<String> {
    log.iter()
        .filter(|e| matches!(e.kind, EventKind::MemberMessage(_)))
        .map(|e| {
            e.speaker
                .clone()
                .expect("a member message names its speaker")
        })
        .collect()
}

/// The final answer of a completed log.
fn answer(log: &[Event]) -> String {
    match &log.last().expect("a log").kind {
        EventKind::Completed(done) => done.final_response.clone(),
        other => panic!("the task did not complete: {other:?}"),
    }
}

/// Every LLM, delta, tool and approval event names its speaker.
fn assert_speakers_named(log: &[Event]) {
    for event in log {
        let member_event = matches!(
            event.kind,
            EventKind::LlmCallStarted(_)
                | EventKind::LlmCallDelta(_)
                | EventKind::LlmCallCompleted(_)
                | EventKind::LlmCallRetrying(_)
                | EventKind::ToolCallStarted(_)
                | EventKind::ToolCallCompleted(_)
                | EventKind::MemberTurnStarted(_)
                | EventKind::MemberMessage(_)
        );
        if member_event {
            assert!(
                event.speaker.is_some(),
                "{} #{} has no speaker",
                event.type_name(),
                event.seq
            );
            let wire = serde_json::to_value(event).unwrap();
            assert_eq!(wire["data"]["speaker"], json!(event.speaker), "inside data");
            assert!(wire.get("speaker").is_none(), "not beside data");
        }
    }
}

async fn app_and_api(config: AgentflowConfig) -> (TestApp, TestApi) {
    let app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    (app, api)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_duo_routes_by_name_mention_and_otherwise_asks_its_router() {
    let (_app, api) = app_and_api(team_config(1)).await;
    let routes =
        |query: &'static str, parameters: Value, speaker: &'static str, reason: &'static str| {
            let api = &api;
            async move {
                let log = run(api, "scribe", query, parameters).await;
                assert_eq!(
                    routed(&log),
                    (vec![speaker.to_owned()], reason.to_owned()),
                    "{query}"
                );
                assert_eq!(speakers(&log), vec![speaker], "{query}");
                assert_speakers_named(&log);
                log
            }
        };
    let plume = routes(
        "Plume, a verse about the sea please",
        json!({}),
        "Plume",
        "explicit_mention_plume",
    )
    .await;
    assert!(answer(&plume).starts_with("A lamp above the tide"));
    let mimir = routes(
        "Mímir: when was the lighthouse lit?",
        json!({}),
        "Mimir",
        "explicit_mention_mimir",
    )
    .await;
    assert!(answer(&mimir).contains("1823"));
    let router = routes(
        "Write a poem about the tide",
        json!({}),
        "Plume",
        "intent_classifier_auto",
    )
    .await;
    let router_call = router
        .iter()
        .find(|e| matches!(e.kind, EventKind::LlmCallCompleted(_)))
        .expect("the router's call");
    assert_eq!(
        router_call.speaker.as_deref(),
        Some("router"),
        "its own call"
    );
    let EventKind::LlmCallCompleted(call) = &router_call.kind else {
        unreachable!()
    };
    assert_eq!(call.content, "Plume");
    assert!(call.cost_usd > 0.0, "the router's cost is counted");
    assert_speakers_named(&router);

    let fallback = run(&api, "scribe", "What happened here?", json!({})).await;
    assert_eq!(
        routed(&fallback).0,
        vec!["Mimir"],
        "the router's answer for the rest"
    );

    let forced = run(&api, "scribe", "hello", json!({"mode": "Mimir"})).await;
    assert_eq!(
        routed(&forced),
        (vec!["Mimir".into()], "forced_mode_mimir".into())
    );
    let named_wins = run(
        &api,
        "scribe",
        "Plume, hello",
        json!({"mode": "discussion"}),
    )
    .await;
    assert_eq!(routed(&named_wins).1, "explicit_mention_plume");

    let refused = post(
        &api,
        "/api/v1/agents/scribe/tasks",
        json!({"description": "d", "query": "hi", "task_parameters": {"mode": "Loki"}}),
    )
    .await;
    assert!(problem(&refused, 422).contains("Loki"));
    let (status, agents) = api.get("/api/v1/agents").await;
    assert_eq!(status, 200);
    let scribe = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "scribe")
        .expect("teams are listed with the agents");
    assert_eq!(scribe["kind"], "team");
    assert_eq!(scribe["members"][0]["name"], "Plume");
    assert_eq!(scribe["member_agents"][1]["id"], "mimir");
}

#[tokio::test(flavor = "multi_thread")]
async fn both_named_discuss_in_turns_until_the_stop_phrase_exactly_once_over_reconnects() {
    let (app, api) = app_and_api(team_config(2)).await;
    let task = create(
        &api,
        "scribe",
        json!({"query": "Plume and Mimir, tell me about the old lighthouse"}),
    )
    .await;
    let url = api.url(&path("scribe", &task, "/events/stream"));
    let streamed = read_with_reconnects(&api.http, &url, &[3, 7, 20, 40]).await;
    let events = api.paged_events(&path("scribe", &task, "")).await;
    assert_eq!(streamed, events, "over reconnects, exactly the log");

    assert_eq!(
        routed(&events),
        (
            vec!["Plume".into(), "Mimir".into()],
            "both_agents_mentioned".into()
        )
    );
    assert_eq!(speakers(&events), vec!["Plume", "Mimir", "Plume"]);
    let ended = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::DiscussionEnded(ended) => Some(ended.clone()),
            _ => None,
        })
        .expect("the discussion ended");
    assert_eq!(serde_json::to_value(ended.reason).unwrap(), "stop_phrase");
    assert_eq!(ended.rounds, 3);
    assert!(answer(&events).contains("Here is our answer"));
    let messages: Vec<(Option<String>, Value)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::MemberMessage(m) => Some((e.speaker.clone(), json!(m.to))),
            _ => None,
        })
        .collect();
    assert_eq!(
        messages[0],
        (Some("Plume".into()), json!(["Mimir"])),
        "Plume asks Mimir"
    );
    assert_speakers_named(&events);

    let state = app.state(task.parse().unwrap()).await;
    let history: Vec<&str> = state
        .team_messages
        .iter()
        .map(|m| m.speaker.as_str())
        .collect();
    assert_eq!(
        history,
        vec!["user", "Plume", "Mimir", "Plume"],
        "the whole discussion stays in the task's state"
    );
    app.assert_replays(task.parse().unwrap(), "team-discussion")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pipeline_loops_back_to_the_writer_after_a_checkpoint_approved_with_an_edit() {
    let (app, api) = app_and_api(team_config(1)).await;
    let task = create(
        &api,
        "newsroom",
        json!({"query": "A paragraph on the lighthouse"}),
    )
    .await;
    let mut live = open(&api, "newsroom", &task).await;
    let requested = live.until("WorkflowApprovalRequested").await;
    let EventKind::ApprovalRequested(checkpoint) = &requested.kind else {
        unreachable!()
    };
    assert_eq!(checkpoint.tool_name, "checkpoint");
    assert_eq!(checkpoint.arguments["before"], "Writer");
    assert!(
        checkpoint.arguments["text"]
            .as_str()
            .unwrap()
            .starts_with("Facts:")
    );
    assert_eq!(speakers(&live.events), vec!["Planner", "Researcher"]);
    let decide = path(
        "newsroom",
        &task,
        &format!("/approvals/{}", checkpoint.approval_id),
    );
    let bad = post(
        &api,
        &decide,
        json!({"decision": "approve", "arguments": {"text": 5}}),
    )
    .await;
    assert!(problem(&bad, 422).contains("/text"));
    let edited = "Facts (checked): lit in 1823, automated in 1961.";
    let approved = post(
        &api,
        &decide,
        json!({"decision": "approve", "arguments": {"text": edited}}),
    )
    .await;
    assert_eq!(approved.status, 202, "{}", approved.body);
    let log = live.rest().await.to_vec();
    assert_eq!(
        speakers(&log),
        vec![
            "Planner",
            "Researcher",
            "Writer",
            "Critic",
            "Writer",
            "Critic"
        ],
        "the critic sent the draft back once, then approved; no second checkpoint"
    );
    assert_eq!(
        log.iter()
            .filter(|e| matches!(e.kind, EventKind::ApprovalRequested(_)))
            .count(),
        1
    );
    assert!(
        answer(&log).starts_with("Revised draft:"),
        "the approved work"
    );
    assert_eq!(routed(&log).1, "sequence");
    let state = app.state(task.parse().unwrap()).await;
    let research = state
        .team_messages
        .iter()
        .find(|m| m.speaker == "Researcher")
        .unwrap();
    assert_eq!(research.content, edited, "the writer worked on the edit");
    app.assert_replays(task.parse().unwrap(), "team-pipeline")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_checkpoint_sends_the_work_back_with_the_comment() {
    let (app, api) = app_and_api(team_config(1)).await;
    let task = create(&api, "newsroom", json!({"query": "The lighthouse"})).await;
    let mut live = open(&api, "newsroom", &task).await;
    let first = live.until("WorkflowApprovalRequested").await;
    let EventKind::ApprovalRequested(first) = first.kind else {
        unreachable!()
    };
    let reject = post(
        &api,
        &path(
            "newsroom",
            &task,
            &format!("/approvals/{}", first.approval_id),
        ),
        json!({"decision": "reject", "comment": "Add who kept it."}),
    )
    .await;
    assert_eq!(reject.status, 202, "{}", reject.body);
    let second = live.until("WorkflowApprovalRequested").await;
    let EventKind::ApprovalRequested(second) = second.kind else {
        unreachable!()
    };
    assert_ne!(second.approval_id, first.approval_id, "a new checkpoint");
    assert_eq!(
        speakers(&live.events),
        vec!["Planner", "Researcher", "Researcher"],
        "the researcher worked again"
    );
    let approve = post(
        &api,
        &path(
            "newsroom",
            &task,
            &format!("/approvals/{}", second.approval_id),
        ),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(approve.status, 202);
    let log = live.rest().await.to_vec();
    assert!(matches!(log.last().unwrap().kind, EventKind::Completed(_)));
    let state = app.state(task.parse().unwrap()).await;
    let comment = state
        .team_messages
        .iter()
        .find(|m| m.speaker == "user" && m.content == "Add who kept it.")
        .expect("the comment is in the discussion");
    assert_eq!(comment.to, vec!["Researcher".to_owned()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn budgets_bound_a_discussion_and_a_spent_member_stops_speaking() {
    let mut config = team_config(1);
    let scribe = config.teams.get_mut("scribe").unwrap();
    scribe.members[0].budget_share = Some(1e-9);
    let (app, api) = app_and_api(config).await;

    // Plume's share is spent after its first turn: Mimir goes on alone to max_rounds.
    let log = run(&api, "scribe", "Plume and Mimir, talk", json!({})).await;
    let exhausted = log
        .iter()
        .position(|e| matches!(e.kind, EventKind::MemberBudgetExhausted(_)))
        .expect("an event says Plume stopped");
    assert_eq!(log[exhausted].speaker.as_deref(), Some("Plume"));
    let after: Vec<String> = speakers(&log[exhausted..]);
    assert!(after.iter().all(|s| s == "Mimir"), "{after:?}");
    assert_eq!(speakers(&log).len(), 6, "max_rounds");
    assert!(matches!(log.last().unwrap().kind, EventKind::Completed(_)));

    // Named alone once its share is spent, Plume gives way to a member with budget.
    let task = create(
        &api,
        "scribe",
        json!({"task_parameters": {"conversation": true}}),
    )
    .await;
    let mut live = open(&api, "scribe", &task).await;
    for query in ["Plume, a verse", "Plume, another verse"] {
        let sent = post(
            &api,
            &path("scribe", &task, "/execute"),
            json!({"query": query}),
        )
        .await;
        assert_eq!(sent.status, 202, "{}", sent.body);
        live.until("WorkflowTurnCompleted").await;
    }
    assert_eq!(speakers(&live.events), vec!["Plume", "Mimir"]);
    assert!(
        live.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::MemberBudgetExhausted(_))
                && e.speaker.as_deref() == Some("Plume"))
    );

    // The team's budget ends the discussion after its first member turn.
    let first_cost = log
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::MemberMessage(m) => Some(m.cost_usd),
            _ => None,
        })
        .unwrap();
    let task = create(
        &api,
        "scribe",
        json!({"query": "Mimir and Plume, discuss", "task_parameters": {"budget_usd": first_cost * 1.5}}),
    )
    .await;
    let log = open(&api, "scribe", &task).await.rest().await.to_vec();
    let exceeded = log
        .iter()
        .position(|e| matches!(e.kind, EventKind::BudgetExceeded(_)))
        .expect("the team's budget was exceeded");
    assert_eq!(speakers(&log[..exceeded]).len(), 1, "mid-discussion");
    assert!(log[exceeded].speaker.is_some(), "in a member's turn");
    match &log.last().unwrap().kind {
        EventKind::Failed(failed) => assert_eq!(failed.error.kind, "budget_exceeded"),
        other => panic!("{other:?}"),
    }
    let state = app.state(task.parse().unwrap()).await;
    assert_eq!(state.status, TaskStatus::Failed);
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_and_cancel_take_effect_between_member_turns() {
    let (_app, api) = app_and_api(team_config(5)).await;
    let task = create(
        &api,
        "scribe",
        json!({"query": "Plume and Mimir, tell me about the old lighthouse"}),
    )
    .await;
    let mut live = open(&api, "scribe", &task).await;
    live.until("WorkflowMemberTurnStarted").await;
    let paused = post(&api, &path("scribe", &task, "/pause"), json!({})).await;
    assert_eq!(paused.status, 202, "{}", paused.body);
    live.until("WorkflowPaused").await;
    let turns = |events: &[Event]| {
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::MemberTurnStarted(_)))
            .count()
    };
    let before = turns(&live.events);
    let resumed = post(&api, &path("scribe", &task, "/resume"), json!({})).await;
    assert_eq!(resumed.status, 202);
    live.until("WorkflowResumed").await;
    live.until("WorkflowMemberTurnStarted").await;
    assert!(turns(&live.events) > before, "the discussion went on");
    let cancelled = post(&api, &path("scribe", &task, "/cancel"), json!({})).await;
    assert_eq!(cancelled.status, 202);
    let log = live.rest().await.to_vec();
    assert!(matches!(log.last().unwrap().kind, EventKind::Cancelled(_)));
    assert!(
        speakers(&log).len() < 3,
        "cancelled before the discussion ended"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_with_the_team_follows_the_last_speaker_until_another_is_named() {
    let (app, api) = app_and_api(team_config(1)).await;
    let task = create(
        &api,
        "scribe",
        json!({"task_parameters": {"conversation": true}}),
    )
    .await;
    let mut live = open(&api, "scribe", &task).await;
    let queries = [
        "Mimir, when was the lighthouse lit?",
        "And what else?",
        "Plume, a verse then",
    ];
    for query in queries {
        let sent = post(
            &api,
            &path("scribe", &task, "/execute"),
            json!({"query": query}),
        )
        .await;
        assert_eq!(sent.status, 202, "{}", sent.body);
        live.until("WorkflowTurnCompleted").await;
    }
    let reasons: Vec<String> = live
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Routed(r) => Some(r.routing_reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            "explicit_mention_mimir",
            "follow_up_last_speaker",
            "explicit_mention_plume"
        ]
    );
    assert_eq!(speakers(&live.events), vec!["Mimir", "Mimir", "Plume"]);
    let state = app.state(task.parse().unwrap()).await;
    assert_eq!(state.turn, 3);
    assert_eq!(state.team_messages.len(), 6, "three queries, three answers");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_turn_resumes_that_turn_without_a_lost_or_repeated_one() {
    let config = team_config(25);
    let app = spawn_app_with(config.clone(), false).await;
    let api = app.spawn_api().await;
    let first = WorkerProcess::spawn(WORKER, &config);
    let task = create(
        &api,
        "scribe",
        json!({"query": "Plume and Mimir, tell me about the old lighthouse"}),
    )
    .await;
    let mut live = open(&api, "scribe", &task).await;
    // Kill the worker while Mimir (the second member turn) streams.
    loop {
        let event = live.next().await.expect("the stream went on");
        if matches!(event.kind, EventKind::LlmCallDelta(_))
            && event.speaker.as_deref() == Some("Mimir")
        {
            break;
        }
    }
    first.kill().await;
    let second = WorkerProcess::spawn(WORKER, &config);
    let log = live.rest().await.to_vec();
    second.kill().await;
    assert!(matches!(log.last().unwrap().kind, EventKind::Completed(_)));
    assert_eq!(
        speakers(&log),
        vec!["Plume", "Mimir", "Plume"],
        "no turn lost or repeated"
    );
    let rounds: Vec<u32> = log
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::MemberTurnStarted(t) => Some(t.round),
            _ => None,
        })
        .collect();
    assert_eq!(rounds, vec![1, 2, 3]);
    let retry = log
        .iter()
        .find(|e| matches!(e.kind, EventKind::LlmCallRetrying(_)))
        .expect("the interrupted call shows as a retry");
    assert_eq!(retry.speaker.as_deref(), Some("Mimir"));
    let events = api.paged_events(&path("scribe", &task, "")).await;
    assert_eq!(log, events, "the stream is the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_members_tools_and_approvals_name_it_and_a_team_streams_in_one_request() {
    let mut config = team_config(1);
    // Mimir gets the calculator, needing approval, and answers by the built-in behaviour
    // when its script does not match.
    let mimir = config.agents.get_mut("mimir").unwrap();
    mimir.tools = vec!["calculator".into()];
    mimir.require_approval = vec!["calculator".into()];
    for model in ["scripted-mimir", "scripted-plume"] {
        let model = config.models.get_mut(model).unwrap();
        model.script.retain(|rule| rule.when.is_some());
    }
    let (_app, api) = app_and_api(config).await;
    let task = create(&api, "scribe", json!({"query": "Mimir, what is 6*7?"})).await;
    let mut live = open(&api, "scribe", &task).await;
    let requested = live.until("WorkflowApprovalRequested").await;
    assert_eq!(requested.speaker.as_deref(), Some("Mimir"));
    let EventKind::ApprovalRequested(approval) = &requested.kind else {
        unreachable!()
    };
    assert_eq!(approval.tool_name, "calculator");
    let decided = post(
        &api,
        &path(
            "scribe",
            &task,
            &format!("/approvals/{}", approval.approval_id),
        ),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(decided.status, 202, "{}", decided.body);
    let log = live.rest().await.to_vec();
    let tool = log
        .iter()
        .find(|e| matches!(e.kind, EventKind::ToolCallCompleted(_)))
        .expect("the calculator ran");
    assert_eq!(tool.speaker.as_deref(), Some("Mimir"));
    assert!(answer(&log).contains("42"));
    assert_speakers_named(&log);

    // Plume does not list the calculator: its tools are its own.
    let plume = run(
        &api,
        "scribe",
        "Plume: use calculator {\"expression\": \"1+1\"}",
        json!({}),
    )
    .await;
    assert!(
        !plume
            .iter()
            .any(|e| matches!(e.kind, EventKind::ToolCallStarted(_))),
        "Plume was not offered Mimir's tool"
    );

    // One request: create, run and stream a team's task.
    let response = api
        .http
        .post(api.url("/api/v1/agents/scribe/tasks/stream"))
        .json(&json!({"query": "Mimir, tell me about the old lighthouse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let streamed = Live::from_response(response).rest().await.to_vec();
    assert_eq!(routed(&streamed).1, "explicit_mention_mimir");
    assert_eq!(speakers(&streamed), vec!["Mimir"]);
    assert!(matches!(
        streamed.last().unwrap().kind,
        EventKind::Completed(_)
    ));

    // What a team refuses: an agent's overrides, a mode for a sequence.
    for (team, parameters, mention) in [
        ("scribe", json!({"model": "scripted"}), "model"),
        ("scribe", json!({"instructions": "x"}), "instructions"),
        ("newsroom", json!({"mode": "discussion"}), "sequence"),
        ("scribe", json!({"require_approval": ["nope"]}), "nope"),
    ] {
        let refused = post(
            &api,
            &format!("/api/v1/agents/{team}/tasks"),
            json!({"description": "d", "task_parameters": parameters}),
        )
        .await;
        assert!(problem(&refused, 422).contains(mention), "{parameters}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_discussion_ends_at_its_cost_cap_or_is_summarised_by_a_named_member() {
    use agentflow_shared::team::FinalAnswer;
    let ended = |log: &[Event]| {
        log.iter()
            .find_map(|e| match &e.kind {
                EventKind::DiscussionEnded(ended) => Some(ended.clone()),
                _ => None,
            })
            .expect("the discussion ended")
    };

    // Summarised by Mimir: one more member turn after the discussion, and it is the answer.
    let mut config = team_config(1);
    config
        .teams
        .get_mut("scribe")
        .unwrap()
        .discussion
        .final_answer = FinalAnswer::SummaryBy("Mimir".into());
    let (_app, api) = app_and_api(config).await;
    let log = run(
        &api,
        "scribe",
        "Plume and Mimir, tell me about the old lighthouse",
        json!({}),
    )
    .await;
    assert_eq!(speakers(&log), vec!["Plume", "Mimir", "Plume", "Mimir"]);
    let summary_at = log
        .iter()
        .rposition(|e| matches!(e.kind, EventKind::MemberMessage(_)))
        .unwrap();
    let ended_at = log
        .iter()
        .position(|e| matches!(e.kind, EventKind::DiscussionEnded(_)))
        .unwrap();
    assert!(ended_at < summary_at, "the summary follows the discussion");
    assert_eq!(ended(&log).rounds, 3);
    let EventKind::MemberMessage(summary) = &log[summary_at].kind else {
        unreachable!()
    };
    assert_eq!(answer(&log), summary.content);

    // A cost cap below two turns' cost ends the discussion after the turn that reaches it.
    let first_cost = log
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::MemberMessage(m) => Some(m.cost_usd),
            _ => None,
        })
        .unwrap();
    let mut config = team_config(1);
    let discussion = &mut config.teams.get_mut("scribe").unwrap().discussion;
    discussion.max_cost_usd = Some(first_cost * 1.5);
    discussion.stop_phrase = None;
    let (_app, api) = app_and_api(config).await;
    let log = run(
        &api,
        "scribe",
        "Plume and Mimir, tell me about the old lighthouse",
        json!({}),
    )
    .await;
    let ended = ended(&log);
    assert_eq!(serde_json::to_value(ended.reason).unwrap(), "cost_cap");
    assert_eq!(speakers(&log), vec!["Plume", "Mimir"]);
    assert!(ended.cost_usd >= first_cost * 1.5);
    assert!(matches!(log.last().unwrap().kind, EventKind::Completed(_)));
}
