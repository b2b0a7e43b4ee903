//! Calling the workflow's updates: one policy for `execute` and every control — counted,
//! bounded by `api.rpc_timeout_ms` as a whole, and a refusal mapped to its problem.

use crate::error::ApiError;
use crate::state::AppState;
use agentflow_client::workflow::AgentTask;
use agentflow_shared::ids::TaskId;
use agentflow_shared::task::Rejection;
use temporalio_client::errors::WorkflowUpdateError;
use temporalio_common::UpdateDefinition;

/// Runs `update` on the task's workflow and answers its output. The client repeats its start
/// RPC until a worker accepts the update, so without a worker it would wait forever: past
/// `api.rpc_timeout_ms` it is a 503. A validator's refusal is a 409, 404 or 422.
pub async fn call<U>(
    state: &AppState,
    task: TaskId,
    update: U,
    input: U::Input,
) -> Result<U::Output, ApiError>
where
    U: UpdateDefinition<Workflow = AgentTask>,
    U::Input: Send,
    U::Output: 'static,
{
    crate::temporal::RpcCounters::count(&state.handler_rpcs.update);
    let handle = state
        .client
        .get_workflow_handle::<AgentTask>(task.workflow_id());
    let options = crate::temporal::update_options(state.config.api.rpc_timeout());
    tokio::time::timeout(
        state.config.api.rpc_timeout(),
        handle.execute_update(update, input, options),
    )
    .await
    .map_err(|_| {
        ApiError::Unavailable(format!(
            "the worker of task {task} did not answer within {} ms; retry",
            state.config.api.rpc_timeout_ms
        ))
    })?
    .map_err(|error| refused(task, error))
}

/// Maps a refused or failed update to its problem: a validator's [`Rejection`] (as the
/// workflow renders it, e.g. `conflict: …`) to 409, 404 or 422; a closed workflow to 409.
fn refused(task: TaskId, error: WorkflowUpdateError) -> ApiError {
    match error {
        WorkflowUpdateError::Failed(failure) => match Rejection::parse(&failure.message) {
            Rejection::Conflict(message) => ApiError::Conflict(message),
            Rejection::NotFound(message) => ApiError::NotFound(message),
            Rejection::Invalid(message) => ApiError::Unprocessable(message),
        },
        WorkflowUpdateError::NotFound(_) => {
            ApiError::Conflict(format!("task {task} has already finished"))
        }
        other => ApiError::Unavailable(format!("the update failed: {other}")),
    }
}
