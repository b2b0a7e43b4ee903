//! One step's tool calls: approvals first, then every allowed and approved call as its own
//! activity, in parallel; each call's result (or why it did not run) goes back to the model.

use super::AgentTaskWorkflow;
use super::approvals::decisions;
use super::llm_step::error_message;
use super::outcome::Outcome;
use super::safe_points::{cancel_on_request, cancellation};
use super::state::emit;
use super::task::check_arguments;
use crate::activities::{AgentActivities, McpCall, ToolCallInput, ToolCallOutput};
use agentflow_shared::event::{Decision, EventKind, ToolCallCompleted, ToolCallStarted};
use agentflow_shared::llm::{ChatMessage, ToolCall};
use agentflow_shared::task::ApprovalRequest;
use agentflow_shared::tools::{ActivityTarget, ToolKind, ToolSettings, builtin_spec};
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use serde_json::Value;
use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_common::UntypedActivity;
use temporalio_common::data_converters::RawValue;
use temporalio_common::error::{ActivityExecutionError, TimeoutType};
use temporalio_common::protos::temporal::api::common::v1::Payload;
use temporalio_sdk::{ActivityOptions, WorkflowCancellationToken, WorkflowContext};

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

/// How long one attempt of a call may take, how many attempts, and how much result the model
/// reads.
#[derive(Clone, Copy)]
struct Limits {
    start_to_close: Duration,
    attempts: u32,
    max_result_bytes: usize,
}

/// A tool call in flight: what it answered, or why it failed.
type ToolRun<'a> = LocalBoxFuture<'a, Result<ToolCallOutput, String>>;

/// Schedules an `activity` tool on its task queue, by name, with the argument object as its
/// one JSON argument — once the arguments fit the tool's schema (else a failed result, and
/// nothing is scheduled). A JSON result is the tool's result.
fn foreign_activity<'a>(
    ctx: &'a WorkflowContext<AgentTaskWorkflow>,
    target: &ActivityTarget,
    schema: Option<&Value>,
    call: &ToolCall,
    limits: Limits,
    token: WorkflowCancellationToken,
) -> ToolRun<'a> {
    let max_result_bytes = limits.max_result_bytes;
    let failed = |error: String| ToolCallOutput {
        success: false,
        result: None,
        error: Some(error),
        duration_ms: 0,
    };
    if let Err(problem) = schema.map_or(Ok(()), |schema| check_arguments(schema, &call.arguments)) {
        return futures::future::ready(Ok(failed(format!("invalid arguments: {problem}"))))
            .boxed_local();
    }
    let options = ActivityOptions::with_start_to_close_timeout(limits.start_to_close)
        .retry_policy(
            RetryPolicy::builder()
                .maximum_attempts(limits.attempts)
                .build(),
        )
        .cancellation_token(token)
        .task_queue(target.task_queue.clone())
        .schedule_to_start_timeout(Duration::from_secs(target.schedule_to_start_timeout_secs))
        .maybe_heartbeat_timeout(target.heartbeat_timeout_secs.map(Duration::from_secs))
        .build();
    let payload = Payload {
        metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
        data: serde_json::to_vec(&call.arguments).unwrap_or_default(),
        ..Default::default()
    };
    let queue = target.task_queue.clone();
    let wait = target.schedule_to_start_timeout_secs;
    ctx.execute_activity(
        UntypedActivity::new(target.activity_type.clone()),
        RawValue::new(vec![payload]),
        options,
    )
    .map(move |result| match result {
        Ok(answer) => Ok(match json_answer(&answer) {
            Ok(value) => ToolCallOutput {
                success: true,
                result: Some(crate::activities::cap_result(value, max_result_bytes)),
                error: None,
                duration_ms: 0,
            },
            Err(problem) => failed(problem),
        }),
        Err(error) if is_schedule_to_start_timeout(&error) => Err(format!(
            "no worker took the call from task queue `{queue}` within {wait} s"
        )),
        Err(error) => Err(error_message(&error)),
    })
    .boxed_local()
}

/// Runs a tool on the agent's own workers (a built-in, an `http` or an `mcp` tool). The call
/// heartbeats, so a cancel reaches it within [`TOOL_HEARTBEAT_TIMEOUT`].
fn worker_tool<'a>(
    ctx: &'a WorkflowContext<AgentTaskWorkflow>,
    input: ToolCallInput,
    limits: Limits,
    token: WorkflowCancellationToken,
) -> ToolRun<'a> {
    let options = ActivityOptions::with_start_to_close_timeout(limits.start_to_close)
        .retry_policy(
            RetryPolicy::builder()
                .maximum_attempts(limits.attempts)
                .build(),
        )
        .heartbeat_timeout(TOOL_HEARTBEAT_TIMEOUT)
        .cancellation_token(token)
        .build();
    ctx.execute_activity(AgentActivities::tool_call, input, options)
        .map(|result| result.map_err(|error| error_message(&error)))
        .boxed_local()
}

/// The heartbeat timeout of a tool call on the agent's workers (they heartbeat every
/// second): a worker that died mid-call is noticed after this, and the call retried.
const TOOL_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON an activity answered (`null` for none); another encoding is named.
fn json_answer(answer: &RawValue) -> Result<Value, String> {
    let Some(payload) = answer.payloads.first() else {
        return Ok(Value::Null);
    };
    let encoding = payload
        .metadata
        .get("encoding")
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .unwrap_or_default();
    match encoding.as_str() {
        "json/plain" => serde_json::from_slice(&payload.data)
            .map_err(|_| "the activity answered JSON that does not parse".to_owned()),
        "binary/null" | "" => Ok(Value::Null),
        other => Err(format!(
            "the activity answered with `{other}`; a tool answers JSON"
        )),
    }
}

/// Whether no worker took the activity from its queue in time.
fn is_schedule_to_start_timeout(error: &ActivityExecutionError) -> bool {
    error
        .as_timeout()
        .is_some_and(|timeout| timeout.timeout_type() == TimeoutType::ScheduleToStart)
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
    let allowed: Vec<bool> = decided
        .iter()
        .map(|d| ctx.state(|s| s.has_tool(&d.call.name)))
        .collect();
    let tools: Vec<ToolSettings> = decided
        .iter()
        .map(|d| ctx.state(|s| s.tool_settings(&d.call.name)))
        .collect();
    let servers: Vec<Option<String>> = decided
        .iter()
        .map(|d| ctx.state(|s| s.mcp_tool(&d.call.name).map(|t| t.server.clone())))
        .collect();
    let kinds: Vec<Option<ToolKind>> = decided
        .iter()
        .zip(&tools)
        .map(|(d, tool)| {
            tool.kind
                .or_else(|| builtin_spec(&d.call.name).map(|_| ToolKind::Builtin))
        })
        .collect();
    for ((Decided { call, .. }, kind), server) in decided.iter().zip(&kinds).zip(&servers) {
        emit(
            ctx,
            EventKind::ToolCallStarted(ToolCallStarted {
                step,
                tool_name: call.name.clone(),
                tool_call_id: call.id.clone(),
                arguments: call.arguments.clone(),
                kind: *kind,
                server: server.clone(),
            }),
        );
    }
    let (settings, task_id) = ctx.state(|s| (s.input.settings.clone(), s.input.task_id));
    let token = ctx.cancellation_token().child_token();
    // Which calls run, by index: each result is paired with its own call.
    let max_result_bytes = settings.limits.max_tool_result_bytes;
    let (runs, futures): (Vec<usize>, Vec<ToolRun<'_>>) = decided
        .iter()
        .enumerate()
        .filter(|(index, d)| allowed[*index] && !d.rejected())
        .map(|(index, Decided { call, .. })| {
            let tool = &tools[index];
            let limits = Limits {
                start_to_close: Duration::from_secs(
                    tool.timeout_secs.unwrap_or(settings.tool_timeout_secs),
                ),
                attempts: tool.max_attempts.unwrap_or(settings.tool_max_attempts),
                max_result_bytes,
            };
            let run = match &tool.activity {
                Some(target) => foreign_activity(
                    ctx,
                    target,
                    tool.parameters.as_ref(),
                    call,
                    limits,
                    token.clone(),
                ),
                None => {
                    let mcp = ctx.state(|s| {
                        s.mcp_tool(&call.name).map(|tool| McpCall {
                            server: tool.server.clone(),
                            tool: tool.tool.clone(),
                            idempotent: tool.idempotent,
                        })
                    });
                    let checked = match (&mcp, tool.parameters.as_ref()) {
                        (Some(_), Some(schema)) => check_arguments(schema, &call.arguments),
                        _ => Ok(()),
                    };
                    let input = ToolCallInput {
                        task_id: Some(task_id),
                        tool_name: call.name.clone(),
                        tool_call_id: call.id.clone(),
                        arguments: call.arguments.clone(),
                        max_result_bytes,
                        mcp,
                    };
                    // A call that may have reached the server is never sent again unless the
                    // tool is idempotent (the activity retries what never left the worker).
                    let limits = match &input.mcp {
                        Some(call) if !call.idempotent => Limits {
                            attempts: 1,
                            ..limits
                        },
                        _ => limits,
                    };
                    match checked {
                        Ok(()) => worker_tool(ctx, input, limits, token.clone()),
                        Err(problem) => futures::future::ready(Ok(ToolCallOutput {
                            success: false,
                            result: None,
                            error: Some(format!("invalid arguments: {problem}")),
                            duration_ms: 0,
                        }))
                        .boxed_local(),
                    }
                }
            };
            (index, run)
        })
        .unzip();
    let outputs = temporalio_sdk::workflows::select! {
        outputs = temporalio_sdk::workflows::join_all(futures).fuse() => outputs,
        _ = cancel_on_request(ctx, &token).fuse() => unreachable!("never resolves"),
    };
    // A cancel stopped the calls still running: each ends as cancelled, before the log ends.
    let cancelled = cancellation(ctx);
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
            kind: kinds[index],
            server: servers[index].clone(),
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
                    kind: kinds[index],
                    server: servers[index].clone(),
                },
                Some(Err(_)) if cancelled.is_some() => failed("cancelled".into()),
                Some(Err(error)) => failed(error),
                None => failed("the tool produced no result".into()),
            }
        };
        let content = match (&completed.result, &completed.error) {
            (Some(result), _) => result.to_string(),
            (None, Some(error)) => format!("error: {error}"),
            (None, None) => String::new(),
        };
        messages.push(if completed.success {
            ChatMessage::tool_result(call.id.clone(), content)
        } else {
            ChatMessage::tool_error(call.id.clone(), content)
        });
        emit(ctx, EventKind::ToolCallCompleted(completed));
    }
    match cancelled {
        Some(reason) => Err(Outcome::Cancelled(reason)),
        None => Ok(messages),
    }
}
