//! Tasks, in six vocabularies:
//!
//! - [`parameters`]: per-task overrides given at creation.
//! - [`status`]: the lifecycle status.
//! - [`input`]: the workflow's input (agent snapshot, run settings, what a run carries on).
//! - [`updates`]: the updates' arguments and answers, and typed refusals.
//! - [`queries`]: the queries' answers and the workflow's result.
//! - [`team`]: a team's task: its snapshot and its discussion's messages.

mod input;
mod parameters;
mod queries;
mod status;
mod team;
mod updates;

pub use input::{AgentSnapshot, Carried, RunSettings, TaskInput};
pub use parameters::{OnBudgetExceeded, TaskParameters};
pub use queries::{EventsPage, EventsRange, TaskResult, TaskState};
pub use status::TaskStatus;
pub use team::{ROUTER_SPEAKER, TeamMessage, TeamSnapshot, USER_SPEAKER, trim_messages};
pub use updates::{
    ApprovalDecision, ApprovalRequest, BudgetRequest, ControlAccepted, ControlRequest,
    ExecuteAccepted, ExecuteRequest, PendingApproval, Rejection,
};
