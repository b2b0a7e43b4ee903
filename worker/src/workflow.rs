//! `AgentTaskWorkflow`: one task, from creation to its terminal event.
//!
//! It waits for an `execute` update (or runs the query given at creation), then runs the agent
//! loop: step → LLM activity → approvals → tool activities (in parallel) → … until a final
//! answer, `max_steps`, the budget, cancellation or a failure. A conversation keeps going turn
//! after turn and continues as new between turns when a run's log grows long. Control updates
//! (pause, resume, cancel, close, approval decisions, budget raises) are validated, recorded in
//! state, and acted on at safe points between activities. Every step is an event in one dense
//! log kept in workflow state; the log is served by queries and returned as the workflow
//! result. Only workflow time is read here; all I/O is in activities (DESIGN.md, Invariant 3).

use crate::activities::{
    AgentActivities, LlmCallInput, LlmCallOutput, RecoverCallInput, ToolCallInput,
};
use crate::checkpoint::CallCheckpoint;
use crate::progress::CallProgress;
use crate::queries::EventsQuery;
use agentflow_shared::event::{
    ApprovalReceived, ApprovalRequested, BudgetExceeded, BudgetRaised, BudgetWarning, Completed,
    ConversationTrimmed, Decision, ErrorInfo, Event, EventKind, Failed, Mode, Reason, Started,
    StepCompleted, StepStarted, ToolCallCompleted, ToolCallStarted, TurnCompleted,
};
use agentflow_shared::ids::Seq;
use agentflow_shared::llm::{ChatMessage, Role, ToolCall, Usage};
use agentflow_shared::log::EventLog;
use agentflow_shared::task::{
    ApprovalDecision, ApprovalRequest, BudgetRequest, Carried, ControlAccepted, ControlRequest,
    EventsPage, EventsRange, ExecuteAccepted, ExecuteRequest, OnBudgetExceeded, PendingApproval,
    Rejection, RunSettings, TaskInput, TaskResult, TaskState, TaskStatus,
};
use futures::FutureExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use temporalio_common::RetryPolicy;
use temporalio_common::error::ActivityExecutionError;
use temporalio_common::search_attributes::SearchAttributeKey;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCancellationType, ActivityOptions, ContinueAsNewOptions, SyncWorkflowContext,
    WorkflowCancellationToken, WorkflowContext, WorkflowContextView, WorkflowResult,
    WorkflowTermination,
};

/// Search attribute: the agent's id.
pub const AGENT_ID: SearchAttributeKey<String> = SearchAttributeKey::keyword("AgentId");
/// Search attribute: the task's status, upserted on every change.
pub const TASK_STATUS: SearchAttributeKey<String> = SearchAttributeKey::keyword("TaskStatus");
/// Search attribute: the user who created the task.
pub const USER_ID: SearchAttributeKey<String> = SearchAttributeKey::keyword("UserId");

/// The durable agent task.
#[workflow]
pub struct AgentTaskWorkflow {
    input: TaskInput,
    /// This run's part of the task's log (from the seq the previous run ended at).
    log: EventLog,
    /// The last seq handed to an LLM call to publish on the bus (or published by one).
    handed: Seq,
    /// The LLM call attempt running now, whose checkpoints are accepted.
    running_call: Option<RunningCall>,
    status: TaskStatus,
    step: u32,
    turn: u32,
    cost_usd: f64,
    usage: Usage,
    budget_limit: f64,
    pending: Option<ExecuteRequest>,
    final_response: Option<String>,
    budget_warned: bool,
    /// The conversation so far (conversations only).
    messages: Vec<ChatMessage>,
    controls: Controls,
    approvals: Vec<Approval>,
}

/// The LLM call attempt the workflow waits for: only its checkpoints are taken (an attempt
/// the workflow gave up on — timed out, failed, cancelled — may still run somewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RunningCall {
    seq_base: Seq,
    attempt: u32,
}

/// What control updates asked for and the loop has not acted on yet.
#[derive(Debug, Default)]
struct Controls {
    /// A pause waiting for the next safe point.
    pause: Option<Reason>,
    /// A person's pause is in effect.
    paused: bool,
    /// The budget paused the run.
    budget_paused: bool,
    /// A resume of the pause in effect.
    resume: Option<Reason>,
    /// A cancellation.
    cancel: Option<Reason>,
    /// Closing a conversation.
    close: Option<Reason>,
    /// A budget raise not yet applied.
    budget_raise: Option<BudgetRequest>,
}

/// A tool call that needs a decision, and the decision once made.
#[derive(Debug)]
struct Approval {
    pending: PendingApproval,
    decision: Option<ApprovalRequest>,
    announced: bool,
}

/// How a run of the agent loop ended.
enum Outcome {
    Completed(String),
    Failed(ErrorInfo, bool),
    Cancelled(Reason),
    /// A conversation was closed (or idled out) after at least one turn.
    Closed,
}

type Rejected = Box<dyn std::error::Error + Send + Sync>;

fn reject(rejection: Rejection) -> Result<(), Rejected> {
    Err(rejection.to_string().into())
}

fn control_reason(request: ControlRequest, default: &str) -> Reason {
    Reason {
        reason: request
            .reason
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| default.to_owned()),
        requested_by: request.requested_by,
    }
}

impl AgentTaskWorkflow {
    fn max_steps(&self) -> u32 {
        self.input
            .parameters
            .max_steps
            .unwrap_or(self.input.agent.agent.max_steps)
    }

    fn conversation(&self) -> bool {
        self.input.parameters.conversation.unwrap_or(false)
    }

    fn on_budget_exceeded(&self) -> OnBudgetExceeded {
        self.input.parameters.on_budget_exceeded.unwrap_or_default()
    }

    fn requires_approval(&self, tool: &str) -> bool {
        self.input
            .parameters
            .require_approval
            .as_ref()
            .unwrap_or(&self.input.agent.agent.require_approval)
            .iter()
            .any(|t| t == "*" || t == tool)
    }

    fn next_seq(&self) -> Seq {
        self.log.next_seq()
    }

    fn emit(&mut self, now: SystemTime, kind: EventKind) {
        let event = Event {
            seq: self.next_seq(),
            kind,
            task_id: self.input.task_id,
            agent_id: self.input.agent.agent_id.clone(),
            timestamp: now.into(),
            step: self.step,
        };
        if let Err(error) = self.log.append(event) {
            tracing::error!(task_id = %self.input.task_id, %error, "an event was not appended");
        }
    }

    /// Appends events an activity numbered; they must continue the log densely.
    fn append(&mut self, events: Vec<Event>) -> Result<(), String> {
        self.log
            .extend(events)
            .map(|_| ())
            .map_err(|error| format!("an activity's events do not continue the log: {error}"))
    }

    /// Whether this run's log has room for `bytes` more and, after them, a terminal event that
    /// repeats half as much again (a final answer is in its LLM call's events and in
    /// `WorkflowCompleted`), within `max_run_log_bytes`.
    fn has_room_for(&self, bytes: usize) -> bool {
        self.log.encoded_bytes() + bytes + bytes / 2 <= self.input.settings.limits.max_run_log_bytes
    }

    /// The text of the last `WorkflowLLMCallCompleted` in the log.
    fn last_answer(&self) -> Option<String> {
        self.log.events().iter().rev().find_map(|e| match &e.kind {
            EventKind::LlmCallCompleted(done) => Some(done.content.clone()),
            _ => None,
        })
    }

    /// How much of the call starting at `seq_base` is in the log already: through which seq,
    /// and how many JSON bytes.
    fn durable_part(&self, seq_base: Seq) -> (Option<Seq>, usize) {
        let held = self.log.after(Seq(seq_base.0.saturating_sub(1)));
        let bytes = held.iter().map(agentflow_shared::log::encoded_len).sum();
        (held.last().map(|e| e.seq), bytes)
    }

    /// The payload bytes left for the log beside `used` bytes of other content, all counted
    /// (Temporal's payload limit, less room for the payload's envelope).
    fn payload_room(&self, used: usize) -> usize {
        const ENVELOPE_BYTES: usize = 4 * 1024;
        let limits = self.input.settings.limits;
        limits
            .payload_limit_bytes
            .saturating_sub(ENVELOPE_BYTES + used)
    }

    /// The events appended since the last LLM call, for the next one to publish on the bus
    /// first (at most `max_bytes` of them, oldest first; the rest reach clients from Temporal).
    /// They are durable: the workflow task that schedules the call is the one that made them.
    fn hand_over(&mut self, max_bytes: usize) -> Vec<Event> {
        let mut bytes = 0;
        let events = self
            .log
            .after(self.handed)
            .iter()
            .take_while(|event| {
                bytes += serde_json::to_vec(event).map_or(usize::MAX / 2, |b| b.len());
                bytes <= max_bytes
            })
            .cloned()
            .collect();
        self.handed = Seq(self.next_seq().0 - 1);
        events
    }

    fn state(&self) -> TaskState {
        let limit = self.budget_limit;
        TaskState {
            task_id: self.input.task_id,
            agent_id: self.input.agent.agent_id.clone(),
            status: self.status,
            step: self.step,
            cost_usd: self.cost_usd,
            budget_limit_usd: limit,
            budget_remaining_usd: (limit - self.cost_usd).max(0.0),
            usage: self.usage,
            paused: self.controls.paused || self.controls.budget_paused,
            last_seq: self.log.last_seq(),
            final_response: self.final_response.clone(),
            turn: self.turn,
            pending_approvals: self
                .approvals
                .iter()
                .filter(|a| a.decision.is_none())
                .map(|a| a.pending.clone())
                .collect(),
            first_seq: self.log.first_seq(),
        }
    }

    /// Refuses any control of a finished task.
    fn check_open(&self) -> Result<(), Rejected> {
        if self.status.is_finished() {
            return reject(Rejection::Conflict(format!(
                "task {} is already {}",
                self.input.task_id,
                self.status.as_str()
            )));
        }
        Ok(())
    }

    fn cancel_reason(&self) -> Option<Reason> {
        self.controls.cancel.clone()
    }

    /// Whether a handler recorded something the loop should act on while it waits.
    /// Whether no control waits to be acted on (cancel, close, pause, resume, budget raise).
    fn controls_idle(&self) -> bool {
        let controls = &self.controls;
        controls.cancel.is_none()
            && controls.close.is_none()
            && controls.pause.is_none()
            && controls.resume.is_none()
            && controls.budget_raise.is_none()
    }

    fn has_news(&self) -> bool {
        self.controls.cancel.is_some()
            || self.controls.budget_raise.is_some()
            || self
                .approvals
                .iter()
                .any(|a| a.decision.is_some() && !a.announced)
    }
}

fn now(ctx: &WorkflowContext<AgentTaskWorkflow>) -> SystemTime {
    ctx.workflow_time().unwrap_or(UNIX_EPOCH)
}

fn set_status(ctx: &WorkflowContext<AgentTaskWorkflow>, status: TaskStatus) {
    ctx.state_mut(|s| s.status = status);
    ctx.upsert_search_attributes([TASK_STATUS.value_set(status.as_str().to_owned())]);
}

fn emit(ctx: &WorkflowContext<AgentTaskWorkflow>, kind: EventKind) {
    let at = now(ctx);
    ctx.state_mut(|s| s.emit(at, kind));
}

/// The cancellation asked for by the `cancel` update or by Temporal (`temporal workflow cancel`).
fn cancellation(ctx: &WorkflowContext<AgentTaskWorkflow>) -> Option<Reason> {
    ctx.state(AgentTaskWorkflow::cancel_reason).or_else(|| {
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

/// Applies a requested budget raise: the new limit and its event.
fn apply_budget_raise(ctx: &WorkflowContext<AgentTaskWorkflow>) {
    let Some(raise) = ctx.state_mut(|s| s.controls.budget_raise.take()) else {
        return;
    };
    let warn_pct = ctx.state(|s| s.input.settings.budget_warning_pct);
    let previous = ctx.state_mut(|s| {
        let previous = s.budget_limit;
        s.budget_limit = raise.budget_usd;
        if s.cost_usd < s.budget_limit * warn_pct / 100.0 {
            s.budget_warned = false;
        }
        previous
    });
    emit(
        ctx,
        EventKind::BudgetRaised(BudgetRaised {
            previous_limit_usd: previous,
            limit_usd: raise.budget_usd,
            requested_by: raise.requested_by,
        }),
    );
}

/// Emits `WorkflowApprovalReceived` for decisions made since the last call.
fn announce_decisions(ctx: &WorkflowContext<AgentTaskWorkflow>) {
    let decided: Vec<ApprovalReceived> = ctx.state_mut(|s| {
        s.approvals
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
    });
    for received in decided {
        emit(ctx, EventKind::ApprovalReceived(received));
    }
}

/// A safe point between activities: applies a budget raise, honours a cancellation, and
/// holds a requested pause until it is resumed.
async fn checkpoint(ctx: &WorkflowContext<AgentTaskWorkflow>) -> Result<(), Outcome> {
    apply_budget_raise(ctx);
    if let Some(reason) = cancellation(ctx) {
        return Err(Outcome::Cancelled(reason));
    }
    let Some(reason) = ctx.state_mut(|s| s.controls.pause.take()) else {
        return Ok(());
    };
    ctx.state_mut(|s| s.controls.paused = true);
    paused(ctx, reason);
    loop {
        let woke = ctx
            .wait_condition(|s: &AgentTaskWorkflow| s.controls.resume.is_some() || s.has_news())
            .await;
        apply_budget_raise(ctx);
        if let Some(reason) = cancellation(ctx) {
            return Err(Outcome::Cancelled(reason));
        }
        if woke.is_err() {
            continue;
        }
        if let Some(resume) = ctx.state_mut(|s| s.controls.resume.take()) {
            ctx.state_mut(|s| s.controls.paused = false);
            resumed(ctx, resume);
            return Ok(());
        }
    }
}

/// The budget is spent and the task pauses on it: waits for a raise above the cost.
async fn budget_pause(ctx: &WorkflowContext<AgentTaskWorkflow>, cost: f64) -> Result<(), Outcome> {
    ctx.state_mut(|s| s.controls.budget_paused = true);
    paused(ctx, Reason::new("budget"));
    loop {
        let _ = ctx
            .wait_condition(|s: &AgentTaskWorkflow| s.has_news())
            .await;
        if let Some(reason) = cancellation(ctx) {
            return Err(Outcome::Cancelled(reason));
        }
        let by = ctx.state(|s| {
            s.controls
                .budget_raise
                .as_ref()
                .and_then(|r| r.requested_by.clone())
        });
        apply_budget_raise(ctx);
        if ctx.state(|s| s.budget_limit) > cost {
            ctx.state_mut(|s| s.controls.budget_paused = false);
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

/// Records that the task paused, in the log and in its status.
fn paused(ctx: &WorkflowContext<AgentTaskWorkflow>, reason: Reason) {
    emit(ctx, EventKind::Paused(reason));
    set_status(ctx, TaskStatus::Paused);
}

/// Records that the task resumed, in the log and in its status.
fn resumed(ctx: &WorkflowContext<AgentTaskWorkflow>, reason: Reason) {
    emit(ctx, EventKind::Resumed(reason));
    set_status(ctx, TaskStatus::Running);
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

fn error_message(error: &ActivityExecutionError) -> String {
    error
        .reason()
        .map(|r| r.failure().message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| error.to_string())
}

/// Cancels `token` once the task is asked to cancel; never resolves otherwise.
async fn cancel_on_request(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    token: &WorkflowCancellationToken,
) {
    let _ = ctx
        .wait_condition(|s: &AgentTaskWorkflow| s.controls.cancel.is_some())
        .await;
    token.cancel();
    std::future::pending::<()>().await
}

#[workflow_methods]
impl AgentTaskWorkflow {
    /// Builds the initial state from the task input (and what a previous run carried over).
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: TaskInput) -> Self {
        let pending = input.query.clone().map(|query| ExecuteRequest {
            query,
            enable_streaming: None,
        });
        let budget = input
            .parameters
            .budget_usd
            .unwrap_or(input.agent.agent.budget_usd);
        let mut state = Self {
            log: EventLog::new(),
            handed: Seq(0),
            running_call: None,
            status: TaskStatus::Created,
            step: 0,
            turn: 0,
            cost_usd: 0.0,
            usage: Usage::default(),
            budget_limit: budget,
            pending,
            final_response: None,
            budget_warned: false,
            messages: Vec::new(),
            controls: Controls::default(),
            approvals: Vec::new(),
            input,
        };
        if let Some(carried) = state.input.carried.take() {
            let carried = *carried;
            state.log = EventLog::starting_at(carried.first_seq);
            state.handed = Seq(carried.first_seq.0 - 1);
            state.status = TaskStatus::Waiting;
            state.step = carried.step;
            state.turn = carried.turn;
            state.cost_usd = carried.cost_usd;
            state.usage = carried.usage;
            state.budget_limit = carried.budget_limit_usd;
            state.budget_warned = carried.budget_warned;
            state.final_response = carried.final_response;
            state.messages = carried.messages;
        }
        state
    }

    /// Waits for a query (or the idle timeout), runs the agent loop — turn after turn in a
    /// conversation — and returns this run's log.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<TaskResult> {
        let idle = Duration::from_secs(ctx.state(|s| s.input.settings.idle_timeout_secs));
        let conversation = ctx.state(Self::conversation);
        let outcome = loop {
            let idled = temporalio_sdk::workflows::select! {
                _ = ctx.wait_condition(|s: &Self| {
                    s.pending.is_some()
                        || s.controls.cancel.is_some()
                        || s.controls.close.is_some()
                        || s.controls.budget_raise.is_some()
                }) => false,
                _ = ctx.timer(idle) => true,
            };
            apply_budget_raise(ctx);
            if let Some(reason) = cancellation(ctx) {
                break Outcome::Cancelled(reason);
            }
            let turns = ctx.state(|s| s.turn);
            if ctx.state(|s| s.controls.close.is_some()) {
                break Outcome::Closed;
            }
            let Some(request) = ctx.state(|s| s.pending.clone()) else {
                if !idled {
                    continue;
                }
                if turns > 0 {
                    break Outcome::Closed;
                }
                break Outcome::Cancelled(Reason::new(format!(
                    "idle timeout: no execute within {}s",
                    idle.as_secs()
                )));
            };
            match run_agent(ctx, request).await {
                Outcome::Completed(answer) if conversation => {
                    let turn = ctx.state_mut(|s| {
                        s.turn += 1;
                        s.final_response = Some(answer.clone());
                        s.messages
                            .push(ChatMessage::assistant(Some(answer.clone()), Vec::new()));
                        s.pending = None;
                        s.controls.pause = None;
                        s.turn
                    });
                    let total_cost_usd = ctx.state(|s| s.cost_usd);
                    emit(
                        ctx,
                        EventKind::TurnCompleted(TurnCompleted {
                            turn,
                            final_response: answer,
                            total_cost_usd,
                        }),
                    );
                    let limit = ctx.state(|s| s.input.settings.limits.max_conversation_bytes);
                    let mut messages = ctx.state(|s| s.messages.clone());
                    if let Ok(Some(trimmed)) = trim_conversation(&mut messages, limit) {
                        ctx.state_mut(|s| s.messages = messages);
                        emit(ctx, EventKind::ConversationTrimmed(trimmed));
                    }
                    set_status(ctx, TaskStatus::Waiting);
                    let full = ctx.state(|s| {
                        let limits = s.input.settings.limits;
                        s.log.len() as u64 >= u64::from(s.input.settings.max_events_per_run)
                            || 2 * s.log.encoded_bytes() >= limits.max_run_log_bytes
                            || !s.has_room_for(limits.max_call_event_bytes)
                    });
                    if full || ctx.continue_as_new_suggested() {
                        let archived = carried_input(ctx)
                            .carried
                            .is_some_and(|c| !c.previous_events_included);
                        if archived {
                            archive_log(ctx).await;
                        }
                        // A query accepted while the log was archived goes to the next run;
                        // a control (cancel, close, pause, budget) is this run's to act on.
                        if !archived || ctx.state(Self::controls_idle) {
                            return Err(continue_as_new(ctx, carried_input(ctx)));
                        }
                    }
                }
                other => break other,
            }
        };
        finish(ctx, outcome);
        let result = ctx.state(|s| {
            let state = s.state();
            let room = s.payload_room(json_bytes(&state));
            let events_included = s.log.encoded_bytes() <= room;
            TaskResult {
                state,
                events: if events_included {
                    s.log.events().to_vec()
                } else {
                    Vec::new()
                },
                events_included,
            }
        });
        if !result.events_included {
            archive_log(ctx).await;
        }
        Ok(result)
    }

    /// Checks an `execute` before it is accepted into history.
    #[update_validator(execute)]
    fn validate_execute(
        &self,
        _ctx: &WorkflowContextView,
        request: &ExecuteRequest,
    ) -> Result<(), Rejected> {
        if request.query.trim().is_empty() {
            return Err("the query must not be empty".into());
        }
        if self.status.is_finished() {
            return Err(format!(
                "task {} is already {}; create a new task to run another query",
                self.input.task_id,
                self.status.as_str()
            )
            .into());
        }
        if self.pending.is_some() {
            return Err(format!("task {} is already running", self.input.task_id).into());
        }
        if self.controls.close.is_some() || self.controls.cancel.is_some() {
            return Err(format!("task {} is ending", self.input.task_id).into());
        }
        Ok(())
    }

    /// Starts the agent run (a conversation's next turn) with this query.
    #[update]
    pub fn execute(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: ExecuteRequest,
    ) -> ExecuteAccepted {
        let streaming = request
            .enable_streaming
            .or(self.input.parameters.enable_streaming)
            .unwrap_or(self.input.agent.agent.enable_streaming);
        self.pending = Some(request);
        ExecuteAccepted {
            task_id: self.input.task_id,
            mode: Mode::from_streaming(streaming),
        }
    }

    /// Checks a `pause`: only a running (or approval-waiting), unpaused task can pause.
    #[update_validator(pause)]
    fn validate_pause(
        &self,
        _ctx: &WorkflowContextView,
        _request: &ControlRequest,
    ) -> Result<(), Rejected> {
        self.check_open()?;
        let task = self.input.task_id;
        if self.controls.paused || self.controls.budget_paused || self.controls.pause.is_some() {
            return reject(Rejection::Conflict(format!(
                "task {task} is already paused"
            )));
        }
        if !matches!(
            self.status,
            TaskStatus::Running | TaskStatus::WaitingApproval
        ) {
            return reject(Rejection::Conflict(format!(
                "task {task} is not running (it is {})",
                self.status.as_str()
            )));
        }
        Ok(())
    }

    /// Pauses the run at its next safe point (between activities).
    #[update]
    pub fn pause(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: ControlRequest,
    ) -> ControlAccepted {
        self.controls.pause = Some(control_reason(request, "paused"));
        self.state()
    }

    /// Checks a `resume`: only a task a person paused (or asked to pause) can resume.
    #[update_validator(resume)]
    fn validate_resume(
        &self,
        _ctx: &WorkflowContextView,
        _request: &ControlRequest,
    ) -> Result<(), Rejected> {
        self.check_open()?;
        let task = self.input.task_id;
        if self.controls.budget_paused {
            return reject(Rejection::Conflict(format!(
                "task {task} is paused because its budget is spent; raise the budget to resume it"
            )));
        }
        if !self.controls.paused && self.controls.pause.is_none() {
            return reject(Rejection::Conflict(format!("task {task} is not paused")));
        }
        Ok(())
    }

    /// Resumes a paused run (or withdraws a pause that has not taken effect yet).
    #[update]
    pub fn resume(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: ControlRequest,
    ) -> ControlAccepted {
        if self.controls.paused {
            self.controls.resume = Some(control_reason(request, "resumed"));
        } else {
            self.controls.pause = None;
        }
        self.state()
    }

    /// Checks a `cancel`: a finished task cannot be cancelled.
    #[update_validator(cancel)]
    fn validate_cancel(
        &self,
        _ctx: &WorkflowContextView,
        _request: &ControlRequest,
    ) -> Result<(), Rejected> {
        self.check_open()
    }

    /// Cancels the task: a running LLM call is cancelled through its heartbeat, and
    /// `WorkflowCancelled` ends the log. Asking again while it ends changes nothing.
    #[update]
    pub fn cancel(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: ControlRequest,
    ) -> ControlAccepted {
        if self.controls.cancel.is_none() {
            self.controls.cancel = Some(control_reason(request, "cancelled"));
        }
        self.state()
    }

    /// Checks a `close`: only a conversation between turns can be closed.
    #[update_validator(close)]
    fn validate_close(
        &self,
        _ctx: &WorkflowContextView,
        _request: &ControlRequest,
    ) -> Result<(), Rejected> {
        self.check_open()?;
        let task = self.input.task_id;
        if !self.conversation() {
            return reject(Rejection::Conflict(format!(
                "task {task} is not a conversation; cancel it instead"
            )));
        }
        if self.pending.is_some() {
            return reject(Rejection::Conflict(format!(
                "task {task} is running a turn; wait for WorkflowTurnCompleted or cancel it"
            )));
        }
        if self.turn == 0 {
            return reject(Rejection::Conflict(format!(
                "task {task} has had no turn yet; cancel it instead"
            )));
        }
        Ok(())
    }

    /// Ends a conversation with `WorkflowCompleted`.
    #[update]
    pub fn close(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: ControlRequest,
    ) -> ControlAccepted {
        if self.controls.close.is_none() {
            self.controls.close = Some(control_reason(request, "closed"));
        }
        self.state()
    }

    /// Checks a decision: the approval must exist, and a second decision must repeat the first.
    #[update_validator(decide_approval)]
    fn validate_decide_approval(
        &self,
        _ctx: &WorkflowContextView,
        decision: &ApprovalDecision,
    ) -> Result<(), Rejected> {
        self.check_open()?;
        let id = &decision.approval_id;
        let Some(approval) = self.approvals.iter().find(|a| &a.pending.approval_id == id) else {
            return reject(Rejection::NotFound(format!(
                "task {} has no approval `{id}`",
                self.input.task_id
            )));
        };
        if let Some(arguments) = &decision.request.arguments
            && !arguments.is_object()
        {
            return reject(Rejection::Invalid("arguments must be a JSON object".into()));
        }
        match &approval.decision {
            Some(made) if made != &decision.request => reject(Rejection::Conflict(format!(
                "approval `{id}` was already decided ({})",
                match made.decision {
                    Decision::Approve => "approved",
                    Decision::Reject => "rejected",
                }
            ))),
            _ => Ok(()),
        }
    }

    /// Records a decision on a tool call (the same decision again is a no-op).
    #[update]
    pub fn decide_approval(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        decision: ApprovalDecision,
    ) -> ControlAccepted {
        if let Some(approval) = self
            .approvals
            .iter_mut()
            .find(|a| a.pending.approval_id == decision.approval_id)
            && approval.decision.is_none()
        {
            approval.decision = Some(decision.request);
        }
        self.state()
    }

    /// Checks a budget raise: a positive amount above the current limit.
    #[update_validator(raise_budget)]
    fn validate_raise_budget(
        &self,
        _ctx: &WorkflowContextView,
        request: &BudgetRequest,
    ) -> Result<(), Rejected> {
        self.check_open()?;
        if !(request.budget_usd.is_finite() && request.budget_usd > 0.0) {
            return reject(Rejection::Invalid(
                "budget_usd must be a positive number".into(),
            ));
        }
        let current = self
            .controls
            .budget_raise
            .as_ref()
            .map_or(self.budget_limit, |r| r.budget_usd);
        if request.budget_usd <= current {
            return reject(Rejection::Invalid(format!(
                "budget_usd must be above the current limit of ${current}"
            )));
        }
        if self.controls.budget_paused && request.budget_usd <= self.cost_usd {
            return reject(Rejection::Invalid(format!(
                "budget_usd must be above the cost so far (${}) to resume the task",
                self.cost_usd
            )));
        }
        Ok(())
    }

    /// Raises the budget limit (applied at the next safe point, at once when paused on it).
    #[update]
    pub fn raise_budget(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: BudgetRequest,
    ) -> ControlAccepted {
        self.controls.budget_raise = Some(request);
        self.state()
    }

    /// Checks a checkpoint: it comes from the call attempt the workflow waits for, and its
    /// events continue the log (those the log holds already must be the same).
    #[update_validator(checkpoint_call)]
    fn validate_checkpoint_call(
        &self,
        _ctx: &WorkflowContextView,
        checkpoint: &CallCheckpoint,
    ) -> Result<(), Rejected> {
        let running = RunningCall {
            seq_base: checkpoint.seq_base,
            attempt: checkpoint.attempt,
        };
        if self.running_call != Some(running) {
            return reject(Rejection::Conflict(format!(
                "attempt {} of the call at seq {} is not the one running",
                checkpoint.attempt, checkpoint.seq_base.0
            )));
        }
        match self.log.accepts(&checkpoint.events) {
            Ok(()) => Ok(()),
            Err(error) => reject(Rejection::Invalid(format!(
                "the checkpoint does not continue the log: {error}"
            ))),
        }
    }

    /// Appends a running call's events to the log (they are durable from now on); returns
    /// the last seq the log holds.
    #[update]
    pub fn checkpoint_call(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        checkpoint: CallCheckpoint,
    ) -> Seq {
        if let Err(error) = self.log.extend(checkpoint.events) {
            tracing::error!(%error, "a validated checkpoint did not continue the log");
        }
        self.log.last_seq()
    }

    /// A page of the event log: events with `seq > after`, at most `limit` (this run's part).
    #[query]
    pub fn get_events(&self, _ctx: &WorkflowContextView, query: EventsQuery) -> EventsPage {
        self.log.page(query.0, EventsRange::MAX_PAGE_BYTES)
    }

    /// Status, step, cost, budget, pending approvals and the last seq.
    #[query]
    pub fn get_current_state(&self, _ctx: &WorkflowContextView) -> TaskState {
        self.state()
    }

    /// The final answer, once there is one.
    #[query]
    pub fn get_final_response(&self, _ctx: &WorkflowContextView) -> Option<String> {
        self.final_response.clone()
    }
}

/// The JSON size of `value`.
fn json_bytes(value: &impl serde::Serialize) -> usize {
    serde_json::to_vec(value).map_or(0, |bytes| bytes.len())
}

/// The input of the next run: the task's, with the state it needs (and this run's log when
/// it fits).
fn carried_input(ctx: &WorkflowContext<AgentTaskWorkflow>) -> TaskInput {
    ctx.state(|s| {
        let mut input = s.input.clone();
        // A query accepted while the run archived its log is the next run's first.
        input.query = s.pending.as_ref().map(|request| request.query.clone());
        let mut carried = Carried {
            first_seq: s.next_seq(),
            previous_events: Vec::new(),
            previous_events_included: false,
            messages: s.messages.clone(),
            turn: s.turn,
            step: s.step,
            cost_usd: s.cost_usd,
            usage: s.usage,
            budget_limit_usd: s.budget_limit,
            budget_warned: s.budget_warned,
            final_response: s.final_response.clone(),
        };
        // The log rides along when it fits; a larger one is read from the ended run.
        if s.log.encoded_bytes() <= s.payload_room(json_bytes(&input) + json_bytes(&carried)) {
            carried.previous_events = s.log.events().to_vec();
            carried.previous_events_included = true;
        }
        input.carried = Some(Box::new(carried));
        input
    })
}

/// Records this run's log in history, in chunks of at most half a payload (one larger event
/// alone), as the inputs of `archive_log` activities: the api reads a closed run's log from
/// there when it is in neither the result nor the next run's input — without a worker.
async fn archive_log(ctx: &WorkflowContext<AgentTaskWorkflow>) {
    let (chunks, retry_ms) = ctx.state(|s| {
        let max = s.input.settings.limits.payload_limit_bytes / 2;
        let mut chunks: Vec<Vec<Event>> = vec![Vec::new()];
        let mut bytes = 0;
        for event in s.log.events() {
            let size = agentflow_shared::log::encoded_len(event);
            if bytes + size > max && chunks.last().is_some_and(|c| !c.is_empty()) {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            chunks
                .last_mut()
                .expect("one chunk at least")
                .push(event.clone());
        }
        (chunks, s.input.settings.llm_retry_initial_ms)
    });
    for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
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

fn finish(ctx: &WorkflowContext<AgentTaskWorkflow>, outcome: Outcome) {
    let completed = |final_response: String| {
        ctx.state_mut(|s| {
            s.final_response = Some(final_response.clone());
            EventKind::Completed(Completed {
                final_response,
                steps: s.step,
                total_cost_usd: s.cost_usd,
                usage: s.usage,
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

/// Patch id: LLM calls retried by the workflow (one attempt per activity, the failed attempt's
/// events carried into the next), waiting for a cancelled call's events. Histories recorded
/// before it replay with Temporal's retries.
const LLM_CALLS_V2: &str = "llm-calls-v2";
/// Patch: a call that ends for good while its events may be on the bus is recovered from it.
const BUS_RECOVERY: &str = "bus-recovery";

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

/// Whether a failure message is Temporal's (or an SDK's) refusal of an oversized payload.
fn is_size_limit(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    (message.contains("exceed") && message.contains("limit"))
        || message.contains("payloadsizeerror")
}

/// Runs the LLM activity until it answers, fails for good, or the task is cancelled.
///
/// Retries are the workflow's: a failed attempt's events (from its failure details or last
/// heartbeat) are carried into the next attempt, and a cancel during the backoff still returns
/// them, so nothing a client saw is lost (Invariant 1).
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
        let (durable_through, durable_bytes) = ctx.state_mut(|s| {
            s.running_call = Some(RunningCall {
                seq_base: call.seq_base,
                attempt,
            });
            s.durable_part(call.seq_base)
        });
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
        ctx.state_mut(|s| s.running_call = None);
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
        let cancelled = temporalio_sdk::workflows::select! {
            _ = ctx.timer(backoff) => false,
            _ = ctx.wait_condition(|s: &AgentTaskWorkflow| s.controls.cancel.is_some()) => true,
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
        seq_base: call.seq_base,
        attempt: last_attempt + 1,
        previous_events: previous.events.clone(),
        durable_through: ctx.state(|s| s.durable_part(call.seq_base).0),
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

async fn run_agent(
    ctx: &mut WorkflowContext<AgentTaskWorkflow>,
    request: ExecuteRequest,
) -> Outcome {
    set_status(ctx, TaskStatus::Running);
    let (input, max_steps, conversation) =
        ctx.state(|s| (s.input.clone(), s.max_steps(), s.conversation()));
    let mode = Mode::from_streaming(
        request
            .enable_streaming
            .or(input.parameters.enable_streaming)
            .unwrap_or(input.agent.agent.enable_streaming),
    );
    let (budget, turn) = ctx.state(|s| (s.budget_limit, s.turn));
    emit(
        ctx,
        EventKind::Started(Started {
            query: request.query.clone(),
            mode,
            max_steps,
            budget_limit_usd: budget,
            model: input.agent.model_name.clone(),
            turn: conversation.then_some(turn + 1),
        }),
    );
    let instructions = input
        .parameters
        .instructions
        .clone()
        .unwrap_or_else(|| input.agent.agent.instructions.clone());
    let mut messages = if conversation {
        ctx.state(|s| s.messages.clone())
    } else {
        Vec::new()
    };
    if messages.is_empty() && !instructions.trim().is_empty() {
        messages.push(ChatMessage::text(Role::System, instructions));
    }
    messages.push(ChatMessage::text(Role::User, request.query.clone()));
    if conversation {
        ctx.state_mut(|s| s.messages = messages.clone());
    }
    let settings = &input.settings;

    for _ in 1..=max_steps {
        if let Err(outcome) = checkpoint(ctx).await {
            return outcome;
        }
        let limits = settings.limits;
        if !ctx.state(|s| s.has_room_for(limits.max_call_event_bytes)) {
            return log_limit(ctx, "another LLM call");
        }
        let step = ctx.state_mut(|s| {
            s.step += 1;
            s.step
        });
        emit(ctx, EventKind::StepStarted(StepStarted { step }));
        match trim_conversation(&mut messages, limits.max_conversation_bytes) {
            Ok(None) => {}
            Ok(Some(trimmed)) => {
                if conversation {
                    ctx.state_mut(|s| s.messages = messages.clone());
                }
                emit(ctx, EventKind::ConversationTrimmed(trimmed));
            }
            Err(bytes) => {
                return Outcome::Failed(
                    ErrorInfo {
                        kind: "context_limit".into(),
                        message: format!(
                            "this turn's messages ({bytes} bytes) exceed \
                             worker.limits.max_conversation_bytes ({})",
                            limits.max_conversation_bytes
                        ),
                    },
                    false,
                );
            }
        }
        let call = LlmCallInput {
            task_id: input.task_id,
            agent_id: input.agent.agent_id.clone(),
            step,
            seq_base: ctx.state(|s| s.next_seq()),
            mode,
            model_name: input.agent.model_name.clone(),
            model: input.agent.model.clone(),
            messages: messages.clone(),
            tool_names: input.agent.agent.tools.clone(),
            cost_before_usd: ctx.state(|s| s.cost_usd),
            previous_events: Vec::new(),
            attempt: 1,
            max_event_bytes: limits.max_call_event_bytes,
            recover_from_bus: false,
            workflow_events: ctx.state_mut(|s| s.hand_over(limits.max_handed_event_bytes)),
            durable_through: None,
            durable_bytes: 0,
            max_answer_bytes: limits.max_answer_bytes,
            checkpoint_bytes: limits.checkpoint_bytes,
        };
        let LlmCallOutput {
            events,
            mut response,
            cost_usd,
        } = match call_llm(ctx, call, settings).await {
            Ok(output) => output,
            Err(failure) => {
                let (events, outcome) = match failure {
                    LlmFailure::Cancelled(events) => (
                        events,
                        Outcome::Cancelled(
                            cancellation(ctx)
                                .unwrap_or_else(|| Reason::new("the task was cancelled")),
                        ),
                    ),
                    LlmFailure::Failed {
                        events,
                        message,
                        retryable,
                    } => (
                        events,
                        Outcome::Failed(
                            ErrorInfo {
                                kind: "llm_error".into(),
                                message,
                            },
                            retryable,
                        ),
                    ),
                };
                if let Err(problem) = ctx.state_mut(|s| s.append(events)) {
                    return Outcome::Failed(internal(problem), false);
                }
                return match cancellation(ctx) {
                    Some(reason) => Outcome::Cancelled(reason),
                    None => outcome,
                };
            }
        };
        if let Err(problem) = ctx.state_mut(|s| s.append(events)) {
            return Outcome::Failed(internal(problem), false);
        }
        // The call's own events went live with it.
        ctx.state_mut(|s| s.handed = Seq(s.next_seq().0 - 1));
        // The answer's text travels once, in `WorkflowLLMCallCompleted`.
        if response.content.is_empty() {
            response.content = ctx.state(|s| s.last_answer()).unwrap_or_default();
        }
        let (cost, tokens) = ctx.state_mut(|s| {
            s.cost_usd += cost_usd;
            s.usage = s.usage + response.usage;
            (s.cost_usd, s.usage.total_tokens)
        });
        apply_budget_raise(ctx);
        let budget = ctx.state(|s| s.budget_limit);
        if cost > budget {
            emit(
                ctx,
                EventKind::BudgetExceeded(BudgetExceeded {
                    cost_usd: cost,
                    limit_usd: budget,
                }),
            );
            if ctx.state(AgentTaskWorkflow::on_budget_exceeded) == OnBudgetExceeded::Fail {
                return Outcome::Failed(
                    ErrorInfo {
                        kind: "budget_exceeded".into(),
                        message: format!("cost ${cost:.6} exceeded the budget of ${budget:.6}"),
                    },
                    false,
                );
            }
            if let Err(outcome) = budget_pause(ctx, cost).await {
                return outcome;
            }
        }
        let budget = ctx.state(|s| s.budget_limit);
        let warn_at = budget * settings.budget_warning_pct / 100.0;
        if cost >= warn_at && !ctx.state(|s| s.budget_warned) {
            ctx.state_mut(|s| s.budget_warned = true);
            emit(
                ctx,
                EventKind::BudgetWarning(BudgetWarning {
                    cost_usd: cost,
                    limit_usd: budget,
                    usage_pct: if budget > 0.0 {
                        cost / budget * 100.0
                    } else {
                        100.0
                    },
                }),
            );
        }
        if let Err(outcome) = checkpoint(ctx).await {
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
            if !ctx.state(|s| s.has_room_for(tool_bytes)) {
                return log_limit(ctx, "this step's tool calls");
            }
            messages.push(ChatMessage::assistant(
                (!response.content.is_empty()).then(|| response.content.clone()),
                response.tool_calls.clone(),
            ));
            match run_tools(ctx, step, &response.tool_calls, &input).await {
                Ok(results) => messages.extend(results),
                Err(outcome) => return outcome,
            }
            if conversation {
                ctx.state_mut(|s| s.messages = messages.clone());
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
    Outcome::Failed(
        ErrorInfo {
            kind: "max_steps".into(),
            message: format!("no final answer within {max_steps} steps"),
        },
        false,
    )
}

/// Ends a turn whose log would outgrow the run: `WorkflowFailed {kind: "log_limit"}`.
fn log_limit(ctx: &WorkflowContext<AgentTaskWorkflow>, what: &str) -> Outcome {
    let (bytes, limit) = ctx.state(|s| {
        (
            s.log.encoded_bytes(),
            s.input.settings.limits.max_run_log_bytes,
        )
    });
    Outcome::Failed(
        ErrorInfo {
            kind: "log_limit".into(),
            message: format!(
                "the log ({bytes} bytes) has no room for {what} within \
                 worker.limits.max_run_log_bytes ({limit})"
            ),
        },
        false,
    )
}

/// Drops the oldest whole turns (a user message up to the next one), keeping the
/// instructions and the current turn, until the conversation's JSON fits in `limit`. Says what
/// it dropped, or — when the current turn alone does not fit — its size.
fn trim_conversation(
    messages: &mut Vec<ChatMessage>,
    limit: usize,
) -> Result<Option<ConversationTrimmed>, usize> {
    let sizes: Vec<usize> = messages
        .iter()
        .map(|m| serde_json::to_vec(m).map_or(0, |b| b.len()))
        .collect();
    let total: usize = sizes.iter().sum();
    if total <= limit {
        return Ok(None);
    }
    let start = usize::from(messages.first().is_some_and(|m| m.role == Role::System));
    let current = messages
        .iter()
        .rposition(|m| m.role == Role::User)
        .unwrap_or(start)
        .max(start);
    let cut = (start + 1..=current)
        .filter(|&i| messages[i].role == Role::User)
        .find(|&cut| total - sizes[start..cut].iter().sum::<usize>() <= limit);
    let Some(cut) = cut else {
        return Err(total - sizes[start..current].iter().sum::<usize>());
    };
    messages.drain(start..cut);
    Ok(Some(ConversationTrimmed {
        dropped_messages: cut - start,
        kept_messages: messages.len(),
        bytes: total - sizes[start..cut].iter().sum::<usize>(),
        limit_bytes: limit,
    }))
}

fn internal(message: String) -> ErrorInfo {
    ErrorInfo {
        kind: "internal".into(),
        message,
    }
}

/// Asks for a decision on every call that needs one and waits until all are made; returns
/// each call's decision (`None`: no approval needed).
async fn approvals(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    step: u32,
    calls: &[ToolCall],
) -> Result<Vec<Option<ApprovalRequest>>, Outcome> {
    let ids: Vec<Option<String>> = calls
        .iter()
        .enumerate()
        .map(|(index, call)| {
            ctx.state(|s| s.requires_approval(&call.name))
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
        ctx.state_mut(|s| {
            s.approvals.push(Approval {
                pending: pending.clone(),
                decision: None,
                announced: false,
            })
        });
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
    set_status(ctx, TaskStatus::WaitingApproval);
    let decided = |s: &AgentTaskWorkflow, id: &str| {
        s.approvals
            .iter()
            .find(|a| a.pending.approval_id == id)
            .and_then(|a| a.announced.then(|| a.decision.clone()).flatten())
    };
    loop {
        apply_budget_raise(ctx);
        announce_decisions(ctx);
        if let Some(reason) = cancellation(ctx) {
            return Err(Outcome::Cancelled(reason));
        }
        let all = ctx.state(|s| ids.iter().flatten().all(|id| decided(s, id).is_some()));
        if all {
            break;
        }
        let _ = ctx
            .wait_condition(|s: &AgentTaskWorkflow| s.has_news())
            .await;
    }
    set_status(ctx, TaskStatus::Running);
    Ok(ctx.state(|s| {
        ids.iter()
            .map(|id| id.as_deref().and_then(|id| decided(s, id)))
            .collect()
    }))
}

/// Runs the step's tool calls in parallel, after any approvals they need; returns the tool
/// messages for the model (a rejection is the rejected call's result).
async fn run_tools(
    ctx: &mut WorkflowContext<AgentTaskWorkflow>,
    step: u32,
    calls: &[ToolCall],
    input: &agentflow_shared::task::TaskInput,
) -> Result<Vec<ChatMessage>, Outcome> {
    let decisions = approvals(ctx, step, calls).await?;
    let calls: Vec<(ToolCall, Option<ApprovalRequest>)> = calls
        .iter()
        .zip(decisions)
        .map(|(call, decision)| {
            let mut call = call.clone();
            if let Some(arguments) = decision
                .as_ref()
                .filter(|d| d.decision == Decision::Approve)
                .and_then(|d| d.arguments.clone())
            {
                call.arguments = arguments;
            }
            (call, decision)
        })
        .collect();
    for (call, _) in &calls {
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
    let allowed = |name: &str| input.agent.agent.tools.iter().any(|t| t == name);
    let rejected = |decision: &Option<ApprovalRequest>| {
        decision
            .as_ref()
            .is_some_and(|d| d.decision == Decision::Reject)
    };
    let token = ctx.cancellation_token().child_token();
    let futures: Vec<_> = calls
        .iter()
        .filter(|(call, decision)| allowed(&call.name) && !rejected(decision))
        .map(|(call, _)| {
            let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(
                input.settings.tool_timeout_secs,
            ))
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_attempts(input.settings.tool_max_attempts)
                    .build(),
            )
            .cancellation_token(token.clone())
            .build();
            ctx.execute_activity(
                AgentActivities::tool_call,
                ToolCallInput {
                    tool_name: call.name.clone(),
                    tool_call_id: call.id.clone(),
                    arguments: call.arguments.clone(),
                    max_result_bytes: input.settings.limits.max_tool_result_bytes,
                },
                options,
            )
        })
        .collect();
    let outputs = temporalio_sdk::workflows::select! {
        outputs = temporalio_sdk::workflows::join_all(futures).fuse() => outputs,
        _ = cancel_on_request(ctx, &token).fuse() => unreachable!("never resolves"),
    };
    let mut outputs = outputs.into_iter();
    if let Some(reason) = cancellation(ctx) {
        return Err(Outcome::Cancelled(reason));
    }
    let mut messages = Vec::new();
    for (call, decision) in &calls {
        let failed = |error: String| ToolCallCompleted {
            step,
            tool_name: call.name.clone(),
            tool_call_id: call.id.clone(),
            success: false,
            result: None,
            error: Some(error),
            duration_ms: 0,
        };
        let completed = if !allowed(&call.name) {
            failed(format!("unknown tool `{}`", call.name))
        } else if rejected(decision) {
            let comment = decision.as_ref().and_then(|d| d.comment.clone());
            failed(match comment {
                Some(comment) => format!("rejected by a reviewer: {comment}"),
                None => "rejected by a reviewer".into(),
            })
        } else {
            match outputs.next() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use agentflow_shared::llm::ToolCall;

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

    #[test]
    fn trimming_drops_whole_old_turns_and_keeps_instructions_and_the_current_turn() {
        let turn = |n: usize| {
            vec![
                ChatMessage::text(Role::User, format!("question {n} {}", "x".repeat(200))),
                ChatMessage::assistant(
                    Some(format!("answer {n} {}", "y".repeat(200))),
                    Vec::<ToolCall>::new(),
                ),
            ]
        };
        let mut messages = vec![ChatMessage::text(Role::System, "be brief")];
        for n in 1..=5 {
            messages.extend(turn(n));
        }
        messages.push(ChatMessage::text(Role::User, "the current question"));
        let trimmed = trim_conversation(&mut messages, 1200)
            .expect("the current turn fits")
            .expect("something was dropped");
        assert_eq!(messages[0].role, Role::System);
        assert_eq!(messages[1].role, Role::User, "whole turns dropped");
        assert_eq!(
            messages.last().unwrap().content.as_deref(),
            Some("the current question")
        );
        assert_eq!(trimmed.kept_messages, messages.len());
        assert_eq!(trimmed.dropped_messages % 2, 0);
        assert!(trimmed.bytes <= 1200);
        assert_eq!(trim_conversation(&mut messages, 1200), Ok(None));
        let mut huge = vec![ChatMessage::text(Role::User, "z".repeat(5000))];
        assert!(trim_conversation(&mut huge, 1200).is_err());
    }
}
