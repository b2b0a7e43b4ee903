//! What the task's input settles for every turn: the agent's config with the task's overrides.

use super::AgentTaskWorkflow;
use agentflow_shared::event::Mode;
use agentflow_shared::task::{ExecuteRequest, OnBudgetExceeded};
use agentflow_shared::tools::ToolSettings;

impl AgentTaskWorkflow {
    /// The most steps a turn may take.
    pub(super) fn max_steps(&self) -> u32 {
        self.input
            .parameters
            .max_steps
            .unwrap_or(self.input.agent.agent.max_steps)
    }

    /// Whether the task is a conversation (turn after turn until closed).
    pub(super) fn is_conversation(&self) -> bool {
        self.input.parameters.conversation.unwrap_or(false)
    }

    /// What a spent budget does: fail the task, or pause it until raised.
    pub(super) fn on_budget_exceeded(&self) -> OnBudgetExceeded {
        self.input.parameters.on_budget_exceeded.unwrap_or_default()
    }

    /// Whether a call of `tool` waits for a person's decision: the tool's own declaration
    /// always holds; then the task's list, else the agent's.
    pub(super) fn requires_approval(&self, tool: &str) -> bool {
        self.tool_settings(tool).require_approval
            || self
                .input
                .parameters
                .require_approval
                .as_ref()
                .unwrap_or(&self.input.agent.agent.require_approval)
                .iter()
                .any(|t| t == "*" || t == tool)
    }

    /// The settings of a declared tool (the defaults for a built-in).
    pub(super) fn tool_settings(&self, tool: &str) -> ToolSettings {
        self.input
            .agent
            .tools
            .get(tool)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the agent may call `tool` at all.
    pub(super) fn has_tool(&self, tool: &str) -> bool {
        self.input.agent.agent.tools.iter().any(|t| t == tool)
    }

    /// The instructions the model gets first.
    pub(super) fn instructions(&self) -> String {
        self.input
            .parameters
            .instructions
            .clone()
            .unwrap_or_else(|| self.input.agent.agent.instructions.clone())
    }

    /// Streaming or batch for a turn: the request's choice, else the task's, else the agent's.
    pub(super) fn mode(&self, request: &ExecuteRequest) -> Mode {
        Mode::from_streaming(
            request
                .enable_streaming
                .or(self.input.parameters.enable_streaming)
                .unwrap_or(self.input.agent.agent.enable_streaming),
        )
    }
}
