//! The `agentflow-worker` binary: loads `agentflow.toml`, connects to Temporal and polls until
//! Ctrl-C or SIGTERM.

use agentflow_shared::config::AgentflowConfig;
use agentflow_worker::tools::ToolRegistry;
use anyhow::Context;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,temporalio_sdk_core=warn")),
        )
        .init();
    let path = std::env::args_os().nth(1).map(PathBuf::from);
    let config = AgentflowConfig::load(path.as_deref()).context("loading the configuration")?;
    let tools = ToolRegistry::from_config(&config, |variable| std::env::var(variable).ok())
        .context("setting up the declared tools")?;
    let client = agentflow_client::connect::connect_from_env().await?;
    agentflow_worker::worker::run(client, &config, tools, shutdown_signal()).await?;
    tracing::info!("worker stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
