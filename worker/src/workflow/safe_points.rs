//! Safe points: the places between activities where the loop acts on controls — a budget
//! raise applied, a cancellation honoured, a pause held until resumed.

use super::AgentTaskWorkflow;
use super::budget::apply_raise;
use super::outcome::Outcome;
use super::state::{emit, set_status};
use agentflow_shared::event::{EventKind, Reason};
use agentflow_shared::task::TaskStatus;
use temporalio_sdk::{WorkflowCancellationToken, WorkflowContext};

impl AgentTaskWorkflow {
    /// Whether something arrived that a waiting loop must look at: a cancellation, a budget
    /// raise, or an approval decision not yet announced.
    pub(super) fn has_news(&self) -> bool {
        self.controls.cancel().is_some() || self.budget.has_raise() || self.approvals.has_news()
    }

    /// Whether no control waits to be acted on (cancel, close, pause, resume, budget raise).
    pub(super) fn controls_idle(&self) -> bool {
        self.controls.idle() && !self.budget.has_raise()
    }
}

/// The cancellation asked for by the `cancel` update or by Temporal (`temporal workflow cancel`).
pub(super) fn cancellation(ctx: &WorkflowContext<AgentTaskWorkflow>) -> Option<Reason> {
    ctx.state(|s| s.controls.cancel().cloned()).or_else(|| {
        let token = ctx.cancellation_token();
        token.is_cancelled().then(|| {
            Reason::new(
                token
                    .reason()
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| "the workflow was cancelled".into()),
            )
        })
    })
}

/// Cancels `token` once the task is asked to cancel; never resolves otherwise.
pub(super) async fn cancel_on_request(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    token: &WorkflowCancellationToken,
) {
    let _ = ctx
        .wait_condition(|s: &AgentTaskWorkflow| s.controls.cancel().is_some())
        .await;
    token.cancel();
    std::future::pending::<()>().await
}

/// A safe point between activities: applies a budget raise, honours a cancellation, and
/// holds a requested pause until it is resumed.
pub(super) async fn safe_point(ctx: &WorkflowContext<AgentTaskWorkflow>) -> Result<(), Outcome> {
    apply_raise(ctx);
    if let Some(reason) = cancellation(ctx) {
        return Err(Outcome::Cancelled(reason));
    }
    let Some(reason) = ctx.state_mut(|s| s.controls.take_pause()) else {
        return Ok(());
    };
    paused(ctx, reason);
    loop {
        let woke = ctx
            .wait_condition(|s: &AgentTaskWorkflow| s.controls.has_resume() || s.has_news())
            .await;
        apply_raise(ctx);
        if let Some(reason) = cancellation(ctx) {
            return Err(Outcome::Cancelled(reason));
        }
        if woke.is_err() {
            continue;
        }
        if let Some(resume) = ctx.state_mut(|s| s.controls.take_resume()) {
            resumed(ctx, resume);
            return Ok(());
        }
    }
}

/// Records that the task paused, in the log and in its status.
pub(super) fn paused(ctx: &WorkflowContext<AgentTaskWorkflow>, reason: Reason) {
    emit(ctx, EventKind::Paused(reason));
    set_status(ctx, TaskStatus::Paused);
}

/// Records that the task resumed, in the log and in its status.
pub(super) fn resumed(ctx: &WorkflowContext<AgentTaskWorkflow>, reason: Reason) {
    emit(ctx, EventKind::Resumed(reason));
    set_status(ctx, TaskStatus::Running);
}
