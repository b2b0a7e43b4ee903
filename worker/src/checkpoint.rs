//! Checkpoints: a long LLM call hands its events to the workflow in batches, so that no single
//! payload — heartbeat details, failure details, the result — ever holds more than one batch
//! and the answer. A batch is the `checkpoint_call` update of `AgentTaskWorkflow`; the workflow
//! takes it only from the call attempt it is waiting for (a zombie attempt's checkpoint is
//! refused), and only where it continues its log.

use crate::AgentTaskWorkflow;
use agentflow_shared::event::Event;
use agentflow_shared::ids::{Seq, TaskId};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use temporalio_client::errors::WorkflowUpdateError;
use temporalio_client::{Client, RpcOptions, WorkflowExecuteUpdateOptions};

/// Argument of the `checkpoint_call` update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallCheckpoint {
    /// The call (its first seq).
    pub seq_base: Seq,
    /// The attempt handing its events over.
    pub attempt: u32,
    /// Events of the call, dense, continuing the workflow's log.
    pub events: Vec<Event>,
}

/// Why a checkpoint was not taken.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The workflow refused it: the attempt is no longer the one it waits for.
    #[error("the workflow refused the checkpoint: {0}")]
    Refused(String),
    /// Temporal or the workflow's worker did not answer in time.
    #[error("the checkpoint was not taken: {0}")]
    Unavailable(String),
}

/// Sends a task's checkpoints.
#[derive(Clone)]
pub struct Checkpoints {
    client: Client,
    timeout: Duration,
}

impl Checkpoints {
    /// Checkpoints sent with `client`, each given up after `timeout`.
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    /// Hands `checkpoint` to `task`'s workflow; the last seq its log holds after it.
    pub async fn send(
        &self,
        task: TaskId,
        checkpoint: CallCheckpoint,
    ) -> Result<Seq, CheckpointError> {
        let options = WorkflowExecuteUpdateOptions::builder()
            .rpc_options(RpcOptions::builder().timeout(self.timeout).build())
            .build();
        let handle = self
            .client
            .get_workflow_handle::<AgentTaskWorkflow>(task.workflow_id());
        let update = handle.execute_update(AgentTaskWorkflow::checkpoint_call, checkpoint, options);
        match tokio::time::timeout(self.timeout, update).await {
            Err(_) => Err(CheckpointError::Unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(WorkflowUpdateError::Failed(failure))) => {
                Err(CheckpointError::Refused(failure.message))
            }
            Ok(Err(error)) => Err(CheckpointError::Unavailable(error.to_string())),
        }
    }
}
