//! Controls of a running task: pause, resume, cancel (also `DELETE`), close, approval
//! decisions and budget raises. Each is a validated Temporal update, so the caller learns at
//! once whether it was accepted (`202` with the task's state) or not (`409`, `404`, `422`).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, OptionalJsonBody, PathParams};
use crate::state::AppState;
use crate::task_path::TaskPath;
use crate::update;
use agentflow_client::tasks::allowed_request;
use agentflow_client::workflow::{self as contract, AgentTask};
use agentflow_shared::task::{
    ApprovalDecision, ApprovalRequest, BudgetRequest, ControlRequest, TaskState,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use temporalio_common::UpdateDefinition;

/// What a control answers.
type Accepted = Result<(StatusCode, Json<TaskState>), ApiError>;

/// Sends a control to an open task (a closed one answers 409 without waiting for a worker).
async fn control<U>(state: &AppState, path: &TaskPath, update: U, input: U::Input) -> Accepted
where
    U: UpdateDefinition<Workflow = AgentTask, Output = TaskState>,
    U::Input: Send,
{
    path.open(state, "").await?;
    let accepted = update::call(state, path.task, update, input).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// Pauses the run at its next safe point (between activities).
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/pause", tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    request_body(content = Option<ControlRequest>, description = "Optional reason and requester"),
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, caller, body))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    path: TaskPath,
    OptionalJsonBody(mut body): OptionalJsonBody<ControlRequest>,
) -> Accepted {
    caller.stamp("requested_by", &mut body.requested_by)?;
    control(&state, &path, contract::Pause, body).await
}

/// Resumes a paused run.
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/resume", tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    request_body(content = Option<ControlRequest>, description = "Optional reason and requester"),
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, caller, body))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    path: TaskPath,
    OptionalJsonBody(mut body): OptionalJsonBody<ControlRequest>,
) -> Accepted {
    caller.stamp("requested_by", &mut body.requested_by)?;
    control(&state, &path, contract::Resume, body).await
}

/// Cancels the task: a running LLM call stops, `WorkflowCancelled` ends the log.
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/cancel", tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    request_body(content = Option<ControlRequest>, description = "Optional reason and requester"),
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, caller, body))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    path: TaskPath,
    OptionalJsonBody(mut body): OptionalJsonBody<ControlRequest>,
) -> Accepted {
    caller.stamp("requested_by", &mut body.requested_by)?;
    let accepted = control(&state, &path, contract::Cancel, body).await?;
    hint_heartbeat(&state, &path).await;
    Ok(accepted)
}

/// Tells the task's running LLM call (on the bus) to heartbeat now, so the cancel just
/// accepted stops its provider stream without waiting for the next liveness heartbeat.
async fn hint_heartbeat(state: &AppState, path: &TaskPath) {
    if let Some(bus) = state.relays.bus() {
        bus.hint_heartbeat(&path.tenant, path.task).await;
    }
}

/// Cancels the task (`DELETE` form of `POST …/cancel`; the log stays readable).
#[utoipa::path(delete, path = "/api/v1/agents/{agent_id}/tasks/{task_id}", tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, caller))]
pub async fn delete(State(state): State<AppState>, caller: Caller, path: TaskPath) -> Accepted {
    let request = ControlRequest {
        reason: None,
        requested_by: caller.identity,
    };
    let accepted = control(&state, &path, contract::Cancel, request).await?;
    hint_heartbeat(&state, &path).await;
    Ok(accepted)
}

/// Ends a conversation between turns with `WorkflowCompleted`.
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/close", tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    request_body(content = Option<ControlRequest>, description = "Optional reason and requester"),
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, caller, body))]
pub async fn close(
    State(state): State<AppState>,
    caller: Caller,
    path: TaskPath,
    OptionalJsonBody(mut body): OptionalJsonBody<ControlRequest>,
) -> Accepted {
    caller.stamp("requested_by", &mut body.requested_by)?;
    control(&state, &path, contract::Close, body).await
}

/// The approval a decision is for.
#[derive(Debug, serde::Deserialize)]
pub struct ApprovalPath {
    /// From `WorkflowApprovalRequested`.
    approval_id: String,
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
#[tracing::instrument(skip(state, caller, body))]
pub async fn decide(
    State(state): State<AppState>,
    path: TaskPath,
    PathParams(ApprovalPath { approval_id }): PathParams<ApprovalPath>,
    caller: Caller,
    JsonBody(mut body): JsonBody<ApprovalRequest>,
) -> Accepted {
    caller.stamp("requested_by", &mut body.requested_by)?;
    let decision = ApprovalDecision {
        approval_id,
        request: body,
    };
    control(&state, &path, contract::DecideApproval, decision).await
}

/// Raises the budget limit; a run paused on its budget resumes once the limit is above its cost.
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/budget", tag = "control",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    request_body = BudgetRequest,
    responses((status = 202, body = TaskState), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, caller, body))]
pub async fn budget(
    State(state): State<AppState>,
    caller: Caller,
    path: TaskPath,
    JsonBody(mut body): JsonBody<BudgetRequest>,
) -> Accepted {
    caller.stamp("requested_by", &mut body.requested_by)?;
    let limit = allowed_request(&state.config, &path.agent)
        .map(|allowed| allowed.max_budget_usd)
        .ok_or_else(|| ApiError::NotFound(format!("agent `{}` does not exist", path.agent)))?;
    if body.budget_usd > limit {
        return Err(ApiError::Unprocessable(format!(
            "budget_usd: {} is above the limit for `{}` (limits.agents.{}.max_budget_usd: {limit})",
            body.budget_usd, path.agent, path.agent
        )));
    }
    control(&state, &path, contract::RaiseBudget, body).await
}
