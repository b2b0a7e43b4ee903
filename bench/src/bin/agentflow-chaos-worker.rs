//! The worker of the chaos scenario: `agentflow-worker`'s wiring (config from the file in argv[1]
//! or `AGENTFLOW_CONFIG`, Temporal from the SDK's env config, SIGTERM/Ctrl-C shutdown) with one
//! more tool, `lookup`, whose backend is the fake server at `CHAOS_LOOKUP_URL`, so the scenario
//! can make tool calls fail transiently.

use agentflow_bench::fake_llm::LookupTool;
use agentflow_shared::config::AgentflowConfig;
use agentflow_worker::tools::ToolRegistry;
use anyhow::Context;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let path = std::env::args_os().nth(1).map(PathBuf::from);
    let config = AgentflowConfig::load(path.as_deref()).context("loading the configuration")?;
    let lookup_url = std::env::var("CHAOS_LOOKUP_URL").context("CHAOS_LOOKUP_URL")?;
    let mut tools = ToolRegistry::with_builtins();
    tools.register(LookupTool::new(lookup_url))?;
    let client = agentflow_client::connect::connect_from_env().await?;
    agentflow_worker::worker::run(client, &config, tools, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    })
    .await?;
    Ok(())
}
