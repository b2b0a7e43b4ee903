//! `GET /api/v1/tools`: every tool an agent may list — the built-ins, those declared under
//! `[tools.<name>]` and the MCP servers under `[mcp_servers.<name>]` — with what the model
//! reads about it and where it runs.

use crate::state::AppState;
use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::mcp::{McpTool, SEPARATOR};
use agentflow_shared::tools::{BUILTIN_TOOLS, ToolKind, builtin_spec};
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

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
    /// An MCP tool's server (its tools as a worker last listed them; a task's own tools are
    /// fixed when it starts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

/// The catalog of `config`: the built-ins, then the declared tools, by name, then each MCP
/// server with the tools a worker last `reported` for it (a task fixes its own when it
/// starts).
pub fn catalog(
    config: &AgentflowConfig,
    reported: &BTreeMap<String, Vec<McpTool>>,
) -> Vec<ToolEntry> {
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
            server: None,
        });
    let declared = config.tools.iter().map(|(name, tool)| ToolEntry {
        name: name.clone(),
        kind: tool.kind,
        description: tool.description.clone(),
        parameters: tool.parameters.clone(),
        runs_at: tool.runs_at(),
        require_approval: tool.require_approval,
        server: None,
    });
    let servers = config.mcp_servers.iter().flat_map(|(name, server)| {
        let entry = ToolEntry {
            name: name.clone(),
            kind: ToolKind::Mcp,
            description: format!(
                "MCP server `{name}`: an agent that lists it may call its tools, as \
                 `{name}{SEPARATOR}<tool>`, listed by a worker when a task starts"
            ),
            parameters: serde_json::json!({"type": "object"}),
            runs_at: Some(server.runs_at()),
            require_approval: server.require_approval,
            server: None,
        };
        let tools = reported
            .get(name)
            .into_iter()
            .flatten()
            .map(|tool| ToolEntry {
                name: tool.name.clone(),
                kind: ToolKind::Mcp,
                description: tool.description.clone(),
                parameters: tool.parameters.clone(),
                runs_at: Some(server.runs_at()),
                require_approval: server.require_approval,
                server: Some(name.clone()),
            });
        std::iter::once(entry).chain(tools)
    });
    builtins.chain(declared).chain(servers).collect()
}

/// Every tool agents may list.
#[utoipa::path(get, path = "/api/v1/tools", tag = "agents",
    responses((status = 200, body = Vec<ToolEntry>)))]
#[tracing::instrument(skip(state))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<ToolEntry>> {
    let reported = match state.relays.bus() {
        Some(bus) if !state.config.mcp_servers.is_empty() => bus.reported_mcp_tools().await,
        _ => BTreeMap::new(),
    };
    Json(catalog(&state.config, &reported))
}
