//! The task's status, the snapshot its queries and control updates answer with, and emitting
//! an event at workflow time.

use super::AgentTaskWorkflow;
use agentflow_client::search::TASK_STATUS;
use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::task::{TaskState, TaskStatus};
use std::time::{SystemTime, UNIX_EPOCH};
use temporalio_sdk::WorkflowContext;

impl AgentTaskWorkflow {
    /// The snapshot `get_current_state` and the result hold: [`Self::state`] with a team's
    /// discussion.
    pub(super) fn full_state(&self) -> TaskState {
        TaskState {
            team_messages: self.team.messages().to_vec(),
            ..self.state()
        }
    }

    /// The snapshot every control update answers with (without a team's discussion, which
    /// would weigh on every update's outcome in history).
    pub(super) fn state(&self) -> TaskState {
        let limit = self.budget.limit_usd();
        TaskState {
            task_id: self.input.task_id,
            agent_id: self.input.agent.agent_id.clone(),
            status: self.status,
            step: self.step,
            cost_usd: self.budget.cost_usd(),
            budget_limit_usd: limit,
            budget_remaining_usd: (limit - self.budget.cost_usd()).max(0.0),
            usage: self.budget.usage(),
            paused: self.controls.is_paused() || self.budget.is_paused(),
            last_seq: self.log.last_seq(),
            final_response: self.final_response.clone(),
            turn: self.turn,
            pending_approvals: self.approvals.pending(),
            first_seq: self.log.first_seq(),
            team_messages: Vec::new(),
        }
    }

    /// Appends an event the workflow itself makes, at `now`.
    fn emit_at(&mut self, now: SystemTime, kind: EventKind) {
        let event = Event {
            seq: self.log.next_seq(),
            kind,
            task_id: self.input.task_id,
            agent_id: self.input.agent.agent_id.clone(),
            timestamp: now.into(),
            step: self.step,
            speaker: self.speaker_name(),
        };
        self.log.append(event);
    }
}

/// Workflow time (deterministic on replay).
pub(super) fn now(ctx: &WorkflowContext<AgentTaskWorkflow>) -> SystemTime {
    ctx.workflow_time().unwrap_or(UNIX_EPOCH)
}

/// Appends an event of `kind` to the log.
pub(super) fn emit(ctx: &WorkflowContext<AgentTaskWorkflow>, kind: EventKind) {
    let at = now(ctx);
    ctx.state_mut(|s| s.emit_at(at, kind));
}

/// Sets the status, in state and in the `TaskStatus` search attribute.
pub(super) fn set_status(ctx: &WorkflowContext<AgentTaskWorkflow>, status: TaskStatus) {
    ctx.state_mut(|s| s.status = status);
    ctx.upsert_search_attributes([TASK_STATUS.value_set(status.as_str().to_owned())]);
}
