//! `agentflow-bench`: measures a running stack (`scripts/dev`), prints a table, writes JSON,
//! and exits non-zero when any subscriber saw a gap, a duplicate or a log that differs.

use agentflow_bench::cli::{Cli, run};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run(Cli::parse()).await.map(|_| ())
}
