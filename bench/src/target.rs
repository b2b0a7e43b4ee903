//! The stack under test, over HTTP: tasks, SSE subscribers, logs and `/metrics`.

use agentflow_shared::event::Event;
use agentflow_shared::ids::Seq;
use agentflow_shared::log::{EventLog, check_prefix};
use agentflow_shared::task::EventsPage;
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A running agentflow api.
#[derive(Clone)]
pub struct Target {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub base: String,
    /// The agent whose tasks are created.
    pub agent: String,
    http: reqwest::Client,
}

/// What one subscriber received.
#[derive(Debug, Default)]
pub struct Received {
    /// The events, in order.
    pub events: Vec<Event>,
    /// When each event arrived (wall clock).
    pub arrived: Vec<DateTime<Utc>>,
}

impl Received {
    /// Delivery latency of each event: arrival − creation, in milliseconds.
    pub fn latencies_ms(&self) -> Vec<f64> {
        self.latencies_ms_of(|_| true)
    }

    /// Delivery latency of the events `which` selects, in milliseconds.
    pub fn latencies_ms_of(&self, which: impl Fn(&Event) -> bool) -> Vec<f64> {
        self.events
            .iter()
            .zip(&self.arrived)
            .filter(|(e, _)| which(e))
            .map(|(e, at)| (*at - e.timestamp).num_microseconds().unwrap_or(0) as f64 / 1000.0)
            .collect()
    }
}

/// Why a subscriber's events are not the whole final log, if they are not: lost, duplicated or
/// diverged events ([`check_prefix`]), or a stream that ended before the log did.
pub fn check(received: &[Event], log: &[Event]) -> Option<String> {
    let log = match EventLog::from_events(Seq::first(), log.to_vec()) {
        Ok(log) => log,
        Err(error) => return Some(format!("the final log is not dense: {error}")),
    };
    if let Err(error) = check_prefix(Seq(0), received, &log) {
        return Some(error.to_string());
    }
    (received.len() != log.len()).then(|| {
        format!(
            "received {} events, the final log has {}",
            received.len(),
            log.len()
        )
    })
}

impl Target {
    /// A target at `base` creating tasks of `agent`.
    pub fn new(base: &str, agent: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent: agent.to_owned(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("an HTTP client"),
        }
    }

    /// The same api, creating tasks of `agent` (an agent or a team).
    pub fn with_agent(&self, agent: &str) -> Self {
        Self {
            agent: agent.to_owned(),
            ..self.clone()
        }
    }

    fn tasks(&self) -> String {
        format!("{}/api/v1/agents/{}/tasks", self.base, self.agent)
    }

    /// Creates a task with a fresh id; runs `query` at once when given.
    pub async fn create(
        &self,
        streaming: bool,
        model: Option<&str>,
        query: Option<&str>,
    ) -> anyhow::Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut parameters = json!({"enable_streaming": streaming});
        if let Some(model) = model {
            parameters["model"] = json!(model);
        }
        let mut body = json!({"id": id, "description": "bench", "task_parameters": parameters});
        if let Some(query) = query {
            body["query"] = json!(query);
        }
        let response = self.http.post(self.tasks()).json(&body).send().await?;
        if response.status() != 201 {
            bail!(
                "create: HTTP {}: {}",
                response.status(),
                response.text().await?
            );
        }
        Ok(id)
    }

    /// Runs `query` on a created task; returns when the api accepted it.
    pub async fn execute(&self, id: &str, query: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/{id}/execute", self.tasks()))
            .json(&json!({"query": query}))
            .send()
            .await?;
        if response.status() != 202 {
            bail!(
                "execute: HTTP {}: {}",
                response.status(),
                response.text().await?
            );
        }
        Ok(())
    }

    /// Reads the task's stream from the start to its terminal event.
    pub async fn subscribe(&self, id: &str, query: &str) -> anyhow::Result<Received> {
        Self::read(self.open(id, query).await?).await
    }

    /// Cancels the task (`POST …/cancel`); fails unless 202.
    pub async fn cancel(&self, id: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/{id}/cancel", self.tasks()))
            .send()
            .await?;
        if response.status() != 202 {
            bail!(
                "cancel: HTTP {}: {}",
                response.status(),
                response.text().await?
            );
        }
        Ok(())
    }

    /// Opens the task's stream: once this returns, the api has subscribed it.
    pub async fn open(&self, id: &str, query: &str) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}/{id}/events/stream{query}", self.tasks());
        let response = self.http.get(&url).send().await?;
        if response.status() != 200 {
            bail!("stream: HTTP {}", response.status());
        }
        Ok(response)
    }

    /// Reads an opened stream to its terminal event.
    pub async fn read(response: reqwest::Response) -> anyhow::Result<Received> {
        let mut stream = response.bytes_stream().eventsource();
        let mut received = Received::default();
        while let Some(message) = stream.next().await {
            let message = message.context("the SSE stream broke")?;
            if message.data.is_empty() {
                continue;
            }
            received.arrived.push(Utc::now());
            received.events.push(serde_json::from_str(&message.data)?);
        }
        Ok(received)
    }

    /// Opens the stream and holds it until `release` resolves; returns whether it opened.
    pub async fn hold(&self, id: &str, release: impl Future<Output = ()>) -> anyhow::Result<()> {
        let url = format!("{}/{id}/events/stream", self.tasks());
        let response = self.http.get(&url).send().await?;
        if response.status() != 200 {
            bail!("stream: HTTP {}", response.status());
        }
        release.await;
        drop(response);
        Ok(())
    }

    /// The task's log so far, read page by page.
    pub async fn log(&self, id: &str) -> anyhow::Result<Vec<Event>> {
        Ok(self.paged_log(id).await?.0)
    }

    /// The URL of the task's SSE stream.
    pub fn stream_url(&self, id: &str) -> String {
        format!("{}/{id}/events/stream", self.tasks())
    }

    /// The task's whole log so far, page by page (`GET …/events?after=…`), and whether it has
    /// ended.
    pub async fn paged_log(&self, id: &str) -> anyhow::Result<(Vec<Event>, bool)> {
        let mut events: Vec<Event> = Vec::new();
        loop {
            let after = events.last().map_or(0, |e| e.seq.0);
            let response = self
                .http
                .get(format!(
                    "{}/{id}/events?after={after}&limit=1000",
                    self.tasks()
                ))
                .timeout(Duration::from_secs(30))
                .send()
                .await?;
            if !response.status().is_success() {
                bail!(
                    "events: HTTP {}: {}",
                    response.status(),
                    response.text().await?
                );
            }
            let page: EventsPage = response.json().await?;
            let more = page.has_more && !page.events.is_empty();
            events.extend(page.events);
            if !more {
                return Ok((events, page.finished));
            }
        }
    }

    /// `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Total relay RPCs so far.
    pub async fn relay_rpcs(&self) -> anyhow::Result<u64> {
        Ok(self.metrics().await?["relay_rpcs"]["total"]
            .as_u64()
            .unwrap_or(0))
    }

    /// Waits until the api has at least `count` subscribers.
    pub async fn wait_subscribers(&self, count: usize) -> anyhow::Result<()> {
        self.wait_subscriber_count(|n| n >= count, &format!("at least {count}"))
            .await
    }

    /// Waits until the api has at most `count` subscribers: streams whose clients left are only
    /// noticed at their next write (the keep-alive), so a scenario that drops many streams waits
    /// for them to be gone before the next one takes its baseline.
    pub async fn wait_subscribers_gone(&self, count: usize) -> anyhow::Result<()> {
        self.wait_subscriber_count(|n| n <= count, &format!("at most {count}"))
            .await
    }

    async fn wait_subscriber_count(
        &self,
        done: impl Fn(usize) -> bool,
        wanted: &str,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let metrics = self.metrics().await?;
            let now = metrics["subscribers"].as_u64().unwrap_or(0) as usize;
            if done(now) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{now} subscribers connected after 120 s, wanted {wanted}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
