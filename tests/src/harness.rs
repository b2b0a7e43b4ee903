//! `spawn_app()`: a worker on a fresh task queue of the shared dev server (or of a dedicated
//! one: `spawn_app_on`), with request helpers.

use crate::server::{nats_url, temporal_address};
use agentflow_client::EventsQuery;
use agentflow_client::progress::CallProgress;
use agentflow_client::tasks::{NewTask, start_task, task_input};
use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::event::Event;
use agentflow_shared::ids::{AgentId, Seq, TaskId};
use agentflow_shared::task::{EventsRange, ExecuteAccepted, ExecuteRequest, TaskResult, TaskState};
use agentflow_worker::AgentTaskWorkflow;
use agentflow_worker::tools::ToolRegistry;
use anyhow::Context;
use std::str::FromStr;
use std::time::{Duration, Instant};
use temporalio_client::WorkflowHistory;
use temporalio_client::errors::WorkflowUpdateError;
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, WorkflowDescribeOptions,
    WorkflowExecuteUpdateOptions, WorkflowFetchHistoryOptions, WorkflowGetResultOptions,
    WorkflowHandle, WorkflowQueryOptions,
};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};
use tokio::sync::oneshot;

/// Settings that keep tests quick: a fresh task queue, fast retries, a short heartbeat timeout,
/// and the test process's NATS server as the bus.
pub fn test_config() -> AgentflowConfig {
    let mut config = AgentflowConfig::default_config();
    config.bus.url = nats_url().to_owned();
    config.bus.heartbeat_ms = 500;
    config.worker.task_queue = format!("test-{}", uuid::Uuid::new_v4());
    config.worker.llm_heartbeat_timeout_secs = 2;
    config.worker.llm_retry_initial_ms = 100;
    config.worker.sticky_timeout_secs = 1;
    config.worker.coalesce_ms = 20;
    config.worker.coalesce_chars = 32;
    if let Some(model) = config.models.get_mut("scripted") {
        model.token_delay_ms = 2;
    }
    let mut other = config.agents["assistant"].clone();
    other.name = "Other".into();
    config.agents.insert("other".into(), other);
    // Requests may choose any model, budget and step limit (the security tests set their own
    // `[limits.agents]`; the shipped defaults allow only an agent's own).
    let ids: Vec<String> = config
        .agents
        .keys()
        .chain(config.teams.keys())
        .cloned()
        .collect();
    for id in ids {
        config.limits.agents.insert(
            id,
            agentflow_shared::security::RequestLimits {
                models: vec![agentflow_client::tasks::ANY_MODEL.into()],
                max_budget_usd: Some(1e9),
                max_steps: Some(100_000),
            },
        );
    }
    config
}

/// [`test_config`] with the scripted model streaming one token every `token_delay_ms`: slow
/// enough to act in the middle of a streamed answer.
pub fn slow_config(token_delay_ms: u64) -> AgentflowConfig {
    let mut config = test_config();
    if let Some(model) = config.models.get_mut("scripted") {
        model.token_delay_ms = token_delay_ms;
    }
    config
}

/// Connects a client to the shared test dev server, waiting until it answers.
pub async fn connect() -> anyhow::Result<Client> {
    connect_to(temporal_address()).await
}

/// Connects a client to the dev server at `address`, waiting until it answers.
pub async fn connect_to(address: &str) -> anyhow::Result<Client> {
    let url = url::Url::from_str(&format!("http://{address}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let connection =
                Connection::connect(ConnectionOptions::new(url.clone()).build()).await?;
            let client = Client::new(connection, ClientOptions::new("default").build())?;
            anyhow::Ok(client)
        };
        match attempt.await {
            Ok(client) => return Ok(client),
            Err(e) if Instant::now() > deadline => return Err(e).context("connecting to Temporal"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A worker running inside the test process.
struct InProcessWorker {
    stop: oneshot::Sender<()>,
    join: std::thread::JoinHandle<anyhow::Result<()>>,
}

/// A worker and a client on a fresh task queue.
pub struct TestApp {
    /// Client of the dev server.
    pub client: Client,
    /// The configuration the worker and tasks use.
    pub config: AgentflowConfig,
    temporal_address: String,
    worker: Option<InProcessWorker>,
}

/// A test app with [`test_config`] and an in-process worker.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_config(), true).await
}

/// A test app with this config; with an in-process worker or none (start a [`WorkerProcess`]).
pub async fn spawn_app_with(config: AgentflowConfig, with_worker: bool) -> TestApp {
    spawn_app_on(temporal_address(), config, with_worker).await
}

/// [`spawn_app_with`] against the dev server at `address` instead of the shared one, e.g. a
/// [`crate::server::DevServer`] of the test's own (which must outlive the app); the app's
/// [`TestApp::spawn_api`] uses it too.
pub async fn spawn_app_on(address: &str, config: AgentflowConfig, with_worker: bool) -> TestApp {
    let client = connect_to(address)
        .await
        .expect("connecting to the dev server");
    let worker = with_worker.then(|| {
        let (stop, stopped) = oneshot::channel();
        let settings = config.clone();
        let address = address.to_owned();
        // The SDK worker's future is not `Send`: it gets its own thread and runtime.
        let join = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let tools =
                    ToolRegistry::from_config(&settings, |variable| std::env::var(variable).ok())?;
                let client = connect_to(&address).await?;
                agentflow_worker::worker::run(client, &settings, tools, async move {
                    let _ = stopped.await;
                })
                .await?;
                anyhow::Ok(())
            })
        });
        InProcessWorker { stop, join }
    });
    TestApp {
        client,
        config,
        temporal_address: address.to_owned(),
        worker,
    }
}

/// A workflow replayer with the current workflow code.
pub fn replayer() -> WorkflowReplayer {
    WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<AgentTaskWorkflow>()
            .unwrap()
            .build(),
    )
    .unwrap()
}

impl TestApp {
    /// Address (`host:port`) of the dev server the app uses.
    pub fn temporal_address(&self) -> &str {
        &self.temporal_address
    }

    /// Creates a task of `agent` and returns its id.
    pub async fn create(&self, agent: &str, task: NewTask) -> anyhow::Result<TaskId> {
        let input = task_input(&self.config, &AgentId::from(agent), task)?;
        let id = input.task_id;
        start_task(&self.client, &self.config.worker.task_queue, input).await?;
        Ok(id)
    }

    /// Creates a task of the `assistant` agent that runs `query` at once.
    pub async fn run_query(&self, query: &str, streaming: bool) -> TaskId {
        let mut task = NewTask {
            query: Some(query.into()),
            ..Default::default()
        };
        task.parameters.enable_streaming = Some(streaming);
        self.create("assistant", task)
            .await
            .expect("creating the task")
    }

    /// The workflow handle of a task.
    pub fn handle(&self, task: TaskId) -> WorkflowHandle<Client, AgentTaskWorkflow> {
        self.client
            .get_workflow_handle::<AgentTaskWorkflow>(task.workflow_id())
    }

    /// Sends the `execute` update.
    pub async fn execute(
        &self,
        task: TaskId,
        query: &str,
    ) -> Result<ExecuteAccepted, WorkflowUpdateError> {
        self.handle(task)
            .execute_update(
                AgentTaskWorkflow::execute,
                ExecuteRequest {
                    query: query.into(),
                    enable_streaming: None,
                },
                WorkflowExecuteUpdateOptions::default(),
            )
            .await
    }

    /// Waits for the task to end and returns its result.
    pub async fn result(&self, task: TaskId) -> TaskResult {
        tokio::time::timeout(
            Duration::from_secs(120),
            self.handle(task)
                .get_result(WorkflowGetResultOptions::default()),
        )
        .await
        .expect("the task did not finish within 120 s")
        .expect("the workflow result")
    }

    /// The whole log through the `get_events` query, page by page.
    pub async fn events(&self, task: TaskId, page: usize) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let range = EventsRange {
                after: Seq(events.len() as u64),
                limit: page,
            };
            let page = self
                .handle(task)
                .query(
                    AgentTaskWorkflow::get_events,
                    EventsQuery(range),
                    WorkflowQueryOptions::default(),
                )
                .await
                .expect("get_events");
            events.extend(page.events);
            if !page.has_more {
                return events;
            }
        }
    }

    /// The `get_current_state` query.
    pub async fn state(&self, task: TaskId) -> TaskState {
        self.handle(task)
            .query(
                AgentTaskWorkflow::get_current_state,
                (),
                WorkflowQueryOptions::default(),
            )
            .await
            .expect("get_current_state")
    }

    /// Events in the heartbeat details of the task's pending LLM activity (the heartbeat path;
    /// none while the call is on the bus).
    pub async fn heartbeat_events(&self, task: TaskId) -> Vec<Event> {
        self.heartbeat_progress(task)
            .await
            .map(|p| p.events().to_vec())
            .unwrap_or_default()
    }

    /// What the task's pending LLM activity heartbeated last, if it is pending and did.
    pub async fn heartbeat_progress(&self, task: TaskId) -> Option<CallProgress> {
        let description = self
            .handle(task)
            .describe(WorkflowDescribeOptions::default())
            .await
            .expect("describe");
        agentflow_client::progress::heartbeat_progress(description.raw())
    }

    /// The task's history as JSON (for replay tests).
    pub async fn history_json(&self, task: TaskId) -> Vec<u8> {
        self.handle(task)
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .to_json()
            .await
            .expect("fetching the history")
    }

    /// Replays the task's history with the current workflow code. With
    /// `AGENTFLOW_RECORD_HISTORIES=1` it is also saved as `fixtures/histories/{name}.json`,
    /// which the replay test replays from then on.
    pub async fn assert_replays(&self, task: TaskId, name: &str) {
        let json = self.history_json(task).await;
        if std::env::var_os("AGENTFLOW_RECORD_HISTORIES").is_some() {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/histories");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}.json")), &json).unwrap();
        }
        let history = WorkflowHistory::from_json(&json).unwrap();
        replayer()
            .replay_workflow(history)
            .await
            .expect("the history replays with the current code");
    }

    /// Stops the in-process worker and waits for it to drain.
    pub async fn stop_worker(&mut self) {
        if let Some(worker) = self.worker.take() {
            let _ = worker.stop.send(());
            tokio::task::spawn_blocking(move || worker.join.join())
                .await
                .expect("joining the worker thread")
                .expect("the worker thread")
                .expect("the worker stopped cleanly");
        }
    }
}

/// A worker in its own process (`e2e-worker`), so a test can kill it for real.
pub struct WorkerProcess {
    child: tokio::process::Child,
}

impl WorkerProcess {
    /// Starts the worker binary at `program` (`env!("CARGO_BIN_EXE_e2e-worker")` in a test) with
    /// this config against the shared test dev server.
    pub fn spawn(program: &str, config: &AgentflowConfig) -> Self {
        Self::spawn_on(temporal_address(), program, config)
    }

    /// [`WorkerProcess::spawn`] against the dev server at `address` (see [`spawn_app_on`]).
    pub fn spawn_on(address: &str, program: &str, config: &AgentflowConfig) -> Self {
        Self::spawn_with_env(address, program, config, &[])
    }

    /// [`WorkerProcess::spawn_on`] with extra environment variables (e.g. a tool's secret).
    pub fn spawn_with_env(
        address: &str,
        program: &str,
        config: &AgentflowConfig,
        env: &[(&str, &str)],
    ) -> Self {
        let child = tokio::process::Command::new(program)
            .envs(env.iter().copied())
            .env(
                "AGENTFLOW_TEST_CONFIG_JSON",
                serde_json::to_string(config).unwrap(),
            )
            .env("TEMPORAL_ADDRESS", address)
            .env("TEMPORAL_NAMESPACE", "default")
            .kill_on_drop(true)
            .spawn()
            .expect("starting the e2e-worker binary");
        Self { child }
    }

    /// Whether the process is still running (it has not crashed or exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks the process to stop (SIGTERM) and waits for it to exit; returns whether it exited
    /// within `deadline`.
    pub async fn terminate(mut self, deadline: Duration) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        tokio::time::timeout(deadline, self.child.wait())
            .await
            .is_ok()
    }

    /// Sends a signal by name (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, name: &str) {
        if let Some(pid) = self.child.id() {
            let status = std::process::Command::new("kill")
                .arg(format!("-{name}"))
                .arg(pid.to_string())
                .status()
                .expect("running kill");
            assert!(status.success(), "kill -{name} {pid}");
        }
    }

    /// Kills the process with SIGKILL (no graceful shutdown) and reaps it.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("killing the worker");
    }
}
