//! What the task's input settles for every turn: the agent's config with the task's overrides.

use super::AgentTaskWorkflow;
use super::team_state::Speaker;
use agentflow_shared::event::Mode;
use agentflow_shared::llm::ToolSpec;
use agentflow_shared::mcp::McpTool;
use agentflow_shared::task::{
    AgentSnapshot, ApprovalDecision, ExecuteRequest, OnBudgetExceeded, Rejection,
};
use agentflow_shared::team::{CHECKPOINT_ID_PREFIX, checkpoint_schema};
use agentflow_shared::tools::{ToolKind, ToolSettings, builtin_spec};
use serde_json::Value;

impl AgentTaskWorkflow {
    /// The agent speaking: a team's member (or its router) during its turn, else the task's.
    pub(super) fn agent(&self) -> &AgentSnapshot {
        match (&self.input.team, self.team.speaker()) {
            (Some(team), Some(Speaker::Member(member))) => {
                team.members.get(member).unwrap_or(&self.input.agent)
            }
            (Some(team), Some(Speaker::Router)) => {
                team.router.as_ref().unwrap_or(&self.input.agent)
            }
            _ => &self.input.agent,
        }
    }

    /// The most steps a turn (a member's turn) may take.
    pub(super) fn max_steps(&self) -> u32 {
        if self.team.speaker() == Some(Speaker::Router) {
            return 1;
        }
        self.input
            .parameters
            .max_steps
            .unwrap_or(self.agent().agent.max_steps)
    }

    /// Whether the task is a conversation (turn after turn until closed).
    pub(super) fn is_conversation(&self) -> bool {
        self.input.parameters.conversation.unwrap_or(false)
    }

    /// What a spent budget does: fail the task, or pause it until raised.
    pub(super) fn on_budget_exceeded(&self) -> OnBudgetExceeded {
        self.input.parameters.on_budget_exceeded.unwrap_or_default()
    }

    /// Whether a call of `tool` waits for a person's decision: the tool's declaration, the
    /// agent's list and the task's list all count (`union`; a request cannot remove an
    /// operator's requirement). Runs from before the union (`union` false): the task's list
    /// replaced the agent's.
    pub(super) fn requires_approval(&self, tool: &str, union: bool) -> bool {
        let server = self.mcp_tool(tool).map(|t| t.server.as_str());
        let lists = |list: &[String]| {
            list.iter()
                .any(|t| t == "*" || t == tool || Some(t.as_str()) == server)
        };
        let agent = &self.agent().agent.require_approval;
        let task = self.input.parameters.require_approval.as_deref();
        self.tool_settings(tool).require_approval
            || match (task, union) {
                (Some(task), true) => lists(task) || lists(agent),
                (Some(task), false) => lists(task),
                (None, _) => lists(agent),
            }
    }

    /// Checks an approver's edited arguments against the tool's schema.
    pub(super) fn check_edited_arguments(
        &self,
        decision: &ApprovalDecision,
    ) -> Result<(), Rejection> {
        let (Some(arguments), Some(tool)) = (
            decision.request.arguments.as_ref(),
            self.approvals.tool_of(&decision.approval_id),
        ) else {
            return Ok(());
        };
        let schema = if decision.approval_id.starts_with(CHECKPOINT_ID_PREFIX) {
            Some(checkpoint_schema())
        } else {
            self.tool_schema(tool)
        };
        match schema {
            Some(schema) => check_arguments(&schema, arguments)
                .map_err(|problem| Rejection::Invalid(format!("arguments: {problem}"))),
            None => Ok(()),
        }
    }

    /// The JSON Schema of `tool`'s arguments: a declared tool's, or a built-in's.
    pub(super) fn tool_schema(&self, tool: &str) -> Option<Value> {
        self.tool_settings(tool)
            .parameters
            .or_else(|| builtin_spec(tool).map(|spec| spec.parameters))
    }

    /// The settings of a declared tool (the defaults for a built-in); an MCP tool has its
    /// server's, with its own schema.
    pub(super) fn tool_settings(&self, tool: &str) -> ToolSettings {
        if let Some(mcp) = self.mcp_tool(tool) {
            let mut settings = self
                .agent()
                .tools
                .get(&mcp.server)
                .cloned()
                .unwrap_or_default();
            settings.parameters = Some(mcp.parameters.clone());
            return settings;
        }
        self.agent().tools.get(tool).cloned().unwrap_or_default()
    }

    /// Whether the agent speaking may call `tool` at all: it lists it, or the tool is in the
    /// task's MCP catalog from a server it lists.
    pub(super) fn has_tool(&self, tool: &str) -> bool {
        self.agent().agent.tools.iter().any(|t| t == tool) || self.mcp_tool(tool).is_some()
    }

    /// The MCP servers the task's agents list (a team's: every member's), in their order.
    pub(super) fn mcp_servers(&self) -> Vec<String> {
        let agents = std::iter::once(&self.input.agent)
            .chain(self.input.team.iter().flat_map(|team| &team.members));
        let mut servers: Vec<String> = Vec::new();
        for agent in agents {
            for tool in &agent.agent.tools {
                let mcp = agent
                    .tools
                    .get(tool)
                    .is_some_and(|s| s.kind == Some(ToolKind::Mcp));
                if mcp && !servers.contains(tool) {
                    servers.push(tool.clone());
                }
            }
        }
        servers
    }

    /// The MCP tool the model knows as `tool`, from the task's catalog, when the agent
    /// speaking lists its server.
    pub(super) fn mcp_tool(&self, tool: &str) -> Option<&McpTool> {
        self.mcp
            .as_ref()?
            .get(tool)
            .filter(|t| self.agent().agent.tools.contains(&t.server))
    }

    /// What the model reads about the MCP tools of the agent speaking.
    pub(super) fn mcp_specs(&self) -> Vec<ToolSpec> {
        let servers = &self.agent().agent.tools;
        self.mcp
            .iter()
            .flat_map(|catalog| catalog.tools.iter())
            .filter(|tool| servers.contains(&tool.server))
            .map(McpTool::spec)
            .collect()
    }

    /// The instructions the model gets first: the task's own for an agent, the agent
    /// speaking's in a team.
    pub(super) fn instructions(&self) -> String {
        match &self.input.parameters.instructions {
            Some(instructions) if self.input.team.is_none() => instructions.clone(),
            _ => self.agent().agent.instructions.clone(),
        }
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

/// Checks arguments against a tool's schema; the error names the first field that does not
/// fit (`/city: 5 is not of type "string"`). Deterministic: the workflow runs it.
pub(super) fn check_arguments(schema: &Value, arguments: &Value) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| format!("the tool's parameters are not a valid JSON Schema: {e}"))?;
    match validator.iter_errors(arguments).next() {
        None => Ok(()),
        Some(error) => {
            let path = error.instance_path().to_string();
            let at = if path.is_empty() {
                "the arguments"
            } else {
                &path
            };
            Err(format!("{at}: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{task, with};
    use agentflow_shared::event::Decision;
    use agentflow_shared::task::{ApprovalDecision, ApprovalRequest};
    use agentflow_shared::tools::ToolSettings;
    use serde_json::json;

    #[test]
    fn approval_is_the_union_of_tool_agent_and_task_and_a_request_cannot_remove_one() {
        let workflow = task(with(|input| {
            input.agent.agent.require_approval = vec!["calculator".into()];
            input.parameters.require_approval = Some(vec!["current_time".into()]);
            input.agent.tools.insert(
                "lookup".into(),
                ToolSettings {
                    require_approval: true,
                    ..ToolSettings::default()
                },
            );
        }));
        assert!(
            workflow.requires_approval("calculator", true),
            "the agent's"
        );
        assert!(
            workflow.requires_approval("current_time", true),
            "the task's"
        );
        assert!(workflow.requires_approval("lookup", true), "the tool's");
        assert!(
            workflow.requires_approval("lookup", false),
            "the tool's, always"
        );
        assert!(
            !workflow.requires_approval("calculator", false),
            "runs from before the union: the task's list replaced the agent's"
        );
        assert!(!workflow.requires_approval("other", true));
    }

    #[test]
    fn edited_arguments_must_fit_the_tools_schema() {
        let workflow = task(with(|_| {}));
        assert!(
            workflow.tool_schema("calculator").is_some(),
            "a built-in's schema"
        );
        let schema = workflow.tool_schema("calculator").unwrap();
        super::check_arguments(&schema, &json!({"expression": "1+1"})).unwrap();
        let problem = super::check_arguments(&schema, &json!({"expression": 5})).unwrap_err();
        assert!(problem.starts_with("/expression: "), "{problem}");
        let decision = ApprovalDecision {
            approval_id: "s1c1".into(),
            request: ApprovalRequest {
                decision: Decision::Approve,
                comment: None,
                arguments: Some(json!({"expression": 5})),
                requested_by: None,
            },
        };
        assert!(
            workflow.check_edited_arguments(&decision).is_ok(),
            "no such approval: the decision's own check refuses it"
        );
    }
}
