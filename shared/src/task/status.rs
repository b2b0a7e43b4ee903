//! A task's lifecycle status (also its `TaskStatus` search attribute).

use serde::{Deserialize, Serialize};

/// Lifecycle status of a task; also the `TaskStatus` search attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Created, waiting for `execute`.
    Created,
    /// The agent loop is running.
    Running,
    /// Paused by a person or by the budget; waits for resume (or a budget raise).
    Paused,
    /// A tool call waits for a human decision.
    WaitingApproval,
    /// A conversation between turns: waits for the next query or close.
    Waiting,
    /// Finished with a final answer.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled, or ended by the idle timeout.
    Cancelled,
}

impl TaskStatus {
    /// The value stored in the `TaskStatus` search attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::WaitingApproval => "waiting_approval",
            Self::Waiting => "waiting",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the task has ended.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}
