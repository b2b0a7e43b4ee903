//! `AgentTaskWorkflow`: one task, from creation to its terminal event.
//!
//! It waits for an `execute` update (or runs the query given at creation), then runs the agent
//! loop: step → LLM activity → tool activities (in parallel) → … until a final answer,
//! `max_steps`, the budget, cancellation or a failure. Every step is an event in one dense log
//! kept in workflow state; the log is served by queries and returned as the workflow result.
//! Only workflow time is read here; all I/O is in activities (DESIGN.md, Invariant 3).

use crate::activities::{AgentActivities, LlmCallInput, LlmCallOutput, ToolCallInput};
use crate::queries::EventsQuery;
use agentflow_shared::event::{
    BudgetExceeded, BudgetWarning, Completed, ErrorInfo, Event, EventKind, Failed, Mode, Reason,
    Started, StepCompleted, StepStarted, ToolCallCompleted, ToolCallStarted,
};
use agentflow_shared::ids::Seq;
use agentflow_shared::llm::{ChatMessage, Role, ToolCall, Usage};
use agentflow_shared::task::{
    EventsPage, ExecuteAccepted, ExecuteRequest, TaskInput, TaskResult, TaskState, TaskStatus,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use temporalio_common::RetryPolicy;
use temporalio_common::error::ActivityExecutionError;
use temporalio_common::search_attributes::SearchAttributeKey;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, SyncWorkflowContext, WorkflowContext, WorkflowContextView, WorkflowResult,
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
    events: Vec<Event>,
    status: TaskStatus,
    step: u32,
    cost_usd: f64,
    usage: Usage,
    pending: Option<ExecuteRequest>,
    final_response: Option<String>,
    budget_warned: bool,
}

/// How a run of the agent loop ended.
enum Outcome {
    Completed(String),
    Failed(ErrorInfo, bool),
    Cancelled(String),
}

impl AgentTaskWorkflow {
    fn budget_limit(&self) -> f64 {
        self.input
            .parameters
            .budget_usd
            .unwrap_or(self.input.agent.agent.budget_usd)
    }

    fn max_steps(&self) -> u32 {
        self.input
            .parameters
            .max_steps
            .unwrap_or(self.input.agent.agent.max_steps)
    }

    fn next_seq(&self) -> Seq {
        Seq(self.events.len() as u64 + 1)
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
        self.events.push(event);
    }

    /// Appends events an activity numbered; they must continue the log densely.
    fn append(&mut self, events: Vec<Event>) -> Result<(), String> {
        for event in events {
            if event.seq != self.next_seq() {
                return Err(format!(
                    "activity event seq {} does not continue the log at {}",
                    event.seq,
                    self.next_seq()
                ));
            }
            self.events.push(event);
        }
        Ok(())
    }

    fn state(&self) -> TaskState {
        let limit = self.budget_limit();
        TaskState {
            task_id: self.input.task_id,
            agent_id: self.input.agent.agent_id.clone(),
            status: self.status,
            step: self.step,
            cost_usd: self.cost_usd,
            budget_limit_usd: limit,
            budget_remaining_usd: (limit - self.cost_usd).max(0.0),
            usage: self.usage,
            paused: false,
            last_seq: Seq(self.events.len() as u64),
            final_response: self.final_response.clone(),
        }
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

/// The events an LLM activity attached to its failure, cancellation or last heartbeat.
fn recovered_events(error: &ActivityExecutionError) -> Vec<Event> {
    if let Some(cancelled) = error.as_cancelled() {
        return cancelled.details().ok().flatten().unwrap_or_default();
    }
    if let Some(timeout) = error.as_timeout() {
        return timeout
            .last_heartbeat_details()
            .ok()
            .flatten()
            .unwrap_or_default();
    }
    match error.reason() {
        Some(temporalio_common::error::IncomingError::Application(app)) => {
            app.details().ok().flatten().unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

fn error_message(error: &ActivityExecutionError) -> String {
    error
        .reason()
        .map(|r| r.failure().message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| error.to_string())
}

#[workflow_methods]
impl AgentTaskWorkflow {
    /// Builds the initial state from the task input.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: TaskInput) -> Self {
        let pending = input.query.clone().map(|query| ExecuteRequest {
            query,
            enable_streaming: None,
        });
        Self {
            input,
            events: Vec::new(),
            status: TaskStatus::Created,
            step: 0,
            cost_usd: 0.0,
            usage: Usage::default(),
            pending,
            final_response: None,
            budget_warned: false,
        }
    }

    /// Waits for a query (or the idle timeout), runs the agent loop, returns the whole log.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<TaskResult> {
        let idle = Duration::from_secs(ctx.state(|s| s.input.settings.idle_timeout_secs));
        let request = temporalio_sdk::workflows::select! {
            _ = ctx.wait_condition(|s: &Self| s.pending.is_some()) => ctx.state(|s| s.pending.clone()),
            _ = ctx.timer(idle) => None,
        };
        let outcome = match request {
            Some(request) => run_agent(ctx, request).await,
            None => Outcome::Cancelled(format!(
                "idle timeout: no execute within {}s",
                idle.as_secs()
            )),
        };
        finish(ctx, outcome);
        Ok(ctx.state(|s| TaskResult {
            state: s.state(),
            events: s.events.clone(),
        }))
    }

    /// Checks an `execute` before it is accepted into history.
    #[update_validator(execute)]
    fn validate_execute(
        &self,
        _ctx: &WorkflowContextView,
        request: &ExecuteRequest,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
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
        Ok(())
    }

    /// Starts the agent run with this query.
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

    /// A page of the event log: events with `seq > after`, at most `limit`.
    #[query]
    pub fn get_events(&self, _ctx: &WorkflowContextView, query: EventsQuery) -> EventsPage {
        EventsPage::from_log(&self.events, query.0)
    }

    /// Status, step, cost, budget and the last seq.
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

fn finish(ctx: &WorkflowContext<AgentTaskWorkflow>, outcome: Outcome) {
    let (status, kind) = match outcome {
        Outcome::Completed(final_response) => {
            let kind = ctx.state_mut(|s| {
                s.final_response = Some(final_response.clone());
                EventKind::Completed(Completed {
                    final_response,
                    steps: s.step,
                    total_cost_usd: s.cost_usd,
                    usage: s.usage,
                })
            });
            (TaskStatus::Completed, kind)
        }
        Outcome::Failed(error, retryable) => (
            TaskStatus::Failed,
            EventKind::Failed(Failed { error, retryable }),
        ),
        Outcome::Cancelled(reason) => (
            TaskStatus::Cancelled,
            EventKind::Cancelled(Reason { reason }),
        ),
    };
    emit(ctx, kind);
    set_status(ctx, status);
}

async fn run_agent(
    ctx: &mut WorkflowContext<AgentTaskWorkflow>,
    request: ExecuteRequest,
) -> Outcome {
    set_status(ctx, TaskStatus::Running);
    let (input, max_steps, budget) =
        ctx.state(|s| (s.input.clone(), s.max_steps(), s.budget_limit()));
    let mode = Mode::from_streaming(
        request
            .enable_streaming
            .or(input.parameters.enable_streaming)
            .unwrap_or(input.agent.agent.enable_streaming),
    );
    emit(
        ctx,
        EventKind::Started(Started {
            query: request.query.clone(),
            mode,
            max_steps,
            budget_limit_usd: budget,
            model: input.agent.model_name.clone(),
        }),
    );
    let instructions = input
        .parameters
        .instructions
        .clone()
        .unwrap_or_else(|| input.agent.agent.instructions.clone());
    let mut messages = Vec::new();
    if !instructions.trim().is_empty() {
        messages.push(ChatMessage::text(Role::System, instructions));
    }
    messages.push(ChatMessage::text(Role::User, request.query.clone()));
    let settings = &input.settings;

    for step in 1..=max_steps {
        ctx.state_mut(|s| s.step = step);
        emit(ctx, EventKind::StepStarted(StepStarted { step }));
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
        };
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
        let LlmCallOutput {
            events,
            response,
            cost_usd,
        } = match ctx
            .execute_activity(AgentActivities::llm_call, call, options)
            .await
        {
            Ok(output) => output,
            Err(error) => {
                let recovered = recovered_events(&error);
                if let Err(problem) = ctx.state_mut(|s| s.append(recovered)) {
                    return Outcome::Failed(internal(problem), false);
                }
                if error.as_cancelled().is_some() {
                    return Outcome::Cancelled("the task was cancelled".into());
                }
                let retryable = error
                    .reason()
                    .and_then(|r| match r {
                        temporalio_common::error::IncomingError::Application(app) => {
                            Some(!app.is_non_retryable())
                        }
                        _ => None,
                    })
                    .unwrap_or(true);
                return Outcome::Failed(
                    ErrorInfo {
                        kind: "llm_error".into(),
                        message: error_message(&error),
                    },
                    retryable,
                );
            }
        };
        if let Err(problem) = ctx.state_mut(|s| s.append(events)) {
            return Outcome::Failed(internal(problem), false);
        }
        let (cost, tokens) = ctx.state_mut(|s| {
            s.cost_usd += cost_usd;
            s.usage = s.usage + response.usage;
            (s.cost_usd, s.usage.total_tokens)
        });
        if cost > budget {
            emit(
                ctx,
                EventKind::BudgetExceeded(BudgetExceeded {
                    cost_usd: cost,
                    limit_usd: budget,
                }),
            );
            return Outcome::Failed(
                ErrorInfo {
                    kind: "budget_exceeded".into(),
                    message: format!("cost ${cost:.6} exceeded the budget of ${budget:.6}"),
                },
                false,
            );
        }
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

        if !response.tool_calls.is_empty() {
            messages.push(ChatMessage::assistant(
                (!response.content.is_empty()).then(|| response.content.clone()),
                response.tool_calls.clone(),
            ));
            let results = run_tools(ctx, step, &response.tool_calls, &input).await;
            messages.extend(results);
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

fn internal(message: String) -> ErrorInfo {
    ErrorInfo {
        kind: "internal".into(),
        message,
    }
}

/// Runs the step's tool calls in parallel; returns the tool messages for the model.
async fn run_tools(
    ctx: &mut WorkflowContext<AgentTaskWorkflow>,
    step: u32,
    calls: &[ToolCall],
    input: &agentflow_shared::task::TaskInput,
) -> Vec<ChatMessage> {
    for call in calls {
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
    let futures: Vec<_> = calls
        .iter()
        .filter(|call| allowed(&call.name))
        .map(|call| {
            let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(
                input.settings.tool_timeout_secs,
            ))
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_attempts(input.settings.tool_max_attempts)
                    .build(),
            )
            .build();
            ctx.execute_activity(
                AgentActivities::tool_call,
                ToolCallInput {
                    tool_name: call.name.clone(),
                    tool_call_id: call.id.clone(),
                    arguments: call.arguments.clone(),
                },
                options,
            )
        })
        .collect();
    let mut outputs = temporalio_sdk::workflows::join_all(futures)
        .await
        .into_iter();
    let mut messages = Vec::new();
    for call in calls {
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
    messages
}
