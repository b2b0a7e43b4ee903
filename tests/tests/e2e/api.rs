//! The REST api and the live SSE relay end to end: real dev server, worker and api over HTTP.

use crate::WORKER;
use agentflow_shared::config::ApiSettings;
use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::ids::{Seq, TaskId};
use agentflow_shared::task::EventsRange;
use agentflow_tests::api::TestApi;
use agentflow_tests::harness::test_config;
use agentflow_tests::logs::final_log;
use agentflow_tests::requests::{check_problem, create_idle, execute, stream_path};
use agentflow_tests::sse::{Live, read, read_with_reconnects};
use agentflow_tests::{TestApp, WorkerProcess, spawn_app, spawn_app_with};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Every seq is its index + 1: no gap and no duplicate, not even an identical one (which
/// `dense_log` takes).
fn assert_numbered_from_one(events: &[Event]) {
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, Seq(i as u64 + 1), "gap or duplicate at {i}");
    }
}

/// Open the stream before anything runs, execute, read to the end: exactly the final log.
async fn stream_equals_log(streaming: bool) {
    let mut app = spawn_app().await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({"enable_streaming": streaming})).await;
    let url = api.url(&stream_path(&task));
    let reader = {
        let http = api.http.clone();
        let url = url.clone();
        tokio::spawn(async move { read(&http, &url, None, usize::MAX).await })
    };
    execute(&api, &task, "Count to 40").await;
    let received = reader.await.unwrap();
    assert_eq!(received.status, 200);
    assert!(received.ended, "the stream closes after the terminal event");
    assert_eq!(received.retry, Some(1000), "the first frame carries retry");
    assert_eq!(received.headers["content-type"], "text/event-stream");
    assert_eq!(received.headers["cache-control"], "no-cache");
    assert_eq!(received.headers["x-accel-buffering"], "no");
    let log = final_log(&app, &task).await;
    assert_eq!(received.events, log);
    assert_numbered_from_one(&log);
    let deltas = log
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LlmCallDelta(_)))
        .count();
    assert_eq!(deltas > 0, streaming);

    let (status, page) = api
        .get(&format!(
            "/api/v1/agents/assistant/tasks/{task}/events?after=0&limit=1000"
        ))
        .await;
    assert_eq!(status, 200);
    let paged: Vec<Event> = serde_json::from_value(page["events"].clone()).unwrap();
    assert_eq!(paged, log, "the REST page equals the stream");

    let again = read(&api.http, &url, Some(log.len() as u64), usize::MAX).await;
    assert_eq!(again.status, 204, "reconnecting after the terminal event");
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_delivers_exactly_the_final_log_in_batch_mode() {
    stream_equals_log(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_delivers_exactly_the_final_log_in_streaming_mode() {
    stream_equals_log(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deltas_arrive_live_before_they_are_durable() {
    let mut config = test_config();
    config.models.get_mut("scripted").unwrap().token_delay_ms = 5;
    let mut app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({"enable_streaming": true})).await;
    execute(&api, &task, "Count to 1000").await;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &Event| matches!(e.kind, EventKind::LlmCallDelta(_)))
    {
        let last = seen.last().map(|e: &Event| e.seq.0);
        let part = read(&api.http, &api.url(&stream_path(&task)), last, 1).await;
        seen.extend(part.events);
    }
    let delta = seen.last().unwrap().seq;
    let durable = app.events(task.parse().unwrap(), 1000).await;
    assert!(
        durable.iter().all(|e| e.seq < delta),
        "delta {delta} reached the client from the heartbeat, before the workflow had it"
    );
    assert_eq!(&final_log(&app, &task).await[..seen.len()], seen);
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reconnects_at_random_points_lose_and_repeat_nothing() {
    let mut config = test_config();
    config.models.get_mut("scripted").unwrap().token_delay_ms = 5;
    let mut app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({"enable_streaming": true})).await;
    execute(&api, &task, "What is 12*12? Then count to 150").await;
    // A fixed-seed LCG picks where each connection drops (mid-delta included).
    let mut seed: u64 = 0x5eed;
    let chunks: Vec<usize> = (0..12)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + (seed >> 33) as usize % 6
        })
        .collect();
    let received = read_with_reconnects(&api.http, &api.url(&stream_path(&task)), &chunks).await;
    let log = final_log(&app, &task).await;
    assert_eq!(received, log, "all connections together = the final log");
    api.stop().await;
    app.stop_worker().await;
}

/// Runs one streaming task watched by `subscribers` clients on a fresh api; returns the relay
/// RPC count, after checking every client got the whole log.
async fn watched_by(app: &TestApp, subscribers: usize) -> u64 {
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({"enable_streaming": true})).await;
    let url = api.url(&stream_path(&task));
    let readers: Vec<_> = (0..subscribers)
        .map(|_| {
            let (http, url) = (api.http.clone(), url.clone());
            tokio::spawn(async move { read(&http, &url, None, usize::MAX).await })
        })
        .collect();
    // Execute once every subscriber is connected.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, metrics) = api.get("/metrics").await;
        if metrics["subscribers"].as_u64() == Some(subscribers as u64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "subscribers did not connect: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    execute(&api, &task, "Count to 80").await;
    let log = final_log(app, &task).await;
    for reader in readers {
        let received = reader.await.unwrap();
        assert!(received.ended);
        assert_eq!(received.events, log);
    }
    let rpcs = api.relay_rpcs().await;
    // With every subscriber gone, the relay stops after its linger.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, metrics) = api.get("/metrics").await;
        if metrics["relays"] == 0 && metrics["subscribers"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay never stopped: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.stop().await;
    rpcs
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_subscriber_is_neither_skipped_nor_slowing_others() {
    let mut app = spawn_app().await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({"enable_streaming": true})).await;
    let url = api.url(&stream_path(&task));
    let slow = {
        let url = url.clone();
        tokio::spawn(async move {
            // A client that reads its socket slowly: a tiny receive buffer, a pause per chunk.
            let response = reqwest::get(&url).await.unwrap();
            let mut body = response.bytes_stream();
            let mut raw = Vec::new();
            while let Some(chunk) = futures::StreamExt::next(&mut body).await {
                raw.extend_from_slice(&chunk.unwrap());
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            String::from_utf8(raw).unwrap()
        })
    };
    let fast = {
        let (http, url) = (api.http.clone(), url.clone());
        tokio::spawn(async move { read(&http, &url, None, usize::MAX).await })
    };
    execute(&api, &task, "Count to 300").await;
    let log = final_log(&app, &task).await;
    let fast = fast.await.unwrap();
    assert_eq!(fast.events, log);
    let slow_ids: Vec<u64> = slow
        .await
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect();
    assert_eq!(slow_ids, (1..=log.len() as u64).collect::<Vec<_>>());
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_subscribers_cost_temporal_what_one_does() {
    let mut app = spawn_app().await;
    let one = watched_by(&app, 1).await;
    let fifty = watched_by(&app, 50).await;
    assert!(one > 0);
    assert!(
        fifty <= 2 * one + 10,
        "relay RPCs: {fifty} with 50 subscribers vs {one} with 1"
    );
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_resume_across_an_api_restart_and_a_worker_kill() {
    let mut config = test_config();
    config.models.get_mut("scripted").unwrap().token_delay_ms = 5;
    let app = spawn_app_with(config.clone(), false).await;
    let worker = WorkerProcess::spawn(WORKER, &config);
    let first_api = app.spawn_api().await;
    let task = create_idle(&first_api, json!({"enable_streaming": true})).await;
    execute(&first_api, &task, "Count to 1000").await;

    let part1 = read(
        &first_api.http,
        &first_api.url(&stream_path(&task)),
        None,
        15,
    )
    .await;
    assert_eq!(part1.events.len(), 15);
    first_api.stop().await;

    let second_api = app.spawn_api().await;
    let url = second_api.url(&stream_path(&task));
    let part2 = read(&second_api.http, &url, Some(15), 10).await;
    assert_eq!(part2.events.len(), 10);
    let task_id: TaskId = task.parse().unwrap();
    assert!(
        app.heartbeat_progress(task_id).await.is_some(),
        "the LLM call is still streaming when the worker is killed"
    );
    worker.kill().await;
    let replacement = WorkerProcess::spawn(WORKER, &config);
    let part3 = read(&second_api.http, &url, Some(25), usize::MAX).await;
    assert!(part3.ended);

    let received: Vec<Event> = [part1.events, part2.events, part3.events].concat();
    let log = final_log(&app, &task).await;
    assert_eq!(received, log, "the resumed stream is exactly the final log");
    assert!(
        log.iter()
            .any(|e| matches!(e.kind, EventKind::LlmCallRetrying(_))),
        "the kill interrupted the LLM call"
    );
    second_api.stop().await;
    replacement.kill().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_filters_and_status_codes() {
    let mut app = spawn_app().await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({"enable_streaming": true})).await;
    execute(&api, &task, "What is 3*3? Count to 30").await;
    let log = final_log(&app, &task).await;
    let url = api.url(&stream_path(&task));

    let no_deltas = read(&api.http, &format!("{url}?deltas=false"), None, usize::MAX).await;
    let expected: Vec<Event> = log
        .iter()
        .filter(|e| !matches!(e.kind, EventKind::LlmCallDelta(_)))
        .cloned()
        .collect();
    assert_eq!(no_deltas.events, expected);

    let tools = read(
        &api.http,
        &format!("{url}?types=WorkflowToolCallStarted,WorkflowToolCallCompleted"),
        None,
        usize::MAX,
    )
    .await;
    let names: Vec<&str> = tools.events.iter().map(Event::type_name).collect();
    assert_eq!(
        names,
        [
            "WorkflowToolCallStarted",
            "WorkflowToolCallCompleted",
            "WorkflowCompleted"
        ],
        "only the asked types, and the terminal event"
    );

    let after = read(&api.http, &format!("{url}?after=5"), None, usize::MAX).await;
    assert_eq!(after.events, log[5..]);
    let header_wins = read(&api.http, &format!("{url}?after=2"), Some(7), usize::MAX).await;
    assert_eq!(header_wins.events, log[7..]);
    assert_eq!(
        read(&api.http, &url, Some(log.len() as u64), 1)
            .await
            .status,
        204
    );

    let (status, _) = api.get(&stream_path(uuid::Uuid::new_v4())).await;
    assert_eq!(status, 404, "unknown task");
    let (status, _) = api
        .get(&format!("/api/v1/agents/other/tasks/{task}/events/stream"))
        .await;
    assert_eq!(status, 404, "a task of another agent");
    let (status, body) = api.get(&format!("{}?types=Nope", stream_path(&task))).await;
    assert_eq!(status, 400, "{body}");
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_task_is_served_without_a_worker() {
    let mut app = spawn_app().await;
    let api = app.spawn_api().await;
    let task = api
        .create_task(
            "assistant",
            json!({"description": "d", "query": "What is 1+1?", "user_id": "u-1"}),
        )
        .await;
    assert_eq!(task["status"], "running");
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(task["workflow_id"], format!("agent-task-{id}"));
    assert_eq!(task["links"]["stream"], stream_path(&id));
    let log = final_log(&app, &id).await;
    app.stop_worker().await;

    let received = read(&api.http, &api.url(&stream_path(&id)), None, usize::MAX).await;
    assert_eq!(received.events, log);
    let (status, shown) = api
        .get(&format!("/api/v1/agents/assistant/tasks/{id}"))
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["state"]["last_seq"], log.len());
    let (status, page) = api
        .get(&format!(
            "/api/v1/agents/assistant/tasks/{id}/events?after=2&limit=2"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["events"][0]["seq"], 3);
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], true);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_are_listed_filtered_and_paged() {
    let mut app = spawn_app().await;
    let api = app.spawn_api().await;
    let user = format!("user-{}", uuid::Uuid::new_v4().simple());
    let mut ids = Vec::new();
    for query in ["What is 1+1?", "What is 2+2?"] {
        let task = api
            .create_task(
                "assistant",
                json!({"description": "d", "query": query, "user_id": user}),
            )
            .await;
        ids.push(task["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        final_log(&app, id).await;
    }
    let list = format!("/api/v1/agents/assistant/tasks?user_id={user}&status=completed");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = api.get(&list).await;
        assert_eq!(status, 200, "{body}");
        if body["tasks"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tasks were never listed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, first) = api.get(&format!("{list}&page_size=1")).await;
    assert_eq!(first["tasks"].as_array().unwrap().len(), 1);
    let token = first["next_page_token"].as_str().expect("a next page");
    let (_, second) = api
        .get(&format!("{list}&page_size=1&page_token={token}"))
        .await;
    assert_eq!(second["tasks"].as_array().unwrap().len(), 1);
    let mut seen = vec![
        first["tasks"][0]["id"].clone(),
        second["tasks"][0]["id"].clone(),
    ];
    seen.sort_by_key(|v| v.to_string());
    let mut expected: Vec<Value> = ids.iter().map(|i| json!(i)).collect();
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(seen, expected);
    let (_, running) = api
        .get(&format!(
            "/api/v1/agents/assistant/tasks?user_id={user}&status=running"
        ))
        .await;
    assert_eq!(running["tasks"].as_array().unwrap().len(), 0);
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_problem_json_and_never_a_5xx() {
    let mut app = spawn_app().await;
    let api = app.spawn_api().await;
    let done = api
        .create_task("assistant", json!({"description": "d", "query": "Hi"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    final_log(&app, &done).await;
    let idle = create_idle(&api, json!({})).await;
    let tasks = "/api/v1/agents/assistant/tasks";
    let huge = "x".repeat(70 * 1024);

    let posts: Vec<(String, Value, u16, &str)> = vec![
        (
            tasks.into(),
            json!({"description": "d", "bogus": 1}),
            422,
            "bogus",
        ),
        (tasks.into(), json!({"description": 5}), 422, "description"),
        (tasks.into(), json!({}), 422, "description"),
        (
            tasks.into(),
            json!({"description": "d", "task_parameters": {"max_steps": "x"}}),
            422,
            "max_steps",
        ),
        (
            tasks.into(),
            json!({"description": "d", "task_parameters": {"max_steps": 0}}),
            422,
            "max_steps",
        ),
        (
            tasks.into(),
            json!({"description": "d", "task_parameters": {"budget_usd": -1}}),
            422,
            "budget_usd",
        ),
        (
            tasks.into(),
            json!({"description": "d", "task_parameters": {"model": "nope"}}),
            422,
            "model",
        ),
        (
            tasks.into(),
            json!({"description": "d", "task_parameters": {"colour": 1}}),
            422,
            "colour",
        ),
        (
            tasks.into(),
            json!({"description": "d", "id": "not-a-uuid"}),
            422,
            "id",
        ),
        (
            tasks.into(),
            json!({"description": "d", "user_id": "a b"}),
            422,
            "user_id",
        ),
        (tasks.into(), json!({"description": huge}), 413, "too large"),
        (
            tasks.into(),
            json!({"description": "d", "id": idle}),
            409,
            "already exists",
        ),
        (
            "/api/v1/agents/nobody/tasks".into(),
            json!({"description": "d"}),
            404,
            "nobody",
        ),
        (
            format!("{tasks}/{idle}/execute"),
            json!({"query": ""}),
            422,
            "query",
        ),
        (
            format!("{tasks}/{idle}/execute"),
            json!({"query": "q", "extra": true}),
            422,
            "extra",
        ),
        (
            format!("{tasks}/{done}/execute"),
            json!({"query": "again"}),
            409,
            "already completed",
        ),
        (
            format!("{tasks}/{}/execute", uuid::Uuid::new_v4()),
            json!({"query": "q"}),
            404,
            "does not exist",
        ),
        (
            format!("/api/v1/agents/other/tasks/{idle}/execute"),
            json!({"query": "q"}),
            404,
            "does not exist",
        ),
    ];
    for (path, body, expected, mention) in posts {
        let response = api
            .http
            .post(api.url(&path))
            .json(&body)
            .send()
            .await
            .unwrap();
        check_problem(response, expected, mention, &path).await;
    }
    let raw = [
        (
            tasks,
            "{not json",
            "application/json",
            400,
            "parse the request body as JSON",
        ),
        (tasks, "{\"description\": \"d\"}", "text/plain", 415, "JSON"),
    ];
    for (path, body, content_type, expected, mention) in raw {
        let response = api
            .http
            .post(api.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        check_problem(response, expected, mention, path).await;
    }
    let gets = [
        (format!("{tasks}/not-a-uuid"), 404),
        (format!("{tasks}/{}", uuid::Uuid::new_v4()), 404),
        (format!("{tasks}/{idle}/events?limit=0"), 400),
        (format!("{tasks}/{idle}/events?after=x"), 400),
        (format!("{tasks}/{idle}/events?color=red"), 400),
        (format!("{tasks}?status=sleeping"), 400),
        (format!("{tasks}?page_token=%%%"), 400),
        (format!("{tasks}?page_size=100000"), 400),
        ("/api/v1/agents/nobody".into(), 404),
        ("/api/v1/nothing".into(), 404),
    ];
    for (path, expected) in gets {
        let response = api.http.get(api.url(&path)).send().await.unwrap();
        check_problem(response, expected, "", &path).await;
    }
    let bad_cursor = api
        .http
        .get(api.url(&stream_path(&idle)))
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    check_problem(bad_cursor, 400, "Last-Event-ID", "stream").await;
    let wrong_method = api.http.delete(api.url(tasks)).send().await.unwrap();
    check_problem(wrong_method, 405, "", "DELETE tasks").await;
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_health_and_openapi() {
    let mut app = spawn_app().await;
    let api = app.spawn_api().await;
    let (status, agents) = api.get("/api/v1/agents").await;
    assert_eq!(status, 200);
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "assistant")
    );
    let (status, agent) = api.get("/api/v1/agents/assistant").await;
    assert_eq!((status, agent["model"].as_str()), (200, Some("scripted")));
    assert_eq!(
        api.http
            .get(api.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        api.http
            .get(api.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let (status, spec) = api.get("/openapi.json").await;
    assert_eq!(status, 200);
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/agents",
        "/api/v1/agents/{agent_id}",
        "/api/v1/agents/{agent_id}/tasks",
        "/api/v1/agents/{agent_id}/tasks/{task_id}",
        "/api/v1/agents/{agent_id}/tasks/{task_id}/execute",
        "/api/v1/agents/{agent_id}/tasks/{task_id}/events",
        "/api/v1/agents/{agent_id}/tasks/{task_id}/events/stream",
    ] {
        assert!(paths.contains_key(path), "OpenAPI lacks {path}");
    }
    for schema in [
        "Event",
        "Task",
        "CreateTaskRequest",
        "Problem",
        "EventsPage",
        "TaskState",
    ] {
        assert!(
            spec["components"]["schemas"][schema].is_object(),
            "OpenAPI lacks {schema}"
        );
    }

    // A Prometheus scrape gets the text format; everyone else gets JSON.
    let (status, json_metrics) = api.get("/metrics").await;
    assert_eq!(status, 200);
    let scraped = api
        .http
        .get(api.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        scraped.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = scraped.text().await.unwrap();
    let samples: Vec<(&str, f64)> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').expect("`name value`");
            (name, value.parse().expect("a number"))
        })
        .collect();
    let sample = |name: &str| {
        samples
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .1
    };
    for kind in ["describe", "query", "history_poll", "result"] {
        assert!(
            sample(&format!("agentflow_relay_rpcs_total{{kind=\"{kind}\"}}"))
                >= json_metrics["relay_rpcs"][kind].as_f64().unwrap()
        );
    }
    assert_eq!(sample("agentflow_subscribers"), 0.0);
    assert!(sample("process_resident_memory_bytes") > 0.0);
    assert!(text.contains("# TYPE agentflow_handler_rpcs_total counter"));

    api.stop().await;
    app.stop_worker().await;
}

/// Polls `/metrics` until `ready` holds for it; panics after a generous bound.
async fn await_metrics(api: &TestApi, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, metrics) = api.get("/metrics").await;
        if ready(&metrics) {
            return metrics;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undecodable_path_parameter_is_a_problem_json_400_on_every_route() {
    let app = spawn_app_with(test_config(), false).await;
    let api = app.spawn_api().await;
    let task = uuid::Uuid::new_v4();
    let tasks = "/api/v1/agents/assistant/tasks";
    let requests = [
        ("GET", "/api/v1/agents/%FF".to_owned()),
        ("GET", "/api/v1/agents/%FF/tasks".to_owned()),
        ("POST", "/api/v1/agents/%FF/tasks".to_owned()),
        ("POST", "/api/v1/agents/%FF/tasks/stream".to_owned()),
        ("GET", format!("{tasks}/%FF")),
        ("DELETE", format!("{tasks}/%FF")),
        ("POST", format!("{tasks}/%FF/execute")),
        ("POST", format!("{tasks}/%FF/pause")),
        ("POST", format!("{tasks}/{task}/approvals/%FF")),
        ("GET", format!("{tasks}/%FF/events")),
        (
            "GET",
            format!("/api/v1/agents/%FF/tasks/{task}/events/stream"),
        ),
    ];
    for (method, path) in requests {
        let request = match method {
            "GET" => api.http.get(api.url(&path)),
            "DELETE" => api.http.delete(api.url(&path)),
            _ => api.http.post(api.url(&path)).json(&json!({"query": "q"})),
        };
        let response = request.send().await.unwrap();
        check_problem(response, 400, "UTF-8", &format!("{method} {path}")).await;
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_reconnect_gets_204_and_a_cursor_past_the_end_closes_with_the_log() {
    let mut app = spawn_app().await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({"enable_streaming": false})).await;
    execute(&api, &task, "What is 2+2?").await;
    let url = api.url(&stream_path(&task));
    let first = read(&api.http, &url, None, usize::MAX).await;
    assert!(first.ended);
    let last = first.events.last().unwrap().seq.0;

    // Nobody has watched the task for longer than the relay's linger: a fresh relay answers.
    for cursor in [last, last + 100] {
        await_metrics(&api, "the relay to stop", |m| m["relays"] == 0).await;
        let late = tokio::time::timeout(
            Duration::from_secs(60),
            read(&api.http, &url, Some(cursor), usize::MAX),
        )
        .await
        .expect("a reconnect after the end is answered, not kept open");
        assert_eq!(late.status, 204, "cursor {cursor} of a {last}-event log");
    }

    // A cursor past the end of a running task: nothing to send, and the stream closes when the
    // log ends.
    let running = create_idle(&api, json!({})).await;
    let url = api.url(&stream_path(&running));
    let reader = {
        let http = api.http.clone();
        tokio::spawn(async move { read(&http, &url, Some(10_000), usize::MAX).await })
    };
    await_metrics(&api, "the subscriber", |m| m["subscribers"] == 1).await;
    execute(&api, &running, "What is 3+3?").await;
    let received = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the stream closes once the log has ended")
        .unwrap();
    assert_eq!(received.status, 200);
    assert!(received.ended);
    assert!(received.events.is_empty(), "{:?}", received.events);
    api.stop().await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_task_serves_its_whole_log_then_workflow_closed() {
    let mut config = test_config();
    // One delta per token: one turn of `Count to 700` makes a log of more than one page.
    config.worker.coalesce_chars = 1;
    config.worker.coalesce_ms = 1;
    let mut app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let task = create_idle(
        &api,
        json!({"enable_streaming": true, "conversation": true}),
    )
    .await;
    let url = api.url(&stream_path(&task));
    let mut live = Live::open(&api.http, &url).await;
    execute(&api, &task, "Count to 700").await;
    live.until("WorkflowTurnCompleted").await;
    drop(live);
    let id: TaskId = task.parse().unwrap();
    let durable = app.events(id, 1000).await;
    assert!(
        durable.len() > EventsRange::DEFAULT_LIMIT,
        "the log spans pages: {} events",
        durable.len()
    );
    app.handle(id)
        .terminate(
            temporalio_client::WorkflowTerminateOptions::builder()
                .reason("test".to_owned())
                .build(),
        )
        .await
        .expect("terminating the workflow");
    await_metrics(&api, "the relay to stop", |m| m["relays"] == 0).await;

    let received = tokio::time::timeout(
        Duration::from_secs(60),
        read(&api.http, &url, None, usize::MAX),
    )
    .await
    .expect("the stream of a terminated task ends");
    assert!(received.ended);
    assert_eq!(received.events.len(), durable.len() + 1);
    assert_eq!(received.events[..durable.len()], durable[..]);
    let terminal = received.events.last().unwrap();
    match &terminal.kind {
        EventKind::Failed(failed) => assert_eq!(failed.error.kind, "workflow_closed"),
        other => panic!("the log ends with {other:?}"),
    }

    let mut paged: Vec<Event> = Vec::new();
    loop {
        let (status, page) = api
            .get(&format!(
                "/api/v1/agents/assistant/tasks/{task}/events?after={}&limit=1000",
                paged.len()
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        paged.extend(serde_json::from_value::<Vec<Event>>(page["events"].clone()).unwrap());
        if page["has_more"] == false {
            break;
        }
    }
    assert_eq!(paged, received.events, "…/events serves the stream's log");
    api.stop().await;
    app.stop_worker().await;
}

/// Sends a request and reads its answer: (status, content type, `Retry-After`, body).
async fn answer(request: reqwest::RequestBuilder) -> (u16, String, Option<String>, String) {
    let response = request.send().await.expect("an answer");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (content_type, retry_after) = (
        header("content-type").unwrap_or_default(),
        header("retry-after"),
    );
    let status = response.status().as_u16();
    (
        status,
        content_type,
        retry_after,
        response.text().await.unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_completes_in_time_while_requests_wait_for_a_missing_worker() {
    let mut config = test_config();
    config.api.shutdown_timeout_secs = 4;
    config.api.rpc_timeout_ms = 120_000;
    // No worker polls this task queue: updates wait for one.
    let app = spawn_app_with(config, false).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({})).await;
    let stream = {
        let (http, url) = (api.http.clone(), api.url(&stream_path(&task)));
        tokio::spawn(async move { read(&http, &url, None, usize::MAX).await })
    };
    let execute = tokio::spawn(answer(
        api.http
            .post(api.url(&format!("/api/v1/agents/assistant/tasks/{task}/execute")))
            .json(&json!({"query": "Hi"})),
    ));
    let one_request_stream = tokio::spawn(answer(
        api.http
            .post(api.url("/api/v1/agents/assistant/tasks/stream"))
            .json(&json!({"query": "Hi"})),
    ));
    await_metrics(&api, "both updates in flight and two subscribers", |m| {
        m["handler_rpcs"]["update"].as_u64() == Some(2) && m["subscribers"] == 2
    })
    .await;

    tokio::time::timeout(Duration::from_secs(60), api.stop())
        .await
        .expect("the api stops within its shutdown deadline");
    for (what, request) in [
        ("execute", execute),
        ("POST …/tasks/stream", one_request_stream),
    ] {
        let (status, content_type, retry_after, body) = request.await.unwrap();
        assert_eq!(status, 503, "{what}: {body}");
        assert_eq!(content_type, "application/problem+json", "{what}");
        assert!(retry_after.is_some(), "{what}: Retry-After");
    }
    assert!(stream.await.unwrap().ended, "the open stream ended cleanly");
}

/// Checks a refusal for a limit: its status, problem+json, `Retry-After`, the limit named.
fn assert_limit(answer: (u16, String, Option<String>, String), status: u16, limit: &str) {
    let (got, content_type, retry_after, body) = answer;
    assert_eq!(got, status, "{limit}: {body}");
    assert_eq!(content_type, "application/problem+json", "{limit}");
    assert!(retry_after.is_some(), "{limit}: Retry-After");
    assert!(body.contains(limit), "{limit}: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_and_relays_are_bounded() {
    let mut config = test_config();
    config.api.max_streams_per_task = 2;
    config.api.max_streams = 3;
    config.api.max_relays = 2;
    config.api.keep_alive_secs = 1;
    let app = spawn_app_with(config, false).await;
    let api = app.spawn_api().await;
    let (a, b, c) = (
        create_idle(&api, json!({})).await,
        create_idle(&api, json!({})).await,
        create_idle(&api, json!({})).await,
    );
    let open = |task: &str| {
        let (http, url) = (api.http.clone(), api.url(&stream_path(task)));
        async move { Live::open(&http, &url).await }
    };
    let refusal = |task: &str| answer(api.http.get(api.url(&stream_path(task))));
    let a1 = open(&a).await;
    let a2 = open(&a).await;
    assert_limit(refusal(&a).await, 429, "api.max_streams_per_task");
    let b1 = open(&b).await;
    assert_limit(refusal(&b).await, 429, "api.max_streams");
    assert_limit(
        answer(
            api.http
                .post(api.url("/api/v1/agents/assistant/tasks/stream"))
                .json(&json!({"query": "Hi"})),
        )
        .await,
        429,
        "api.max_streams",
    );
    drop(a2);
    await_metrics(&api, "the departed stream", |m| m["subscribers"] == 2).await;
    assert_limit(refusal(&c).await, 503, "api.max_relays");
    drop((a1, b1));
    api.stop().await;
}

/// Reads one HTTP/1.1 response from a raw socket: the head and a `content-length` body.
async fn read_response(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    loop {
        let mut buffer = [0u8; 4096];
        let read = socket.read(&mut buffer).await.unwrap_or(0);
        raw.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if read == 0 {
            return text;
        }
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_lowercase()
                        .strip_prefix("content-length: ")?
                        .parse()
                        .ok()
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_bounded_and_a_stalled_body_gets_408() {
    let mut config = test_config();
    config.api.max_connections = 2;
    config.api.keep_alive_secs = 1;
    config.api.request_read_timeout_secs = 1;
    let app = spawn_app_with(config.clone(), false).await;
    let api = app.spawn_api().await;
    let task = app
        .create("assistant", Default::default())
        .await
        .expect("creating a task");
    let url = api.url(&stream_path(task));
    let first = Live::open(&reqwest::Client::new(), &url).await;
    let second = Live::open(&reqwest::Client::new(), &url).await;
    let refused = answer(reqwest::Client::new().get(api.url("/healthz"))).await;
    assert_limit(refused, 503, "api.max_connections");
    drop(first);
    // Once the departed stream is noticed, a new connection is served again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while answer(reqwest::Client::new().get(api.url("/healthz")))
        .await
        .0
        != 200
    {
        assert!(Instant::now() < deadline, "a connection was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    drop(second);
    api.stop().await;

    // A body that stops arriving: 408 once the read timeout passes.
    config.api.max_connections = ApiSettings::default().max_connections;
    let api = agentflow_tests::api::spawn_api(&config).await;
    use tokio::io::AsyncWriteExt;
    let address = api.base_url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket
        .write_all(
            b"POST /api/v1/agents/assistant/tasks HTTP/1.1\r\nhost: 127.0.0.1\r\n\
              content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"descr",
        )
        .await
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(60), read_response(&mut socket))
        .await
        .expect("a stalled body is answered");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response
            .to_lowercase()
            .contains("content-type: application/problem+json"),
        "{response}"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn departed_stream_clients_are_noticed_while_their_task_is_silent() {
    // The shipped keep-alive interval; nothing else is written to an idle task's streams.
    let app = spawn_app_with(test_config(), false).await;
    let api = app.spawn_api().await;
    let task = create_idle(&api, json!({})).await;
    let url = api.url(&stream_path(&task));
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(Live::open(&api.http, &url).await);
    }
    await_metrics(&api, "five subscribers", |m| m["subscribers"] == 5).await;
    drop(streams);
    let left = Instant::now();
    // A generous bound: two keep-alive intervals (10 s) notice it; the old 15 s interval did not.
    let deadline = left + Duration::from_secs(20);
    loop {
        let (_, metrics) = api.get("/metrics").await;
        if metrics["subscribers"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "departed clients still counted: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("departed clients noticed after {:?}", left.elapsed());
    api.stop().await;
}
