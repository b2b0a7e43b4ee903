//! Security and tenancy end to end: API keys and scopes over every route of the OpenAPI
//! document, tenants that cannot see each other, stream tokens, revocation, operator limits,
//! CSRF refusal, CORS, the safe default for listening, and logs without secrets.

use agentflow_api::auth::keys::{mint, write_file};
use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::ids::{KeyId, TaskId, TenantId};
use agentflow_shared::security::{KeyRecord, KeysFile, RequestLimits, Scope, TenantLimits};
use agentflow_tests::api::TestApi;
use agentflow_tests::files::Scratch;
use agentflow_tests::harness::test_config;
use agentflow_tests::logs::final_log;
use agentflow_tests::requests::{TASKS, keyed};
use agentflow_tests::sse::Live;
use agentflow_tests::{TestApp, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A secret long enough to sign tokens.
const SECRET: &str = "a test secret that is at least thirty-two bytes long";

/// A key of a tenant with some scopes: the key itself and its record.
struct Key {
    key: String,
    record: KeyRecord,
}

fn key(identity: &str, tenant: &str, scopes: &[Scope]) -> Key {
    let minted = mint(KeyRecord {
        id: KeyId(String::new()),
        identity: identity.into(),
        tenant: tenant.parse::<TenantId>().unwrap(),
        scopes: scopes.to_vec(),
        sha256: String::new(),
        created_at: Some(chrono::Utc::now()),
        revoked_at: None,
    });
    Key {
        key: minted.key,
        record: minted.record,
    }
}

/// An app with auth on: tenant `acme` (an admin, a reader, a writer), tenant `globex` (an
/// admin), keys in a keys file re-read every 50 ms.
struct Secured {
    /// The keys file's folder, removed with the test's fixture.
    _dir: Scratch,
    app: TestApp,
    api: TestApi,
    keys_file: PathBuf,
    acme: Key,
    reader: Key,
    writer: Key,
    globex: Key,
}

async fn secured(tweak: impl FnOnce(&mut AgentflowConfig)) -> Secured {
    let dir = Scratch::dir("keys");
    let keys_file = dir.join("keys.toml");
    let acme = key("alice", "acme", &[Scope::Admin]);
    let reader = key("rita", "acme", &[Scope::TasksRead]);
    let writer = key("walt", "acme", &[Scope::TasksWrite]);
    let globex = key("gus", "globex", &[Scope::Admin]);
    let file = KeysFile {
        keys: [&acme, &reader, &writer, &globex]
            .iter()
            .map(|k| k.record.clone())
            .collect(),
    };
    write_file(&keys_file, &file).unwrap();
    let mut config = test_config();
    config.auth.enabled = true;
    config.auth.keys_file = Some(keys_file.clone());
    config.auth.keys_reload_ms = 50;
    config.auth.token_secrets = vec![SECRET.into()];
    tweak(&mut config);
    let app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    Secured {
        _dir: dir,
        app,
        api,
        keys_file,
        acme,
        reader,
        writer,
        globex,
    }
}

/// A request with (or without) a bearer key and a JSON body.
async fn call(
    api: &TestApi,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    keyed(&api.http, method, api.url(path), key, body).await
}

/// Creates a task of the assistant as `key`, with this query (or none), and returns its id.
async fn create(api: &TestApi, key: &str, query: Option<&str>, parameters: Value) -> String {
    let body = json!({"description": "secured", "query": query, "task_parameters": parameters});
    let (status, _, task) = call(api, Method::POST, TASKS, Some(key), Some(&body)).await;
    assert_eq!(status, 201, "{task}");
    task["id"].as_str().unwrap().to_owned()
}

/// Waits until the task's GET says `status` (as `key`).
async fn wait_status(api: &TestApi, key: &str, task: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, _, body) = call(
            api,
            Method::GET,
            &format!("{TASKS}/{task}"),
            Some(key),
            None,
        )
        .await;
        assert_eq!(code, 200, "{body}");
        if body["status"] == status {
            return body;
        }
        assert!(Instant::now() < deadline, "task never {status}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a route of the OpenAPI document needs, pinned here independently of the api's table.
fn pinned_access(method: &str, path: &str) -> Option<Scope> {
    let task = "/api/v1/agents/{agent_id}/tasks/{task_id}";
    match (method, path) {
        ("get", "/healthz" | "/readyz" | "/openapi.json") => None,
        ("post" | "delete" | "get", "/api/v1/session") => None,
        ("get", "/metrics") => Some(Scope::Admin),
        ("post", "/api/v1/agents/{agent_id}/tasks" | "/api/v1/agents/{agent_id}/tasks/stream") => {
            Some(Scope::TasksWrite)
        }
        ("post", p) if p == format!("{task}/execute") => Some(Scope::TasksWrite),
        ("post", p) if p == format!("{task}/stream-token") => Some(Scope::TasksRead),
        ("get", _) => Some(Scope::TasksRead),
        ("post" | "delete", _) => Some(Scope::TasksControl),
        other => panic!("no pinned access for {other:?}"),
    }
}

/// A well-formed body for a route, so a refusal is about who asks, not what.
fn body_for(path: &str) -> Value {
    if path.ends_with("/execute") {
        json!({"query": "Hello"})
    } else if path.ends_with("/budget") {
        json!({"budget_usd": 0.5})
    } else if path.ends_with("/{approval_id}") {
        json!({"decision": "approve"})
    } else if path.ends_with("/tasks/stream") {
        json!({"query": "Hello"})
    } else if path.ends_with("/tasks") {
        json!({"description": "matrix"})
    } else if path.ends_with("/session") {
        json!({"key": "af_nope_nope"})
    } else {
        json!({})
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_of_the_openapi_document_needs_a_key_its_scope_and_the_task_s_tenant() {
    let s = secured(|_| {}).await;
    let api = &s.api;
    let task = create(api, &s.acme.key, None, json!({})).await;
    let (status, _, document) = call(api, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200, "the OpenAPI document is public");
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{}", paths.len());
    let mut checked = 0;
    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            let url = path
                .replace("{agent_id}", "assistant")
                .replace("{task_id}", &task)
                .replace("{approval_id}", "call-1");
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (verb != Method::GET).then(|| body_for(path));
            let what = format!("{method} {path}");
            let Some(scope) = pinned_access(method, path) else {
                let (status, _, _) = call(api, verb.clone(), &url, None, body.as_ref()).await;
                assert_ne!(status, 403, "{what} is public");
                if path != "/api/v1/session" {
                    assert_ne!(status, 401, "{what} is public");
                } else if verb == Method::GET {
                    // Who am I: any valid key, whatever its scopes.
                    assert_eq!(status, 401, "{what} needs a credential");
                    let (status, _, me) = call(api, verb, &url, Some(&s.writer.key), None).await;
                    assert_eq!((status, &me["identity"]), (200, &json!("walt")), "{me}");
                }
                continue;
            };
            checked += 1;
            // No key: 401 with WWW-Authenticate, as problem+json.
            let (status, headers, problem) =
                call(api, verb.clone(), &url, None, body.as_ref()).await;
            assert_eq!(status, 401, "{what} without a key: {problem}");
            assert!(
                headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{what}"
            );
            assert_eq!(
                headers["content-type"], "application/problem+json",
                "{what}"
            );
            if verb == Method::GET {
                // HEAD runs the GET handler in axum: it needs the same credential.
                let (status, _, _) = call(api, Method::HEAD, &url, None, None).await;
                assert_eq!(status, 401, "HEAD {path} without a key");
            }
            // A bad key: 401.
            let (status, _, _) = call(
                api,
                verb.clone(),
                &url,
                Some("af_0000000000_forged"),
                body.as_ref(),
            )
            .await;
            assert_eq!(status, 401, "{what} with a forged key");
            // A key without the scope: 403.
            let weak = match scope {
                Scope::TasksRead => &s.writer.key,
                _ => &s.reader.key,
            };
            let (status, _, problem) =
                call(api, verb.clone(), &url, Some(weak), body.as_ref()).await;
            assert_eq!(status, 403, "{what} without {}: {problem}", scope.as_str());
            assert!(
                problem["detail"].as_str().unwrap().contains(scope.as_str()),
                "{what}"
            );
            // Another tenant's key on this tenant's task: 404, as for a task that does not exist.
            if path.contains("{task_id}") {
                let (status, _, problem) =
                    call(api, verb.clone(), &url, Some(&s.globex.key), body.as_ref()).await;
                assert_eq!(status, 404, "{what} of another tenant: {problem}");
                let missing = url.replace(&task, &uuid::Uuid::new_v4().to_string());
                let (other, _, problem_missing) =
                    call(api, verb, &missing, Some(&s.globex.key), body.as_ref()).await;
                assert_eq!(other, 404, "{what}");
                assert_eq!(
                    problem["detail"].as_str().unwrap().replace(&task, "T"),
                    problem_missing["detail"]
                        .as_str()
                        .unwrap()
                        .replace(missing.split('/').nth(6).unwrap(), "T"),
                    "{what}: no existence leak"
                );
            }
        }
    }
    assert!(checked >= 18, "{checked} routes checked");

    // The lists: each tenant sees its own tasks only.
    let (_, _, acme_list) = call(api, Method::GET, TASKS, Some(&s.reader.key), None).await;
    let ids = |list: &Value| -> Vec<String> {
        list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut acme_ids = ids(&acme_list);
    while !acme_ids.contains(&task) {
        assert!(
            Instant::now() < deadline,
            "visibility never listed the task"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        acme_ids = ids(&call(api, Method::GET, TASKS, Some(&s.reader.key), None)
            .await
            .2);
    }
    let (_, _, globex_list) = call(api, Method::GET, TASKS, Some(&s.globex.key), None).await;
    assert!(!ids(&globex_list).contains(&task), "{globex_list}");
    // And the one left untouched by the matrix is still there, never changed by another tenant.
    let (_, _, shown) = call(
        api,
        Method::GET,
        &format!("{TASKS}/{task}"),
        Some(&s.acme.key),
        None,
    )
    .await;
    assert_eq!(shown["status"], "created", "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn user_id_and_requested_by_come_from_the_key_and_a_body_may_not_name_anyone() {
    let s = secured(|config| {
        if let Some(model) = config.models.get_mut("scripted") {
            model.token_delay_ms = 50;
        }
    })
    .await;
    let api = &s.api;
    let body = json!({"description": "d", "user_id": "mallory"});
    let (status, _, problem) = call(api, Method::POST, TASKS, Some(&s.acme.key), Some(&body)).await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("user_id"));

    let slow = json!({"enable_streaming": true});
    let task = create(api, &s.acme.key, Some("Count to 300"), slow).await;
    let path = format!("{TASKS}/{task}");
    let (status, _, problem) = call(
        api,
        Method::POST,
        &format!("{path}/pause"),
        Some(&s.acme.key),
        Some(&json!({"requested_by": "mallory"})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let (status, _, state) = call(
        api,
        Method::POST,
        &format!("{path}/cancel"),
        Some(&s.acme.key),
        Some(&json!({"reason": "audit"})),
    )
    .await;
    assert_eq!(status, 202, "{state}");
    let log = final_log(&s.app, &task).await;
    let cancelled = log
        .iter()
        .find(|e| e.type_name() == "WorkflowCancelled")
        .expect("a cancelled event");
    let data = serde_json::to_value(cancelled).unwrap();
    assert_eq!(data["data"]["requested_by"], "alice", "{data}");
    let started = serde_json::to_value(&log[0]).unwrap();
    // The task's user is the key's identity: listed under it.
    let listed = format!("{TASKS}?user_id=alice");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, list) = call(api, Method::GET, &listed, Some(&s.acme.key), None).await;
        if list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == task.as_str())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not listed under alice: {started}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The URL of a task's stream with a token (and a cursor).
fn token_url(api: &TestApi, task: &str, token: &str, after: u64) -> String {
    api.url(&format!(
        "{TASKS}/{task}/events/stream?after={after}&access_token={token}"
    ))
}

async fn stream_token(
    api: &TestApi,
    key: &str,
    task: &str,
) -> (String, chrono::DateTime<chrono::Utc>) {
    let (status, _, body) = call(
        api,
        Method::POST,
        &format!("{TASKS}/{task}/stream-token"),
        Some(key),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        body["token"].as_str().unwrap().to_owned(),
        body["expires_at"].as_str().unwrap().parse().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_tokens_admit_one_task_s_events_only_and_never_a_forgery() {
    let s = secured(|_| {}).await;
    let api = &s.api;
    let done = create(api, &s.acme.key, Some("Hello"), json!({})).await;
    let other = create(api, &s.acme.key, None, json!({})).await;
    wait_status(api, &s.acme.key, &done, "completed").await;
    let (token, expires_at) = stream_token(api, &s.reader.key, &done).await;
    let ttl = expires_at - chrono::Utc::now();
    assert!(
        ttl > chrono::Duration::minutes(14) && ttl <= chrono::Duration::minutes(15),
        "{ttl}"
    );

    // Valid: the whole log, on the stream and on the page.
    let mut live = Live::open(&api.http, &token_url(api, &done, &token, 0)).await;
    let streamed = live.rest().await.to_vec();
    assert_eq!(streamed, final_log(&s.app, &done).await);
    let page = api.url(&format!("{TASKS}/{done}/events?access_token={token}"));
    assert_eq!(api.http.get(&page).send().await.unwrap().status(), 200);

    // Forged, for another task, on another route, minted by another tenant: 401 or 404.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let refused = [
        token_url(api, &done, &forged, 0),
        token_url(api, &other, &token, 0),
        api.url(&format!("{TASKS}/{done}?access_token={token}")),
        api.url(&format!(
            "{TASKS}/{done}/events/stream?access_token=garbage"
        )),
    ];
    for url in refused {
        let response = api.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 401, "{url}");
        assert!(response.headers().contains_key("www-authenticate"));
    }
    let (status, _, _) = call(
        api,
        Method::POST,
        &format!("{TASKS}/{done}/stream-token"),
        Some(&s.globex.key),
        None,
    )
    .await;
    assert_eq!(
        status, 404,
        "another tenant cannot mint a token for this task"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_outlives_its_token_and_a_reconnect_needs_a_fresh_one() {
    let s = secured(|config| {
        config.auth.stream_token_ttl_secs = 2;
        if let Some(model) = config.models.get_mut("scripted") {
            model.token_delay_ms = 25;
        }
    })
    .await;
    let api = &s.api;
    let task = create(api, &s.acme.key, None, json!({"enable_streaming": true})).await;
    let (token, expires_at) = stream_token(api, &s.acme.key, &task).await;
    let mut live = Live::open(&api.http, &token_url(api, &task, &token, 0)).await;
    let (status, _, _) = call(
        api,
        Method::POST,
        &format!("{TASKS}/{task}/execute"),
        Some(&s.acme.key),
        Some(&json!({"query": "Count to 400"})),
    )
    .await;
    assert_eq!(status, 202);
    // Events keep coming on this connection after the token expired.
    loop {
        let event = live.next().await.expect("the stream ended early");
        if event.timestamp > expires_at + chrono::Duration::milliseconds(500) {
            break;
        }
    }
    let last = live.events.last().unwrap().seq.0;
    drop(live);
    // Reconnecting with the same token: 401, as an EventSource sees it (it closes for good).
    let response = api
        .http
        .get(token_url(api, &task, &token, last))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // A fresh token and `after=` the last seq: the rest, exactly once.
    let (fresh, _) = stream_token(api, &s.acme.key, &task).await;
    let mut rest = Live::open(&api.http, &token_url(api, &task, &fresh, last)).await;
    rest.rest().await;
    let log = final_log(&s.app, &task).await;
    assert_eq!(rest.events.first().unwrap().seq.0, last + 1);
    assert_eq!(rest.events.as_slice(), &log[last as usize..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_key_is_refused_and_its_streams_end() {
    let s = secured(|config| {
        if let Some(model) = config.models.get_mut("scripted") {
            model.token_delay_ms = 50;
        }
    })
    .await;
    let api = &s.api;
    let task = create(
        api,
        &s.acme.key,
        Some("Count to 600"),
        json!({"enable_streaming": true}),
    )
    .await;
    // One stream on the key itself, one on a token it minted.
    let keyed = api
        .http
        .get(api.url(&format!("{TASKS}/{task}/events/stream")))
        .bearer_auth(&s.reader.key)
        .send()
        .await
        .unwrap();
    let mut keyed = Live::from_response(keyed);
    let (token, _) = stream_token(api, &s.reader.key, &task).await;
    let mut tokened = Live::open(&api.http, &token_url(api, &task, &token, 0)).await;
    keyed.until("WorkflowLLMCallDelta").await;
    tokened.until("WorkflowLLMCallDelta").await;

    // Revoke the reader's key in the keys file, as `agentflow-api keys revoke` does.
    let mut file = agentflow_api::auth::keys::read_file(&s.keys_file).unwrap();
    for key in &mut file.keys {
        if key.id == s.reader.record.id {
            key.revoked_at = Some(chrono::Utc::now());
        }
    }
    write_file(&s.keys_file, &file).unwrap();

    // Both streams end before the task does.
    keyed.rest().await;
    tokened.rest().await;
    for (name, live) in [("key", &keyed), ("token", &tokened)] {
        let types = live.types();
        assert!(
            !types.contains(&"WorkflowCompleted"),
            "the {name} stream ran to the end: {:?}",
            &types[types.len().saturating_sub(3)..]
        );
    }
    let (status, _, _) = call(api, Method::GET, TASKS, Some(&s.reader.key), None).await;
    assert_eq!(status, 401, "the revoked key is refused");
    let response = api
        .http
        .get(token_url(api, &task, &token, 0))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "so is a token it minted");
    let (status, _, _) = call(api, Method::GET, TASKS, Some(&s.acme.key), None).await;
    assert_eq!(status, 200, "other keys are untouched");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_beyond_the_operator_s_limits_are_refused_naming_the_limit() {
    let s = secured(|config| {
        config.limits.agents.insert(
            "assistant".into(),
            RequestLimits {
                models: vec!["scripted".into()],
                max_budget_usd: Some(2.0),
                max_steps: Some(10),
            },
        );
        config.limits.tenants.insert(
            "globex".parse().unwrap(),
            TenantLimits {
                requests_per_sec: 1,
                request_burst: 3,
                max_streams: 1,
                max_open_tasks: 2,
            },
        );
    })
    .await;
    let api = &s.api;
    let cases = [
        (
            json!({"model": "scripted-fast"}),
            "limits.agents.assistant.models",
        ),
        (
            json!({"budget_usd": 2.5}),
            "limits.agents.assistant.max_budget_usd",
        ),
        (
            json!({"max_steps": 11}),
            "limits.agents.assistant.max_steps",
        ),
        (
            json!({"max_steps": 4_000_000_000u64}),
            "limits.agents.assistant.max_steps",
        ),
        (
            json!({"budget_usd": 1e300}),
            "limits.agents.assistant.max_budget_usd",
        ),
    ];
    for (parameters, limit) in cases {
        let body = json!({"description": "d", "task_parameters": parameters});
        let (status, _, problem) =
            call(api, Method::POST, TASKS, Some(&s.acme.key), Some(&body)).await;
        assert_eq!(status, 422, "{parameters}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(limit),
            "{problem}"
        );
    }
    let within = create(
        api,
        &s.acme.key,
        None,
        json!({"budget_usd": 2.0, "max_steps": 10}),
    )
    .await;
    let (status, _, problem) = call(
        api,
        Method::POST,
        &format!("{TASKS}/{within}/budget"),
        Some(&s.acme.key),
        Some(&json!({"budget_usd": 3.0})),
    )
    .await;
    assert_eq!(status, 422, "a budget raise is bounded too: {problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("max_budget_usd")
    );

    // globex: 3 requests at once, then 429 with Retry-After, acme unaffected.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let (status, headers, _) = call(
            api,
            Method::GET,
            "/api/v1/agents",
            Some(&s.globex.key),
            None,
        )
        .await;
        if status == 429 {
            retry_after = headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
        }
        statuses.push(status);
    }
    assert!(statuses[..3].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    let (status, _, _) = call(api, Method::GET, "/api/v1/agents", Some(&s.acme.key), None).await;
    assert_eq!(status, 200, "another tenant's rate is its own");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_s_streams_and_open_tasks_are_bounded() {
    let s = secured(|config| {
        config.limits.tenants.insert(
            "globex".parse().unwrap(),
            TenantLimits {
                max_streams: 1,
                max_open_tasks: 2,
                ..TenantLimits::default()
            },
        );
    })
    .await;
    let api = &s.api;
    let first = create(api, &s.globex.key, None, json!({})).await;
    let stream = api
        .http
        .get(api.url(&format!("{TASKS}/{first}/events/stream")))
        .bearer_auth(&s.globex.key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let (status, headers, problem) = call(
        api,
        Method::GET,
        &format!("{TASKS}/{first}/events/stream"),
        Some(&s.globex.key),
        None,
    )
    .await;
    assert_eq!(status, 429, "{problem}");
    assert!(headers.contains_key("retry-after"));
    assert!(problem["detail"].as_str().unwrap().contains("max_streams"));
    drop(stream);
    // Open tasks: visibility counts them (it may lag a new task by a moment).
    let deadline = Instant::now() + Duration::from_secs(30);
    let problem = loop {
        let body = json!({"description": "d"});
        let (status, _, answer) =
            call(api, Method::POST, TASKS, Some(&s.globex.key), Some(&body)).await;
        match status {
            201 => assert!(Instant::now() < deadline, "never refused"),
            429 => break answer,
            other => panic!("{other}: {answer}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("max_open_tasks"),
        "{problem}"
    );
    let (status, _, _) = call(
        api,
        Method::POST,
        TASKS,
        Some(&s.acme.key),
        Some(&json!({"description": "d"})),
    )
    .await;
    assert_eq!(status, 201, "acme's tasks are its own");
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_site_writes_are_refused_even_with_auth_off_and_curl_keeps_working() {
    let mut config = test_config();
    config.api.cors_origins = vec!["https://app.example".into()];
    let app = spawn_app_with(config, true).await;
    let api = app.spawn_api().await;
    let task = agentflow_tests::requests::create_idle(&api, json!({})).await;
    let pause = api.url(&format!("{TASKS}/{task}/pause"));
    let cancel = api.url(&format!("{TASKS}/{task}/cancel"));
    // A cross-site HTML form: text/plain (or form-encoded), even with an empty body.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let response = api
            .http
            .post(&cancel)
            .header("content-type", content_type)
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{content_type}");
    }
    // Marked cross-site, or from a foreign origin, even with a JSON body or none.
    let marked = api
        .http
        .post(&cancel)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(marked.status(), 403);
    let foreign = api
        .http
        .post(&cancel)
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    assert_eq!(
        foreign.headers()["content-type"],
        "application/problem+json"
    );
    // DNS rebinding: a page whose name now points at 127.0.0.1 gets nothing from an open api.
    let rebound = api
        .http
        .get(api.url(TASKS))
        .header("host", "rebound.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    // Still created: nothing above reached it.
    let (_, shown) = api.get(&format!("{TASKS}/{task}")).await;
    assert_eq!(shown["status"], "created");
    // The allowed origin, same-origin pages, and body-less curl work.
    let allowed = api
        .http
        .post(&pause)
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_ne!(allowed.status(), 403);
    let curl = api.http.post(&cancel).send().await.unwrap();
    assert_eq!(curl.status(), 202, "curl -X POST …/cancel");
    // CORS: a preflight from the allowed origin is answered, another origin gets no grant.
    let preflight = |origin: &'static str| {
        api.http
            .request(Method::OPTIONS, &pause)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let granted = preflight("https://app.example").await.unwrap();
    assert_eq!(
        granted.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(!denied.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_auth_off_the_api_refuses_a_network_address_unless_allowed() {
    let mut config = test_config();
    config.api.listen = "0.0.0.0:0".into();
    let client = agentflow_tests::harness::connect().await.unwrap();
    let refused = agentflow_api::Application::build(config.clone(), client.clone()).await;
    let error = refused.err().expect("refused").to_string();
    assert!(error.contains("allow_unauthenticated_network"), "{error}");
    config.auth.allow_unauthenticated_network = true;
    assert!(
        agentflow_api::Application::build(config.clone(), client.clone())
            .await
            .is_ok()
    );
    config.auth.allow_unauthenticated_network = false;
    config.auth.enabled = true;
    config.auth.token_secrets = vec![SECRET.into()];
    assert!(
        agentflow_api::Application::build(config, client)
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_created_before_tenancy_belong_to_the_default_tenant() {
    let s = secured(|_| {}).await;
    // Started without a tenant, as every task before tenancy was.
    let old = s
        .app
        .create("assistant", agentflow_client::tasks::NewTask::default())
        .await
        .unwrap();
    let default_key = key("dora", "default", &[Scope::TasksRead]);
    let mut file = agentflow_api::auth::keys::read_file(&s.keys_file).unwrap();
    file.keys.push(default_key.record.clone());
    write_file(&s.keys_file, &file).unwrap();
    let path = format!("{TASKS}/{old}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let (status, _, _) = call(&s.api, Method::GET, &path, Some(&default_key.key), None).await;
        if status != 401 || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 200, "the default tenant sees it");
    let (status, _, _) = call(&s.api, Method::GET, &path, Some(&s.acme.key), None).await;
    assert_eq!(status, 404, "another tenant does not");

    // A tenant that is no tenant id (written by someone with Temporal access) is nobody's:
    // not read as the default tenant's.
    let odd = TaskId::new();
    let started = tokio::process::Command::new("temporal")
        .args([
            "workflow",
            "start",
            "--type",
            "AgentTaskWorkflow",
            "--address",
        ])
        .arg(s.app.temporal_address())
        .args([
            "--task-queue",
            "nobody-polls-this",
            "--execution-timeout",
            "1m",
        ])
        .arg("--workflow-id")
        .arg(odd.workflow_id())
        .args([
            "--search-attribute",
            "AgentId=\"assistant\"",
            "--search-attribute",
            "TenantId=\"Default\"",
        ])
        .output()
        .await
        .expect("the temporal CLI (scripts/test installs it)");
    assert!(started.status.success(), "{started:?}");
    for key in [&default_key.key, &s.acme.key] {
        let path = format!("{TASKS}/{odd}");
        let (status, _, body) = call(&s.api, Method::GET, &path, Some(key), None).await;
        assert_eq!(status, 404, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_session_is_an_http_only_cookie_with_the_key_s_tenant_and_scopes() {
    let s = secured(|config| config.auth.secure_cookie = true).await;
    let api = &s.api;
    let (status, _, problem) = call(
        api,
        Method::POST,
        "/api/v1/session",
        None,
        Some(&json!({"key": "af_0000000000_forged"})),
    )
    .await;
    assert_eq!(status, 401, "{problem}");
    let response = api
        .http
        .post(api.url("/api/v1/session"))
        .json(&json!({"key": s.reader.key}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains(&s.reader.key), "the cookie is not the key");
    let session = cookie.split(';').next().unwrap().to_owned();
    let me: Value = api
        .http
        .get(api.url("/api/v1/session"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&me["identity"], &me["tenant"]),
        (&json!("rita"), &json!("acme")),
        "{me}"
    );
    let expires: chrono::DateTime<chrono::Utc> =
        me["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(
        expires > chrono::Utc::now() + chrono::Duration::hours(7),
        "{me}"
    );
    let with_cookie = |method: Method, path: &str| {
        api.http
            .request(method, api.url(path))
            .header("cookie", &session)
    };
    assert_eq!(
        with_cookie(Method::GET, TASKS)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let create = with_cookie(Method::POST, TASKS)
        .json(&json!({"description": "d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        create.status(),
        403,
        "the session has the key's scopes only"
    );
    // With auth off there is no session to open.
    let open = spawn_app_with(test_config(), false).await.spawn_api().await;
    let (status, _, _) = call(
        &open,
        Method::POST,
        "/api/v1/session",
        None,
        Some(&json!({"key": "x"})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _, me) = call(&open, Method::GET, "/api/v1/session", None, None).await;
    assert_eq!((status, &me["auth_enabled"]), (200, &json!(false)), "{me}");
}
