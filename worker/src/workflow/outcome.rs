//! How a run ends: the outcome of its last turn, the terminal event it becomes, and the
//! result that holds the run's log (or says it is archived in history).

use super::AgentTaskWorkflow;
use super::state::{emit, set_status};
use super::turn::archive_log;
use agentflow_shared::event::{Completed, ErrorInfo, EventKind, Failed, FailureKind, Reason};
use agentflow_shared::task::{TaskResult, TaskStatus};
use temporalio_sdk::WorkflowContext;

/// How a run of the agent loop ended.
pub(super) enum Outcome {
    /// A final answer.
    Completed(String),
    /// A failure, and whether running the task again may succeed.
    Failed(ErrorInfo, bool),
    /// Cancelled, by a person or by Temporal.
    Cancelled(Reason),
    /// A conversation was closed (or idled out) after at least one turn.
    Closed,
}

/// A failure of `kind` that another run would not fix.
pub(super) fn failure(kind: FailureKind, message: String) -> Outcome {
    Outcome::Failed(ErrorInfo::new(kind, message), false)
}

/// Ends a turn whose log would outgrow the run: `WorkflowFailed {kind: "log_limit"}`.
pub(super) fn log_limit(ctx: &WorkflowContext<AgentTaskWorkflow>, what: &str) -> Outcome {
    let (bytes, limit) = ctx.state(|s| {
        (
            s.log.encoded_bytes(),
            s.input.settings.limits.max_run_log_bytes,
        )
    });
    failure(
        FailureKind::LogLimit,
        format!(
            "the log ({bytes} bytes) has no room for {what} within \
             worker.limits.max_run_log_bytes ({limit})"
        ),
    )
}

/// Appends the terminal event of `outcome` and sets the final status.
pub(super) fn finish(ctx: &WorkflowContext<AgentTaskWorkflow>, outcome: Outcome) {
    let completed = |final_response: String| {
        ctx.state_mut(|s| {
            s.final_response = Some(final_response.clone());
            EventKind::Completed(Completed {
                final_response,
                steps: s.step,
                total_cost_usd: s.budget.cost_usd(),
                usage: s.budget.usage(),
            })
        })
    };
    let (status, kind) = match outcome {
        Outcome::Completed(final_response) => (TaskStatus::Completed, completed(final_response)),
        Outcome::Closed => {
            let last = ctx.state(|s| s.final_response.clone().unwrap_or_default());
            (TaskStatus::Completed, completed(last))
        }
        Outcome::Failed(error, retryable) => (
            TaskStatus::Failed,
            EventKind::Failed(Failed { error, retryable }),
        ),
        Outcome::Cancelled(reason) => (TaskStatus::Cancelled, EventKind::Cancelled(reason)),
    };
    emit(ctx, kind);
    set_status(ctx, status);
}

/// The JSON size of `value`.
pub(super) fn json_bytes(value: &impl serde::Serialize) -> usize {
    serde_json::to_vec(value).map_or(0, |bytes| bytes.len())
}

/// The workflow result: the final state and this run's log when it fits in the payload; a
/// larger log is archived in history first.
pub(super) async fn result(ctx: &WorkflowContext<AgentTaskWorkflow>) -> TaskResult {
    let result = ctx.state(|s| {
        let state = s.full_state();
        let room = s.payload_room(json_bytes(&state));
        let events_included = s.log.encoded_bytes() <= room;
        TaskResult {
            state,
            events: if events_included {
                s.log.events().events().to_vec()
            } else {
                Vec::new()
            },
            events_included,
        }
    });
    if !result.events_included {
        archive_log(ctx).await;
    }
    result
}

impl AgentTaskWorkflow {
    /// The payload bytes left for the log beside `used` bytes of other content, all counted
    /// (Temporal's payload limit, less room for the payload's envelope).
    pub(super) fn payload_room(&self, used: usize) -> usize {
        const ENVELOPE_BYTES: usize = 4 * 1024;
        self.input
            .settings
            .limits
            .payload_limit_bytes
            .saturating_sub(ENVELOPE_BYTES + used)
    }
}
