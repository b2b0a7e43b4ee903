//! `AgentTaskWorkflow` as its clients see it: the workflow type, every update and query with
//! its input and output types, and the names of the activities whose history the api reads.
//!
//! These are the SDK's definition traits implemented by hand, so a client links none of the
//! worker; the worker's `#[workflow_methods]` generate the same names, and its tests pin them.

use crate::events_query::EventsQuery;
use agentflow_shared::task::{
    ApprovalDecision, BudgetRequest, ControlAccepted, ControlRequest, EventsPage, ExecuteAccepted,
    ExecuteRequest, TaskInput, TaskResult, TaskState,
};
use temporalio_common::{
    HasWorkflowDefinition, QueryDefinition, UpdateDefinition, WorkflowDefinition,
};

/// The workflow type name (`temporal workflow list --query 'WorkflowType="AgentTaskWorkflow"'`).
pub const WORKFLOW_TYPE: &str = "AgentTaskWorkflow";

/// The names of the worker's activities that the api reads from history.
pub mod activity {
    /// The LLM call: its heartbeat details are the call's progress.
    pub const LLM_CALL: &str = "AgentActivities::llm_call";
    /// A chunk of a run's log recorded in history (its input is the chunk).
    pub const ARCHIVE_LOG: &str = "AgentActivities::archive_log";
}

/// The agent task workflow: started with a [`TaskInput`], ends with a [`TaskResult`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentTask;

impl WorkflowDefinition for AgentTask {
    type Input = TaskInput;
    type Output = TaskResult;

    fn name(&self) -> &str {
        WORKFLOW_TYPE
    }
}

impl HasWorkflowDefinition for AgentTask {
    type Run = Self;
}

/// Declares a marker type per update or query (`$definition`): name, input, output.
macro_rules! handlers {
    ($definition:ident: $( $(#[$doc:meta])* $marker:ident = $name:literal ($input:ty) -> $output:ty ;)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $marker;

        impl $definition for $marker {
            type Workflow = AgentTask;
            type Input = $input;
            type Output = $output;

            fn name(&self) -> &str {
                $name
            }
        }
    )+};
}

handlers! {
    UpdateDefinition:
    /// Runs a query (a conversation's next turn).
    Execute = "execute"(ExecuteRequest) -> ExecuteAccepted;
    /// Pauses the run at its next safe point.
    Pause = "pause"(ControlRequest) -> ControlAccepted;
    /// Resumes a paused run.
    Resume = "resume"(ControlRequest) -> ControlAccepted;
    /// Cancels the task.
    Cancel = "cancel"(ControlRequest) -> ControlAccepted;
    /// Ends a conversation between turns.
    Close = "close"(ControlRequest) -> ControlAccepted;
    /// Decides on a tool call waiting for approval.
    DecideApproval = "decide_approval"(ApprovalDecision) -> ControlAccepted;
    /// Raises the budget limit.
    RaiseBudget = "raise_budget"(BudgetRequest) -> ControlAccepted;
}

handlers! {
    QueryDefinition:
    /// A page of the run's log.
    GetEvents = "get_events"(EventsQuery) -> EventsPage;
    /// The task's state.
    GetCurrentState = "get_current_state"(()) -> TaskState;
    /// The final answer, once there is one.
    GetFinalResponse = "get_final_response"(()) -> Option<String>;
}
