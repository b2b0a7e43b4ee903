//! The workflow's input: the agent snapshot and run settings copied at creation, and what
//! one run of a long task carries into the next.

use super::queries::included;
use super::{TaskParameters, TeamMessage, TeamSnapshot};
use crate::config::{AgentConfig, ModelConfig, SizeLimits, WorkerSettings};
use crate::event::Event;
use crate::ids::{AgentId, Seq, TaskId};
use crate::llm::{ChatMessage, Usage};
use crate::mcp::McpCatalog;
use crate::tools::ToolSettings;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// The settings of the agent's declared tools (none for the built-ins; tasks from before
    /// tools were declared have none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, ToolSettings>,
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
    /// The tenant the task belongs to (also its `TenantId` search attribute); absent on tasks
    /// created before tenancy, which belong to `auth.default_tenant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<crate::ids::TenantId>,
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
    /// For a team's task: the team and its members (then `agent` is the team's face: its id,
    /// budget, and the first member's model and streaming default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<Box<TeamSnapshot>>,
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
    /// The MCP tools the task fixed when it started (absent when its agent lists no MCP
    /// server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_catalog: Option<McpCatalog>,
    /// A team's discussion so far, trimmed to `worker.limits.max_conversation_bytes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub team_messages: Vec<TeamMessage>,
    /// The member who spoke last (a conversation's unnamed follow-up goes to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_speaker: Option<usize>,
    /// What each member has cost so far, USD (team tasks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_costs: Vec<f64>,
}

impl RunSettings {
    /// The settings each new task copies from the worker's configuration.
    pub fn from_config(worker: &WorkerSettings) -> Self {
        Self {
            idle_timeout_secs: worker.idle_timeout_secs,
            budget_warning_pct: worker.budget_warning_pct,
            llm_timeout_secs: worker.llm_timeout_secs,
            llm_heartbeat_timeout_secs: worker.llm_heartbeat_timeout_secs,
            llm_max_attempts: worker.llm_max_attempts,
            llm_retry_initial_ms: worker.llm_retry_initial_ms,
            tool_timeout_secs: worker.tool_timeout_secs,
            tool_max_attempts: worker.tool_max_attempts,
            max_events_per_run: worker.max_events_per_run,
            limits: worker.limits,
        }
    }
}
