//! `TaskPath`: the `{agent_id}` and `{task_id}` of a task's route, checked once for every
//! handler — a task id that is not a UUID, an agent that is not configured and a task of
//! another tenant are 404s (no existence leak).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::PathParams;
use crate::state::AppState;
use crate::temporal::{self, DescribeError, TaskDescription};
use agentflow_shared::ids::{AgentId, TaskId, TenantId};
use agentflow_shared::task::TaskStatus;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Deserialize;

/// The task a route names, of an agent that exists, as the caller's tenant sees it.
#[derive(Debug, Clone)]
pub struct TaskPath {
    /// The agent.
    pub agent: AgentId,
    /// The task.
    pub task: TaskId,
    /// The caller's tenant: a task of another is not found.
    pub tenant: TenantId,
}

/// The path parameters by name (a route may have more, e.g. `{approval_id}`).
#[derive(Deserialize)]
struct RawTaskPath {
    agent_id: String,
    task_id: String,
}

impl FromRequestParts<AppState> for TaskPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let PathParams(raw) = PathParams::<RawTaskPath>::from_request_parts(parts, state).await?;
        let task = parse_task_id(&raw.task_id)?;
        check_agent(state, &raw.agent_id)?;
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Self {
            agent: AgentId(raw.agent_id),
            task,
            tenant: caller.tenant,
        })
    }
}

impl TaskPath {
    /// Whether a task of `tenant` (`None`: created before tenancy) is this caller's.
    pub fn sees(&self, state: &AppState, tenant: Option<&TenantId>) -> bool {
        tenant.unwrap_or(&state.config.auth.default_tenant) == &self.tenant
    }

    /// Describes the task's workflow; a task of another agent or tenant is not found.
    pub async fn describe(&self, state: &AppState) -> Result<TaskDescription, ApiError> {
        let task = self.task;
        let agent = &self.agent;
        let not_found =
            || ApiError::NotFound(format!("task `{task}` does not exist for agent `{agent}`"));
        let description = temporal::describe(
            &state.client,
            &state.handler_rpcs,
            task,
            state.config.api.rpc_timeout(),
        )
        .await
        .map_err(|error| match error {
            DescribeError::NotFound => not_found(),
            DescribeError::Rpc(status) => {
                ApiError::Unavailable(format!("Temporal did not answer: {}", status.message()))
            }
        })?;
        match &description.agent_id {
            Some(id) if id == agent && self.sees(state, description.tenant.as_ref()) => {
                Ok(description)
            }
            _ => Err(not_found()),
        }
    }

    /// Checks the task is still open: a closed one answers 409 (with `hint` after its status)
    /// without waiting for a worker.
    pub async fn open(&self, state: &AppState, hint: &str) -> Result<TaskDescription, ApiError> {
        let description = self.describe(state).await?;
        if !description.running {
            let status = description
                .task_status
                .map_or("finished", TaskStatus::as_str);
            return Err(ApiError::Conflict(format!(
                "task {} is already {status}{hint}",
                self.task
            )));
        }
        Ok(description)
    }
}

/// A task id from a path: a UUID, else the task does not exist.
pub fn parse_task_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("task `{raw}` does not exist (ids are UUIDs)")))
}

/// Checks the agent (or team) is configured.
pub fn check_agent(state: &AppState, agent: &str) -> Result<(), ApiError> {
    if state.config.agents.contains_key(agent) || state.config.teams.contains_key(agent) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "agent `{agent}` does not exist"
        )))
    }
}
