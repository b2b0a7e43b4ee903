//! The task's spend: cost and usage so far, the limit, a raise waiting to be applied, the
//! warning near the limit and the pause on a spent budget.

use super::AgentTaskWorkflow;
use super::outcome::{Outcome, failure};
use super::safe_points::{cancellation, paused, resumed};
use super::state::emit;
use agentflow_shared::event::{
    BudgetExceeded, BudgetRaised, BudgetWarning, EventKind, FailureKind, Reason,
};
use agentflow_shared::llm::Usage;
use agentflow_shared::task::{BudgetRequest, OnBudgetExceeded, Rejection};
use temporalio_sdk::WorkflowContext;

/// Cost, usage and the limit they are held to.
#[derive(Debug)]
pub(super) struct Budget {
    cost_usd: f64,
    usage: Usage,
    limit_usd: f64,
    /// `WorkflowBudgetWarning` was emitted for the current limit.
    warned: bool,
    /// A raise accepted and not yet applied.
    raise: Option<BudgetRequest>,
    /// The task is paused because the budget is spent.
    paused: bool,
}

impl Budget {
    /// A new task's budget of `limit_usd`.
    pub(super) fn new(limit_usd: f64) -> Self {
        Self::carried(0.0, Usage::default(), limit_usd, false)
    }

    /// The budget a previous run carried over.
    pub(super) fn carried(cost_usd: f64, usage: Usage, limit_usd: f64, warned: bool) -> Self {
        Self {
            cost_usd,
            usage,
            limit_usd,
            warned,
            raise: None,
            paused: false,
        }
    }

    /// Spent so far.
    pub(super) fn cost_usd(&self) -> f64 {
        self.cost_usd
    }

    /// Tokens used so far.
    pub(super) fn usage(&self) -> Usage {
        self.usage
    }

    /// The limit in effect.
    pub(super) fn limit_usd(&self) -> f64 {
        self.limit_usd
    }

    /// Whether the warning for the current limit was given.
    pub(super) fn warned(&self) -> bool {
        self.warned
    }

    /// Whether the task is paused on its budget.
    pub(super) fn is_paused(&self) -> bool {
        self.paused
    }

    /// Pauses the task on its budget, or ends that pause.
    pub(super) fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Whether a raise waits to be applied.
    pub(super) fn has_raise(&self) -> bool {
        self.raise.is_some()
    }

    /// Checks a raise: a positive amount above the current (or already requested) limit, and
    /// above the cost when the task is paused on its budget.
    pub(super) fn check_raise(&self, request: &BudgetRequest) -> Result<(), Rejection> {
        if !(request.budget_usd.is_finite() && request.budget_usd > 0.0) {
            return Err(Rejection::Invalid(
                "budget_usd must be a positive number".into(),
            ));
        }
        let current = self.raise.as_ref().map_or(self.limit_usd, |r| r.budget_usd);
        if request.budget_usd <= current {
            return Err(Rejection::Invalid(format!(
                "budget_usd must be above the current limit of ${current}"
            )));
        }
        if self.paused && request.budget_usd <= self.cost_usd {
            return Err(Rejection::Invalid(format!(
                "budget_usd must be above the cost so far (${}) to resume the task",
                self.cost_usd
            )));
        }
        Ok(())
    }

    /// Records an accepted raise, applied at the next safe point.
    pub(super) fn request_raise(&mut self, request: BudgetRequest) {
        self.raise = Some(request);
    }

    /// Applies the requested raise, if any: the new limit, and a new warning below it.
    fn apply_raise(&mut self, warning_pct: f64) -> Option<BudgetRaised> {
        let raise = self.raise.take()?;
        let previous = self.limit_usd;
        self.limit_usd = raise.budget_usd;
        if self.cost_usd < self.limit_usd * warning_pct / 100.0 {
            self.warned = false;
        }
        Some(BudgetRaised {
            previous_limit_usd: previous,
            limit_usd: raise.budget_usd,
            requested_by: raise.requested_by,
        })
    }

    /// Adds a call's cost and usage; returns the cost and the tokens so far.
    fn charge(&mut self, cost_usd: f64, usage: Usage) -> (f64, u64) {
        self.cost_usd += cost_usd;
        self.usage = self.usage + usage;
        (self.cost_usd, self.usage.total_tokens)
    }

    /// The warning once `cost` reaches `warning_pct` of the limit (once per limit).
    fn warning(&mut self, cost: f64, warning_pct: f64) -> Option<BudgetWarning> {
        let limit = self.limit_usd;
        if cost < limit * warning_pct / 100.0 || self.warned {
            return None;
        }
        self.warned = true;
        Some(BudgetWarning {
            cost_usd: cost,
            limit_usd: limit,
            usage_pct: if limit > 0.0 {
                cost / limit * 100.0
            } else {
                100.0
            },
        })
    }
}

/// Applies a requested budget raise: the new limit and its event.
pub(super) fn apply_raise(ctx: &WorkflowContext<AgentTaskWorkflow>) {
    let raised = ctx.state_mut(|s| {
        let pct = s.input.settings.budget_warning_pct;
        s.budget.apply_raise(pct)
    });
    if let Some(raised) = raised {
        emit(ctx, EventKind::BudgetRaised(raised));
    }
}

/// Charges an LLM call to the budget, then holds the task to it: a spent budget fails the
/// task or pauses it until raised; nearing it warns once. Returns the cost and tokens so far.
pub(super) async fn charge(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    cost_usd: f64,
    usage: Usage,
) -> Result<(f64, u64), Outcome> {
    let (cost, tokens) = ctx.state_mut(|s| s.budget.charge(cost_usd, usage));
    apply_raise(ctx);
    let limit = ctx.state(|s| s.budget.limit_usd());
    if cost > limit {
        emit(
            ctx,
            EventKind::BudgetExceeded(BudgetExceeded {
                cost_usd: cost,
                limit_usd: limit,
            }),
        );
        if ctx.state(AgentTaskWorkflow::on_budget_exceeded) == OnBudgetExceeded::Fail {
            return Err(failure(
                FailureKind::BudgetExceeded,
                format!("cost ${cost:.6} exceeded the budget of ${limit:.6}"),
            ));
        }
        pause(ctx, cost).await?;
    }
    let warning = ctx.state_mut(|s| {
        let pct = s.input.settings.budget_warning_pct;
        s.budget.warning(cost, pct)
    });
    if let Some(warning) = warning {
        emit(ctx, EventKind::BudgetWarning(warning));
    }
    Ok((cost, tokens))
}

/// The budget is spent and the task pauses on it: waits for a raise above the cost.
async fn pause(ctx: &WorkflowContext<AgentTaskWorkflow>, cost: f64) -> Result<(), Outcome> {
    ctx.state_mut(|s| s.budget.set_paused(true));
    paused(ctx, Reason::new("budget"));
    loop {
        let _ = ctx
            .wait_condition(|s: &AgentTaskWorkflow| s.has_news())
            .await;
        if let Some(reason) = cancellation(ctx) {
            return Err(Outcome::Cancelled(reason));
        }
        let by = ctx.state(|s| s.budget.raise.as_ref().and_then(|r| r.requested_by.clone()));
        apply_raise(ctx);
        if ctx.state(|s| s.budget.limit_usd) > cost {
            ctx.state_mut(|s| s.budget.set_paused(false));
            resumed(
                ctx,
                Reason {
                    reason: "budget raised".into(),
                    requested_by: by,
                },
            );
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raise(usd: f64) -> BudgetRequest {
        BudgetRequest {
            budget_usd: usd,
            requested_by: None,
        }
    }

    #[test]
    fn a_raise_must_be_positive_and_above_the_limit_and_a_pending_raise() {
        let mut budget = Budget::new(1.0);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1.0, 0.5] {
            assert!(
                matches!(budget.check_raise(&raise(bad)), Err(Rejection::Invalid(_))),
                "{bad}"
            );
        }
        budget.check_raise(&raise(2.0)).unwrap();
        budget.request_raise(raise(2.0));
        assert!(
            budget.check_raise(&raise(1.5)).is_err(),
            "below the pending raise"
        );
        budget.check_raise(&raise(3.0)).unwrap();
    }

    #[test]
    fn paused_on_its_budget_a_task_needs_a_raise_above_its_cost() {
        let mut budget = Budget::new(1.0);
        budget.charge(5.0, Usage::default());
        budget.set_paused(true);
        let Err(Rejection::Invalid(message)) = budget.check_raise(&raise(4.0)) else {
            panic!("accepted a raise below the cost");
        };
        assert!(message.contains("to resume the task"), "{message}");
        budget.check_raise(&raise(6.0)).unwrap();
    }

    #[test]
    fn the_warning_comes_once_per_limit_and_again_after_a_raise() {
        let mut budget = Budget::new(1.0);
        assert!(budget.warning(0.5, 80.0).is_none());
        let (cost, _) = budget.charge(0.9, Usage::default());
        let warning = budget.warning(cost, 80.0).expect("at 90 %");
        assert!((warning.usage_pct - 90.0).abs() < 1e-9);
        assert!(budget.warning(cost, 80.0).is_none(), "once");
        budget.request_raise(raise(10.0));
        let raised = budget.apply_raise(80.0).expect("a raise was pending");
        assert_eq!((raised.previous_limit_usd, raised.limit_usd), (1.0, 10.0));
        assert!(!budget.warned(), "a new limit earns a new warning");
        assert!(budget.apply_raise(80.0).is_none(), "applied once");
    }
}
