//! The `agentflow-api` binary: loads `agentflow.toml`, connects to Temporal, serves until
//! Ctrl-C or SIGTERM.

use agentflow_api::Application;
use agentflow_shared::config::AgentflowConfig;
use anyhow::Context;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let path = std::env::args_os().nth(1).map(PathBuf::from);
    let config = AgentflowConfig::load(path.as_deref()).context("loading the configuration")?;
    let client = agentflow_client::connect::connect_from_env().await?;
    let listen = config.api.listen.clone();
    let app = Application::build(config, client)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(
        "agentflow api on http://{}:{}",
        listen.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h),
        app.port()
    );
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
