//! A worker process for the end-to-end tests: the config comes as JSON in
//! `AGENTFLOW_TEST_CONFIG_JSON`, Temporal from the standard env config. Tests kill it with SIGKILL
//! or stop it with SIGTERM (graceful shutdown, as in production).

use agentflow_shared::config::AgentflowConfig;
use agentflow_worker::tools::ToolRegistry;
use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let json = std::env::var("AGENTFLOW_TEST_CONFIG_JSON").context("AGENTFLOW_TEST_CONFIG_JSON")?;
    let config: AgentflowConfig = serde_json::from_str(&json)?;
    let tools = ToolRegistry::from_config(&config, |variable| std::env::var(variable).ok())?;
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
