//! `GET /api/v1/agents`, `GET /api/v1/agents/{agent_id}`: the agents and the teams, which
//! are addressed like agents.

use crate::error::ApiError;
use crate::extract::PathParams;
use crate::routes::tools::{ToolEntry, catalog};
use crate::state::AppState;
use agentflow_shared::config::{AgentConfig, AgentflowConfig};
use agentflow_shared::team::TeamConfig;
use axum::Json;
use axum::extract::State;
use serde::Serialize;

/// What an id under `/api/v1/agents` names.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// One agent.
    Agent,
    /// A team of agents.
    Team,
}

/// An agent or a team, as the api lists them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Entry {
    /// An agent.
    Agent(Agent),
    /// A team.
    Team(Team),
}

/// A team as the api shows it: its config, and each member's agent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Team {
    /// The team's id (addressed like an agent's).
    pub id: String,
    /// Always `team`.
    pub kind: EntryKind,
    /// Its configuration.
    #[serde(flatten)]
    pub config: TeamConfig,
    /// Each member's agent, in member order.
    pub member_agents: Vec<Agent>,
}

impl Team {
    /// Team `id` of `config`.
    fn new(config: &AgentflowConfig, id: &str, team: &TeamConfig) -> Self {
        Self {
            id: id.to_owned(),
            kind: EntryKind::Team,
            config: team.clone(),
            member_agents: team
                .members
                .iter()
                .filter_map(|m| {
                    let agent = config.agents.get(&m.agent)?;
                    Some(Agent::new(config, &m.agent, agent))
                })
                .collect(),
        }
    }
}

/// An agent as the api shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Agent {
    /// The agent's id.
    pub id: String,
    /// Always `agent`.
    pub kind: EntryKind,
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
            kind: EntryKind::Agent,
            config: agent.clone(),
            tool_specs: agent
                .tools
                .iter()
                .filter_map(|name| specs.iter().find(|t| &t.name == name).cloned())
                .collect(),
        }
    }
}

/// The configured agents, then the teams (`kind` tells them apart).
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    responses((status = 200, body = Vec<Entry>)))]
#[tracing::instrument(skip_all)]
pub async fn list(State(state): State<AppState>) -> Json<Vec<Entry>> {
    let config = &state.config;
    let agents = config
        .agents
        .iter()
        .map(|(id, agent)| Entry::Agent(Agent::new(config, id, agent)));
    let teams = config
        .teams
        .iter()
        .map(|(id, team)| Entry::Team(Team::new(config, id, team)));
    Json(agents.chain(teams).collect())
}

/// One agent or team.
#[utoipa::path(get, path = "/api/v1/agents/{agent_id}", tag = "agents",
    params(("agent_id" = String, Path, description = "Agent or team id")),
    responses((status = 200, body = Entry), (status = 404, body = crate::error::Problem)))]
#[tracing::instrument(skip(state))]
pub async fn show(
    State(state): State<AppState>,
    PathParams(agent_id): PathParams<String>,
) -> Result<Json<Entry>, ApiError> {
    let config = &state.config;
    if let Some(team) = config.teams.get(&agent_id) {
        return Ok(Json(Entry::Team(Team::new(config, &agent_id, team))));
    }
    config
        .agents
        .get(&agent_id)
        .map(|agent| Json(Entry::Agent(Agent::new(config, &agent_id, agent))))
        .ok_or_else(|| ApiError::NotFound(format!("agent `{agent_id}` does not exist")))
}
