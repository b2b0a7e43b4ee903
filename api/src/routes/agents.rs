//! `GET /api/v1/agents`, `GET /api/v1/agents/{agent_id}`.

use crate::error::ApiError;
use crate::extract::PathParams;
use crate::routes::tools::{ToolEntry, catalog};
use crate::state::AppState;
use agentflow_shared::config::{AgentConfig, AgentflowConfig};
use axum::Json;
use axum::extract::State;
use serde::Serialize;

/// An agent as the api shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Agent {
    /// The agent's id.
    pub id: String,
    /// Its configuration.
    #[serde(flatten)]
    pub config: AgentConfig,
    /// The tools it lists, as the catalog shows them.
    pub tool_specs: Vec<ToolEntry>,
}

impl Agent {
    /// Agent `id` of `config`.
    fn new(config: &AgentflowConfig, id: &str, agent: &AgentConfig) -> Self {
        let specs = catalog(config, &Default::default());
        Self {
            id: id.to_owned(),
            config: agent.clone(),
            tool_specs: agent
                .tools
                .iter()
                .filter_map(|name| specs.iter().find(|t| &t.name == name).cloned())
                .collect(),
        }
    }
}

/// The configured agents.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    responses((status = 200, body = Vec<Agent>)))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<Agent>> {
    Json(
        state
            .config
            .agents
            .iter()
            .map(|(id, agent)| Agent::new(&state.config, id, agent))
            .collect(),
    )
}

/// One agent.
#[utoipa::path(get, path = "/api/v1/agents/{agent_id}", tag = "agents",
    params(("agent_id" = String, Path, description = "Agent id")),
    responses((status = 200, body = Agent), (status = 404, body = crate::error::Problem)))]
pub async fn show(
    State(state): State<AppState>,
    PathParams(agent_id): PathParams<String>,
) -> Result<Json<Agent>, ApiError> {
    state
        .config
        .agents
        .get(&agent_id)
        .map(|agent| Json(Agent::new(&state.config, &agent_id, agent)))
        .ok_or_else(|| ApiError::NotFound(format!("agent `{agent_id}` does not exist")))
}
