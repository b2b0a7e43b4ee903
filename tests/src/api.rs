//! The api in the test process on port 0, with request helpers.

use crate::harness::{TestApp, connect_to};
use crate::server::temporal_address;
use agentflow_api::Application;
use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::event::Event;
use serde_json::Value;
use tokio::sync::oneshot;

/// A running api.
pub struct TestApi {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// An HTTP client.
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Starts an api with this config on a free port, against the shared dev server.
pub async fn spawn_api(config: &AgentflowConfig) -> TestApi {
    spawn_api_at(config, "127.0.0.1:0").await
}

/// Starts an api with this config on `listen` (e.g. the port of a stopped one, to restart it),
/// against the shared dev server.
pub async fn spawn_api_at(config: &AgentflowConfig, listen: &str) -> TestApi {
    spawn_api_on(temporal_address(), config, listen).await
}

/// Starts an api with this config on `listen` against the dev server at `address`.
pub async fn spawn_api_on(address: &str, config: &AgentflowConfig, listen: &str) -> TestApi {
    let mut config = config.clone();
    config.api.listen = listen.into();
    config.api.relay_linger_ms = 200;
    let client = connect_to(address).await.expect("connecting to Temporal");
    let app = Application::build(config, client)
        .await
        .expect("binding the api");
    let base_url = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = oneshot::channel::<()>();
    let join = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApi {
        base_url,
        http: reqwest::Client::new(),
        stop: Some(stop),
        join: Some(join),
    }
}

impl TestApp {
    /// Starts an api for this app's config and dev server, on a free port.
    pub async fn spawn_api(&self) -> TestApi {
        spawn_api_on(self.temporal_address(), &self.config, "127.0.0.1:0").await
    }
}

impl TestApi {
    /// The absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `GET path` → (status, JSON body or null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every page of a task's log from `GET {task_path}/events`, in order.
    pub async fn paged_events(&self, task_path: &str) -> Vec<Event> {
        let mut events: Vec<Event> = Vec::new();
        loop {
            let path = format!("{task_path}/events?after={}&limit=200", events.len());
            let (status, page) = self.get(&path).await;
            assert_eq!(status, 200, "{page}");
            let batch: Vec<Event> =
                serde_json::from_value(page["events"].clone()).expect("a page of events");
            let more = page["has_more"] == true;
            events.extend(batch);
            if !more {
                return events;
            }
        }
    }

    /// `POST path` with a JSON body → (status, JSON body or null).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a task of `agent` with this body; panics unless 201.
    pub async fn create_task(&self, agent: &str, body: Value) -> Value {
        let (status, task) = self
            .post(&format!("/api/v1/agents/{agent}/tasks"), &body)
            .await;
        assert_eq!(status, 201, "creating a task: {task}");
        task
    }

    /// Relay RPC counters from `/metrics`.
    pub async fn relay_rpcs(&self) -> u64 {
        let (_, metrics) = self.get("/metrics").await;
        metrics["relay_rpcs"]["total"].as_u64().expect("metrics")
    }

    /// Stops the api: open streams end, then the server.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            join.await
                .expect("the api task")
                .expect("the api stopped cleanly");
        }
    }
}
