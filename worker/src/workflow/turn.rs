//! Turn after turn: wait for a query (or a control, or the idle timeout), run the agent, and
//! between a conversation's turns continue as new when the run's log grows long — carrying
//! the state the next run needs, and the log itself when it fits (else it is archived).

use super::AgentTaskWorkflow;
use super::agent_loop;
use super::budget::apply_raise;
use super::llm_step::error_message;
use super::outcome::{Outcome, json_bytes};
use super::safe_points::cancellation;
use super::state::{emit, set_status};
use super::team;
use crate::activities::AgentActivities;
use agentflow_shared::event::{EventKind, Reason, TurnCompleted};
use agentflow_shared::task::{Carried, TaskInput, TaskStatus};
use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_sdk::{
    ActivityOptions, ContinueAsNewOptions, WorkflowContext, WorkflowResult, WorkflowTermination,
};

/// Runs turns until one ends the task (every task but a conversation has one turn); a
/// conversation that continues as new ends this run with the termination that starts the next.
pub(super) async fn run_turns(
    ctx: &mut WorkflowContext<AgentTaskWorkflow>,
) -> WorkflowResult<Outcome> {
    let idle = Duration::from_secs(ctx.state(|s| s.input.settings.idle_timeout_secs));
    let conversation = ctx.state(AgentTaskWorkflow::is_conversation);
    loop {
        let idled = temporalio_sdk::workflows::select! {
            _ = ctx.wait_condition(|s: &AgentTaskWorkflow| {
                s.pending.is_some()
                    || s.controls.cancel().is_some()
                    || s.controls.closing()
                    || s.budget.has_raise()
            }) => false,
            _ = ctx.timer(idle) => true,
        };
        apply_raise(ctx);
        if let Some(reason) = cancellation(ctx) {
            return Ok(Outcome::Cancelled(reason));
        }
        let turns = ctx.state(|s| s.turn);
        if ctx.state(|s| s.controls.closing()) {
            return Ok(Outcome::Closed);
        }
        let Some(request) = ctx.state(|s| s.pending.clone()) else {
            if !idled {
                continue;
            }
            if turns > 0 {
                return Ok(Outcome::Closed);
            }
            return Ok(Outcome::Cancelled(Reason::new(format!(
                "idle timeout: no execute within {}s",
                idle.as_secs()
            ))));
        };
        let outcome = if ctx.state(|s| s.input.team.is_some()) {
            team::run(ctx, request).await
        } else {
            agent_loop::run(ctx, request).await
        };
        match outcome {
            Outcome::Completed(answer) if conversation => end_turn(ctx, answer).await?,
            other => return Ok(other),
        }
    }
}

/// Ends a conversation's turn with its answer; continues as new when the run's log is long.
async fn end_turn(ctx: &WorkflowContext<AgentTaskWorkflow>, answer: String) -> WorkflowResult<()> {
    let turn = ctx.state_mut(|s| {
        s.turn += 1;
        s.final_response = Some(answer.clone());
        if s.input.team.is_none() {
            s.conversation
                .answered(Some(answer.clone()), Vec::new(), Vec::new());
        }
        s.pending = None;
        s.controls.drop_pause();
        s.turn
    });
    let total_cost_usd = ctx.state(|s| s.budget.cost_usd());
    emit(
        ctx,
        EventKind::TurnCompleted(TurnCompleted {
            turn,
            final_response: answer,
            total_cost_usd,
        }),
    );
    let trimmed = ctx.state_mut(|s| {
        let limit = s.input.settings.limits.max_conversation_bytes;
        s.conversation.trim(limit)
    });
    if let Ok(Some(trimmed)) = trimmed {
        emit(ctx, EventKind::ConversationTrimmed(trimmed));
    }
    set_status(ctx, TaskStatus::Waiting);
    if ctx.state(AgentTaskWorkflow::run_is_long) || ctx.continue_as_new_suggested() {
        let archived = carried_input(ctx)
            .carried
            .is_some_and(|c| !c.previous_events_included);
        if archived {
            archive_log(ctx).await;
        }
        // A query accepted while the log was archived goes to the next run; a control
        // (cancel, close, pause, budget) is this run's to act on.
        if !archived || ctx.state(AgentTaskWorkflow::controls_idle) {
            return Err(continue_as_new(ctx, carried_input(ctx)));
        }
    }
    Ok(())
}

impl AgentTaskWorkflow {
    /// Whether this run's log is long enough to go on in a new run: by events, by half its
    /// byte bound, or without room for another call.
    fn run_is_long(&self) -> bool {
        let settings = &self.input.settings;
        let limits = settings.limits;
        self.log.events().len() as u64 >= u64::from(settings.max_events_per_run)
            || 2 * self.log.encoded_bytes() >= limits.max_run_log_bytes
            || !self
                .log
                .has_room_for(limits.max_call_event_bytes, limits.max_run_log_bytes)
    }
}

/// The input of the next run: the task's, with the state it needs (and this run's log when
/// it fits).
fn carried_input(ctx: &WorkflowContext<AgentTaskWorkflow>) -> TaskInput {
    ctx.state(|s| {
        let mut input = s.input.clone();
        // A query accepted while the run archived its log is the next run's first.
        input.query = s.pending.as_ref().map(|request| request.query.clone());
        let mut carried = Carried {
            first_seq: s.log.next_seq(),
            previous_events: Vec::new(),
            previous_events_included: false,
            // A team's members read the discussion instead.
            messages: if s.input.team.is_some() {
                Vec::new()
            } else {
                s.conversation.messages().to_vec()
            },
            turn: s.turn,
            step: s.step,
            cost_usd: s.budget.cost_usd(),
            usage: s.budget.usage(),
            budget_limit_usd: s.budget.limit_usd(),
            budget_warned: s.budget.warned(),
            final_response: s.final_response.clone(),
            mcp_catalog: s.mcp.clone(),
            team_messages: s.team.messages().to_vec(),
            last_speaker: s.team.last_speaker(),
            member_costs: s.team.member_costs().to_vec(),
        };
        // The log rides along when it fits; a larger one is read from the ended run.
        if s.log.encoded_bytes() <= s.payload_room(json_bytes(&input) + json_bytes(&carried)) {
            carried.previous_events = s.log.events().events().to_vec();
            carried.previous_events_included = true;
        }
        input.carried = Some(Box::new(carried));
        input
    })
}

/// Records this run's log in history, in chunks of at most half a payload (one larger event
/// alone), as the inputs of `archive_log` activities: the api reads a closed run's log from
/// there when it is in neither the result nor the next run's input — without a worker.
pub(super) async fn archive_log(ctx: &WorkflowContext<AgentTaskWorkflow>) {
    let (chunks, retry_ms) = ctx.state(|s| {
        let max = s.input.settings.limits.payload_limit_bytes / 2;
        (s.log.chunks(max), s.input.settings.llm_retry_initial_ms)
    });
    for chunk in chunks {
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_millis(retry_ms))
                    .maximum_interval(Duration::from_secs(10))
                    .build(),
            )
            .build();
        if let Err(error) = ctx
            .execute_activity(AgentActivities::archive_log, chunk, options)
            .await
        {
            tracing::error!(error = %error_message(&error), "archiving the run's log failed");
        }
    }
}

/// Ends this run and starts the next with `input` (between turns only).
fn continue_as_new(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    input: TaskInput,
) -> WorkflowTermination {
    match ctx.continue_as_new(input, ContinueAsNewOptions::default()) {
        Err(termination) => termination,
        Ok(never) => match never {},
    }
}
