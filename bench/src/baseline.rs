//! The bare-Temporal ceiling: a trivial one-activity workflow, started and awaited by the same
//! client, on the same server.

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
    /// Returns its input.
    #[activity]
    pub async fn echo(_ctx: ActivityContext, n: u32) -> Result<u32, ActivityError> {
        Ok(n)
    }
}

/// The baseline workflow: one activity.
#[workflow]
#[derive(Default)]
pub struct BaselineWorkflow;

#[workflow_methods]
impl BaselineWorkflow {
    /// Runs the activity once.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, n: u32) -> WorkflowResult<u32> {
        Ok(ctx
            .execute_activity(
                BaselineActivities::echo,
                n,
                ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30)).build(),
            )
            .await?)
    }
}

async fn client(address: &str) -> anyhow::Result<Client> {
    let url = url::Url::from_str(&format!("http://{address}"))?;
    let connection = Connection::connect(ConnectionOptions::new(url).build()).await?;
    Ok(Client::new(
        connection,
        ClientOptions::new("default").build(),
    )?)
}

/// Runs `count` baseline workflows, `concurrency` at a time, with a worker of its own; returns
/// workflows completed per second.
pub async fn run(address: &str, count: usize, concurrency: usize) -> anyhow::Result<f64> {
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
    let results: Vec<anyhow::Result<u32>> = futures::stream::iter(0..count)
        .map(|i| {
            let (starter, task_queue) = (starter.clone(), task_queue.clone());
            async move {
                let id = format!("bench-baseline-{}", uuid::Uuid::new_v4());
                let handle = starter
                    .start_workflow(
                        BaselineWorkflow::run,
                        i as u32,
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
