//! Tasks: parameters, status, the workflow's input and result, and what its queries return.

use crate::config::{AgentConfig, ModelConfig};
use crate::event::{Event, Mode};
use crate::ids::{AgentId, Seq, TaskId};
use crate::llm::Usage;
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
}

/// Lifecycle status of a task; also the `TaskStatus` search attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Created, waiting for `execute`.
    Created,
    /// The agent loop is running.
    Running,
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
}

impl EventsPage {
    /// Cuts a page out of a dense log (whose first event has seq 1).
    pub fn from_log(log: &[Event], range: EventsRange) -> Self {
        let start = (range.after.0 as usize).min(log.len());
        let limit = range.limit.clamp(1, 10_000);
        let end = start.saturating_add(limit).min(log.len());
        Self {
            events: log[start..end].to_vec(),
            last_seq: Seq(log.len() as u64),
            has_more: end < log.len(),
            finished: log.last().is_some_and(Event::is_terminal),
        }
    }
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
}

/// Result of `AgentTaskWorkflow`: the final state and the whole event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskResult {
    /// Final state.
    pub state: TaskState,
    /// The whole event log.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub events: Vec<Event>,
}
