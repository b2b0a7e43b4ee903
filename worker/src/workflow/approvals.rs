//! Tool calls that wait for a person's decision: requested, decided (once; the same decision
//! again is a no-op), announced in the log, then applied to the calls.

use super::AgentTaskWorkflow;
use super::budget::apply_raise;
use super::outcome::{Outcome, failure};
use super::safe_points::cancellation;
use super::state::{emit, set_status};
use agentflow_shared::event::{
    ApprovalReceived, ApprovalRequested, Decision, EventKind, FailureKind,
};
use agentflow_shared::ids::TaskId;
use agentflow_shared::llm::ToolCall;
use agentflow_shared::task::{
    ApprovalDecision, ApprovalRequest, PendingApproval, Rejection, TaskStatus,
};
use temporalio_sdk::WorkflowContext;

/// Patch: a call needs approval when its tool, the agent or the task says so (before it, the
/// task's list replaced the agent's).
const APPROVAL_UNION: &str = "approval-union";

/// A tool call that needs a decision, and the decision once made.
#[derive(Debug)]
struct Approval {
    pending: PendingApproval,
    decision: Option<ApprovalRequest>,
    announced: bool,
}

/// Every approval of the run, in the order they were requested.
#[derive(Debug, Default)]
pub(super) struct Approvals(Vec<Approval>);

impl Approvals {
    fn find(&self, id: &str) -> Option<&Approval> {
        self.0.iter().find(|a| a.pending.approval_id == id)
    }

    /// The approvals still waiting for a decision.
    pub(super) fn pending(&self) -> Vec<PendingApproval> {
        self.0
            .iter()
            .filter(|a| a.decision.is_none())
            .map(|a| a.pending.clone())
            .collect()
    }

    /// Checks a decision: the approval exists, edited arguments are an object, and a second
    /// decision repeats the first.
    pub(super) fn check(&self, task: TaskId, decision: &ApprovalDecision) -> Result<(), Rejection> {
        let id = &decision.approval_id;
        let Some(approval) = self.find(id) else {
            return Err(Rejection::NotFound(format!(
                "task {task} has no approval `{id}`"
            )));
        };
        if let Some(arguments) = &decision.request.arguments
            && !arguments.is_object()
        {
            return Err(Rejection::Invalid("arguments must be a JSON object".into()));
        }
        match &approval.decision {
            Some(made) if made != &decision.request => Err(Rejection::Conflict(format!(
                "approval `{id}` was already decided ({})",
                match made.decision {
                    Decision::Approve => "approved",
                    Decision::Reject => "rejected",
                }
            ))),
            _ => Ok(()),
        }
    }

    /// The tool whose call approval `id` is about.
    pub(super) fn tool_of(&self, id: &str) -> Option<&str> {
        self.find(id).map(|a| a.pending.tool_name.as_str())
    }

    /// Records a decision (the first one stands).
    pub(super) fn decide(&mut self, decision: ApprovalDecision) {
        if let Some(approval) = self
            .0
            .iter_mut()
            .find(|a| a.pending.approval_id == decision.approval_id)
            && approval.decision.is_none()
        {
            approval.decision = Some(decision.request);
        }
    }

    /// Asks for a decision.
    fn request(&mut self, pending: PendingApproval) {
        self.0.push(Approval {
            pending,
            decision: None,
            announced: false,
        });
    }

    /// Whether a decision was made and not announced yet.
    pub(super) fn has_news(&self) -> bool {
        self.0.iter().any(|a| a.decision.is_some() && !a.announced)
    }

    /// The decisions made since the last call, as `WorkflowApprovalReceived` data.
    fn announce(&mut self) -> Vec<ApprovalReceived> {
        self.0
            .iter_mut()
            .filter(|a| !a.announced)
            .filter_map(|a| {
                let request = a.decision.clone()?;
                a.announced = true;
                Some(ApprovalReceived {
                    approval_id: a.pending.approval_id.clone(),
                    decision: request.decision,
                    comment: request.comment,
                    edited: request.arguments.is_some(),
                    arguments: request
                        .arguments
                        .unwrap_or_else(|| a.pending.arguments.clone()),
                    requested_by: request.requested_by,
                })
            })
            .collect()
    }

    /// The announced decision on approval `id`.
    fn decided(&self, id: &str) -> Option<ApprovalRequest> {
        self.find(id)
            .and_then(|a| a.announced.then(|| a.decision.clone()).flatten())
    }
}

/// Emits `WorkflowApprovalReceived` for decisions made since the last call.
fn announce_decisions(ctx: &WorkflowContext<AgentTaskWorkflow>) {
    for received in ctx.state_mut(|s| s.approvals.announce()) {
        emit(ctx, EventKind::ApprovalReceived(received));
    }
}

/// Asks for a decision on every call that needs one and waits until all are made; returns
/// each call's decision (`None`: no approval needed).
pub(super) async fn decisions(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    step: u32,
    calls: &[ToolCall],
) -> Result<Vec<Option<ApprovalRequest>>, Outcome> {
    let union = ctx.patched(APPROVAL_UNION);
    let ids: Vec<Option<String>> = calls
        .iter()
        .enumerate()
        .map(|(index, call)| {
            ctx.state(|s| s.requires_approval(&call.name, union))
                .then(|| format!("s{step}c{}", index + 1))
        })
        .collect();
    if ids.iter().all(Option::is_none) {
        return Ok(vec![None; calls.len()]);
    }
    for (call, id) in calls.iter().zip(&ids) {
        let Some(approval_id) = id else { continue };
        let pending = PendingApproval {
            approval_id: approval_id.clone(),
            tool_name: call.name.clone(),
            tool_call_id: call.id.clone(),
            arguments: call.arguments.clone(),
        };
        ask(ctx, pending);
    }
    let waiting: Vec<String> = ids.iter().flatten().cloned().collect();
    wait_for(ctx, &waiting).await?;
    Ok(ctx.state(|s| {
        ids.iter()
            .map(|id| id.as_deref().and_then(|id| s.approvals.decided(id)))
            .collect()
    }))
}

/// Records that `pending` waits for a decision, and says so in the log.
fn ask(ctx: &WorkflowContext<AgentTaskWorkflow>, pending: PendingApproval) {
    ctx.state_mut(|s| s.approvals.request(pending.clone()));
    emit(
        ctx,
        EventKind::ApprovalRequested(ApprovalRequested {
            approval_id: pending.approval_id,
            tool_name: pending.tool_name,
            tool_call_id: pending.tool_call_id,
            arguments: pending.arguments,
        }),
    );
}

/// Waits, as `waiting_approval`, until every approval in `ids` is decided and announced;
/// applies budget raises meanwhile and ends on a cancellation.
async fn wait_for(ctx: &WorkflowContext<AgentTaskWorkflow>, ids: &[String]) -> Result<(), Outcome> {
    set_status(ctx, TaskStatus::WaitingApproval);
    loop {
        apply_raise(ctx);
        announce_decisions(ctx);
        if let Some(reason) = cancellation(ctx) {
            return Err(Outcome::Cancelled(reason));
        }
        if ctx.state(|s| ids.iter().all(|id| s.approvals.decided(id).is_some())) {
            break;
        }
        let _ = ctx
            .wait_condition(|s: &AgentTaskWorkflow| s.has_news())
            .await;
    }
    set_status(ctx, TaskStatus::Running);
    Ok(())
}

/// Asks a person to decide on a team's checkpoint (`pending`, its tool `checkpoint`) and
/// waits for the decision.
pub(super) async fn checkpoint(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    pending: PendingApproval,
) -> Result<ApprovalRequest, Outcome> {
    let id = pending.approval_id.clone();
    ask(ctx, pending);
    wait_for(ctx, std::slice::from_ref(&id)).await?;
    ctx.state(|s| s.approvals.decided(&id)).ok_or_else(|| {
        failure(
            FailureKind::Internal,
            format!("checkpoint `{id}` was decided but its decision is gone"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pending(id: &str) -> PendingApproval {
        PendingApproval {
            approval_id: id.into(),
            tool_name: "calculator".into(),
            tool_call_id: "c1".into(),
            arguments: json!({"expression": "1+1"}),
        }
    }

    fn decision(
        id: &str,
        decision: Decision,
        arguments: Option<serde_json::Value>,
    ) -> ApprovalDecision {
        ApprovalDecision {
            approval_id: id.into(),
            request: ApprovalRequest {
                decision,
                comment: None,
                arguments,
                requested_by: None,
            },
        }
    }

    #[test]
    fn a_decision_is_checked_recorded_once_and_announced_once() {
        let task = TaskId::new();
        let mut approvals = Approvals::default();
        approvals.request(pending("s1c1"));
        let approve = decision(
            "s1c1",
            Decision::Approve,
            Some(json!({"expression": "2+2"})),
        );
        assert!(matches!(
            approvals.check(task, &decision("s9c9", Decision::Approve, None)),
            Err(Rejection::NotFound(_))
        ));
        assert!(matches!(
            approvals.check(task, &decision("s1c1", Decision::Approve, Some(json!([1])))),
            Err(Rejection::Invalid(_))
        ));
        approvals.check(task, &approve).unwrap();
        approvals.decide(approve.clone());
        assert!(approvals.pending().is_empty());
        approvals
            .check(task, &approve)
            .expect("the same decision again");
        let reject = decision("s1c1", Decision::Reject, None);
        assert!(matches!(
            approvals.check(task, &reject),
            Err(Rejection::Conflict(_))
        ));
        approvals.decide(reject);
        assert!(approvals.has_news());
        assert!(approvals.decided("s1c1").is_none(), "not announced yet");
        let announced = approvals.announce();
        assert_eq!(announced.len(), 1);
        assert!(announced[0].edited);
        assert_eq!(announced[0].arguments, json!({"expression": "2+2"}));
        assert!(approvals.announce().is_empty(), "announced once");
        assert_eq!(
            approvals.decided("s1c1").map(|d| d.decision),
            Some(Decision::Approve),
            "the first decision stands"
        );
    }
}
