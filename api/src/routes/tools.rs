//! `GET /api/v1/tools`: every tool an agent may list — the built-ins and those declared under
//! `[tools.<name>]` — with what the model reads about it and where it runs.

use crate::state::AppState;
use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::tools::{BUILTIN_TOOLS, ToolKind, builtin_spec};
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;

/// A tool as the catalog shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ToolEntry {
    /// The name agents list and the model calls.
    pub name: String,
    /// Where it runs.
    pub kind: ToolKind,
    /// What the model reads about it.
    pub description: String,
    /// JSON Schema of its argument object.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// Where it runs: an `http` tool's host, an `activity` tool's task queue (absent for a
    /// built-in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_at: Option<String>,
    /// Every call waits for a person's decision.
    pub require_approval: bool,
}

/// The catalog of `config`: the built-ins, then the declared tools, by name.
pub fn catalog(config: &AgentflowConfig) -> Vec<ToolEntry> {
    let builtins = BUILTIN_TOOLS
        .iter()
        .filter_map(|name| builtin_spec(name))
        .map(|spec| ToolEntry {
            name: spec.name,
            kind: ToolKind::Builtin,
            description: spec.description,
            parameters: spec.parameters,
            runs_at: None,
            require_approval: false,
        });
    let declared = config.tools.iter().map(|(name, tool)| ToolEntry {
        name: name.clone(),
        kind: tool.kind,
        description: tool.description.clone(),
        parameters: tool.parameters.clone(),
        runs_at: tool.runs_at(),
        require_approval: tool.require_approval,
    });
    builtins.chain(declared).collect()
}

/// Every tool agents may list.
#[utoipa::path(get, path = "/api/v1/tools", tag = "agents",
    responses((status = 200, body = Vec<ToolEntry>)))]
#[tracing::instrument(skip(state))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<ToolEntry>> {
    Json(catalog(&state.config))
}
