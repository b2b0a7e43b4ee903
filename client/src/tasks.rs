//! Creating tasks: resolve the agent snapshot from the config and start the workflow.
//! Used by the api, the tests and anyone starting tasks from Rust.

use crate::search::{AGENT_ID, TASK_STATUS, TENANT_ID, USER_ID};
use crate::workflow::AgentTask;
use agentflow_shared::config::{AgentConfig, AgentflowConfig};
use agentflow_shared::ids::{AgentId, TaskId, TenantId};
use agentflow_shared::task::{
    AgentSnapshot, ROUTER_SPEAKER, RunSettings, TaskInput, TaskParameters, TaskStatus, TeamSnapshot,
};
use agentflow_shared::team::{FORCED_DISCUSSION, RoutingConfig, TeamConfig};
use temporalio_client::{Client, WorkflowHandle, WorkflowIdReusePolicy, WorkflowStartOptions};
use temporalio_common::search_attributes::SearchAttributes;

/// What a new task needs besides the config.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    /// Client-supplied id; a fresh one when absent.
    pub id: Option<TaskId>,
    /// Free-text description.
    pub description: String,
    /// Who creates it.
    pub user_id: Option<String>,
    /// The tenant it belongs to.
    pub tenant: Option<TenantId>,
    /// A query to run at once.
    pub query: Option<String>,
    /// Per-task overrides.
    pub parameters: TaskParameters,
}

/// Why a task could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateTaskError {
    /// No such agent in the config.
    #[error("agent `{0}` does not exist")]
    UnknownAgent(AgentId),
    /// The parameters name a model that is not configured.
    #[error("model `{0}` is not configured")]
    UnknownModel(String),
    /// A parameter is out of range.
    #[error("{0}")]
    InvalidParameter(String),
    /// A parameter asks for more than the operator's `[limits.agents.<id>]` allow.
    #[error("{0}")]
    OutsideLimit(String),
    /// Temporal refused or failed the start (e.g. the id is taken).
    #[error("starting the workflow failed: {0}")]
    Start(#[from] temporalio_client::errors::WorkflowStartError),
}

/// Builds the workflow input for a task of `agent_id` (an agent or a team), copying its
/// config.
pub fn task_input(
    config: &AgentflowConfig,
    agent_id: &AgentId,
    task: NewTask,
) -> Result<TaskInput, CreateTaskError> {
    check_limits(&task.parameters)?;
    check_request_limits(config, agent_id, &task.parameters)?;
    if let Some(team) = config.teams.get(agent_id.as_str()) {
        return team_input(config, agent_id, team, task);
    }
    let agent = config
        .agents
        .get(agent_id.as_str())
        .ok_or_else(|| CreateTaskError::UnknownAgent(agent_id.clone()))?;
    if task.parameters.mode.is_some() {
        return Err(CreateTaskError::InvalidParameter(
            "task_parameters.mode is for teams; this is an agent".into(),
        ));
    }
    if let Some(tools) = &task.parameters.require_approval
        && let Some(unknown) = tools
            .iter()
            .find(|t| t.as_str() != "*" && !agent.tools.contains(t))
    {
        return Err(CreateTaskError::InvalidParameter(format!(
            "task_parameters.require_approval: `{unknown}` is not a tool of agent `{agent_id}`"
        )));
    }
    let model_name = task
        .parameters
        .model
        .clone()
        .unwrap_or_else(|| agent.model.clone());
    let agent = snapshot(config, agent_id, agent, model_name)?;
    Ok(input(config, agent, None, task))
}

/// Refuses parameters out of range, for an agent or a team.
fn check_limits(parameters: &TaskParameters) -> Result<(), CreateTaskError> {
    if parameters.max_steps == Some(0) {
        return Err(CreateTaskError::InvalidParameter(
            "task_parameters.max_steps must be at least 1".into(),
        ));
    }
    if let Some(budget) = parameters.budget_usd
        && !(budget.is_finite() && budget > 0.0)
    {
        return Err(CreateTaskError::InvalidParameter(
            "task_parameters.budget_usd must be a positive number".into(),
        ));
    }
    Ok(())
}

/// In `[limits.agents.<id>] models`: any configured model.
pub const ANY_MODEL: &str = "*";

/// What a request for `agent_id` may ask for: `[limits.agents.<id>]`, by default only the
/// agent's (or team's) own model, budget and step limit.
pub struct AllowedRequest<'a> {
    /// Models it may choose.
    pub models: Vec<&'a str>,
    /// The largest budget, USD.
    pub max_budget_usd: f64,
    /// The largest step limit.
    pub max_steps: u32,
}

/// The limits of requests for `agent_id`; `None` when it is neither an agent nor a team.
pub fn allowed_request<'a>(
    config: &'a AgentflowConfig,
    agent_id: &AgentId,
) -> Option<AllowedRequest<'a>> {
    let id = agent_id.as_str();
    let (own_models, own_budget, own_steps): (Vec<&str>, f64, u32) =
        if let Some(agent) = config.agents.get(id) {
            (
                vec![agent.model.as_str()],
                agent.budget_usd,
                agent.max_steps,
            )
        } else {
            let team = config.teams.get(id)?;
            let steps = team
                .members
                .iter()
                .filter_map(|m| config.agents.get(m.agent.as_str()))
                .map(|a| a.max_steps)
                .max()
                .unwrap_or(1);
            (Vec::new(), team.budget_usd, steps)
        };
    let limits = config.limits.agents.get(id);
    let models = match limits {
        Some(l) if !l.models.is_empty() => l.models.iter().map(String::as_str).collect(),
        _ => own_models,
    };
    Some(AllowedRequest {
        models,
        max_budget_usd: limits.and_then(|l| l.max_budget_usd).unwrap_or(own_budget),
        max_steps: limits.and_then(|l| l.max_steps).unwrap_or(own_steps),
    })
}

/// Refuses a model, budget or step limit above what `[limits.agents.<id>]` allows.
fn check_request_limits(
    config: &AgentflowConfig,
    agent_id: &AgentId,
    parameters: &TaskParameters,
) -> Result<(), CreateTaskError> {
    let Some(allowed) = allowed_request(config, agent_id) else {
        return Err(CreateTaskError::UnknownAgent(agent_id.clone()));
    };
    let outside = |message: String| Err(CreateTaskError::OutsideLimit(message));
    if let Some(model) = &parameters.model
        && config.models.contains_key(model)
        && !allowed
            .models
            .iter()
            .any(|m| *m == model.as_str() || *m == ANY_MODEL)
    {
        return outside(format!(
            "task_parameters.model: `{model}` is not allowed for `{agent_id}` \
             (limits.agents.{agent_id}.models: {})",
            allowed.models.join(", ")
        ));
    }
    if let Some(budget) = parameters.budget_usd
        && budget > allowed.max_budget_usd
    {
        return outside(format!(
            "task_parameters.budget_usd: {budget} is above the limit for `{agent_id}` \
             (limits.agents.{agent_id}.max_budget_usd: {})",
            allowed.max_budget_usd
        ));
    }
    if let Some(steps) = parameters.max_steps
        && steps > allowed.max_steps
    {
        return outside(format!(
            "task_parameters.max_steps: {steps} is above the limit for `{agent_id}` \
             (limits.agents.{agent_id}.max_steps: {})",
            allowed.max_steps
        ));
    }
    Ok(())
}

/// The snapshot of `agent` (as `agent_id`) on model `model_name`, with its tools' settings.
fn snapshot(
    config: &AgentflowConfig,
    agent_id: &AgentId,
    agent: &AgentConfig,
    model_name: String,
) -> Result<AgentSnapshot, CreateTaskError> {
    let model = config
        .models
        .get(&model_name)
        .ok_or_else(|| CreateTaskError::UnknownModel(model_name.clone()))?;
    Ok(AgentSnapshot {
        agent_id: agent_id.clone(),
        agent: agent.clone(),
        model_name,
        model: model.clone(),
        tools: agent
            .tools
            .iter()
            .filter_map(|name| {
                let settings = match config.tools.get(name) {
                    Some(tool) => tool.settings(),
                    None => config.mcp_servers.get(name)?.settings(),
                };
                Some((name.clone(), settings))
            })
            .collect(),
    })
}

/// The input of a task of team `team_id`: each member's snapshot, the router's, and the team's
/// face (its id and budget on the first member's model).
fn team_input(
    config: &AgentflowConfig,
    team_id: &AgentId,
    team: &TeamConfig,
    task: NewTask,
) -> Result<TaskInput, CreateTaskError> {
    let invalid = |message: String| Err(CreateTaskError::InvalidParameter(message));
    if task.parameters.model.is_some() || task.parameters.instructions.is_some() {
        return invalid(format!(
            "task_parameters.model and .instructions are for agents; team `{team_id}`'s \
             members use their own"
        ));
    }
    if let Some(mode) = &task.parameters.mode {
        let RoutingConfig::Mention { .. } = team.routing else {
            return invalid(format!(
                "task_parameters.mode: team `{team_id}` runs in sequence, it has no modes"
            ));
        };
        if mode != FORCED_DISCUSSION && team.member(mode).is_none() {
            return invalid(format!(
                "task_parameters.mode must be `{FORCED_DISCUSSION}` or a member of team \
                 `{team_id}`, not `{mode}`"
            ));
        }
    }
    let members = team
        .members
        .iter()
        .map(|member| {
            let agent_id = AgentId::from(member.agent.as_str());
            let agent = config
                .agents
                .get(member.agent.as_str())
                .ok_or_else(|| CreateTaskError::UnknownAgent(agent_id.clone()))?;
            snapshot(config, &agent_id, agent, agent.model.clone())
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(tools) = &task.parameters.require_approval
        && let Some(unknown) = tools
            .iter()
            .find(|t| t.as_str() != "*" && !members.iter().any(|m| m.agent.tools.contains(t)))
    {
        return invalid(format!(
            "task_parameters.require_approval: `{unknown}` is not a tool of a member of team \
             `{team_id}`"
        ));
    }
    let router = match &team.routing {
        RoutingConfig::Mention {
            router_model: Some(model),
            router_instructions,
            ..
        } => {
            let agent = AgentConfig {
                name: ROUTER_SPEAKER.into(),
                description: String::new(),
                model: model.clone(),
                instructions: router_prompt(team, router_instructions.as_deref()),
                tools: Vec::new(),
                max_steps: 1,
                budget_usd: team.budget_usd,
                enable_streaming: false,
                require_approval: Vec::new(),
            };
            Some(snapshot(config, team_id, &agent, model.clone())?)
        }
        _ => None,
    };
    let mut face = members[0].clone();
    face.agent_id = team_id.clone();
    face.agent.name = team.name.clone();
    face.agent.description = team.description.clone();
    face.agent.budget_usd = team.budget_usd;
    let snapshot = TeamSnapshot {
        team: team.clone(),
        members,
        router,
    };
    Ok(input(config, face, Some(Box::new(snapshot)), task))
}

/// The router's instructions: the team's (or a default), then the members it picks from.
fn router_prompt(team: &TeamConfig, own: Option<&str>) -> String {
    let mut text = own
        .unwrap_or(
            "Route the user's message to the one team member best placed to answer it. \
             Answer with that member's name only.",
        )
        .to_owned();
    text.push_str("\nMembers:");
    for member in &team.members {
        text.push_str(&format!("\n- {}", member.name));
    }
    text
}

/// The workflow input of `task` for `agent` (and `team`).
fn input(
    config: &AgentflowConfig,
    agent: AgentSnapshot,
    team: Option<Box<TeamSnapshot>>,
    task: NewTask,
) -> TaskInput {
    TaskInput {
        task_id: task.id.unwrap_or_default(),
        description: task.description,
        user_id: task.user_id,
        tenant: task.tenant,
        query: task.query.filter(|q| !q.trim().is_empty()),
        agent,
        parameters: task.parameters,
        settings: RunSettings::from_config(&config.worker),
        created_at: chrono::Utc::now(),
        carried: None,
        team,
    }
}

/// Starts the task's workflow `agent-task-{id}` on the configured task queue. A task id is
/// never reused, even after its task closed.
pub async fn start_task(
    client: &Client,
    task_queue: &str,
    input: TaskInput,
) -> Result<WorkflowHandle<Client, AgentTask>, CreateTaskError> {
    let mut attributes = vec![
        AGENT_ID.value_set(input.agent.agent_id.to_string()),
        TASK_STATUS.value_set(TaskStatus::Created.as_str().to_owned()),
    ];
    if let Some(user) = &input.user_id {
        attributes.push(USER_ID.value_set(user.clone()));
    }
    if let Some(tenant) = &input.tenant {
        attributes.push(TENANT_ID.value_set(tenant.to_string()));
    }
    let options = WorkflowStartOptions::new(task_queue, input.task_id.workflow_id())
        .search_attributes(SearchAttributes::new(attributes))
        .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
        .build();
    let workflow_id = input.task_id.workflow_id();
    client.start_workflow(AgentTask, input, options).await?;
    Ok(client.get_workflow_handle::<AgentTask>(workflow_id))
}
