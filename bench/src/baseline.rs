//! The bare-Temporal ceiling: a workflow of plain activities that only wait (one that returns
//! at once for the throughput scenario; three of the live workload's shape for the live one),
//! started and awaited by the same client, on the same server.

use futures::StreamExt;
use std::str::FromStr;
use std::time::{Duration, Instant};
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, WorkflowGetResultOptions,
    WorkflowStartOptions,
};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{
    ActivityOptions, Runtime, Worker, WorkerOptions, WorkflowContext, WorkflowResult,
};

/// The baseline's activity.
pub struct BaselineActivities;

#[activities]
impl BaselineActivities {
    /// Waits `ms` milliseconds, then returns them.
    #[activity]
    pub async fn wait(_ctx: ActivityContext, ms: u64) -> Result<u64, ActivityError> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(ms)
    }
}

/// The baseline workflow: one activity per entry of its input, one after the other, each
/// waiting that many milliseconds.
#[workflow]
#[derive(Default)]
pub struct BaselineWorkflow;

#[workflow_methods]
impl BaselineWorkflow {
    /// Runs the activities in turn; returns the milliseconds they waited.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, shape: Vec<u64>) -> WorkflowResult<u64> {
        let mut waited = 0;
        for ms in shape {
            waited += ctx
                .execute_activity(
                    BaselineActivities::wait,
                    ms,
                    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30)).build(),
                )
                .await?;
        }
        Ok(waited)
    }
}

/// A Temporal client of the `default` namespace at `address`.
pub async fn client(address: &str) -> anyhow::Result<Client> {
    let url = url::Url::from_str(&format!("http://{address}"))?;
    let connection = Connection::connect(ConnectionOptions::new(url).build()).await?;
    Ok(Client::new(
        connection,
        ClientOptions::new("default").build(),
    )?)
}

/// Runs `count` baseline workflows of `shape` (each activity's wait, in ms), `concurrency` at a
/// time, with a worker of its own; returns workflows completed per second.
pub async fn run(
    address: &str,
    count: usize,
    concurrency: usize,
    shape: &[u64],
) -> anyhow::Result<f64> {
    let task_queue = format!("bench-baseline-{}", uuid::Uuid::new_v4());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = {
        let (address, task_queue) = (address.to_owned(), task_queue.clone());
        // The SDK worker's future is not `Send`: it gets its own thread and runtime.
        std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let sdk = Runtime::from_current_tokio(Default::default())?;
                let options = WorkerOptions::new(task_queue)
                    .register_workflow::<BaselineWorkflow>()?
                    .register_activities(BaselineActivities)
                    .build();
                let mut worker = Worker::new(&sdk, client(&address).await?, options)?;
                let shutdown = worker.shutdown_handle();
                tokio::spawn(async move {
                    let _ = stopped.await;
                    shutdown();
                });
                worker.run().await?;
                anyhow::Ok(())
            })
        })
    };
    let starter = client(address).await?;
    let started = Instant::now();
    let results: Vec<anyhow::Result<u64>> = futures::stream::iter(0..count)
        .map(|_| {
            let (starter, task_queue) = (starter.clone(), task_queue.clone());
            let shape = shape.to_vec();
            async move {
                let id = format!("bench-baseline-{}", uuid::Uuid::new_v4());
                let handle = starter
                    .start_workflow(
                        BaselineWorkflow::run,
                        shape,
                        WorkflowStartOptions::new(task_queue, id).build(),
                    )
                    .await?;
                Ok(handle
                    .get_result(WorkflowGetResultOptions::default())
                    .await?)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let _ = stop.send(());
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("the baseline worker panicked"))??;
    for result in results {
        result?;
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}
