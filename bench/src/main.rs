//! `agentflow-bench`: measures a running stack (`scripts/dev`), prints a table, writes JSON,
//! and exits non-zero when any subscriber saw a gap, a duplicate or a log that differs.

use agentflow_bench::scenarios;
use agentflow_bench::stats::Report;
use agentflow_bench::target::Target;
use clap::{Parser, Subcommand};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Benchmarks a running agentflow stack over HTTP and SSE")]
struct Cli {
    /// Base URL of the api.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080",
        env = "AGENTFLOW_BENCH_API"
    )]
    api: String,
    /// Temporal frontend, for the bare-Temporal baseline.
    #[arg(long, default_value = "127.0.0.1:7233", env = "TEMPORAL_ADDRESS")]
    temporal: String,
    /// The agent whose tasks are created.
    #[arg(long, default_value = "assistant")]
    agent: String,
    /// Write the reports as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// K running streaming tasks, M subscribers spread over them.
    Latency {
        #[arg(long, default_value_t = 100)]
        tasks: usize,
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
    },
    /// One task watched by each number of subscribers in turn.
    Fanout {
        #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
        counts: Vec<usize>,
    },
    /// N streams held on waiting tasks.
    Idle {
        #[arg(long, default_value_t = 100)]
        tasks: usize,
        #[arg(long, default_value_t = 10_000)]
        streams: usize,
        #[arg(long, default_value_t = 10)]
        hold_secs: u64,
    },
    /// Tasks created→completed per second, next to the bare-Temporal baseline.
    Throughput {
        #[arg(long, default_value_t = 200)]
        tasks: usize,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
    },
    /// The same workload in batch and in streaming mode.
    StreamingCost {
        #[arg(long, default_value_t = 20)]
        tasks: usize,
        /// Rounds of batch then streaming; the ratios compare the medians.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Every scenario with its defaults.
    All,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let target = Target::new(&cli.api, &cli.agent);
    let reports: Vec<Report> = match cli.scenario {
        Scenario::Latency { tasks, subscribers } => {
            vec![scenarios::latency(&target, tasks, subscribers).await?]
        }
        Scenario::Fanout { counts } => vec![scenarios::fanout(&target, &counts).await?],
        Scenario::Idle {
            tasks,
            streams,
            hold_secs,
        } => {
            vec![scenarios::idle(&target, tasks, streams, Duration::from_secs(hold_secs)).await?]
        }
        Scenario::Throughput { tasks, concurrency } => {
            vec![scenarios::throughput(&target, &cli.temporal, tasks, concurrency).await?]
        }
        Scenario::StreamingCost { tasks, rounds } => {
            vec![scenarios::streaming_cost(&target, tasks, rounds).await?]
        }
        Scenario::All => vec![
            scenarios::latency(&target, 100, 1000).await?,
            scenarios::fanout(&target, &[1, 10, 100, 1000]).await?,
            scenarios::idle(&target, 100, 10_000, Duration::from_secs(10)).await?,
            scenarios::throughput(&target, &cli.temporal, 200, 50).await?,
            scenarios::streaming_cost(&target, 20, 3).await?,
        ],
    };
    for report in &reports {
        print!("{}", report.table());
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_vec_pretty(&reports)?)?;
    }
    let violations: usize = reports.iter().map(|r| r.violations.len()).sum();
    anyhow::ensure!(violations == 0, "{violations} correctness violations");
    Ok(())
}
