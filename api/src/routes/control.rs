//! Controls of a running task: pause, resume, cancel (also `DELETE`), close, approval
//! decisions and budget raises. Each is a validated Temporal update, so the caller learns at
//! once whether it was accepted (`202` with the task's state) or not (`409`, `404`, `422`).

use crate::error::ApiError;
use crate::extract::{JsonBody, OptionalJsonBody, PathParams};
use crate::routes::tasks::{describe_task, parse_task_id};
use crate::state::AppState;
use agentflow_client::workflow::{self as contract, AgentTask};
use agentflow_shared::ids::TaskId;
use agentflow_shared::task::{
    ApprovalDecision, ApprovalRequest, BudgetRequest, ControlRequest, Rejection, TaskState,
    TaskStatus,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::future::Future;
use temporalio_client::errors::WorkflowUpdateError;

/// What a control answers.
type Accepted = Result<(StatusCode, Json<TaskState>), ApiError>;

/// Runs a workflow update (made with [`crate::temporal::update_options`]), counted and bounded
/// by `api.rpc_timeout_ms` as a whole: the client repeats its start RPC until a worker accepts
/// the update, so without a worker it would wait forever. Past the bound → 503.
pub(crate) async fn bounded_update<T>(
    state: &AppState,
    task: TaskId,
    update: impl Future<Output = Result<T, WorkflowUpdateError>>,
) -> Result<Result<T, WorkflowUpdateError>, ApiError> {
    crate::temporal::RpcCounters::count(&state.handler_rpcs.update);
    tokio::time::timeout(state.config.api.rpc_timeout(), update)
        .await
        .map_err(|_| {
            ApiError::Unavailable(format!(
                "the worker of task {task} did not answer within {} ms; retry",
                state.config.api.rpc_timeout_ms
            ))
        })
}

/// Maps a refused or failed update to its problem.
pub(crate) fn update_error(task: TaskId, error: WorkflowUpdateError) -> ApiError {
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

/// Checks the task exists for the agent and is still open (a closed task answers 409 without
/// waiting for a worker).
async fn open_task(state: &AppState, agent_id: &str, task_id: &str) -> Result<TaskId, ApiError> {
    let task = parse_task_id(task_id)?;
    let description = describe_task(state, agent_id, task).await?;
    if !description.running {
        let status = description
            .task_status
            .map_or("finished", TaskStatus::as_str);
        return Err(ApiError::Conflict(format!(
            "task {task} is already {status}"
        )));
    }
    Ok(task)
}

macro_rules! control_update {
    ($state:expr, $task:expr, $update:path, $arg:expr) => {{
        let state: &AppState = &$state;
        let task: TaskId = $task;
        let handle = state
            .client
            .get_workflow_handle::<AgentTask>(task.workflow_id());
        let options = crate::temporal::update_options(state.config.api.rpc_timeout());
        let accepted = bounded_update(state, task, handle.execute_update($update, $arg, options))
            .await?
            .map_err(|error| update_error(task, error))?;
        Ok((StatusCode::ACCEPTED, Json(accepted)))
    }};
}

/// Pauses the run at its next safe point (between activities).
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/pause", tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    request_body(content = Option<ControlRequest>, description = "Optional reason and requester"),
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, body))]
pub async fn pause(
    State(state): State<AppState>,
    PathParams((agent_id, task_id)): PathParams<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody<ControlRequest>,
) -> Accepted {
    let task = open_task(&state, &agent_id, &task_id).await?;
    control_update!(state, task, contract::Pause, body)
}

/// Resumes a paused run.
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/resume", tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    request_body(content = Option<ControlRequest>, description = "Optional reason and requester"),
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, body))]
pub async fn resume(
    State(state): State<AppState>,
    PathParams((agent_id, task_id)): PathParams<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody<ControlRequest>,
) -> Accepted {
    let task = open_task(&state, &agent_id, &task_id).await?;
    control_update!(state, task, contract::Resume, body)
}

/// Cancels the task: a running LLM call stops, `WorkflowCancelled` ends the log.
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/cancel", tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    request_body(content = Option<ControlRequest>, description = "Optional reason and requester"),
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, body))]
pub async fn cancel(
    State(state): State<AppState>,
    PathParams((agent_id, task_id)): PathParams<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody<ControlRequest>,
) -> Accepted {
    let task = open_task(&state, &agent_id, &task_id).await?;
    let accepted: Accepted = control_update!(state, task, contract::Cancel, body);
    hint_heartbeat(&state, task).await;
    accepted
}

/// Tells the task's running LLM call (on the bus) to heartbeat now, so the cancel just
/// accepted stops its provider stream without waiting for the next liveness heartbeat.
async fn hint_heartbeat(state: &AppState, task: TaskId) {
    if let Some(bus) = state.relays.bus() {
        bus.hint_heartbeat(task).await;
    }
}

/// Cancels the task (`DELETE` form of `POST …/cancel`; the log stays readable).
#[utoipa::path(delete, path = "/api/v1/agents/{agent_id}/tasks/{task_id}", tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
#[tracing::instrument(skip(state))]
pub async fn delete(
    State(state): State<AppState>,
    PathParams((agent_id, task_id)): PathParams<(String, String)>,
) -> Accepted {
    let task = open_task(&state, &agent_id, &task_id).await?;
    let accepted: Accepted =
        control_update!(state, task, contract::Cancel, ControlRequest::default());
    hint_heartbeat(&state, task).await;
    accepted
}

/// Ends a conversation between turns with `WorkflowCompleted`.
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/close", tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    request_body(content = Option<ControlRequest>, description = "Optional reason and requester"),
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, body))]
pub async fn close(
    State(state): State<AppState>,
    PathParams((agent_id, task_id)): PathParams<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody<ControlRequest>,
) -> Accepted {
    let task = open_task(&state, &agent_id, &task_id).await?;
    control_update!(state, task, contract::Close, body)
}

/// Decides on a tool call waiting for approval (edited `arguments` allowed). The same decision
/// sent again is accepted and changes nothing; a different one answers 409.
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/approvals/{approval_id}",
    tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)"),
        ("approval_id" = String, Path, description = "From `WorkflowApprovalRequested`")),
    request_body = ApprovalRequest,
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, body))]
pub async fn decide(
    State(state): State<AppState>,
    PathParams((agent_id, task_id, approval_id)): PathParams<(String, String, String)>,
    JsonBody(body): JsonBody<ApprovalRequest>,
) -> Accepted {
    let task = open_task(&state, &agent_id, &task_id).await?;
    let decision = ApprovalDecision {
        approval_id,
        request: body,
    };
    control_update!(state, task, contract::DecideApproval, decision)
}

/// Raises the budget limit; a run paused on its budget resumes once the limit is above its cost.
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/budget", tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    request_body = BudgetRequest,
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, body))]
pub async fn budget(
    State(state): State<AppState>,
    PathParams((agent_id, task_id)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<BudgetRequest>,
) -> Accepted {
    let task = open_task(&state, &agent_id, &task_id).await?;
    control_update!(state, task, contract::RaiseBudget, body)
}
