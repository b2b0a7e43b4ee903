//! Per-task overrides of the agent's configuration, given at creation.

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
    /// A team's forced mode when a message names no member: `discussion` (every member), or
    /// a member's name (that member alone). Teams routed by mention only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
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
