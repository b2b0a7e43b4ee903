//! The `agentflow-api` binary: serves the api (`agentflow-api [CONFIG]`: loads the config,
//! connects to Temporal, serves until Ctrl-C or SIGTERM), and manages API keys
//! (`agentflow-api keys mint | list | revoke`).

use agentflow_api::Application;
use agentflow_api::auth::keys::{mint, read_file, update_file};
use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::ids::{KeyId, TenantId};
use agentflow_shared::security::{KeyRecord, Scope};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use tracing_subscriber::EnvFilter;

/// The agentflow api.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    /// The configuration file (default: `AGENTFLOW_CONFIG`, `./agentflow.toml`, the shipped one).
    config: Option<PathBuf>,
    /// What to do instead of serving.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Manage API keys in the keys file.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Mints a key, stores its hash and prints the key once.
    Mint {
        /// Who uses it (the tasks' `user_id`, the controls' `requested_by`).
        #[arg(long)]
        identity: String,
        /// The tenant whose tasks it sees.
        #[arg(long)]
        tenant: TenantId,
        /// What it may do (repeat): tasks:read, tasks:write, tasks:control, admin.
        #[arg(long = "scope", required = true)]
        scopes: Vec<Scope>,
        #[command(flatten)]
        file: KeysFileArg,
    },
    /// Lists the keys (ids, identities, tenants, scopes; never a key).
    List {
        #[command(flatten)]
        file: KeysFileArg,
    },
    /// Revokes a key: requests with it get 401 and its streams end within
    /// `auth.keys_reload_ms`.
    Revoke {
        /// The key's id (`af_<id>_…`, or from `keys list`).
        id: String,
        #[command(flatten)]
        file: KeysFileArg,
    },
}

#[derive(clap::Args)]
struct KeysFileArg {
    /// The keys file (default: the config's `auth.keys_file`).
    #[arg(long = "file")]
    path: Option<PathBuf>,
    /// The configuration file naming the keys file.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl KeysFileArg {
    fn resolve(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.path {
            return Ok(path.clone());
        }
        let config = AgentflowConfig::load(self.config.as_deref())?;
        config
            .auth
            .keys_file
            .context("no keys file: pass --file or set auth.keys_file")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Keys(command)) => keys_command(command),
        None => serve(cli.config.as_deref()).await,
    }
}

fn keys_command(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Mint {
            identity,
            tenant,
            scopes,
            file,
        } => {
            let path = file.resolve()?;
            let minted = mint(KeyRecord {
                id: KeyId(String::new()),
                identity,
                tenant,
                scopes,
                sha256: String::new(),
                created_at: Some(chrono::Utc::now()),
                revoked_at: None,
            });
            minted
                .record
                .validate()
                .map_err(|message| anyhow::anyhow!(message))?;
            update_file(&path, |keys_file| {
                keys_file.keys.push(minted.record.clone());
                anyhow::Ok(())
            })?;
            eprintln!(
                "key {} for {} (tenant {}) stored in {}; it is shown once:",
                minted.record.id,
                minted.record.identity,
                minted.record.tenant,
                path.display()
            );
            println!("{}", minted.key);
        }
        KeysCommand::List { file } => {
            let path = file.resolve()?;
            for key in read_file(&path)?.keys {
                let scopes: Vec<_> = key.scopes.iter().map(|s| s.as_str()).collect();
                let state = key
                    .revoked_at
                    .map_or("active".to_owned(), |at| format!("revoked {at}"));
                println!(
                    "{}\t{}\t{}\t{}\t{state}",
                    key.id,
                    key.identity,
                    key.tenant,
                    scopes.join(",")
                );
            }
        }
        KeysCommand::Revoke { id, file } => {
            let path = file.resolve()?;
            let revoked = revoke(&path, &id)?;
            eprintln!("key {revoked} revoked");
        }
    }
    Ok(())
}

/// Marks key `id` (or the key `af_<id>_…` itself) revoked; returns its id (never the key).
fn revoke(path: &Path, id: &str) -> anyhow::Result<KeyId> {
    let id = id
        .strip_prefix("af_")
        .and_then(|rest| rest.split('_').next())
        .unwrap_or(id);
    update_file(path, |keys_file| {
        let key = keys_file
            .keys
            .iter_mut()
            .find(|k| k.id.0 == id)
            .with_context(|| format!("no key with id `{id}` in {}", path.display()))?;
        key.revoked_at.get_or_insert_with(chrono::Utc::now);
        Ok(key.id.clone())
    })
}

async fn serve(path: Option<&Path>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = AgentflowConfig::load(path).context("loading the configuration")?;
    let client = agentflow_client::connect::connect_from_env().await?;
    let listen = config.api.listen.clone();
    let app = Application::build(config, client)
        .await
        .with_context(|| format!("starting the api on {listen}"))?;
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
