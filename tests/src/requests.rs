//! Requests to the task routes of the `assistant` agent on a [`TestApi`], and checks of
//! problem+json answers. Task ids are anything that prints as one (`TaskId`, or the `String`
//! the api returned).

use crate::api::TestApi;
use crate::sse::Live;
use serde_json::{Value, json};
use std::fmt::Display;

/// The task collection of the `assistant` agent.
pub const TASKS: &str = "/api/v1/agents/assistant/tasks";

/// The path of a task of the `assistant` agent, then `action` (`""`, `"/pause"`, …).
pub fn task_path(task: impl Display, action: &str) -> String {
    format!("{TASKS}/{task}{action}")
}

/// The path of the task's SSE stream.
pub fn stream_path(task: impl Display) -> String {
    task_path(task, "/events/stream")
}

/// Creates a task of the `assistant` agent with a client-chosen id, these `task_parameters`
/// and no query (nothing runs yet); checks it is `created` under that id, and returns the id.
pub async fn create_idle(api: &TestApi, parameters: Value) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let task = api
        .create_task(
            "assistant",
            json!({"id": id, "description": "test", "task_parameters": parameters}),
        )
        .await;
    assert_eq!(task["id"], id);
    assert_eq!(task["status"], "created");
    id
}

/// `POST …/execute` with this query; panics unless 202.
pub async fn execute(api: &TestApi, task: impl Display, query: &str) {
    let (status, body) = api
        .post(&task_path(task, "/execute"), &json!({"query": query}))
        .await;
    assert_eq!(status, 202, "{body}");
}

/// Opens the task's stream from its start.
pub async fn open(api: &TestApi, task: impl Display) -> Live {
    Live::open(&api.http, &api.url(&stream_path(task))).await
}

/// An answer: its status, content type and JSON body (null if none).
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The `content-type` header (empty if none).
    pub content_type: String,
    /// The JSON body, or null.
    pub body: Value,
}

/// Sends `method path` with this JSON body (or none) and reads the answer.
pub async fn send(
    api: &TestApi,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let (status, headers, body) =
        keyed(&api.http, method, api.url(path), None, body.as_ref()).await;
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Answer {
        status,
        content_type,
        body,
    }
}

/// Sends `method url` with a bearer key (or none) and a JSON body (or none) → (status,
/// headers, JSON body or null): for any api, in process or not.
pub async fn keyed(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = http.request(method, url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("the request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, body)
}

/// `POST path` with this JSON body.
pub async fn post(api: &TestApi, path: &str, body: Value) -> Answer {
    send(api, reqwest::Method::POST, path, Some(body)).await
}

/// Asserts a problem+json answer with this status, and returns its detail.
pub fn problem(answer: &Answer, status: u16) -> String {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["status"], status);
    answer.body["detail"].as_str().expect("detail").to_owned()
}

/// Asserts `response` is a problem+json with this status, a title and a type, whose detail
/// mentions `mention`; `what` names the request in failure messages.
pub async fn check_problem(response: reqwest::Response, status: u16, mention: &str, what: &str) {
    assert_eq!(response.status().as_u16(), status, "{what}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{what}"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], status, "{what}: {problem}");
    assert!(problem["title"].is_string() && problem["type"].is_string());
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(mention),
        "{what}: `{detail}` should mention `{mention}`"
    );
}
