//! Creating tasks: resolve the agent snapshot from the config and start the workflow.
//! Used by the api, the tests and anyone starting tasks from Rust.

use crate::search::{AGENT_ID, TASK_STATUS, USER_ID};
use crate::workflow::AgentTask;
use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::ids::{AgentId, TaskId};
use agentflow_shared::task::{AgentSnapshot, RunSettings, TaskInput, TaskParameters, TaskStatus};
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
    /// Temporal refused or failed the start (e.g. the id is taken).
    #[error("starting the workflow failed: {0}")]
    Start(#[from] temporalio_client::errors::WorkflowStartError),
}

/// Builds the workflow input for a task of `agent_id`, copying the agent's config.
pub fn task_input(
    config: &AgentflowConfig,
    agent_id: &AgentId,
    task: NewTask,
) -> Result<TaskInput, CreateTaskError> {
    let agent = config
        .agents
        .get(agent_id.as_str())
        .ok_or_else(|| CreateTaskError::UnknownAgent(agent_id.clone()))?;
    let model_name = task
        .parameters
        .model
        .clone()
        .unwrap_or_else(|| agent.model.clone());
    let model = config
        .models
        .get(&model_name)
        .ok_or_else(|| CreateTaskError::UnknownModel(model_name.clone()))?;
    if task.parameters.max_steps == Some(0) {
        return Err(CreateTaskError::InvalidParameter(
            "task_parameters.max_steps must be at least 1".into(),
        ));
    }
    if let Some(budget) = task.parameters.budget_usd
        && !(budget.is_finite() && budget > 0.0)
    {
        return Err(CreateTaskError::InvalidParameter(
            "task_parameters.budget_usd must be a positive number".into(),
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
    Ok(TaskInput {
        task_id: task.id.unwrap_or_default(),
        description: task.description,
        user_id: task.user_id,
        query: task.query.filter(|q| !q.trim().is_empty()),
        agent: AgentSnapshot {
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
        },
        parameters: task.parameters,
        settings: RunSettings::from_config(&config.worker),
        created_at: chrono::Utc::now(),
        carried: None,
    })
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
    let options = WorkflowStartOptions::new(task_queue, input.task_id.workflow_id())
        .search_attributes(SearchAttributes::new(attributes))
        .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
        .build();
    let workflow_id = input.task_id.workflow_id();
    client.start_workflow(AgentTask, input, options).await?;
    Ok(client.get_workflow_handle::<AgentTask>(workflow_id))
}
