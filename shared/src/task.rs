//! Tasks: parameters, status, the workflow's input and result, and what its queries return.

use crate::config::{AgentConfig, ModelConfig, SizeLimits};
use crate::event::{Decision, Event, Mode};
use crate::ids::{AgentId, Seq, TaskId};
use crate::llm::{ChatMessage, Usage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Per-task overrides of the agent's configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskParameters {
    /// Stream the LLM output (overrides the agent's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_streaming: Option<bool>,
    /// Model name from the config's `[models]` (overrides the agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// System instructions (overrides the agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Step limit (overrides the agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Budget in USD (overrides the agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// What happens when the cost passes the budget (default `fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_budget_exceeded: Option<OnBudgetExceeded>,
    /// Keep the task open after an answer: each execute adds a turn (default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<bool>,
    /// Tools whose calls wait for a human decision (overrides the agent's; `*` for all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_approval: Option<Vec<String>>,
}

/// What the run does when its cost passes the budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnBudgetExceeded {
    /// End with `WorkflowBudgetExceeded` then `WorkflowFailed`.
    #[default]
    Fail,
    /// `WorkflowBudgetExceeded` then `WorkflowPaused {reason: budget}` until the budget is raised.
    Pause,
}

/// Lifecycle status of a task; also the `TaskStatus` search attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Created, waiting for `execute`.
    Created,
    /// The agent loop is running.
    Running,
    /// Paused by a person or by the budget; waits for resume (or a budget raise).
    Paused,
    /// A tool call waits for a human decision.
    WaitingApproval,
    /// A conversation between turns: waits for the next query or close.
    Waiting,
    /// Finished with a final answer.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled, or ended by the idle timeout.
    Cancelled,
}

impl TaskStatus {
    /// The value stored in the `TaskStatus` search attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::WaitingApproval => "waiting_approval",
            Self::Waiting => "waiting",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the task has ended.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// The agent's configuration copied at task creation, so later edits never change a running task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentSnapshot {
    /// The agent's id.
    pub agent_id: AgentId,
    /// The agent's config as it was at creation.
    pub agent: AgentConfig,
    /// Name of the model the task uses (after parameter overrides).
    pub model_name: String,
    /// That model's config and prices.
    pub model: ModelConfig,
}

/// Run settings copied from the config at creation, so every worker replays the same decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunSettings {
    /// A task with no `execute` within this many seconds ends as cancelled.
    pub idle_timeout_secs: u64,
    /// Budget warning threshold, percent of the limit.
    pub budget_warning_pct: f64,
    /// Start-to-close timeout of one LLM call attempt.
    pub llm_timeout_secs: u64,
    /// Heartbeat timeout of the LLM activity (a dead worker is noticed after this).
    pub llm_heartbeat_timeout_secs: u64,
    /// Attempts per LLM call (1 = no retry).
    pub llm_max_attempts: u32,
    /// First retry delay of the LLM call.
    pub llm_retry_initial_ms: u64,
    /// Start-to-close timeout of a tool call.
    pub tool_timeout_secs: u64,
    /// Attempts per tool call.
    pub tool_max_attempts: u32,
    /// A conversation continues as new between turns once a run holds this many events
    /// (or Temporal suggests it).
    #[serde(default = "default_max_events_per_run")]
    pub max_events_per_run: u32,
    /// Size bounds (histories from before they existed replay with the defaults).
    #[serde(default)]
    pub limits: SizeLimits,
}

fn default_max_events_per_run() -> u32 {
    2000
}

/// Input of `AgentTaskWorkflow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskInput {
    /// The task's id.
    pub task_id: TaskId,
    /// Free-text description.
    #[serde(default)]
    pub description: String,
    /// Who created the task.
    #[serde(default)]
    pub user_id: Option<String>,
    /// A query to execute at once, if any.
    #[serde(default)]
    pub query: Option<String>,
    /// The agent's config at creation.
    pub agent: AgentSnapshot,
    /// Per-task overrides.
    #[serde(default)]
    pub parameters: TaskParameters,
    /// Settings copied from the config.
    pub settings: RunSettings,
    /// When the task was created.
    pub created_at: DateTime<Utc>,
    /// State carried over from the previous run, when this run continues a long task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<Box<Carried>>,
}

/// What one run of a long task hands the next when it continues as new.
///
/// `previous_events` are the events of the run that just ended when they fit in the payload
/// (`previous_events_included`): they stay readable from that run's close event (and this
/// run's start event), so the api can serve the whole log without a worker. A larger log is
/// read from the ended run itself with `get_events` (a worker replays it to answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Carried {
    /// Seq of the first event of the new run.
    pub first_seq: Seq,
    /// The events of the previous run (seqs `previous_first_seq .. first_seq`), if included.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub previous_events: Vec<Event>,
    /// Whether `previous_events` holds the previous run's whole log (else it is empty).
    #[serde(default = "included")]
    pub previous_events_included: bool,
    /// The conversation so far (what the model sees next turn).
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub messages: Vec<ChatMessage>,
    /// Turns completed so far.
    pub turn: u32,
    /// Last step number used.
    pub step: u32,
    /// Cost so far.
    pub cost_usd: f64,
    /// Token usage so far.
    pub usage: Usage,
    /// The budget limit (it may have been raised).
    pub budget_limit_usd: f64,
    /// Whether the budget warning was sent.
    pub budget_warned: bool,
    /// The last answer.
    pub final_response: Option<String>,
}

/// Argument of the `execute` update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The query for the agent.
    pub query: String,
    /// Stream the LLM output (overrides task parameters and agent config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_streaming: Option<bool>,
}

/// Argument of the `pause`, `resume`, `cancel` and `close` updates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ControlRequest {
    /// Why (shown in the event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who asks (shown in the event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// Argument of the `decide_approval` update (the body of `POST …/approvals/{approval_id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// Approve or reject.
    pub decision: Decision,
    /// A comment (given to the model on reject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Edited arguments to run the tool with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Value>,
    /// Who decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// An approval decision addressed to one approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalDecision {
    /// The approval decided on.
    pub approval_id: String,
    /// The decision.
    #[serde(flatten)]
    pub request: ApprovalRequest,
}

/// Argument of the `raise_budget` update (the body of `POST …/budget`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetRequest {
    /// The new budget limit in USD.
    pub budget_usd: f64,
    /// Who raises it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// How the workflow answers a control update: the task's state after it.
pub type ControlAccepted = TaskState;

/// Why a control update was refused; its `Display` is what the update's failure carries, so
/// the api can map it back to a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The task's state does not allow it (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// It names something the task does not have (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Its fields are invalid (422).
    #[error("invalid: {0}")]
    Invalid(String),
}

impl Rejection {
    /// Reads a rejection back from an update failure's message (`Conflict` when unprefixed).
    pub fn parse(message: &str) -> Self {
        if let Some(rest) = message.strip_prefix("not found: ") {
            Self::NotFound(rest.to_owned())
        } else if let Some(rest) = message.strip_prefix("invalid: ") {
            Self::Invalid(rest.to_owned())
        } else {
            Self::Conflict(
                message
                    .strip_prefix("conflict: ")
                    .unwrap_or(message)
                    .to_owned(),
            )
        }
    }
}

/// A tool call waiting for a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingApproval {
    /// Id to decide on.
    pub approval_id: String,
    /// The tool.
    pub tool_name: String,
    /// Id of the call.
    pub tool_call_id: String,
    /// The model's arguments.
    pub arguments: serde_json::Value,
}

/// Answer of the `execute` update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecuteAccepted {
    /// The task.
    pub task_id: TaskId,
    /// Batch or streaming, as resolved.
    pub mode: Mode,
}

/// The range argument of the `get_events` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EventsRange {
    /// Return events with `seq > after`.
    pub after: Seq,
    /// At most this many events.
    pub limit: usize,
}

impl EventsRange {
    /// The default page size.
    pub const DEFAULT_LIMIT: usize = 500;
    /// The largest page size a request may ask for.
    pub const MAX_LIMIT: usize = 10_000;
    /// The most encoded bytes of events in one page (at least one event is always served), so a
    /// query result stays far below Temporal's 2 MiB payload limit.
    pub const MAX_PAGE_BYTES: usize = 512 * 1024;
}

impl Default for EventsRange {
    fn default() -> Self {
        Self {
            after: Seq(0),
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// A page of a task's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventsPage {
    /// The events, in seq order.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub events: Vec<Event>,
    /// The seq of the last event in the whole log so far.
    pub last_seq: Seq,
    /// Whether more events follow this page.
    pub has_more: bool,
    /// Whether the log has ended (its terminal event exists).
    pub finished: bool,
    /// Seq of the first event this run holds; earlier ones belong to earlier runs (read them
    /// from those runs' close events).
    #[serde(default = "Seq::first")]
    pub first_seq: Seq,
}

/// Answer of the `get_current_state` query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskState {
    /// The task.
    pub task_id: TaskId,
    /// Its agent.
    pub agent_id: AgentId,
    /// Lifecycle status.
    pub status: TaskStatus,
    /// Current (or last) step.
    pub step: u32,
    /// Cost so far.
    pub cost_usd: f64,
    /// The budget limit.
    pub budget_limit_usd: f64,
    /// What is left of the budget.
    pub budget_remaining_usd: f64,
    /// Token usage so far.
    pub usage: Usage,
    /// Whether the run is paused.
    pub paused: bool,
    /// Seq of the last event.
    pub last_seq: Seq,
    /// The final answer, once there is one.
    pub final_response: Option<String>,
    /// Turns completed (conversations).
    #[serde(default)]
    pub turn: u32,
    /// Tool calls waiting for a decision.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub pending_approvals: Vec<PendingApproval>,
    /// Seq of the first event of the current run (1 unless the task continued as new).
    #[serde(default = "Seq::first")]
    pub first_seq: Seq,
}

/// Result of `AgentTaskWorkflow`: the final state and, when it fits in the payload, the event
/// log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskResult {
    /// Final state.
    pub state: TaskState,
    /// The event log of this run (the whole log unless the task continued as new; then the
    /// events from `state.first_seq` on), when `events_included`.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub events: Vec<Event>,
    /// Whether `events` holds this run's whole log. A log too large for one payload is not
    /// in the result: read it with `get_events` (a worker replays the closed run to answer).
    #[serde(default = "included")]
    pub events_included: bool,
}

/// Logs written before the flag existed were always included.
fn included() -> bool {
    true
}
