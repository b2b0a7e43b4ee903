//! The `agentflow-bench` command line: parses the scenario, runs it, prints the tables and
//! writes the JSON report.

use crate::auth_cost;
use crate::chaos::{self, Binaries, ChaosOptions};
use crate::live::{self, LiveOptions};
use crate::scenarios;
use crate::stats::Report;
use crate::target::Target;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// The command line: where the stack is, where to write JSON, which scenario.
#[derive(Parser)]
#[command(
    name = "agentflow-bench",
    about = "Benchmarks a running agentflow stack over HTTP and SSE"
)]
pub struct Cli {
    /// Base URL of the api.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080",
        env = "AGENTFLOW_BENCH_API"
    )]
    pub api: String,
    /// Temporal frontend, for the bare-Temporal baseline.
    #[arg(long, default_value = "127.0.0.1:7233", env = "TEMPORAL_ADDRESS")]
    pub temporal: String,
    /// The agent whose tasks are created.
    #[arg(long, default_value = "assistant")]
    pub agent: String,
    /// The worker's process id, to report its peak memory (neighbours scenario).
    #[arg(long)]
    pub worker_pid: Option<u32>,
    /// Write the reports as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Which scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The programs a scenario's private stack runs.
#[derive(Args)]
pub struct StackPrograms {
    /// The worker (default: `agentflow-chaos-worker` next to this program).
    #[arg(long)]
    worker_bin: Option<PathBuf>,
    /// The api (default: `agentflow-api` next to this program).
    #[arg(long)]
    api_bin: Option<PathBuf>,
    /// The `temporal` CLI.
    #[arg(long, default_value = "temporal")]
    temporal_bin: PathBuf,
    /// `nats-server`.
    #[arg(long, default_value = "nats-server")]
    nats_bin: PathBuf,
}

impl StackPrograms {
    fn binaries(self) -> anyhow::Result<Binaries> {
        Ok(Binaries {
            temporal: self.temporal_bin,
            worker: beside_this_program(self.worker_bin, "agentflow-chaos-worker")?,
            api: beside_this_program(self.api_bin, "agentflow-api")?,
            nats: self.nats_bin,
        })
    }
}

/// The scenarios, with their sizes.
#[derive(Subcommand)]
pub enum Scenario {
    /// K running streaming tasks, M subscribers spread over them.
    Latency {
        /// Running tasks (K).
        #[arg(long, default_value_t = 100)]
        tasks: usize,
        /// Subscribers in all (M), spread evenly.
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
    },
    /// One task watched by each number of subscribers in turn.
    Fanout {
        /// The subscriber counts, one run each; the RPC ratio compares the last with the first.
        #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
        counts: Vec<usize>,
    },
    /// N streams held on waiting tasks.
    Idle {
        /// Waiting tasks the streams are spread over.
        #[arg(long, default_value_t = 100)]
        tasks: usize,
        /// Streams held (N).
        #[arg(long, default_value_t = 10_000)]
        streams: usize,
        /// How long the streams are held once all are open.
        #[arg(long, default_value_t = 10)]
        hold_secs: u64,
    },
    /// Tasks created→completed per second, next to the bare-Temporal baseline.
    Throughput {
        /// Tasks created and completed (and baseline workflows).
        #[arg(long, default_value_t = 200)]
        tasks: usize,
        /// How many at a time.
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
    },
    /// The same workload in batch and in streaming mode.
    StreamingCost {
        /// Tasks per round and mode, one subscriber each.
        #[arg(long, default_value_t = 20)]
        tasks: usize,
        /// Rounds of batch then streaming; the ratios compare the medians.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Small tasks' event latency alone, then next to a `Count to 100000` stream on
    /// `scripted-fast` on the same worker; the worker's peak memory.
    Neighbours {
        /// Small tasks (`Count to 20`, streaming) run one after another in each phase.
        #[arg(long, default_value_t = 10)]
        tasks: usize,
    },
    /// Seeded rounds of faults on a private stack that it starts itself (a dev server on a
    /// database file, a worker, an api; `--api` and `--temporal` are not used).
    Chaos {
        /// Rounds to run.
        #[arg(long, default_value_t = 100)]
        rounds: u64,
        /// The run's seed (default: from the clock; printed either way).
        #[arg(long)]
        seed: Option<u64>,
        /// The first round's number (replay round R alone: `--first-round R --rounds 1`).
        #[arg(long, default_value_t = 0)]
        first_round: u64,
        /// The programs of the private stack.
        #[command(flatten)]
        stack: StackPrograms,
        /// How long one round's task may take to end.
        #[arg(long, default_value_t = 120)]
        round_timeout_secs: u64,
    },
    /// The live path under issue #11's workload (20 tokens → calculator → 50 tokens, 10 ms
    /// apart) at each concurrency, with the bus and on the heartbeat path, on a private stack
    /// it starts itself (`--api` and `--temporal` are not used).
    Live {
        /// Concurrency levels (C).
        #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
        concurrency: Vec<usize>,
        /// Runs per level (at least 3 × C).
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Skip the heartbeat path (measure the bus only).
        #[arg(long)]
        bus_only: bool,
        /// The programs of the private stack.
        #[command(flatten)]
        stack: StackPrograms,
    },
    /// A three-member discussion (team `panel`) next to one agent (`plume`) answering alone:
    /// event latency of each, `tasks` tasks at once.
    Team {
        /// Tasks of each kind, run at once.
        #[arg(long, default_value_t = 10)]
        tasks: usize,
    },
    /// What security costs a request: two in-process apis (auth off and on) on `--temporal`.
    Auth {
        /// Requests per mode to a route without Temporal (`GET /api/v1/agents`).
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Task creations per mode.
        #[arg(long, default_value_t = 50)]
        creations: usize,
    },
    /// Every scenario with its defaults (chaos excepted).
    All,
}

/// Runs the chosen scenario(s), prints their tables and writes the JSON report if asked; fails
/// when any subscriber saw a gap, a duplicate or a log that differs.
pub async fn run(cli: Cli) -> anyhow::Result<Vec<Report>> {
    let target = Target::new(&cli.api, &cli.agent);
    let reports: Vec<Report> = match cli.scenario {
        Scenario::Latency { tasks, subscribers } => {
            vec![scenarios::latency(&target, tasks, subscribers).await?]
        }
        Scenario::Fanout { counts } => vec![scenarios::fanout(&target, &counts).await?],
        Scenario::Team { tasks } => vec![scenarios::team(&target, tasks).await?],
        Scenario::Auth {
            requests,
            creations,
        } => vec![auth_cost::auth_cost(&cli.temporal, requests, creations).await?],
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
        Scenario::Neighbours { tasks } => {
            vec![scenarios::neighbours(&target, tasks, cli.worker_pid).await?]
        }
        Scenario::Chaos {
            rounds,
            seed,
            first_round,
            stack,
            round_timeout_secs,
        } => {
            let options = ChaosOptions {
                rounds,
                seed: seed.unwrap_or_else(clock_seed),
                first_round,
                binaries: stack.binaries()?,
                round_timeout: Duration::from_secs(round_timeout_secs),
            };
            vec![chaos::chaos(&options).await?]
        }
        Scenario::Live {
            concurrency,
            runs,
            bus_only,
            stack,
        } => {
            let options = LiveOptions {
                concurrency,
                runs,
                binaries: stack.binaries()?,
                heartbeat_path: !bus_only,
            };
            vec![live::live(&options).await?]
        }
        Scenario::All => vec![
            scenarios::latency(&target, 100, 1000).await?,
            scenarios::fanout(&target, &[1, 10, 100, 1000]).await?,
            scenarios::idle(&target, 100, 10_000, Duration::from_secs(10)).await?,
            scenarios::throughput(&target, &cli.temporal, 200, 50).await?,
            scenarios::streaming_cost(&target, 20, 3).await?,
            scenarios::neighbours(&target, 10, cli.worker_pid).await?,
            scenarios::team(&target, 10).await?,
            auth_cost::auth_cost(&cli.temporal, 2000, 50).await?,
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
    Ok(reports)
}

/// A seed from the clock.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `given`, or the program `name` in this program's directory.
fn beside_this_program(given: Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    match given {
        Some(path) => Ok(path),
        None => Ok(std::env::current_exe()?
            .parent()
            .map(|dir| dir.join(name))
            .unwrap_or_else(|| PathBuf::from(name))),
    }
}
