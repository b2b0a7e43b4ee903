//! `AgentTaskWorkflow`: one task, from creation to its terminal event.
//!
//! It waits for an `execute` update (or runs the query given at creation), then runs the agent
//! loop: step → LLM activity → approvals → tool activities (in parallel) → … until a final
//! answer, `max_steps`, the budget, cancellation or a failure. A conversation keeps going turn
//! after turn and continues as new between turns when a run's log grows long. Control updates
//! (pause, resume, cancel, close, approval decisions, budget raises) are validated, recorded in
//! state, and acted on at safe points between activities. Every step is an event in one dense
//! log kept in workflow state; the log is served by queries and returned as the workflow
//! result. Only workflow time is read here; all I/O is in activities (docs/CONTRACT.md,
//! Invariant 3).
//!
//! This file holds the workflow's surface: its state, its updates with their validators, and
//! its queries. Each concern owns its part of the state and its rules:
//! - [`task`]: what the task's input settles (max steps, conversation, approvals, mode).
//! - [`state`]: the status, the snapshot queries serve, and emitting an event.
//! - [`log`]: this run's part of the dense log, what went live on the bus, the running call.
//! - [`budget`]: cost, usage and the limit; raises, warnings, the pause on a spent budget.
//! - [`controls`]: pause, resume, cancel and close, as requested and as in effect.
//! - [`approvals`]: tool calls that wait for a person's decision.
//! - [`safe_points`]: where the loop acts on controls, between activities.
//! - [`conversation`]: the messages the model sees, kept across turns and trimmed to a bound.
//! - [`llm_step`]: one LLM call, retried by the workflow with earlier attempts' events.
//! - [`mcp_catalog`]: the MCP tools a task fixes when it starts (one activity).
//! - [`tool_step`]: one step's tool calls, in parallel, after their approvals.
//! - [`agent_loop`]: one turn of the agent: steps until an answer or another outcome.
//! - [`team_state`]: a team task's speaker, discussion and member costs.
//! - [`team`]: a team's turn: routing, then members one at a time (alone, a discussion, a
//!   sequence with checkpoints).
//! - [`turn`]: turn after turn, continue-as-new between them, the archived log.
//! - [`outcome`]: how a run ends: its terminal event and its result.

mod agent_loop;
mod approvals;
mod budget;
mod controls;
mod conversation;
mod llm_step;
mod log;
mod mcp_catalog;
mod outcome;
mod safe_points;
mod state;
mod task;
mod team;
mod team_state;
mod tool_step;
mod turn;

use crate::checkpoint::CallCheckpoint;
use agentflow_client::EventsQuery;
use agentflow_shared::event::Mode;
use agentflow_shared::ids::Seq;
use agentflow_shared::mcp::McpCatalog;
use agentflow_shared::task::{
    ApprovalDecision, BudgetRequest, ControlAccepted, ControlRequest, EventsPage, EventsRange,
    ExecuteAccepted, ExecuteRequest, Rejection, TaskInput, TaskResult, TaskState, TaskStatus,
};
use approvals::Approvals;
use budget::Budget;
use controls::Controls;
use conversation::Conversation;
use log::RunLog;
use team_state::TeamState;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{SyncWorkflowContext, WorkflowContext, WorkflowContextView, WorkflowResult};

/// The durable agent task.
#[workflow]
pub struct AgentTaskWorkflow {
    input: TaskInput,
    log: RunLog,
    status: TaskStatus,
    step: u32,
    turn: u32,
    budget: Budget,
    /// The query of the turn to run (or running).
    pending: Option<ExecuteRequest>,
    final_response: Option<String>,
    conversation: Conversation,
    controls: Controls,
    approvals: Approvals,
    /// The MCP tools the task may call, fixed when it starts.
    mcp: Option<McpCatalog>,
    /// A team task's speaker and discussion (empty for an agent's).
    team: TeamState,
}

/// What a validator answers when it refuses an update.
type Rejected = Box<dyn std::error::Error + Send + Sync>;

/// A refusal as `temporal workflow update` shows it, e.g. `conflict: task … is already paused`.
fn rejected(rejection: Rejection) -> Rejected {
    rejection.to_string().into()
}

impl AgentTaskWorkflow {
    /// The state of a new task, or of the next run of a long one (from what the last carried).
    fn from_input(mut input: TaskInput) -> Self {
        let pending = input.query.clone().map(|query| ExecuteRequest {
            query,
            enable_streaming: None,
        });
        let budget = input
            .parameters
            .budget_usd
            .unwrap_or(input.agent.agent.budget_usd);
        let Some(carried) = input.carried.take() else {
            return Self {
                log: RunLog::starting_at(Seq(1)),
                status: TaskStatus::Created,
                step: 0,
                turn: 0,
                budget: Budget::new(budget),
                pending,
                final_response: None,
                conversation: Conversation::default(),
                controls: Controls::default(),
                approvals: Approvals::default(),
                mcp: None,
                team: TeamState::default(),
                input,
            };
        };
        let carried = *carried;
        Self {
            log: RunLog::starting_at(carried.first_seq),
            status: TaskStatus::Waiting,
            step: carried.step,
            turn: carried.turn,
            budget: Budget::carried(
                carried.cost_usd,
                carried.usage,
                carried.budget_limit_usd,
                carried.budget_warned,
            ),
            pending,
            final_response: carried.final_response,
            conversation: Conversation::from_messages(carried.messages),
            controls: Controls::default(),
            approvals: Approvals::default(),
            mcp: carried.mcp_catalog,
            team: TeamState::carried(
                carried.team_messages,
                carried.last_speaker,
                carried.member_costs,
            ),
            input,
        }
    }
}

#[workflow_methods]
impl AgentTaskWorkflow {
    /// Builds the initial state from the task input (and what a previous run carried over).
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: TaskInput) -> Self {
        Self::from_input(input)
    }

    /// Waits for a query (or the idle timeout), runs the agent loop — turn after turn in a
    /// conversation — and returns this run's log.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<TaskResult> {
        let outcome = turn::run_turns(ctx).await?;
        outcome::finish(ctx, outcome);
        Ok(outcome::result(ctx).await)
    }

    /// Checks an `execute` before it is accepted into history.
    #[update_validator(execute)]
    fn validate_execute(
        &self,
        _ctx: &WorkflowContextView,
        request: &ExecuteRequest,
    ) -> Result<(), Rejected> {
        self.check_execute(request).map_err(Rejected::from)
    }

    /// Starts the agent run (a conversation's next turn) with this query.
    #[update]
    pub fn execute(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: ExecuteRequest,
    ) -> ExecuteAccepted {
        let mode: Mode = self.mode(&request);
        self.pending = Some(request);
        ExecuteAccepted {
            task_id: self.input.task_id,
            mode,
        }
    }

    /// Checks a `pause`: only a running (or approval-waiting), unpaused task can pause.
    #[update_validator(pause)]
    fn validate_pause(
        &self,
        _ctx: &WorkflowContextView,
        _request: &ControlRequest,
    ) -> Result<(), Rejected> {
        self.check_pause().map_err(rejected)
    }

    /// Pauses the run at its next safe point (between activities).
    #[update]
    pub fn pause(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: ControlRequest,
    ) -> ControlAccepted {
        self.controls
            .request_pause(controls::reason(request, "paused"));
        self.state()
    }

    /// Checks a `resume`: only a task a person paused (or asked to pause) can resume.
    #[update_validator(resume)]
    fn validate_resume(
        &self,
        _ctx: &WorkflowContextView,
        _request: &ControlRequest,
    ) -> Result<(), Rejected> {
        self.check_resume().map_err(rejected)
    }

    /// Resumes a paused run (or withdraws a pause that has not taken effect yet).
    #[update]
    pub fn resume(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: ControlRequest,
    ) -> ControlAccepted {
        self.controls
            .request_resume(controls::reason(request, "resumed"));
        self.state()
    }

    /// Checks a `cancel`: a finished task cannot be cancelled.
    #[update_validator(cancel)]
    fn validate_cancel(
        &self,
        _ctx: &WorkflowContextView,
        _request: &ControlRequest,
    ) -> Result<(), Rejected> {
        self.check_open().map_err(rejected)
    }

    /// Cancels the task: a running LLM call is cancelled through its heartbeat, and
    /// `WorkflowCancelled` ends the log. Asking again while it ends changes nothing.
    #[update]
    pub fn cancel(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: ControlRequest,
    ) -> ControlAccepted {
        self.controls
            .request_cancel(controls::reason(request, "cancelled"));
        self.state()
    }

    /// Checks a `close`: only a conversation between turns can be closed.
    #[update_validator(close)]
    fn validate_close(
        &self,
        _ctx: &WorkflowContextView,
        _request: &ControlRequest,
    ) -> Result<(), Rejected> {
        self.check_close().map_err(rejected)
    }

    /// Ends a conversation with `WorkflowCompleted`.
    #[update]
    pub fn close(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: ControlRequest,
    ) -> ControlAccepted {
        self.controls
            .request_close(controls::reason(request, "closed"));
        self.state()
    }

    /// Checks a decision: the approval must exist, and a second decision must repeat the first.
    #[update_validator(decide_approval)]
    fn validate_decide_approval(
        &self,
        _ctx: &WorkflowContextView,
        decision: &ApprovalDecision,
    ) -> Result<(), Rejected> {
        self.check_open().map_err(rejected)?;
        self.approvals
            .check(self.input.task_id, decision)
            .map_err(rejected)?;
        self.check_edited_arguments(decision).map_err(rejected)
    }

    /// Records a decision on a tool call (the same decision again is a no-op).
    #[update]
    pub fn decide_approval(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        decision: ApprovalDecision,
    ) -> ControlAccepted {
        self.approvals.decide(decision);
        self.state()
    }

    /// Checks a budget raise: a positive amount above the current limit.
    #[update_validator(raise_budget)]
    fn validate_raise_budget(
        &self,
        _ctx: &WorkflowContextView,
        request: &BudgetRequest,
    ) -> Result<(), Rejected> {
        self.check_open().map_err(rejected)?;
        self.budget.check_raise(request).map_err(rejected)
    }

    /// Raises the budget limit (applied at the next safe point, at once when paused on it).
    #[update]
    pub fn raise_budget(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: BudgetRequest,
    ) -> ControlAccepted {
        self.budget.request_raise(request);
        self.state()
    }

    /// Checks a checkpoint: it comes from the call attempt the workflow waits for, and its
    /// events continue the log (those the log holds already must be the same).
    #[update_validator(checkpoint_call)]
    fn validate_checkpoint_call(
        &self,
        _ctx: &WorkflowContextView,
        checkpoint: &CallCheckpoint,
    ) -> Result<(), Rejected> {
        self.log.check_checkpoint(checkpoint).map_err(rejected)
    }

    /// Appends a running call's events to the log (they are durable from now on); returns
    /// the last seq the log holds.
    #[update]
    pub fn checkpoint_call(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        checkpoint: CallCheckpoint,
    ) -> Seq {
        self.log.take_checkpoint(checkpoint)
    }

    /// A page of the event log: events with `seq > after`, at most `limit` (this run's part).
    #[query]
    pub fn get_events(&self, _ctx: &WorkflowContextView, query: EventsQuery) -> EventsPage {
        self.log.page(query.0, EventsRange::MAX_PAGE_BYTES)
    }

    /// Status, step, cost, budget, pending approvals and the last seq.
    #[query]
    pub fn get_current_state(&self, _ctx: &WorkflowContextView) -> TaskState {
        self.full_state()
    }

    /// The final answer, once there is one.
    #[query]
    pub fn get_final_response(&self, _ctx: &WorkflowContextView) -> Option<String> {
        self.final_response.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::AgentTaskWorkflow;
    use agentflow_client::tasks::{NewTask, task_input};
    use agentflow_shared::config::AgentflowConfig;
    use agentflow_shared::task::TaskInput;

    /// The shipped config's `assistant` task input, changed by `change`.
    pub(super) fn with(change: impl FnOnce(&mut TaskInput)) -> TaskInput {
        let config = AgentflowConfig::default_config();
        let mut input =
            task_input(&config, &"assistant".into(), NewTask::default()).expect("a demo agent");
        change(&mut input);
        input
    }

    /// The workflow's state for `input`, as its first activation builds it.
    pub(super) fn task(input: TaskInput) -> AgentTaskWorkflow {
        AgentTaskWorkflow::from_input(input)
    }
}

#[cfg(test)]
mod contract {
    use super::AgentTaskWorkflow;
    use crate::activities::AgentActivities;
    use agentflow_client::workflow as contract;
    use temporalio_common::{QueryDefinition, UpdateDefinition, WorkflowDefinition};

    #[test]
    fn the_workflow_implements_the_contract_clients_use() {
        assert_eq!(AgentTaskWorkflow::run.name(), contract::AgentTask.name());
        let updates = [
            (AgentTaskWorkflow::execute.name(), contract::Execute.name()),
            (AgentTaskWorkflow::pause.name(), contract::Pause.name()),
            (AgentTaskWorkflow::resume.name(), contract::Resume.name()),
            (AgentTaskWorkflow::cancel.name(), contract::Cancel.name()),
            (AgentTaskWorkflow::close.name(), contract::Close.name()),
            (
                AgentTaskWorkflow::decide_approval.name(),
                contract::DecideApproval.name(),
            ),
            (
                AgentTaskWorkflow::raise_budget.name(),
                contract::RaiseBudget.name(),
            ),
        ];
        let queries = [
            (
                AgentTaskWorkflow::get_events.name(),
                contract::GetEvents.name(),
            ),
            (
                AgentTaskWorkflow::get_current_state.name(),
                contract::GetCurrentState.name(),
            ),
            (
                AgentTaskWorkflow::get_final_response.name(),
                contract::GetFinalResponse.name(),
            ),
        ];
        for (implemented, declared) in updates.into_iter().chain(queries) {
            assert_eq!(implemented, declared);
        }
        assert_eq!(
            AgentActivities::llm_call.name(),
            contract::activity::LLM_CALL
        );
        assert_eq!(
            AgentActivities::archive_log.name(),
            contract::activity::ARCHIVE_LOG
        );
    }
}
