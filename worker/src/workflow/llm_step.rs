//! One LLM call of a step. Retries are the workflow's: a failed attempt's events (from its
//! failure details or last heartbeat) are carried into the next attempt, a cancel during the
//! backoff still returns them, and a call that ends for good while its events may be on the
//! bus is fenced and read from there first — nothing a client saw is lost (Invariant 1).

use super::AgentTaskWorkflow;
use super::outcome::{Outcome, failure};
use super::safe_points::{cancel_on_request, cancellation};
use crate::activities::{AgentActivities, LlmCallInput, LlmCallOutput, RecoverCallInput};
use crate::llm::LlmResponse;
use agentflow_client::progress::CallProgress;
use agentflow_shared::event::{Event, FailureKind, Mode, Reason};
use agentflow_shared::ids::Seq;
use agentflow_shared::task::RunSettings;
use futures::FutureExt;
use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_common::error::ActivityExecutionError;
use temporalio_sdk::{ActivityCancellationType, ActivityOptions, WorkflowContext};

/// Patch id: LLM calls retried by the workflow (one attempt per activity, the failed attempt's
/// events carried into the next), waiting for a cancelled call's events. Histories recorded
/// before it replay with Temporal's retries.
const LLM_CALLS_V2: &str = "llm-calls-v2";
/// Patch: a call that ends for good while its events may be on the bus is recovered from it.
const BUS_RECOVERY: &str = "bus-recovery";

/// What a step's LLM call answered.
pub(super) struct Answer {
    /// The model's answer, its text filled in from the log when the result left it out.
    pub(super) response: LlmResponse,
    /// What the call cost.
    pub(super) cost_usd: f64,
}

/// Runs step `step`'s LLM call on the conversation so far and appends its events to the log;
/// a call that ends without an answer ends the turn.
pub(super) async fn call(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    step: u32,
    mode: Mode,
) -> Result<Answer, Outcome> {
    let (call, settings) = ctx.state_mut(|s| {
        let input = &s.input;
        let agent = s.agent();
        let limits = input.settings.limits;
        let call = LlmCallInput {
            task_id: input.task_id,
            tenant: input.tenant.clone(),
            agent_id: input.agent.agent_id.clone(),
            step,
            seq_base: s.log.next_seq(),
            mode,
            model_name: agent.model_name.clone(),
            model: agent.model.clone(),
            messages: s.conversation.messages().to_vec(),
            tool_names: agent.agent.tools.clone(),
            extra_tools: s.mcp_specs(),
            cost_before_usd: s.budget.cost_usd(),
            previous_events: Vec::new(),
            attempt: 1,
            max_event_bytes: limits.max_call_event_bytes,
            recover_from_bus: false,
            workflow_events: s.log.hand_over(limits.max_handed_event_bytes),
            durable_through: None,
            durable_bytes: 0,
            max_answer_bytes: limits.max_answer_bytes,
            checkpoint_bytes: limits.checkpoint_bytes,
            speaker: s.speaker_name(),
        };
        (call, input.settings.clone())
    });
    let LlmCallOutput {
        events,
        mut response,
        cost_usd,
    } = match call_llm(ctx, call, &settings).await {
        Ok(output) => output,
        Err(ended) => return Err(ended_without_answer(ctx, ended)),
    };
    if let Err(problem) = ctx.state_mut(|s| s.log.extend(events)) {
        return Err(failure(FailureKind::Internal, problem));
    }
    // The call's own events went live with it; its answer's text travels once, in
    // `WorkflowLLMCallCompleted`.
    ctx.state_mut(|s| s.log.all_handed());
    if response.content.is_empty() {
        response.content = ctx.state(|s| s.log.last_answer()).unwrap_or_default();
    }
    Ok(Answer { response, cost_usd })
}

/// Appends what a call that ended without an answer left, and says how the turn ends.
fn ended_without_answer(ctx: &WorkflowContext<AgentTaskWorkflow>, ended: LlmFailure) -> Outcome {
    let (events, outcome) = match ended {
        LlmFailure::Cancelled(events) => (
            events,
            Outcome::Cancelled(
                cancellation(ctx).unwrap_or_else(|| Reason::new("the task was cancelled")),
            ),
        ),
        LlmFailure::Failed {
            events,
            message,
            retryable,
        } => (
            events,
            Outcome::Failed(
                agentflow_shared::event::ErrorInfo::new(FailureKind::LlmError, message),
                retryable,
            ),
        ),
    };
    if let Err(problem) = ctx.state_mut(|s| s.log.extend(events)) {
        return failure(FailureKind::Internal, problem);
    }
    match cancellation(ctx) {
        Some(reason) => Outcome::Cancelled(reason),
        None => outcome,
    }
}

/// How an LLM call ended without an answer; the events are every event of the call so far.
enum LlmFailure {
    Cancelled(Vec<Event>),
    Failed {
        events: Vec<Event>,
        message: String,
        retryable: bool,
    },
}

/// Whether another attempt may succeed. Application failures say so themselves; a server
/// failure by its `non_retryable` flag; a payload over a size limit never (the same attempt
/// would produce it again); timeouts and the rest are worth another attempt.
fn is_retryable(error: &ActivityExecutionError) -> bool {
    use temporalio_common::error::IncomingError;
    use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;
    let Some(reason) = error.reason() else {
        return true;
    };
    if is_size_limit(&reason.failure().message) {
        return false;
    }
    match reason {
        IncomingError::Application(app) => !app.is_non_retryable(),
        IncomingError::Server(server) => !matches!(
            &server.failure().failure_info,
            Some(FailureInfo::ServerFailureInfo(info)) if info.non_retryable
        ),
        _ => true,
    }
}

/// The longest a vendor's `retry-after` makes the workflow wait before the next attempt.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The wait an application failure asks for before the next attempt (a vendor's
/// `retry-after`).
fn retry_after(error: &ActivityExecutionError) -> Option<Duration> {
    match error.reason()? {
        temporalio_common::error::IncomingError::Application(app) => app.next_retry_delay(),
        _ => None,
    }
}

/// Whether a failure message is Temporal's (or an SDK's) refusal of an oversized payload.
fn is_size_limit(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    (message.contains("exceed") && message.contains("limit"))
        || message.contains("payloadsizeerror")
}

/// The message of an activity's failure.
pub(super) fn error_message(error: &ActivityExecutionError) -> String {
    error
        .reason()
        .map(|r| r.failure().message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| error.to_string())
}

/// What an LLM activity attached to its failure or cancellation, or heartbeated last: its
/// events, or (on the bus) a marker saying they are on the call's subject. `None` when it left
/// nothing.
fn recovered_progress(error: &ActivityExecutionError) -> Option<CallProgress> {
    if let Some(cancelled) = error.as_cancelled() {
        return cancelled.details().ok().flatten();
    }
    if let Some(timeout) = error.as_timeout() {
        return timeout.last_heartbeat_details().ok().flatten();
    }
    match error.reason() {
        Some(temporalio_common::error::IncomingError::Application(app)) => {
            app.details().ok().flatten()
        }
        _ => None,
    }
}

/// What earlier attempts of a call left: their events, and whether that is all of them (an
/// attempt that was on the bus, or left nothing, may have stored more on the call's subject).
struct Recovered {
    events: Vec<Event>,
    complete: bool,
}

impl Recovered {
    fn new() -> Self {
        Self {
            events: Vec::new(),
            complete: true,
        }
    }

    /// Takes in what a failed attempt left: its events after `durable` (the log holds the
    /// ones before), when longer (they are a prefix of one log).
    fn absorb(&mut self, progress: Option<CallProgress>, durable: Seq) {
        self.complete = matches!(progress, Some(CallProgress::Events(_)));
        self.events.retain(|e| e.seq > durable);
        if let Some(CallProgress::Events(mut events)) = progress {
            events.retain(|e| e.seq > durable);
            if events.len() >= self.events.len() {
                self.events = events;
            }
        }
    }
}

/// Runs the LLM activity until it answers, fails for good, or the task is cancelled.
async fn call_llm(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    call: LlmCallInput,
    settings: &RunSettings,
) -> Result<LlmCallOutput, LlmFailure> {
    if !ctx.patched(LLM_CALLS_V2) {
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(
            settings.llm_timeout_secs,
        ))
        .heartbeat_timeout(Duration::from_secs(settings.llm_heartbeat_timeout_secs))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_millis(settings.llm_retry_initial_ms))
                .maximum_attempts(settings.llm_max_attempts)
                .build(),
        )
        .build();
        return ctx
            .execute_activity(AgentActivities::llm_call, call, options)
            .await
            .map_err(|error| {
                let events = recovered_progress(&error)
                    .map(|p| p.events().to_vec())
                    .unwrap_or_default();
                if error.as_cancelled().is_some() {
                    LlmFailure::Cancelled(events)
                } else {
                    LlmFailure::Failed {
                        events,
                        message: error_message(&error),
                        retryable: is_retryable(&error),
                    }
                }
            });
    }
    let mut previous = Recovered::new();
    let mut backoff = Duration::from_millis(settings.llm_retry_initial_ms);
    for attempt in 1.. {
        let token = ctx.cancellation_token().child_token();
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(
            settings.llm_timeout_secs,
        ))
        .heartbeat_timeout(Duration::from_secs(settings.llm_heartbeat_timeout_secs))
        .retry_policy(RetryPolicy::builder().maximum_attempts(1).build())
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
        .cancellation_token(token.clone())
        .build();
        let (durable_through, durable_bytes) =
            ctx.state_mut(|s| s.log.start_call(call.seq_base, attempt));
        let input = LlmCallInput {
            previous_events: previous.events.clone(),
            attempt,
            recover_from_bus: !previous.complete,
            durable_through,
            durable_bytes,
            ..call.clone()
        };
        let result = temporalio_sdk::workflows::select! {
            result = ctx.execute_activity(AgentActivities::llm_call, input, options) => result,
            _ = cancel_on_request(ctx, &token).fuse() => unreachable!("never resolves"),
        };
        // From here on this attempt's checkpoints are refused: it ended, or was given up on.
        ctx.state_mut(|s| s.log.end_call());
        let error = match result {
            Ok(output) => return Ok(output),
            Err(error) => error,
        };
        let durable = ctx.state(|s| s.log.last_seq());
        previous.absorb(recovered_progress(&error), durable);
        if error.as_cancelled().is_some() || cancellation(ctx).is_some() {
            let events = recover_from_bus(ctx, &call, attempt, previous, settings).await;
            return Err(LlmFailure::Cancelled(events));
        }
        let retryable = is_retryable(&error);
        if !retryable || attempt >= settings.llm_max_attempts {
            let events = recover_from_bus(ctx, &call, attempt, previous, settings).await;
            return Err(LlmFailure::Failed {
                events,
                message: error_message(&error),
                retryable,
            });
        }
        // The vendor's `retry-after` (carried as the failure's next retry delay), capped, when
        // it asks for longer than the backoff.
        let wait =
            retry_after(&error).map_or(backoff, |asked| asked.min(MAX_RETRY_AFTER).max(backoff));
        let cancelled = temporalio_sdk::workflows::select! {
            _ = ctx.timer(wait) => false,
            _ = ctx.wait_condition(|s: &AgentTaskWorkflow| s.controls.cancel().is_some()) => true,
        };
        if cancelled || cancellation(ctx).is_some() {
            let events = recover_from_bus(ctx, &call, attempt, previous, settings).await;
            return Err(LlmFailure::Cancelled(events));
        }
        backoff = (backoff * 2).min(Duration::from_millis(settings.llm_retry_initial_ms * 100));
    }
    unreachable!("the attempts loop only ends by returning")
}

/// The events of a call that ends for good without a result. When its last attempt may have
/// stored events on the bus that the workflow has not seen, a recovery activity fences the
/// call's subject (voiding anything a lost worker still publishes) and reads it first: the
/// terminal event then never lands where a client may already hold another.
async fn recover_from_bus(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    call: &LlmCallInput,
    last_attempt: u32,
    previous: Recovered,
    settings: &RunSettings,
) -> Vec<Event> {
    if previous.complete || !ctx.patched(BUS_RECOVERY) {
        return previous.events;
    }
    let input = RecoverCallInput {
        task_id: call.task_id,
        tenant: call.tenant.clone(),
        seq_base: call.seq_base,
        attempt: last_attempt + 1,
        previous_events: previous.events.clone(),
        durable_through: ctx.state(|s| s.log.durable_part(call.seq_base).0),
    };
    let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(
        settings.llm_timeout_secs,
    ))
    .heartbeat_timeout(Duration::from_secs(settings.llm_heartbeat_timeout_secs))
    .retry_policy(
        RetryPolicy::builder()
            .initial_interval(Duration::from_millis(settings.llm_retry_initial_ms))
            .maximum_interval(Duration::from_secs(10))
            .build(),
    )
    .build();
    match ctx
        .execute_activity(AgentActivities::recover_call, input, options)
        .await
    {
        Ok(events) => events,
        Err(error) => {
            tracing::error!(error = %error_message(&error), "recovering a call from the bus failed");
            previous.events
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_limit_failures_are_recognised() {
        for message in [
            "Complete result exceeds size limit.",
            "Heartbeat details exceed size limit",
            "[TMPRL1103] PayloadSizeError: Size: 4194474 bytes, Limit: 2097152 bytes",
            "Blob data size exceeds limit.",
        ] {
            assert!(is_size_limit(message), "{message}");
        }
        assert!(!is_size_limit("connection refused"));
    }
}
