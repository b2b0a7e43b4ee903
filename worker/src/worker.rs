//! Worker wiring: register the workflow and activities and poll the task queue.

use crate::activities::{AgentActivities, CoalesceSettings};
use crate::checkpoint::Checkpoints;
use crate::hints::ProgressHinter;
use crate::tools::ToolRegistry;
use crate::workflow::AgentTaskWorkflow;
use agentflow_bus::{Bus, BusError};
use agentflow_shared::config::AgentflowConfig;
use std::future::Future;
use std::time::Duration;
use temporalio_client::Client;
use temporalio_sdk::runtime::PollerBehavior;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use tokio::sync::watch;

/// Why the worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The SDK runtime could not start.
    #[error(transparent)]
    Runtime(#[from] temporalio_sdk::RuntimeError),
    /// The workflow could not be registered.
    #[error(transparent)]
    Registration(#[from] temporalio_sdk::WorkflowRegistrationError),
    /// The worker could not be created.
    #[error(transparent)]
    Create(#[from] temporalio_sdk::WorkerCreateError),
    /// The worker failed while running.
    #[error(transparent)]
    Run(#[from] temporalio_sdk::WorkerRunError),
    /// The bus could not be set up.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Runs a worker for `config.worker.task_queue` with the given tools until `shutdown` resolves;
/// then fails in-flight activities retryably (their events attached, so another worker resumes
/// them at once), drains, and returns within `worker.shutdown_timeout_secs`. LLM calls publish
/// on the bus of `config.bus` once it is ready (it connects in the background).
pub async fn run(
    client: Client,
    config: &AgentflowConfig,
    tools: ToolRegistry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    let settings = &config.worker;
    let bus = Bus::start(&config.bus).await?;
    if let Some(bus) = &bus {
        // Give the bus its connect timeout before the first call; later calls join it whenever
        // it is ready.
        let wait = Duration::from_millis(config.bus.connect_timeout_ms);
        if !bus.wait_ready(wait).await {
            tracing::warn!(url = %config.bus.url, "the bus is not ready; calls use heartbeats until it is");
        }
    }
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let mcp = tools.mcp().clone();
    let activities = AgentActivities::new(
        tools,
        CoalesceSettings {
            interval: Duration::from_millis(settings.coalesce_ms),
            max_chars: settings.coalesce_chars,
        },
    )
    .with_heartbeat_interval(Duration::from_millis(settings.max_heartbeat_throttle_ms))
    .with_shutdown(stopping_rx)
    .with_bus(bus.clone(), config.auth.default_tenant.clone())
    .with_checkpoints(Some(Checkpoints::new(
        client.clone(),
        Duration::from_secs(settings.llm_heartbeat_timeout_secs),
    )));
    let mut options = WorkerOptions::new(settings.task_queue.clone())
        .register_workflow::<AgentTaskWorkflow>()?
        .register_activities(activities)
        .max_cached_workflows(settings.max_cached_workflows)
        .max_heartbeat_throttle_interval(Duration::from_millis(settings.max_heartbeat_throttle_ms))
        .default_heartbeat_throttle_interval(Duration::from_millis(
            settings.max_heartbeat_throttle_ms,
        ))
        .sticky_queue_schedule_to_start_timeout(Duration::from_secs(settings.sticky_timeout_secs))
        .graceful_shutdown_period(Duration::from_secs(5))
        .build();
    if let Some(bus) = bus.filter(|_| config.bus.progress_hints) {
        let hinter = ProgressHinter::new(bus, config.auth.default_tenant.clone());
        tokio::spawn(hinter.clone().resend_after_outages());
        options.worker_interceptor(hinter);
    }
    if let Some(pollers) = settings.workflow_task_pollers {
        options.workflow_task_poller_behavior = Some(PollerBehavior::SimpleMaximum(pollers.max(2)));
    }
    if let Some(pollers) = settings.activity_task_pollers {
        options.activity_task_poller_behavior = Some(PollerBehavior::SimpleMaximum(pollers.max(1)));
    }
    let mut worker = Worker::new(&runtime, client, options)?;
    let stop = worker.shutdown_handle();
    let deadline = Duration::from_secs(settings.shutdown_timeout_secs);
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("worker shutting down");
        stopping_tx.send_replace(true);
        stop();
        let _ = stopped_tx.send(());
    });
    let overdue = async move {
        if stopped_rx.await.is_ok() {
            tokio::time::sleep(deadline).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tracing::info!(task_queue = %settings.task_queue, "worker polling");
    tokio::select! {
        result = worker.run() => result?,
        _ = overdue => tracing::warn!(?deadline, "worker shutdown deadline passed; stopping anyway"),
    }
    mcp.close().await;
    Ok(())
}
