//! One step's tool calls: approvals first, then every allowed and approved call as its own
//! activity, in parallel; each call's result (or why it did not run) goes back to the model.

use super::AgentTaskWorkflow;
use super::approvals::decisions;
use super::llm_step::error_message;
use super::outcome::Outcome;
use super::safe_points::{cancel_on_request, cancellation};
use super::state::emit;
use crate::activities::{AgentActivities, ToolCallInput};
use agentflow_shared::event::{Decision, EventKind, ToolCallCompleted, ToolCallStarted};
use agentflow_shared::llm::{ChatMessage, ToolCall};
use agentflow_shared::task::ApprovalRequest;
use agentflow_shared::tools::ToolSettings;
use futures::FutureExt;
use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_sdk::{ActivityOptions, WorkflowContext};

/// A call as it will run: its arguments as a reviewer edited them, and the decision.
struct Decided {
    call: ToolCall,
    decision: Option<ApprovalRequest>,
}

impl Decided {
    fn rejected(&self) -> bool {
        self.decision
            .as_ref()
            .is_some_and(|d| d.decision == Decision::Reject)
    }
}

/// Runs the step's tool calls in parallel, after any approvals they need; returns the tool
/// messages for the model (a rejection is the rejected call's result).
pub(super) async fn run(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    step: u32,
    calls: &[ToolCall],
) -> Result<Vec<ChatMessage>, Outcome> {
    let decided: Vec<Decided> = calls
        .iter()
        .zip(decisions(ctx, step, calls).await?)
        .map(|(call, decision)| {
            let mut call = call.clone();
            if let Some(arguments) = decision
                .as_ref()
                .filter(|d| d.decision == Decision::Approve)
                .and_then(|d| d.arguments.clone())
            {
                call.arguments = arguments;
            }
            Decided { call, decision }
        })
        .collect();
    for Decided { call, .. } in &decided {
        emit(
            ctx,
            EventKind::ToolCallStarted(ToolCallStarted {
                step,
                tool_name: call.name.clone(),
                tool_call_id: call.id.clone(),
                arguments: call.arguments.clone(),
            }),
        );
    }
    let allowed: Vec<bool> = decided
        .iter()
        .map(|d| ctx.state(|s| s.has_tool(&d.call.name)))
        .collect();
    let tools: Vec<ToolSettings> = decided
        .iter()
        .map(|d| ctx.state(|s| s.tool_settings(&d.call.name)))
        .collect();
    let (settings, task_id) = ctx.state(|s| (s.input.settings.clone(), s.input.task_id));
    let token = ctx.cancellation_token().child_token();
    // Which calls run, by index: each result is paired with its own call.
    let (runs, futures): (Vec<usize>, Vec<_>) = decided
        .iter()
        .enumerate()
        .filter(|(index, d)| allowed[*index] && !d.rejected())
        .map(|(index, Decided { call, .. })| {
            let tool = tools[index];
            let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(
                tool.timeout_secs.unwrap_or(settings.tool_timeout_secs),
            ))
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_attempts(tool.max_attempts.unwrap_or(settings.tool_max_attempts))
                    .build(),
            )
            .cancellation_token(token.clone())
            .build();
            let input = ToolCallInput {
                task_id: Some(task_id),
                tool_name: call.name.clone(),
                tool_call_id: call.id.clone(),
                arguments: call.arguments.clone(),
                max_result_bytes: settings.limits.max_tool_result_bytes,
            };
            (
                index,
                ctx.execute_activity(AgentActivities::tool_call, input, options),
            )
        })
        .unzip();
    let outputs = temporalio_sdk::workflows::select! {
        outputs = temporalio_sdk::workflows::join_all(futures).fuse() => outputs,
        _ = cancel_on_request(ctx, &token).fuse() => unreachable!("never resolves"),
    };
    if let Some(reason) = cancellation(ctx) {
        return Err(Outcome::Cancelled(reason));
    }
    let mut results: Vec<Option<_>> = decided.iter().map(|_| None).collect();
    for (index, output) in runs.into_iter().zip(outputs) {
        results[index] = Some(output);
    }
    let mut messages = Vec::new();
    for (index, decided) in decided.iter().enumerate() {
        let call = &decided.call;
        let failed = |error: String| ToolCallCompleted {
            step,
            tool_name: call.name.clone(),
            tool_call_id: call.id.clone(),
            success: false,
            result: None,
            error: Some(error),
            duration_ms: 0,
        };
        let completed = if !allowed[index] {
            failed(format!("unknown tool `{}`", call.name))
        } else if decided.rejected() {
            let comment = decided.decision.as_ref().and_then(|d| d.comment.clone());
            failed(match comment {
                Some(comment) => format!("rejected by a reviewer: {comment}"),
                None => "rejected by a reviewer".into(),
            })
        } else {
            match results[index].take() {
                Some(Ok(out)) => ToolCallCompleted {
                    step,
                    tool_name: call.name.clone(),
                    tool_call_id: call.id.clone(),
                    success: out.success,
                    result: out.result,
                    error: out.error,
                    duration_ms: out.duration_ms,
                },
                Some(Err(error)) => failed(error_message(&error)),
                None => failed("the tool produced no result".into()),
            }
        };
        let content = match (&completed.result, &completed.error) {
            (Some(result), _) => result.to_string(),
            (None, Some(error)) => format!("error: {error}"),
            (None, None) => String::new(),
        };
        messages.push(ChatMessage::tool_result(call.id.clone(), content));
        emit(ctx, EventKind::ToolCallCompleted(completed));
    }
    Ok(messages)
}
