//! Declared tools: an `http` tool served by a local HTTP server the test runs — its arguments,
//! result, secret header, `Idempotency-Key` across retries, refusals and schema violations, and
//! the catalog.

use crate::WORKER;
use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::event::{EventKind, ToolCallCompleted};
use agentflow_shared::task::TaskResult;
use agentflow_shared::tools::{ToolConfig, ToolKind};
use agentflow_tests::files::{record_file, until_line};
use agentflow_tests::harness::{WorkerProcess, spawn_app_with, test_config};
use agentflow_tests::logs::decoded_history;
use agentflow_tests::server::free_port;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How long a test waits for a tool to record what it saw.
const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// What the tool server received: path, `Idempotency-Key`, `Authorization`, body.
type Received = Arc<Mutex<Vec<(String, String, String, Value)>>>;

const SECRET: &str = "Bearer s3cret-never-in-history";

/// A tool server: `/lookup` answers, `/flaky` fails once per key with 503, `/refuse` says 422.
async fn tool_server() -> (String, Received) {
    let received: Received = Arc::default();
    let record = |path: &'static str| {
        move |State(received): State<Received>, headers: HeaderMap, Json(body): Json<Value>| async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let key = header("idempotency-key");
            let mut all = received.lock().unwrap();
            let earlier = all.iter().filter(|r| r.0 == path && r.1 == key).count();
            all.push((path.to_owned(), key, header("authorization"), body.clone()));
            match path {
                "/lookup" => (
                    StatusCode::OK,
                    Json(json!({"city": body["city"], "temp_c": 21})),
                ),
                "/flaky" if earlier == 0 => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"detail": "busy"})),
                ),
                "/flaky" => (StatusCode::OK, Json(json!({"attempt": earlier + 1}))),
                _ => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(json!({"detail": "no such city"})),
                ),
            }
        }
    };
    let app = Router::new()
        .route("/lookup", post(record("/lookup")))
        .route("/flaky", post(record("/flaky")))
        .route("/refuse", post(record("/refuse")))
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                Json(json!({"late": true}))
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn http_tool(url: String, headers: &[(&str, &str)]) -> ToolConfig {
    ToolConfig {
        kind: ToolKind::Http,
        description: "Looks a city up.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }),
        require_approval: false,
        timeout_secs: Some(10),
        max_attempts: Some(3),
        url: Some(url),
        headers: headers
            .iter()
            .map(|(h, v)| ((*h).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        activity_type: None,
        task_queue: None,
        schedule_to_start_timeout_secs: None,
        heartbeat_timeout_secs: None,
    }
}

/// The test config with `lookup` (secret header), `flaky` and `refuse` declared and listed by
/// the assistant.
fn config_with_tools(url: &str) -> AgentflowConfig {
    let mut config = test_config();
    config.tools.insert(
        "lookup".into(),
        http_tool(
            format!("{url}/lookup"),
            &[("Authorization", "AGENTFLOW_TEST_LOOKUP_TOKEN")],
        ),
    );
    config
        .tools
        .insert("flaky".into(), http_tool(format!("{url}/flaky"), &[]));
    config
        .tools
        .insert("refuse".into(), http_tool(format!("{url}/refuse"), &[]));
    let tools = &mut config.agents.get_mut("assistant").unwrap().tools;
    tools.extend(["lookup".into(), "flaky".into(), "refuse".into()]);
    config.validate().expect("a valid config");
    config
}

fn tool_results(result: &TaskResult) -> Vec<&ToolCallCompleted> {
    result
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolCallCompleted(done) => Some(done),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_tool_gets_its_arguments_and_secret_and_retries_carry_one_idempotency_key() {
    let (url, received) = tool_server().await;
    let config = config_with_tools(&url);
    let app = spawn_app_with(config.clone(), false).await;
    let worker = WorkerProcess::spawn_with_env(
        app.temporal_address(),
        WORKER,
        &config,
        &[("AGENTFLOW_TEST_LOOKUP_TOKEN", SECRET)],
    );

    let lookup = app.run_query(r#"use lookup {"city": "Oslo"}"#, false).await;
    let flaky = app
        .run_query(r#"use flaky {"city": "Bergen"}"#, false)
        .await;
    let looked_up = app.result(lookup).await;
    let retried = app.result(flaky).await;
    worker.kill().await;

    let done = tool_results(&looked_up);
    assert_eq!(done.len(), 1);
    assert!(done[0].success, "{:?}", done[0]);
    assert_eq!(done[0].result, Some(json!({"city": "Oslo", "temp_c": 21})));
    let calls = received.lock().unwrap().clone();
    let lookups: Vec<_> = calls.iter().filter(|c| c.0 == "/lookup").collect();
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].1, format!("{lookup}:{}", done[0].tool_call_id));
    assert_eq!(
        lookups[0].2, SECRET,
        "the header's value comes from the worker's env"
    );
    assert_eq!(lookups[0].3, json!({"city": "Oslo"}));
    let history = decoded_history(&String::from_utf8(app.history_json(lookup).await).unwrap());
    assert!(history.contains("Oslo"), "payloads are decoded");
    assert!(
        !history.contains("s3cret"),
        "the secret is not in the history"
    );
    let shown = std::process::Command::new("temporal")
        .args(["workflow", "show", "--output", "json", "--address"])
        .arg(app.temporal_address())
        .arg("--workflow-id")
        .arg(lookup.workflow_id())
        .output()
        .expect("the temporal CLI (scripts/test installs it)");
    assert!(shown.status.success(), "{shown:?}");
    let shown = decoded_history(&String::from_utf8_lossy(&shown.stdout));
    assert!(
        shown.contains("Oslo"),
        "the history is shown, payloads decoded"
    );
    assert!(
        !shown.contains("s3cret"),
        "`temporal workflow show` never shows the secret"
    );
    app.assert_replays(lookup, "http-tool").await;

    let done = tool_results(&retried);
    assert!(done[0].success, "{:?}", done[0]);
    assert_eq!(done[0].result, Some(json!({"attempt": 2})));
    let keys: Vec<&String> = calls
        .iter()
        .filter(|c| c.0 == "/flaky")
        .map(|c| &c.1)
        .collect();
    assert_eq!(keys.len(), 2, "a 503 is retried");
    assert_eq!(keys[0], keys[1], "with the same Idempotency-Key");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_and_a_schema_violation_are_failed_results_the_model_reads() {
    let (url, received) = tool_server().await;
    let mut config = config_with_tools(&url);
    // No secret on this worker: `lookup` is not declared here.
    config.tools.remove("lookup");
    config
        .agents
        .get_mut("assistant")
        .unwrap()
        .tools
        .retain(|t| t != "lookup");
    config
        .tools
        .insert("lookup".into(), http_tool(format!("{url}/lookup"), &[]));
    config
        .agents
        .get_mut("assistant")
        .unwrap()
        .tools
        .push("lookup".into());
    let app = spawn_app_with(config, true).await;

    let refused = app
        .run_query(r#"use refuse {"city": "Atlantis"}"#, false)
        .await;
    let invalid = app.run_query(r#"use lookup {"city": 5}"#, false).await;
    let refused = app.result(refused).await;
    let invalid = app.result(invalid).await;

    let done = tool_results(&refused);
    assert!(!done[0].success);
    let error = done[0].error.clone().unwrap_or_default();
    assert!(error.contains("no such city"), "{error}");
    let done = tool_results(&invalid);
    assert!(!done[0].success);
    let error = done[0].error.clone().unwrap_or_default();
    assert!(error.contains("/city"), "the field is named: {error}");
    assert!(
        received.lock().unwrap().iter().all(|c| c.0 != "/lookup"),
        "arguments that do not fit the schema are never sent"
    );
    let completed = |result: &TaskResult| {
        matches!(
            result.events.last().map(|e| &e.kind),
            Some(EventKind::Completed(_))
        )
    };
    assert!(
        completed(&refused) && completed(&invalid),
        "the model read them and answered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_lists_builtin_and_declared_tools_without_secrets() {
    let config = config_with_tools("http://tools.internal:8080");
    let app = spawn_app_with(config, false).await;
    let api = app.spawn_api().await;
    let (status, catalog) = api.get("/api/v1/tools").await;
    assert_eq!(status, 200, "{catalog}");
    let names: Vec<&str> = catalog
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["calculator", "current_time", "flaky", "lookup", "refuse"]
    );
    let lookup = &catalog[3];
    assert_eq!(lookup["kind"], "http");
    assert_eq!(lookup["runs_at"], "tools.internal:8080");
    assert_eq!(lookup["parameters"]["required"], json!(["city"]));
    assert!(!catalog.to_string().contains("AGENTFLOW_TEST_LOOKUP_TOKEN"));
    let (status, agent) = api.get("/api/v1/agents/assistant").await;
    assert_eq!(status, 200);
    let specs: Vec<&str> = agent["tool_specs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        specs.contains(&"lookup") && specs.contains(&"calculator"),
        "{specs:?}"
    );
    api.stop().await;
}

/// The Python worker of `examples/python-activity`, serving `weather` on `queue`, once ready.
pub(crate) async fn python_worker(temporal: &str, queue: &str) -> tokio::process::Child {
    python_worker_recording(temporal, queue, None).await
}

/// The Python worker, its `nap` activity recording what it saw in `record`.
async fn python_worker_recording(
    temporal: &str,
    queue: &str,
    record: Option<&std::path::Path>,
) -> tokio::process::Child {
    use tokio::io::AsyncBufReadExt;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/python-activity/worker.py"
    );
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .env("TEMPORAL_ADDRESS", temporal)
        .env("TASK_QUEUE", queue)
        .env(
            "RECORD_FILE",
            record.map(|r| r.as_os_str()).unwrap_or_default(),
        )
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 with the temporalio package (scripts/test installs it)");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("the Python worker started within 60 s")
        .unwrap();
    assert!(
        ready.is_some_and(|l| l.starts_with("ready")),
        "the Python worker is ready"
    );
    child
}

fn activity_tool(queue: &str, schedule_to_start_secs: u64) -> ToolConfig {
    ToolConfig {
        kind: ToolKind::Activity,
        activity_type: Some("weather".into()),
        task_queue: Some(queue.into()),
        schedule_to_start_timeout_secs: Some(schedule_to_start_secs),
        url: None,
        ..http_tool(String::new(), &[])
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_activity_tool_runs_on_a_python_worker_and_its_failures_are_results() {
    let queue = format!("python-tools-{}", uuid::Uuid::new_v4());
    let mut config = test_config();
    config
        .tools
        .insert("weather".into(), activity_tool(&queue, 30));
    config
        .tools
        .insert("nobody".into(), activity_tool("no-worker-polls-this", 2));
    let tools = &mut config.agents.get_mut("assistant").unwrap().tools;
    tools.extend(["weather".into(), "nobody".into()]);
    config.validate().expect("a valid config");
    let app = spawn_app_with(config, true).await;
    let python = python_worker(app.temporal_address(), &queue).await;

    let oslo = app
        .run_query(r#"use weather {"city": "Oslo"}"#, false)
        .await;
    let atlantis = app
        .run_query(r#"use weather {"city": "Atlantis"}"#, false)
        .await;
    let invalid = app
        .run_query(r#"use weather {"town": "Oslo"}"#, false)
        .await;
    let unserved = app.run_query(r#"use nobody {"city": "Oslo"}"#, false).await;
    let result = |task| app.result(task);
    let (oslo_result, atlantis, invalid, unserved) = (
        result(oslo).await,
        result(atlantis).await,
        result(invalid).await,
        result(unserved).await,
    );
    drop(python);

    let done = tool_results(&oslo_result);
    assert!(done[0].success, "{:?}", done[0]);
    assert_eq!(
        done[0].result,
        Some(json!({"city": "Oslo", "temp_c": 21, "sky": "clear"}))
    );
    let error = |result: &TaskResult| tool_results(result)[0].error.clone().unwrap_or_default();
    assert!(
        error(&atlantis).contains("no weather station in Atlantis"),
        "{}",
        error(&atlantis)
    );
    assert!(
        error(&invalid).contains("city"),
        "the missing field is named: {}",
        error(&invalid)
    );
    assert!(
        error(&unserved).contains("no-worker-polls-this"),
        "the queue nobody polls is named: {}",
        error(&unserved)
    );
    for result in [&atlantis, &invalid, &unserved] {
        assert!(
            matches!(
                result.events.last().map(|e| &e.kind),
                Some(EventKind::Completed(_))
            ),
            "the model read the failure and answered"
        );
    }
    app.assert_replays(oslo, "activity-tool").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_that_requires_approval_always_waits_and_edited_arguments_must_fit_its_schema() {
    use agentflow_tests::requests::{create_idle, execute, open, post, problem, task_path};
    let (url, _received) = tool_server().await;
    let mut config = config_with_tools(&url);
    config.tools.remove("lookup");
    let mut lookup = http_tool(format!("{url}/lookup"), &[]);
    lookup.require_approval = true;
    config.tools.insert("lookup".into(), lookup);
    let app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    // The task asks for approval of another tool only: the tool's own requirement still holds.
    let task = create_idle(&api, json!({"require_approval": ["calculator"]})).await;
    let mut live = open(&api, &task).await;
    execute(&api, &task, r#"use lookup {"city": "Oslo"}"#).await;
    let requested = live.until("WorkflowApprovalRequested").await;
    let EventKind::ApprovalRequested(requested) = &requested.kind else {
        unreachable!()
    };
    let decide = task_path(&task, &format!("/approvals/{}", requested.approval_id));
    let refused = post(
        &api,
        &decide,
        json!({"decision": "approve", "arguments": {"city": 5}}),
    )
    .await;
    let detail = problem(&refused, 422);
    assert!(detail.contains("/city"), "the field is named: {detail}");
    let approved = post(
        &api,
        &decide,
        json!({"decision": "approve", "arguments": {"city": "Bergen"}}),
    )
    .await;
    assert_eq!(approved.status, 202, "{}", approved.body);
    live.until("WorkflowCompleted").await;
    let done = live
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ToolCallCompleted(done) => Some(done.clone()),
            _ => None,
        })
        .expect("the tool ran");
    assert_eq!(done.result, Some(json!({"city": "Bergen", "temp_c": 21})));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_ends_a_running_tool_call_as_cancelled_before_the_log_ends() {
    use agentflow_tests::requests::{create_idle, execute, open, post, task_path};
    let (url, _received) = tool_server().await;
    let mut config = config_with_tools(&url);
    config.tools.remove("lookup");
    config
        .tools
        .insert("lookup".into(), http_tool(format!("{url}/slow"), &[]));
    let app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({})).await;
    let mut live = open(&api, &task).await;
    execute(&api, &task, r#"use lookup {"city": "Oslo"}"#).await;
    let started = live.until("WorkflowToolCallStarted").await;
    let EventKind::ToolCallStarted(started) = &started.kind else {
        unreachable!()
    };
    assert_eq!(started.kind, Some(ToolKind::Http));
    let cancelled = post(&api, &task_path(&task, "/cancel"), json!({})).await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.body);
    let events = live.rest().await.to_vec();
    let names: Vec<&str> = events.iter().map(|e| e.type_name()).collect();
    let completed = names
        .iter()
        .position(|n| *n == "WorkflowToolCallCompleted")
        .expect("the running call ends");
    assert_eq!(names.last(), Some(&"WorkflowCancelled"));
    assert!(
        completed < names.len() - 1,
        "before the log ends: {names:?}"
    );
    let EventKind::ToolCallCompleted(done) = &events[completed].kind else {
        unreachable!()
    };
    assert!(!done.success);
    assert_eq!(done.error.as_deref(), Some("cancelled"));
    assert_eq!(done.kind, Some(ToolKind::Http));
    api.stop().await;
}

/// An `activity` tool of the Python worker: `activity_type` on `queue`.
pub(crate) fn python_tool(activity_type: &str, queue: &str) -> ToolConfig {
    ToolConfig {
        activity_type: Some(activity_type.into()),
        parameters: json!({"type": "object"}),
        ..activity_tool(queue, 30)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_activity_tool_whose_worker_dies_mid_call_is_retried_on_another_worker() {
    let queue = format!("python-tools-{}", uuid::Uuid::new_v4());
    let record = record_file("activity");
    let mut config = test_config();
    let mut nap = python_tool("nap", &queue);
    nap.heartbeat_timeout_secs = Some(2);
    nap.max_attempts = Some(2);
    config.tools.insert("nap".into(), nap);
    config
        .agents
        .get_mut("assistant")
        .unwrap()
        .tools
        .push("nap".into());
    let app = spawn_app_with(config, true).await;
    let first = python_worker_recording(app.temporal_address(), &queue, Some(&record)).await;

    let task = app
        .run_query(r#"use nap {"seconds": 3, "tag": "t"}"#, false)
        .await;
    until_line(&record, "started t", WAIT).await;
    let mut first = first;
    first.kill().await.unwrap();
    let _second = python_worker_recording(app.temporal_address(), &queue, Some(&record)).await;
    let result = app.result(task).await;

    let done = tool_results(&result);
    assert!(done[0].success, "the second attempt ran: {:?}", done[0]);
    assert_eq!(done[0].result, Some(json!({"slept": 3})));
    let seen = std::fs::read_to_string(&record).unwrap();
    assert_eq!(
        seen.lines().filter(|l| *l == "started t").count(),
        2,
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_reaches_a_heartbeating_activity_tool() {
    use agentflow_tests::requests::{create_idle, execute, open, post, task_path};
    let queue = format!("python-tools-{}", uuid::Uuid::new_v4());
    let record = record_file("activity");
    let mut config = test_config();
    let mut nap = python_tool("nap", &queue);
    nap.heartbeat_timeout_secs = Some(2);
    config.tools.insert("nap".into(), nap);
    config
        .agents
        .get_mut("assistant")
        .unwrap()
        .tools
        .push("nap".into());
    let app = spawn_app_with(config, true).await;
    let _python = python_worker_recording(app.temporal_address(), &queue, Some(&record)).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({})).await;
    let mut live = open(&api, &task).await;
    execute(&api, &task, r#"use nap {"seconds": 120, "tag": "c"}"#).await;
    until_line(&record, "started c", WAIT).await;
    let cancelled = post(&api, &task_path(&task, "/cancel"), json!({})).await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.body);
    let events = live.rest().await.to_vec();
    let done = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ToolCallCompleted(done) => Some(done.clone()),
            _ => None,
        })
        .expect("the running call ends");
    assert_eq!(done.error.as_deref(), Some("cancelled"));
    assert_eq!(done.kind, Some(ToolKind::Activity));
    assert_eq!(
        events.last().map(|e| e.type_name()),
        Some("WorkflowCancelled")
    );
    until_line(&record, "cancelled c", WAIT).await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_activity_result_over_the_payload_limit_is_a_failed_result_never_a_stuck_task() {
    let queue = format!("python-tools-{}", uuid::Uuid::new_v4());
    let mut config = test_config();
    let mut big = python_tool("big", &queue);
    big.timeout_secs = Some(5);
    big.max_attempts = Some(1);
    config.tools.insert("big".into(), big);
    config
        .agents
        .get_mut("assistant")
        .unwrap()
        .tools
        .push("big".into());
    let app = spawn_app_with(config, true).await;
    let _python = python_worker(app.temporal_address(), &queue).await;

    // 3 MB: past the dev server's 2 MiB payload limit.
    let task = app.run_query(r#"use big {"bytes": 3000000}"#, false).await;
    let result = app.result(task).await;
    let done = tool_results(&result);
    assert!(!done[0].success, "{:?}", done[0]);
    let error = done[0].error.clone().unwrap_or_default().to_lowercase();
    // The Python SDK checks the size itself and fails the attempt naming the limit; an SDK
    // that does not is refused by the server, and the call ends at its timeout.
    assert!(
        error.contains("exceeded the error limit") || error.contains("timeout"),
        "{error}"
    );
    assert!(
        matches!(
            result.events.last().map(|e| &e.kind),
            Some(EventKind::Completed(_))
        ),
        "the model read the failure and answered: never a stuck task"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_tool_whose_server_dies_mid_call_ends_as_a_failed_result_not_a_stuck_task() {
    use tokio::io::AsyncBufReadExt;
    let port = free_port();
    // A server that takes the request and never answers, until it is killed.
    let script = format!(
        "import socket, time\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', {port})); s.listen()\n\
         print('listening', flush=True)\n\
         c, _ = s.accept(); c.recv(65536)\n\
         print('received', flush=True)\n\
         time.sleep(600)\n"
    );
    let mut server = tokio::process::Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("listening")
    );
    let mut config = test_config();
    let mut lookup = http_tool(format!("http://127.0.0.1:{port}/lookup"), &[]);
    lookup.max_attempts = Some(2);
    config.tools.insert("lookup".into(), lookup);
    config
        .agents
        .get_mut("assistant")
        .unwrap()
        .tools
        .push("lookup".into());
    let app = spawn_app_with(config, true).await;

    let task = app.run_query(r#"use lookup {"city": "Oslo"}"#, false).await;
    let received = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the call reached the server")
        .unwrap();
    assert_eq!(received.as_deref(), Some("received"));
    server.kill().await.unwrap();
    let result = app.result(task).await;

    let done = tool_results(&result);
    assert!(!done[0].success, "{:?}", done[0]);
    assert!(
        done[0].error.is_some(),
        "the model reads why: {:?}",
        done[0]
    );
    assert!(
        matches!(
            result.events.last().map(|e| &e.kind),
            Some(EventKind::Completed(_))
        ),
        "never a stuck task"
    );
}
