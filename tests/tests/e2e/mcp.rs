//! `mcp` tools against real MCP servers: the reference `mcp-server-time` (PyPI, pinned) over
//! stdio, and `examples/mcp/server.py` (the official Python SDK) over streamable HTTP and
//! stdio — listing, calls, `isError`, schema violations, cancel (`notifications/cancelled`),
//! a server killed mid-call, no orphan server after a worker SIGKILL, the catalog, a replay.

use crate::WORKER;
use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::event::{EventKind, ToolCallCompleted};
use agentflow_shared::mcp::McpServerConfig;
use agentflow_shared::task::TaskResult;
use agentflow_shared::tools::ToolKind;
use agentflow_tests::files::{record_file, until_line};
use agentflow_tests::harness::{WorkerProcess, spawn_app_with, test_config};
use agentflow_tests::server::free_port;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// How long a test waits for a tool to record what it saw.
const WAIT: Duration = Duration::from_secs(30);

/// The example MCP server.
const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/mcp/server.py");

fn stdio(args: &[&str]) -> McpServerConfig {
    McpServerConfig {
        command: Some("python3".into()),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: BTreeMap::new(),
        env_from: BTreeMap::new(),
        url: None,
        headers: BTreeMap::new(),
        include: Vec::new(),
        exclude: Vec::new(),
        require_approval: false,
        timeout_secs: Some(60),
        max_attempts: Some(2),
        protocol_version: None,
    }
}

fn http(url: &str) -> McpServerConfig {
    McpServerConfig {
        command: None,
        args: Vec::new(),
        url: Some(url.to_owned()),
        ..stdio(&[])
    }
}

/// The test config with these MCP servers, listed by the assistant.
fn config_with(servers: Vec<(&str, McpServerConfig)>) -> AgentflowConfig {
    let mut config = test_config();
    for (name, server) in servers {
        config.mcp_servers.insert(name.to_owned(), server);
        let agent = config.agents.get_mut("assistant").unwrap();
        agent.tools.push(name.to_owned());
    }
    config.validate().expect("a valid config");
    config
}

/// Starts the example server over streamable HTTP on a free port, once it listens.
async fn http_server(record: &Path) -> (String, tokio::process::Child) {
    let port = free_port();
    let mut child = tokio::process::Command::new("python3")
        .args([SERVER, "--port", &port.to_string(), "--record"])
        .arg(record)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 with the mcp package (scripts/test installs it)");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Uvicorn running") {
                return true;
            }
        }
        false
    };
    let ready = tokio::time::timeout(Duration::from_secs(60), listening).await;
    assert!(matches!(ready, Ok(true)), "the example MCP server listens");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (format!("http://127.0.0.1:{port}/mcp"), child)
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

fn completed(result: &TaskResult) -> bool {
    matches!(
        result.events.last().map(|e| &e.kind),
        Some(EventKind::Completed(_))
    )
}

/// Whether a process whose command line contains `marker` runs.
fn running(marker: &str) -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", marker])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_tools_over_stdio_and_streamable_http_are_called_and_their_errors_are_results() {
    let record = record_file("mcp");
    let (url, _server) = http_server(&record).await;
    let config = config_with(vec![
        (
            "time",
            stdio(&["-m", "mcp_server_time", "--local-timezone", "UTC"]),
        ),
        ("notes", http(&url)),
    ]);
    let app = spawn_app_with(config.clone(), true).await;

    let now = app
        .run_query(
            r#"use time__get_current_time {"timezone": "Europe/Oslo"}"#,
            false,
        )
        .await;
    let counted = app
        .run_query(r#"use notes__word_count {"text": "one two three"}"#, false)
        .await;
    let shouted = app
        .run_query(r#"use notes__shout {"text": "hello"}"#, false)
        .await;
    let failed = app
        .run_query(r#"use notes__fail {"message": "the disk is full"}"#, false)
        .await;
    let invalid = app
        .run_query(r#"use notes__word_count {"text": 5}"#, false)
        .await;
    let (now_result, counted, shouted, failed, invalid) = (
        app.result(now).await,
        app.result(counted).await,
        app.result(shouted).await,
        app.result(failed).await,
        app.result(invalid).await,
    );

    let done = tool_results(&now_result);
    assert!(done[0].success, "{:?}", done[0]);
    assert_eq!(done[0].kind, Some(ToolKind::Mcp));
    assert_eq!(done[0].server.as_deref(), Some("time"));
    assert!(
        done[0]
            .result
            .as_ref()
            .unwrap()
            .to_string()
            .contains("Europe/Oslo"),
        "{:?}",
        done[0].result
    );
    let done = tool_results(&counted);
    assert!(done[0].success, "{:?}", done[0]);
    assert_eq!(
        done[0].result.as_ref().map(|r| r["words"].clone()),
        Some(json!(3)),
        "structured content: {:?}",
        done[0].result
    );
    let done = tool_results(&shouted);
    assert_eq!(done[0].result, Some(json!("HELLO")), "text content");
    let done = tool_results(&failed);
    assert!(!done[0].success);
    let error = done[0].error.clone().unwrap_or_default();
    assert!(error.contains("the disk is full"), "isError: {error}");
    let done = tool_results(&invalid);
    assert!(!done[0].success);
    let error = done[0].error.clone().unwrap_or_default();
    assert!(error.contains("/text"), "the field is named: {error}");
    for result in [&now_result, &failed, &invalid] {
        assert!(completed(result), "the model read the result and answered");
    }
    app.assert_replays(now, "mcp-tool").await;

    // The catalog shows the tools the worker listed, under their server.
    let api = app.spawn_api().await;
    let (status, catalog) = api.get("/api/v1/tools").await;
    assert_eq!(status, 200, "{catalog}");
    let reported = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "notes__word_count")
        .unwrap_or_else(|| panic!("reported by the worker: {catalog}"));
    assert_eq!(reported["server"], "notes");
    assert_eq!(reported["kind"], "mcp");
    assert_eq!(reported["parameters"]["required"], json!(["text"]));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_stops_a_running_mcp_call_with_notifications_cancelled() {
    use agentflow_tests::requests::{create_idle, execute, open, post, task_path};
    let record = record_file("mcp");
    let (url, _server) = http_server(&record).await;
    let config = config_with(vec![("notes", http(&url))]);
    let app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({})).await;
    let mut live = open(&api, &task).await;
    execute(
        &api,
        &task,
        r#"use notes__slow {"seconds": 120, "tag": "to-cancel"}"#,
    )
    .await;
    live.until("WorkflowToolCallStarted").await;
    until_line(&record, "started to-cancel", WAIT).await;
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
    assert_eq!(
        events.last().map(|e| e.type_name()),
        Some("WorkflowCancelled")
    );
    until_line(&record, "cancelled to-cancel", WAIT).await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_server_killed_mid_call_is_a_failed_result_and_the_next_call_reconnects() {
    let record = record_file("mcp");
    let marker = record.to_str().unwrap().to_owned();
    let config = config_with(vec![(
        "scratch",
        stdio(&[SERVER, "--stdio", "--record", &marker]),
    )]);
    let app = spawn_app_with(config, true).await;

    let cut = app
        .run_query(r#"use scratch__slow {"seconds": 120, "tag": "cut"}"#, false)
        .await;
    until_line(&record, "started cut", WAIT).await;
    let killed = std::process::Command::new("pkill")
        .arg("-KILL")
        .arg("-f")
        .arg(&marker)
        .status()
        .unwrap();
    assert!(killed.success(), "the server ran");
    let cut = app.result(cut).await;
    let done = tool_results(&cut);
    assert!(!done[0].success);
    let error = done[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("went away") && error.contains("not sent again"),
        "a call that is not idempotent is not sent twice: {error}"
    );
    assert!(completed(&cut), "never a stuck task");

    let next = app
        .run_query(r#"use scratch__shout {"text": "back"}"#, false)
        .await;
    let next = app.result(next).await;
    assert_eq!(tool_results(&next)[0].result, Some(json!("BACK")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_with_sigkill_leaves_no_mcp_server_behind() {
    let record = record_file("mcp");
    let marker = record.to_str().unwrap().to_owned();
    let config = config_with(vec![(
        "scratch",
        stdio(&[SERVER, "--stdio", "--record", &marker]),
    )]);
    let app = spawn_app_with(config.clone(), false).await;
    let worker = WorkerProcess::spawn_on(app.temporal_address(), WORKER, &config);
    let _task = app
        .run_query(
            r#"use scratch__slow {"seconds": 120, "tag": "orphan"}"#,
            false,
        )
        .await;
    until_line(&record, "started orphan", WAIT).await;
    assert!(running(&marker), "the worker started the server");
    worker.kill().await;
    let gone = async {
        while running(&marker) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), gone)
        .await
        .expect("the server died with its worker");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_shows_mcp_servers_and_a_secret_is_never_shown() {
    let mut notes = http("http://mcp.internal:8765/mcp");
    notes
        .headers
        .insert("Authorization".into(), "AGENTFLOW_TEST_MCP_TOKEN".into());
    let config = config_with(vec![("notes", notes)]);
    let app = spawn_app_with(config, false).await;
    let api = app.spawn_api().await;
    let (status, catalog) = api.get("/api/v1/tools").await;
    assert_eq!(status, 200, "{catalog}");
    let notes: &Value = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "notes")
        .expect("the server is listed");
    assert_eq!(notes["kind"], "mcp");
    assert_eq!(notes["runs_at"], "mcp.internal:8765");
    assert!(!catalog.to_string().contains("AGENTFLOW_TEST_MCP_TOKEN"));
    api.stop().await;
}

/// Starts `examples/http-tool/server.py` on a free port, once it listens; its `/weather` URL.
async fn http_tool_server() -> (String, tokio::process::Child) {
    let port = free_port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/http-tool/server.py"
    );
    let mut child = tokio::process::Command::new("python3")
        .args([script, "--port", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the HTTP tool example started")
        .unwrap();
    assert!(ready.is_some_and(|l| l.starts_with("ready")));
    (format!("http://127.0.0.1:{port}/weather"), child)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_tool_keeps_the_log_exact_over_reconnects() {
    use agentflow_tests::logs::final_log;
    use agentflow_tests::requests::{create_idle, execute, stream_path};
    use agentflow_tests::sse::read_with_reconnects;
    let record = record_file("mcp");
    let (mcp_url, _mcp) = http_server(&record).await;
    let (http_url, _http) = http_tool_server().await;
    let queue = format!("python-tools-{}", uuid::Uuid::new_v4());
    let mut config = config_with(vec![
        (
            "time",
            stdio(&["-m", "mcp_server_time", "--local-timezone", "UTC"]),
        ),
        ("notes", http(&mcp_url)),
    ]);
    let mut forecast = crate::tools::python_tool("unused", &queue);
    forecast.kind = ToolKind::Http;
    forecast.url = Some(http_url);
    forecast.activity_type = None;
    forecast.task_queue = None;
    config.tools.insert("forecast".into(), forecast);
    config.tools.insert(
        "weather".into(),
        crate::tools::python_tool("weather", &queue),
    );
    let agent = config.agents.get_mut("assistant").unwrap();
    agent.tools.extend(["forecast".into(), "weather".into()]);
    config.validate().expect("a valid config");
    let app = spawn_app_with(config, true).await;
    let _python = crate::tools::python_worker(app.temporal_address(), &queue).await;
    let api = app.spawn_api().await;

    let queries = [
        r#"use calculator {"expression": "6*7"}"#,
        r#"use forecast {"city": "Oslo"}"#,
        r#"use weather {"city": "Oslo"}"#,
        r#"use time__get_current_time {"timezone": "UTC"}"#,
        r#"use notes__word_count {"text": "one two"}"#,
    ];
    let mut readers = Vec::new();
    for query in queries {
        let task = create_idle(&api, json!({"enable_streaming": true})).await;
        let (http, url) = (api.http.clone(), api.url(&stream_path(&task)));
        let reader =
            tokio::spawn(async move { read_with_reconnects(&http, &url, &[1, 2, 1, 3, 2]).await });
        execute(&api, &task, query).await;
        readers.push((task, query, reader));
    }
    for (task, query, reader) in readers {
        let received = reader.await.unwrap();
        let log = final_log(&app, &task).await;
        assert_eq!(
            received, log,
            "{query}: all connections together = the final log"
        );
        let done = log
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::ToolCallCompleted(done) => Some(done.clone()),
                _ => None,
            })
            .expect("the tool ran");
        assert!(done.success, "{query}: {done:?}");
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_server_that_requires_approval_checks_edited_arguments_against_the_tools_schema() {
    use agentflow_tests::requests::{create_idle, execute, open, post, problem, task_path};
    let record = record_file("mcp");
    let (url, _server) = http_server(&record).await;
    let mut notes = http(&url);
    notes.require_approval = true;
    let config = config_with(vec![("notes", notes)]);
    let app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({})).await;
    let mut live = open(&api, &task).await;
    execute(&api, &task, r#"use notes__word_count {"text": "a b"}"#).await;
    let requested = live.until("WorkflowApprovalRequested").await;
    let EventKind::ApprovalRequested(requested) = &requested.kind else {
        unreachable!()
    };
    let decide = task_path(&task, &format!("/approvals/{}", requested.approval_id));
    let refused = post(
        &api,
        &decide,
        json!({"decision": "approve", "arguments": {"text": 5}}),
    )
    .await;
    let detail = problem(&refused, 422);
    assert!(detail.contains("/text"), "the field is named: {detail}");
    let approved = post(
        &api,
        &decide,
        json!({"decision": "approve", "arguments": {"text": "x y z"}}),
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
    assert_eq!(done.result.map(|r| r["words"].clone()), Some(json!(3)));
    api.stop().await;
}
