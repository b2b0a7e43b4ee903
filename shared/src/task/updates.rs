//! The workflow's updates: their arguments, their answers, and why one is refused.

use super::TaskState;
use crate::event::{Decision, Mode};
use crate::ids::TaskId;
use serde::{Deserialize, Serialize};

/// Argument of the `execute` update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The query for the agent.
    pub query: String,
    /// Stream the LLM output (overrides task parameters and agent config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_streaming: Option<bool>,
}

/// Argument of the `pause`, `resume`, `cancel` and `close` updates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ControlRequest {
    /// Why (shown in the event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who asks (shown in the event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// Argument of the `decide_approval` update (the body of `POST …/approvals/{approval_id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// Approve or reject.
    pub decision: Decision,
    /// A comment (given to the model on reject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Edited arguments to run the tool with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Value>,
    /// Who decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// An approval decision addressed to one approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalDecision {
    /// The approval decided on.
    pub approval_id: String,
    /// The decision.
    #[serde(flatten)]
    pub request: ApprovalRequest,
}

/// Argument of the `raise_budget` update (the body of `POST …/budget`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetRequest {
    /// The new budget limit in USD.
    pub budget_usd: f64,
    /// Who raises it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// How the workflow answers a control update: the task's state after it.
pub type ControlAccepted = TaskState;

/// Why a control update was refused; its `Display` is what the update's failure carries, so
/// the api can map it back to a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The task's state does not allow it (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// It names something the task does not have (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Its fields are invalid (422).
    #[error("invalid: {0}")]
    Invalid(String),
}

impl Rejection {
    /// Reads a rejection back from an update failure's message (`Conflict` when unprefixed).
    pub fn parse(message: &str) -> Self {
        if let Some(rest) = message.strip_prefix("not found: ") {
            Self::NotFound(rest.to_owned())
        } else if let Some(rest) = message.strip_prefix("invalid: ") {
            Self::Invalid(rest.to_owned())
        } else {
            Self::Conflict(
                message
                    .strip_prefix("conflict: ")
                    .unwrap_or(message)
                    .to_owned(),
            )
        }
    }
}

/// A tool call waiting for a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingApproval {
    /// Id to decide on.
    pub approval_id: String,
    /// The tool.
    pub tool_name: String,
    /// Id of the call.
    pub tool_call_id: String,
    /// The model's arguments.
    pub arguments: serde_json::Value,
}

/// Answer of the `execute` update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecuteAccepted {
    /// The task.
    pub task_id: TaskId,
    /// Batch or streaming, as resolved.
    pub mode: Mode,
}
