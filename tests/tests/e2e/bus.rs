//! The live bus end to end: a real `nats-server -js`, a real dev server, workers and the api.
//! Every test checks what subscribers received against the task's final log with
//! `check_prefix` (and the whole length for those that stayed to the end).

use crate::WORKER;
use agentflow_bus::{Bus, CallPublisher, CallSubject, Progress};
use agentflow_client::tasks::NewTask;
use agentflow_shared::config::BusSettings;
use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::ids::{Seq, TaskId, TenantId};
use agentflow_shared::log::{EventLog, check_prefix};
use agentflow_shared::security::AuthSettings;
use agentflow_tests::api::{TestApi, spawn_api_on};
use agentflow_tests::fake_openai::{FakeOpenAi, Turn};
use agentflow_tests::harness::{slow_config, test_config};
use agentflow_tests::logs::dense_log;
use agentflow_tests::requests::{create_idle, execute, open, stream_path};
use agentflow_tests::server::NatsServer;
use agentflow_tests::sse::{Live, read, read_with_reconnects};
use agentflow_tests::{TestApp, WorkerProcess, spawn_app_with};
use futures::StreamExt;
use serde_json::json;
use std::time::Duration;

/// Creates a streaming task through the api and returns its id (not executed yet).
async fn create(api: &TestApi) -> TaskId {
    create_idle(api, json!({"enable_streaming": true}))
        .await
        .parse()
        .unwrap()
}

/// A bus client of the test's NATS server, ready.
async fn bus(app: &TestApp) -> Bus {
    ready_bus(&app.config.bus).await
}

/// A bus client of `settings`, ready.
async fn ready_bus(settings: &BusSettings) -> Bus {
    let bus = Bus::start(settings)
        .await
        .expect("the bus client")
        .expect("a bus is configured");
    assert!(
        bus.wait_ready(Duration::from_secs(30)).await,
        "the bus is not ready"
    );
    bus
}

/// The tenant of the tasks these tests create: the api's with auth off, the default one.
fn tenant() -> TenantId {
    AuthSettings::default().default_tenant
}

/// The subject of `task`'s call at `seq_base`.
fn call_of(task: TaskId, seq_base: Seq) -> CallSubject {
    CallSubject {
        tenant: tenant(),
        task,
        seq_base,
    }
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
            .read_call(&call_of(task, *seq_base))
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

/// Reads `live` until it has received `count` deltas.
async fn until_deltas(live: &mut Live, count: usize) {
    while live
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LlmCallDelta(_)))
        .count()
        < count
    {
        live.next()
            .await
            .expect("the stream ended before the deltas");
    }
}

/// A streaming task running `query`, watched from its start until `deltas` deltas arrived.
async fn streaming(api: &TestApi, query: &str, deltas: usize) -> (TaskId, Live) {
    let task = create(api).await;
    let mut live = open(api, task).await;
    execute(api, task, query).await;
    until_deltas(&mut live, deltas).await;
    (task, live)
}

/// The task's only LLM call, read from the bus.
async fn the_call_on_the_bus(bus: &Bus, task: TaskId, log: &EventLog) -> agentflow_bus::CallFold {
    let calls = calls(log);
    assert_eq!(calls.len(), 1, "{calls:?}");
    bus.read_call(&call_of(task, calls[0].0))
        .await
        .expect("reading the call")
        .fold
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_delta_is_resumed_from_what_the_bus_stored() {
    let config = slow_config(10);
    let app = spawn_app_with(config.clone(), false).await;
    let api = app.spawn_api().await;
    let first = WorkerProcess::spawn(WORKER, &config);
    let (task, mut live) = streaming(&api, "Count to 300", 10).await;
    // On the bus the heartbeats carry a marker, not the events: only the bus has them.
    assert!(
        app.heartbeat_progress(task)
            .await
            .is_some_and(|p| p.on_bus()),
        "the call heartbeats its bus marker"
    );
    first.kill().await;
    let seen_before_kill = live.events.len();
    let second = WorkerProcess::spawn(WORKER, &config);
    let received = live.rest().await.to_vec();
    let result = app.result(task).await;
    second.kill().await;

    let log = dense_log(&result.events);
    assert_whole(&received, &log);
    assert!(log.len() > seen_before_kill);
    let retry = log
        .events()
        .iter()
        .position(|e| matches!(e.kind, EventKind::LlmCallRetrying(_)))
        .expect("the call was retried on the new worker");
    assert!(
        retry >= seen_before_kill,
        "the retry numbers on after everything a client saw ({retry} < {seen_before_kill})"
    );
    let fold = the_call_on_the_bus(&bus(&app).await, task, &log).await;
    assert_eq!(fold.attempt(), 2);
    app.assert_replays(task, "bus-worker-killed").await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zombie_worker_cannot_win_a_seq_after_the_new_attempt_fenced_the_call() {
    let config = slow_config(10);
    let app = spawn_app_with(config.clone(), false).await;
    let api = app.spawn_api().await;
    let zombie = WorkerProcess::spawn(WORKER, &config);
    let (task, mut live) = streaming(&api, "Count to 400", 10).await;
    let url = api.url(&stream_path(task));
    // Cut off from Temporal and the bus alike, past the heartbeat timeout: the call moves on.
    zombie.signal("STOP");
    let second = WorkerProcess::spawn(WORKER, &config);
    loop {
        let event = live.next().await.expect("the stream goes on");
        if matches!(event.kind, EventKind::LlmCallRetrying(_)) {
            break;
        }
    }
    // Back: it goes on publishing its attempt until it learns it lost the call.
    zombie.signal("CONT");
    let late = tokio::spawn({
        let (http, url) = (api.http.clone(), url.clone());
        async move { read(&http, &url, None, usize::MAX).await }
    });
    let received = live.rest().await.to_vec();
    let late = late.await.unwrap();
    let result = app.result(task).await;
    zombie.kill().await;
    second.kill().await;

    let log = dense_log(&result.events);
    assert_whole(&received, &log);
    assert_whole(&late.events, &log);
    let fold = the_call_on_the_bus(&bus(&app).await, task, &log).await;
    assert_eq!(fold.attempt(), 2);
    let call_start = calls(&log)[0].0;
    assert_eq!(
        fold.events(),
        log.after(Seq(call_start.0 - 1))
            .iter()
            .take(fold.events().len())
            .cloned()
            .collect::<Vec<_>>()
            .as_slice()
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_heartbeat_timeout_on_the_last_attempt_fences_before_the_terminal_event() {
    let mut config = slow_config(10);
    config.worker.llm_max_attempts = 1;
    let app = spawn_app_with(config.clone(), false).await;
    let api = app.spawn_api().await;
    let first = WorkerProcess::spawn(WORKER, &config);
    let (task, mut live) = streaming(&api, "Count to 300", 10).await;
    first.kill().await;
    // No attempt is left: the workflow recovers the call from the bus (a worker runs the
    // recovery), then ends the task.
    let second = WorkerProcess::spawn(WORKER, &config);
    let received = live.rest().await.to_vec();
    let result = app.result(task).await;
    second.kill().await;

    let log = dense_log(&result.events);
    assert_whole(&received, &log);
    assert!(
        matches!(log.events().last().unwrap().kind, EventKind::Failed(_)),
        "{:?}",
        log.events().last()
    );
    let deltas = log
        .events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LlmCallDelta(_)))
        .count();
    assert!(
        deltas >= 10,
        "the deltas clients saw are in the log ({deltas})"
    );
    // The recovery fenced the call: attempt 2 is the recovery's.
    let bus = bus(&app).await;
    let read = bus
        .read_call(&call_of(task, calls_started(&log)[0]))
        .await
        .unwrap();
    assert_eq!(read.fold.attempt(), 2);
    app.assert_replays(task, "bus-recovery").await;
    api.stop().await;
}

/// The first seq of each LLM call (completed or not).
fn calls_started(log: &EventLog) -> Vec<Seq> {
    log.events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LlmCallStarted(_)))
        .map(|e| e.seq)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bus_dying_mid_call_moves_the_call_to_heartbeats_and_back_for_the_next_call() {
    let mut nats = NatsServer::start();
    let mut config = slow_config(10);
    config.bus.url = nats.url();
    let app = spawn_app_with(config.clone(), true).await;
    let api = app.spawn_api().await;
    let task = create(&api).await;
    let url = api.url(&stream_path(task));
    let mut live = Live::open(&api.http, &url).await;
    execute(&api, task, "Count to 150").await;
    until_deltas(&mut live, 10).await;
    nats.kill();
    let received = live.rest().await.to_vec();
    let log = dense_log(&app.result(task).await.events);
    assert_whole(&received, &log);
    assert!(matches!(
        log.events().last().unwrap().kind,
        EventKind::Completed(_)
    ));

    // Back the other way: a call that starts while the bus is away uses heartbeats; once the
    // bus is back, the next call publishes on it again.
    let (second, mut live) = streaming(&api, "Count to 20", 3).await;
    nats.restart();
    let bus = bus(&app).await;
    let received = live.rest().await.to_vec();
    let log = dense_log(&app.result(second).await.events);
    assert_whole(&received, &log);
    let first_call = bus
        .read_call(&call_of(second, calls_started(&log)[0]))
        .await
        .unwrap();
    assert!(
        first_call.fold.events().is_empty(),
        "the call started without the bus"
    );

    // The worker reconnects on its own (within about a second): the next calls publish on the
    // bus again, each with an exact log.
    let mut on_bus = false;
    for _ in 0..20 {
        let next = create(&api).await;
        let mut live = open(&api, next).await;
        execute(&api, next, "Count to 10").await;
        let received = live.rest().await.to_vec();
        let log = dense_log(&app.result(next).await.events);
        assert_whole(&received, &log);
        let fold = the_call_on_the_bus(&bus, next, &log).await;
        if !fold.events().is_empty() {
            assert_eq!(
                fold.events(),
                &calls(&log)[0].1[..],
                "the call is on the bus"
            );
            on_bus = true;
            break;
        }
    }
    assert!(on_bus, "no call used the bus once it was back");
    api.stop().await;
}

/// `GET` of the task's `llm_call` view, polled until `until` holds (the call's heartbeats say
/// where it stands; the task's worker answers the state query meanwhile).
async fn llm_call_until(api: &TestApi, task: TaskId, until: impl Fn(&serde_json::Value) -> bool) {
    let path = format!("/api/v1/agents/assistant/tasks/{task}");
    let mut last = serde_json::Value::Null;
    for _ in 0..600 {
        let (status, body) = api.get(&path).await;
        if status == 200 && until(&body["llm_call"]) {
            return;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the task's llm_call never got there: {last}");
}

/// A NATS server of the test's own (it dies), a worker, and the api.
async fn with_own_bus() -> (
    NatsServer,
    agentflow_shared::config::AgentflowConfig,
    TestApp,
) {
    let nats = NatsServer::start();
    let mut config = slow_config(10);
    config.bus.url = nats.url();
    let app = spawn_app_with(config.clone(), false).await;
    (nats, config, app)
}

/// Reads `live` to its end and stops `worker` once the task has its result; checks the
/// subscriber got the whole final log and the task completed. Returns the log.
async fn completes_whole(
    app: &TestApp,
    mut live: Live,
    worker: WorkerProcess,
    task: TaskId,
) -> EventLog {
    let received = live.rest().await.to_vec();
    let result = app.result(task).await;
    worker.kill().await;
    let log = dense_log(&result.events);
    assert_whole(&received, &log);
    assert!(matches!(
        log.events().last().unwrap().kind,
        EventKind::Completed(_)
    ));
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_whose_worker_died_while_the_bus_is_down_waits_for_the_bus_and_resumes_from_it() {
    let (mut nats, config, app) = with_own_bus().await;
    let api = app.spawn_api().await;
    let first = WorkerProcess::spawn(WORKER, &config);
    let (task, live) = streaming(&api, "Count to 300", 10).await;
    // The worker dies on the bus, then the bus dies: what the first attempt stored is out of
    // reach, and its heartbeats never carried it.
    first.kill().await;
    nats.kill();
    let second = WorkerProcess::spawn(WORKER, &config);
    llm_call_until(&api, task, |call| {
        call["path"] == "bus" && call["attempt"] == 2 && call["waiting_for_bus"] == true
    })
    .await;
    nats.restart();
    let log = completes_whole(&app, live, second, task).await;
    let fold = the_call_on_the_bus(&bus(&app).await, task, &log).await;
    assert_eq!(fold.attempt(), 2, "the second attempt fenced the call");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_that_left_the_dead_bus_is_resumed_from_its_heartbeats_after_a_worker_kill() {
    let (mut nats, config, app) = with_own_bus().await;
    let api = app.spawn_api().await;
    let first = WorkerProcess::spawn(WORKER, &config);
    let (task, live) = streaming(&api, "Count to 600", 10).await;
    nats.kill();
    // The call leaves the bus: its heartbeats now carry every event since its start.
    llm_call_until(&api, task, |call| call["path"] == "heartbeats").await;
    first.kill().await;
    let second = WorkerProcess::spawn(WORKER, &config);
    let log = completes_whole(&app, live, second, task).await;
    assert!(
        log.events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::LlmCallRetrying(_))),
        "the call was retried on the second worker"
    );
    api.stop().await;
}

/// A streaming task running `query`, watched by one subscriber from its start to its end;
/// checks the subscriber got the whole final log, and returns it.
async fn watched_to_the_end(app: &TestApp, api: &TestApi, query: &str) -> (TaskId, EventLog) {
    let task = create(api).await;
    let mut live = open(api, task).await;
    execute(api, task, query).await;
    let received = live.rest().await.to_vec();
    let log = dense_log(&app.result(task).await.events);
    assert_whole(&received, &log);
    (task, log)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_queries_the_workflow_only_after_workflow_tasks_that_completed() {
    use temporalio_common::protos::temporal::api::enums::v1::EventType;
    let app = spawn_app_with(slow_config(10), true).await;
    let api = app.spawn_api().await;
    let (task, log) = watched_to_the_end(&app, &api, "What is 6*7? Then count to 40").await;
    assert!(
        log.events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::ToolCallCompleted(_))),
        "the task called a tool"
    );
    let (_, metrics) = api.get("/metrics").await;
    let queries = metrics["relay_rpcs"]["query"].as_u64().expect("metrics");
    let history: serde_json::Value =
        serde_json::from_slice(&app.history_json(task).await).expect("history JSON");
    let completed = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event_type"] == EventType::WorkflowTaskCompleted as i64)
        .count() as u64;
    // Only a completed workflow task can add to the log: activity starts and ends, workflow
    // task starts, timers firing alone are not worth a query. (One more: the first read.)
    assert!(
        queries <= completed + 1,
        "{queries} queries for {completed} completed workflow tasks"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_reads_the_log_on_progress_hints_instead_of_polling_history() {
    let app = spawn_app_with(slow_config(10), true).await;
    let api = app.spawn_api().await;
    watched_to_the_end(&app, &api, "What is 6*7? Then count to 40").await;
    let (_, metrics) = api.get("/metrics").await;
    let polls = metrics["relay_rpcs"]["history_poll"]
        .as_u64()
        .expect("metrics");
    // One wait for the run to close after its closing hint; no long poll per workflow task.
    assert!(polls <= 1, "{polls} history polls with progress hints");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_expecting_hints_from_a_worker_that_sends_none_still_serves_the_whole_log() {
    let mut silent = slow_config(10);
    silent.bus.progress_hints = false;
    let app = spawn_app_with(silent, true).await;
    let mut config = app.config.clone();
    config.bus.progress_hints = true;
    let api = agentflow_tests::api::spawn_api(&config).await;
    // Every step after the first read is found by the relay's checks alone (the history grew).
    let (_, log) = watched_to_the_end(&app, &api, "What is 6*7? Then count to 20").await;
    assert!(log.is_finished());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_workflows_own_events_travel_on_the_bus_ahead_of_each_call() {
    let app = spawn_app_with(slow_config(10), true).await;
    let api = app.spawn_api().await;
    let (task, log) = watched_to_the_end(&app, &api, "What is 6*7? Then count to 20").await;
    let calls = calls(&log);
    assert_eq!(calls.len(), 2, "a tool call between two LLM calls");
    // The workflow's events before the last call (start, steps, the tool call): each call
    // published those made since the previous one, as the durable log has them.
    let in_calls: std::collections::HashSet<Seq> = calls
        .iter()
        .flat_map(|(_, events)| events.iter().map(|e| e.seq))
        .collect();
    let handed: Vec<&Event> = log
        .events()
        .iter()
        .filter(|e| e.seq < calls[1].0 && !in_calls.contains(&e.seq))
        .collect();
    assert!(
        handed
            .iter()
            .any(|e| matches!(e.kind, EventKind::ToolCallCompleted(_))),
        "{handed:?}"
    );
    let mut follower = bus(&app)
        .await
        .follow_task(Some(&tenant()), task)
        .await
        .expect("following");
    let mut seen = std::collections::HashMap::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while !handed.iter().all(|e| seen.contains_key(&e.seq)) {
            let event = follower.next().await.expect("the bus");
            seen.insert(event.seq, event);
        }
    })
    .await
    .unwrap_or_else(|_| {
        let missing: Vec<Seq> = handed
            .iter()
            .map(|e| e.seq)
            .filter(|s| !seen.contains_key(s))
            .collect();
        panic!("the workflow's events {missing:?} are not on the bus")
    });
    for event in handed {
        assert_eq!(&seen[&event.seq], event);
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_stops_a_call_on_the_bus_and_the_stream_ends_cancelled() {
    let fake = FakeOpenAi::start(vec![Turn::Endless]).await;
    let mut config = fake.config(test_config());
    config.agents.get_mut("assistant").unwrap().model = "fake".into();
    // A liveness heartbeat far apart: the cancel reaches the call through the api's hint.
    config.bus.heartbeat_ms = 1500;
    let app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let (task, mut live) = streaming(&api, "Talk forever", 3).await;
    let (status, body) = api
        .post(
            &format!("/api/v1/agents/assistant/tasks/{task}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    tokio::time::timeout(Duration::from_secs(30), fake.stream_closed())
        .await
        .expect("the provider stream is closed");
    let received = live.rest().await.to_vec();
    let log = dense_log(&app.result(task).await.events);
    assert_whole(&received, &log);
    assert!(matches!(
        log.events().last().unwrap().kind,
        EventKind::Cancelled(_)
    ));
    api.stop().await;
}

/// `LlmCallStarted` of step 1 at `seq`, for a call published by hand.
fn started(task: TaskId, seq: u64) -> Event {
    Event {
        seq: Seq(seq),
        kind: EventKind::LlmCallStarted(agentflow_shared::event::LlmCallStarted {
            step: 1,
            model: "scripted".into(),
            message_count: 1,
        }),
        task_id: task,
        agent_id: "assistant".into(),
        timestamp: chrono::Utc::now(),
        step: 1,
        speaker: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secured_bus_lets_the_worker_publish_events_and_the_api_read_them_not_the_reverse() {
    let (nats, users) = NatsServer::start_secured();
    let mut config = test_config();
    config.bus.url = nats.url();
    config.bus.ack_timeout_ms = 1000;
    let prefix = config.bus.subject_prefix.clone();
    // The worker makes the stream; the api only reads its info.
    let (worker_bus, api_bus) = (
        users.worker.bus_of(&config).bus,
        users.api.bus_of(&config).bus,
    );
    let worker = ready_bus(&worker_bus).await;
    let api = ready_bus(&api_bus).await;
    assert!(
        !connects(&config.bus).await,
        "nobody without a password gets in"
    );

    let mut spy = worker
        .client()
        .subscribe(format!("{prefix}.>"))
        .await
        .expect("the client sends the subscription");
    // Nor may either read the other's replies (the api's carry its consumers' deliveries).
    let api_inbox = format!("{}.>", api_bus.inbox_prefix());
    let worker_inbox = format!("{}.>", worker_bus.inbox_prefix());
    let mut api_replies = worker.client().subscribe(api_inbox.clone()).await.unwrap();
    let mut worker_replies = api.client().subscribe(worker_inbox.clone()).await.unwrap();
    worker.client().flush().await.unwrap();
    api.client().flush().await.unwrap();

    // The worker fences a call and publishes its first event: both are stored.
    let task = TaskId::new();
    let call = call_of(task, Seq(1));
    worker
        .fence_call(&call, 1)
        .await
        .expect("the worker fences");
    let stored = started(task, 1);
    let mut publisher = CallPublisher::new(&worker, call.clone(), 1);
    publisher.publish(&stored).await.unwrap();
    assert_eq!(publisher.flush().await.unwrap(), Some(Seq(1)));

    // Each does its part: the api wakes the call (a heartbeat hint) and reads the MCP tools
    // the worker reported; the worker hints the relays.
    // A heartbeat hint names the task's tenant: one sent for the same task id under another
    // tenant does not wake the call. Once the server has taken both (the api's flush) and the
    // worker has read all it was sent (its flush), every hint it got is queued.
    let mut woken = worker.hints(Some(&tenant()), task).await.unwrap();
    // A task created before tenancy listens under any tenant: the api sends under its own
    // default tenant, which need not be the worker's.
    let mut untenanted = worker.hints(None, task).await.unwrap();
    let mut hinted = api.progress(Some(&tenant()), task).await.unwrap();
    worker.client().flush().await.unwrap();
    api.client().flush().await.unwrap();
    let other: TenantId = "other".parse().unwrap();
    api.hint_heartbeat(&other, task).await;
    api.hint_heartbeat(&tenant(), task).await;
    api.client().flush().await.unwrap();
    worker.client().flush().await.unwrap();
    let wait = Duration::from_secs(5);
    assert_eq!(tokio::time::timeout(wait, woken.next()).await, Ok(Some(())));
    assert_eq!(
        futures::FutureExt::now_or_never(woken.next()),
        None,
        "the other tenant's hint did not arrive"
    );
    for _ in 0..2 {
        assert_eq!(
            futures::FutureExt::now_or_never(untenanted.next()),
            Some(Some(()))
        );
    }
    assert!(
        worker
            .hint_progress(&tenant(), task, Progress::Appended)
            .await
    );
    assert_eq!(
        tokio::time::timeout(wait, hinted.next()).await,
        Ok(Some(Progress::Appended))
    );
    assert!(
        worker.report_mcp_tools("clock", &[]).await,
        "{}",
        nats.log()
    );
    assert!(
        api.reported_mcp_tools().await.contains_key("clock"),
        "{}",
        nats.log()
    );

    // The api's forgery of the next event is never acknowledged…
    let mut forger = CallPublisher::new(&api, call.clone(), 1);
    forger.publish(&started(task, 2)).await.unwrap();
    assert!(
        forger.flush().await.is_err(),
        "the api's publish was refused"
    );
    // …nor stored: the api's own follower and the worker's read hold the worker's event only.
    let read = worker.read_call(&call).await.unwrap();
    assert_eq!(read.fold.events(), std::slice::from_ref(&stored));
    let mut follower = api.follow_task(Some(&tenant()), task).await.unwrap();
    let followed = tokio::time::timeout(Duration::from_secs(10), follower.next())
        .await
        .expect("the stored event")
        .unwrap();
    assert_eq!(followed, stored);
    assert!(
        tokio::time::timeout(Duration::from_secs(1), follower.next())
            .await
            .is_err(),
        "nothing else is stored"
    );

    // The worker's subscription got none of the events.
    assert!(
        !matches!(
            tokio::time::timeout(Duration::from_millis(500), spy.next()).await,
            Ok(Some(_))
        ),
        "the worker received an event on a core subscription"
    );
    for replies in [&mut api_replies, &mut worker_replies] {
        assert!(
            futures::FutureExt::now_or_never(replies.next()).is_none_or(|r| r.is_none()),
            "a user received another's reply"
        );
    }
    // The server says why.
    let log = nats.log();
    for violation in [
        format!("\"$G/user:worker\" - Subscription Violation - Subject \"{prefix}.>\""),
        format!("\"$G/user:worker\" - Subscription Violation - Subject \"{api_inbox}\""),
        format!("\"$G/user:api\" - Subscription Violation - Subject \"{worker_inbox}\""),
        format!(
            "\"$G/user:api\" - Publish Violation - Subject \"{}\"",
            call.name(&prefix)
        ),
    ] {
        assert!(log.contains(&violation), "{violation} in:\n{log}");
    }
    assert_eq!(
        log.matches("Violation").count(),
        4,
        "nothing else was refused:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_task_runs_on_the_secured_bus_with_the_worker_and_the_api_each_as_its_user() {
    let (nats, users) = NatsServer::start_secured();
    let mut config = slow_config(10);
    config.bus.url = nats.url();
    let app = spawn_app_with(users.worker.bus_of(&config), true).await;
    // A worker has made the stream (the api may only read it).
    let bus = bus(&app).await;
    // The api's tasks belong to `acme` (its default tenant, auth being off), a tenant the
    // worker's config does not name: the worker takes it from each task.
    let acme: TenantId = "acme".parse().unwrap();
    let mut api_config = users.api.bus_of(&config);
    api_config.auth.default_tenant = acme.clone();
    let api = spawn_api_on(app.temporal_address(), &api_config, "127.0.0.1:0").await;
    // Its relays read on hints once its bus is ready (they long-poll history before).
    let mut ready = false;
    for _ in 0..100 {
        ready = api.get("/metrics").await.1["bus"]["state"] == "ready";
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the api's bus is ready");
    let (task, log) = watched_to_the_end(&app, &api, "What is 6*7? Then count to 40").await;

    // The relay served the calls from the bus, woken by the worker's progress hints.
    let (_, metrics) = api.get("/metrics").await;
    assert_eq!(metrics["bus"]["state"], "ready", "{metrics}");
    assert!(
        metrics["bus"]["counts"]["followed"].as_u64().unwrap() >= log.len() as u64 / 2,
        "{metrics}"
    );
    assert!(
        metrics["relay_rpcs"]["history_poll"].as_u64().unwrap() <= 1,
        "{metrics}"
    );
    // Each call is stored, whole and in one attempt, on the tenant's subject only.
    let calls = calls(&log);
    assert!(calls.len() >= 2, "a tool call and an answer: {calls:?}");
    for (seq_base, events) in &calls {
        let on_acme = CallSubject {
            tenant: acme.clone(),
            task,
            seq_base: *seq_base,
        };
        let read = bus.read_call(&on_acme).await.expect("reading the call");
        assert_eq!(read.fold.events(), &events[..], "call at {seq_base}");
        assert_eq!(read.fold.attempt(), 1);
        let elsewhere = bus.read_call(&call_of(task, *seq_base)).await.unwrap();
        assert!(elsewhere.fold.events().is_empty());
    }
    let log = nats.log();
    assert!(!log.contains("Violation"), "nothing was refused:\n{log}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_created_before_tenancy_travels_on_the_default_tenants_subjects() {
    let app = spawn_app_with(slow_config(10), true).await;
    let api = app.spawn_api().await;
    // No tenant, as every task before tenancy: the worker publishes it under its default one,
    // the relay follows it under any.
    let mut old = NewTask::default();
    old.parameters.enable_streaming = Some(true);
    let task = app.create("assistant", old).await.unwrap();
    let mut live = open(&api, task).await;
    execute(&api, task, "Count to 20").await;
    let received = live.rest().await.to_vec();
    let log = dense_log(&app.result(task).await.events);
    assert_whole(&received, &log);
    let fold = the_call_on_the_bus(&bus(&app).await, task, &log).await;
    assert_eq!(fold.events(), &calls(&log)[0].1[..]);
    let (_, metrics) = api.get("/metrics").await;
    assert!(
        metrics["bus"]["counts"]["followed"].as_u64().unwrap() >= log.len() as u64 / 2,
        "{metrics}"
    );
    api.stop().await;
}

/// The call of `task` at seq 1: its fence and `count` deltas of 16 KiB, published by `worker`.
async fn a_large_call(worker: &Bus, task: TaskId, count: u64) -> Vec<Event> {
    let call = call_of(task, Seq(1));
    worker
        .fence_call(&call, 1)
        .await
        .expect("the worker fences");
    let mut publisher = CallPublisher::new(worker, call, 1);
    let mut events = Vec::new();
    for seq in 1..=count {
        let mut event = started(task, seq);
        event.kind = EventKind::LlmCallDelta(agentflow_shared::event::LlmCallDelta {
            step: 1,
            text: "x".repeat(16 * 1024),
            chunk_index: seq as u32 - 1,
            kind: Default::default(),
        });
        publisher.publish(&event).await.unwrap();
        events.push(event);
    }
    publisher.flush().await.unwrap();
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn on_the_secured_bus_the_worker_and_the_api_read_a_call_past_flow_control_whole() {
    let (nats, users) = NatsServer::start_secured();
    let mut config = test_config();
    config.bus.url = nats.url();
    let worker = ready_bus(&users.worker.bus_of(&config).bus).await;
    let api = ready_bus(&users.api.bus_of(&config).bus).await;
    // About 6 MiB: the server asks each reader to confirm flow control on the way.
    let task = TaskId::new();
    let events = a_large_call(&worker, task, 400).await;
    let read = worker
        .read_call(&call_of(task, Seq(1)))
        .await
        .expect("a retry's read");
    assert_eq!(read.fold.events(), &events[..]);
    let mut follower = api.follow_task(Some(&tenant()), task).await.unwrap();
    for event in &events {
        let followed = tokio::time::timeout(Duration::from_secs(10), follower.next())
            .await
            .unwrap_or_else(|_| {
                panic!("the follower stalled before {}:\n{}", event.seq, nats.log())
            })
            .unwrap();
        assert_eq!(&followed, event);
    }
    let log = nats.log();
    assert!(!log.contains("Violation"), "nothing was refused:\n{log}");
}

/// Whether a bus client of `settings` gets ready within 3 s.
async fn connects(settings: &BusSettings) -> bool {
    let bus = Bus::start(settings).await.unwrap().unwrap();
    bus.wait_ready(Duration::from_secs(3)).await
}

/// Makes, with the `openssl` command, a certificate authority (`ca.pem`) and a certificate it
/// signed for 127.0.0.1 (`server.pem`, `server.key`) in `dir`.
fn tls_files(dir: &std::path::Path) {
    let openssl = |args: &str| {
        let status = std::process::Command::new("openssl")
            .args(args.split(' '))
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("running openssl");
        assert!(status.success(), "openssl {args}");
    };
    openssl("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=ca");
    openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
         -days 1 -extfile server.ext",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bus_connects_over_tls_trusting_the_configured_authority() {
    let dir = std::env::temp_dir().join(format!("agentflow-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    tls_files(&dir);
    let file = |name: &str| dir.join(name).display().to_string();
    let (cert, key) = (file("server.pem"), file("server.key"));
    let nats = NatsServer::start_with_args(&["--tls", "--tlscert", &cert, "--tlskey", &key]);
    let mut settings = test_config().bus;
    settings.url = nats.url();
    settings.tls_required = true;
    settings.tls_ca_file = Some(dir.join("ca.pem"));
    // Ready: connected over TLS, the stream made.
    ready_bus(&settings).await;
    // Without the authority the server's certificate is not trusted; a server without TLS is
    // refused.
    let untrusting = BusSettings {
        tls_ca_file: None,
        ..settings.clone()
    };
    assert!(!connects(&untrusting).await, "an unknown authority");
    let plain = NatsServer::start();
    settings.url = plain.url();
    assert!(!connects(&settings).await, "TLS is required");
    std::fs::remove_dir_all(&dir).unwrap();
}
