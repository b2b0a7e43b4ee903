//! The MCP tools a task may call, fixed when it starts: one `mcp_catalog` activity lists the
//! tools of the servers its agent lists, and its result — in history — is the catalog every
//! later step, retry, replay and continued run uses.

use super::AgentTaskWorkflow;
use super::llm_step::error_message;
use crate::activities::{AgentActivities, MCP_CATALOG_ATTEMPTS, MCP_LIST_TIMEOUT, McpCatalogInput};
use agentflow_shared::mcp::{McpCatalog, Unavailable};
use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_sdk::{ActivityOptions, WorkflowContext};

/// Fixes the task's MCP catalog, once: nothing to do when it is fixed already or the agent
/// lists no MCP server. When the listing fails altogether, every server is unavailable (the
/// task runs on without their tools).
pub(super) async fn fix(ctx: &WorkflowContext<AgentTaskWorkflow>) {
    let servers = ctx.state(|s| {
        if s.mcp.is_some() {
            Vec::new()
        } else {
            s.mcp_servers()
        }
    });
    if servers.is_empty() {
        return;
    }
    // Servers are listed at once, each within MCP_LIST_TIMEOUT.
    let options =
        ActivityOptions::with_start_to_close_timeout(MCP_LIST_TIMEOUT + Duration::from_secs(10))
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_attempts(MCP_CATALOG_ATTEMPTS)
                    .build(),
            )
            .build();
    let input = McpCatalogInput {
        servers: servers.clone(),
    };
    let catalog = match ctx
        .execute_activity(AgentActivities::mcp_catalog, input, options)
        .await
    {
        Ok(catalog) => catalog,
        Err(error) => {
            let error = error_message(&error);
            McpCatalog {
                tools: Vec::new(),
                unavailable: servers
                    .into_iter()
                    .map(|server| Unavailable {
                        server,
                        error: error.clone(),
                    })
                    .collect(),
            }
        }
    };
    ctx.state_mut(|s| s.mcp = Some(catalog));
}
