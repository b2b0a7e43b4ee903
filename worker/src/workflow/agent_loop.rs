//! One turn of the agent: step after step — a safe point, the LLM call, the budget, the tool
//! calls — until the model answers without tools, or `max_steps`, the budget, a limit, a
//! cancellation or a failure ends it.

use super::AgentTaskWorkflow;
use super::budget;
use super::llm_step::{self, Answer};
use super::mcp_catalog;
use super::outcome::{Outcome, failure, log_limit};
use super::safe_points::safe_point;
use super::state::{emit, set_status};
use super::tool_step;
use agentflow_shared::event::{EventKind, FailureKind, Mode, Started, StepCompleted, StepStarted};
use agentflow_shared::task::{ExecuteRequest, TaskStatus};
use temporalio_sdk::WorkflowContext;

/// Runs the turn `request` starts; says how it ended.
pub(super) async fn run(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    request: ExecuteRequest,
) -> Outcome {
    let mode = begin(ctx, &request).await;
    ctx.state_mut(|s| {
        let instructions = s.instructions();
        s.conversation.begin_turn(instructions, request.query);
    });
    steps(ctx, mode).await
}

/// Starts a turn: the status, `WorkflowStarted`, the task's MCP catalog; returns the turn's
/// mode.
pub(super) async fn begin(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    request: &ExecuteRequest,
) -> Mode {
    set_status(ctx, TaskStatus::Running);
    let (mode, started) = ctx.state(|s| {
        let mode = s.mode(request);
        let started = Started {
            query: request.query.clone(),
            mode,
            max_steps: s.max_steps(),
            budget_limit_usd: s.budget.limit_usd(),
            model: s.input.agent.model_name.clone(),
            turn: s.is_conversation().then_some(s.turn + 1),
        };
        (mode, started)
    });
    emit(ctx, EventKind::Started(started));
    mcp_catalog::fix(ctx).await;
    mode
}

/// Step after step on the conversation so far, by the agent speaking (a team's member),
/// until an answer or another outcome.
pub(super) async fn steps(ctx: &WorkflowContext<AgentTaskWorkflow>, mode: Mode) -> Outcome {
    let max_steps = ctx.state(AgentTaskWorkflow::max_steps);
    for _ in 1..=max_steps {
        if let Err(outcome) = safe_point(ctx).await {
            return outcome;
        }
        let limits = ctx.state(|s| s.input.settings.limits);
        if !ctx.state(|s| {
            s.log
                .has_room_for(limits.max_call_event_bytes, limits.max_run_log_bytes)
        }) {
            return log_limit(ctx, "another LLM call");
        }
        let step = ctx.state_mut(|s| {
            s.step += 1;
            s.step
        });
        emit(ctx, EventKind::StepStarted(StepStarted { step }));
        match ctx.state_mut(|s| s.conversation.trim(limits.max_conversation_bytes)) {
            Ok(None) => {}
            Ok(Some(trimmed)) => emit(ctx, EventKind::ConversationTrimmed(trimmed)),
            Err(bytes) => {
                return failure(
                    FailureKind::ContextLimit,
                    format!(
                        "this turn's messages ({bytes} bytes) exceed \
                         worker.limits.max_conversation_bytes ({})",
                        limits.max_conversation_bytes
                    ),
                );
            }
        }
        let Answer { response, cost_usd } = match llm_step::call(ctx, step, mode).await {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        let (cost, tokens) = match budget::charge(ctx, cost_usd, response.usage).await {
            Ok(spent) => spent,
            Err(outcome) => return outcome,
        };
        if let Err(outcome) = safe_point(ctx).await {
            return outcome;
        }
        if !response.tool_calls.is_empty() {
            let tool_bytes: usize = response
                .tool_calls
                .iter()
                .map(|call| {
                    2 * call.arguments.to_string().len() + limits.max_tool_result_bytes + 1024
                })
                .sum();
            if !ctx.state(|s| s.log.has_room_for(tool_bytes, limits.max_run_log_bytes)) {
                return log_limit(ctx, "this step's tool calls");
            }
            ctx.state_mut(|s| {
                s.conversation.answered(
                    (!response.content.is_empty()).then(|| response.content.clone()),
                    response.tool_calls.clone(),
                    response.reasoning.clone(),
                )
            });
            match tool_step::run(ctx, step, &response.tool_calls).await {
                Ok(results) => ctx.state_mut(|s| s.conversation.tool_results(results)),
                Err(outcome) => return outcome,
            }
        }
        emit(
            ctx,
            EventKind::StepCompleted(StepCompleted {
                step,
                cost_so_far_usd: cost,
                tokens_so_far: tokens,
            }),
        );
        if response.tool_calls.is_empty() {
            return Outcome::Completed(response.content);
        }
    }
    failure(
        FailureKind::MaxSteps,
        format!("no final answer within {max_steps} steps"),
    )
}
