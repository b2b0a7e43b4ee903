//! The private stack of the chaos and live scenarios: a Temporal dev server persisting to a
//! SQLite file (so a restart keeps its data, on the same ports), `nats-server -js` (the bus,
//! its store in the same directory), a worker and an api, each a child process that a scenario
//! kills and restarts. The bus can be switched off (worker and api restarted without it) to
//! measure the heartbeat path in the same run.

use anyhow::{Context, bail};
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The programs the stack runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The `temporal` CLI (its `server start-dev`).
    pub temporal: PathBuf,
    /// The worker (`agentflow-chaos-worker`: the `lookup` tool's failures need it).
    pub worker: PathBuf,
    /// `agentflow-api`.
    pub api: PathBuf,
    /// `nats-server`.
    pub nats: PathBuf,
}

/// How long a process may take to start listening, or to stop after SIGTERM.
const PROCESS_DEADLINE: Duration = Duration::from_secs(60);
/// How long a zombie worker stays stopped: past the stack's heartbeat timeout (2 s), so its
/// calls are retried elsewhere.
const ZOMBIE_STOPPED: Duration = Duration::from_secs(3);
/// How long a zombie runs again before it is killed.
const ZOMBIE_LIVES: Duration = Duration::from_secs(5);
/// How long nats-server stays away after it died with the worker: past the heartbeat timeout.
const NATS_AWAY: Duration = Duration::from_secs(3);

/// Sends signal `name` (`STOP`, `CONT`, `KILL`) to process `pid`.
fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{name} {pid} failed ({status})");
    }
    Ok(())
}

/// The running stack. Its processes are killed when it is dropped; [`Stack::stop`] stops them
/// gracefully and removes the directory with the database, config and logs.
pub struct Stack {
    binaries: Binaries,
    store: TemporalStore,
    dir: PathBuf,
    temporal_ports: [u16; 3],
    api_port: u16,
    nats_port: u16,
    task_queue: String,
    llm_base_url: String,
    lookup_url: String,
    http: reqwest::Client,
    temporal: Child,
    nats: Child,
    worker: Child,
    /// Workers made zombies (SIGSTOPped, replaced, let go on, then killed), until reaped.
    zombies: Vec<Child>,
    api: Child,
}

/// Where the stack's dev server keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalStore {
    /// A database file in the stack's directory: the server can be restarted (chaos).
    File,
    /// Memory only, as `scripts/dev` and `scripts/bench` run it (the live scenario).
    Memory,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The chaos config: the assistant on the fake model with `calculator` and `lookup`; short
/// heartbeat timeout and retries, so a killed worker costs seconds; room for every fault of a
/// round in the retry budgets.
fn config(task_queue: &str, api_port: u16, llm_base_url: &str, bus: &BusMode) -> String {
    let BusMode {
        url: bus_url,
        hints,
    } = bus;
    format!(
        r#"[bus]
url = "{bus_url}"
progress_hints = {hints}
max_age_secs = 7200
heartbeat_ms = 500

[worker]
task_queue = "{task_queue}"
coalesce_ms = 20
coalesce_chars = 32
sticky_timeout_secs = 1
llm_heartbeat_timeout_secs = 2
llm_retry_initial_ms = 100
llm_max_attempts = 8
tool_max_attempts = 5
shutdown_timeout_secs = 5

[api]
listen = "127.0.0.1:{api_port}"
keep_alive_secs = 1
sse_retry_ms = 100
relay_linger_ms = 1000

[models.fake]
provider = "openai"
model = "gpt-fake"
base_url = "{llm_base_url}"
request_timeout_secs = 10
input_price_per_mtok = 1.0
output_price_per_mtok = 2.0

[agents.assistant]
name = "Assistant"
model = "fake"
instructions = "Look things up, then answer."
tools = ["calculator", "lookup"]
max_steps = 4
budget_usd = 100.0
enable_streaming = true
"#
    )
}

/// The bus as the worker and the api see it.
struct BusMode {
    /// The NATS url (empty: no bus).
    url: String,
    /// `bus.progress_hints`.
    hints: bool,
}

impl Stack {
    /// Starts the dev server (its state in `store`), a worker and an api; returns once the api
    /// is ready (Temporal answers it). `llm_base_url` and `lookup_url` are the fake server's.
    pub async fn start(
        binaries: Binaries,
        store: TemporalStore,
        llm_base_url: &str,
        lookup_url: &str,
    ) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("agentflow-chaos-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let api_port = free_port()?;
        let nats_port = free_port()?;
        let task_queue = format!("chaos-{}", uuid::Uuid::new_v4());
        std::fs::write(
            dir.join("agentflow.toml"),
            config(
                &task_queue,
                api_port,
                llm_base_url,
                &BusMode {
                    url: format!("nats://127.0.0.1:{nats_port}"),
                    hints: true,
                },
            ),
        )?;
        let temporal_ports = [free_port()?, free_port()?, free_port()?];
        let temporal = spawn_temporal(&binaries.temporal, store, &dir, temporal_ports)?;
        let nats = spawn_nats(&binaries.nats, &dir, nats_port)?;
        wait_listening(temporal_ports[0]).await?;
        wait_listening(nats_port).await?;
        let stack = Self {
            store,
            nats,
            nats_port,
            task_queue,
            llm_base_url: llm_base_url.to_owned(),
            zombies: Vec::new(),
            worker: spawn_agentflow(&binaries.worker, &dir, "worker", temporal_ports[0], |c| {
                c.env("CHAOS_LOOKUP_URL", lookup_url);
            })?,
            api: spawn_agentflow(&binaries.api, &dir, "api", temporal_ports[0], |_| {})?,
            binaries,
            dir,
            temporal_ports,
            api_port,
            lookup_url: lookup_url.to_owned(),
            http: reqwest::Client::new(),
            temporal,
        };
        stack.wait_api_ready().await?;
        Ok(stack)
    }

    /// The api's base URL.
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// The dev server's frontend address (`host:port`).
    pub fn temporal_address(&self) -> String {
        format!("127.0.0.1:{}", self.temporal_ports[0])
    }

    /// The port of the dev server's Prometheus metrics (its own request counters).
    pub fn temporal_metrics_port(&self) -> u16 {
        self.temporal_ports[2]
    }

    /// The process ids: `(name, pid)` of the dev server, nats-server, worker and api.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        [
            ("temporal", &self.temporal),
            ("nats", &self.nats),
            ("worker", &self.worker),
            ("api", &self.api),
        ]
        .into_iter()
        .filter_map(|(name, child)| Some((name, child.id()?)))
        .collect()
    }

    /// Restarts the worker and the api with the bus on or off (off: every call streams over
    /// its heartbeats, the path the bus replaced); returns once the api is ready.
    pub async fn set_bus(&mut self, on: bool) -> anyhow::Result<()> {
        self.set_bus_with(on, true).await
    }

    /// [`Stack::set_bus`], with the workers' progress hints on or off (off: relays long-poll
    /// history, as before hints).
    pub async fn set_bus_with(&mut self, on: bool, hints: bool) -> anyhow::Result<()> {
        let url = if on {
            format!("nats://127.0.0.1:{}", self.nats_port)
        } else {
            String::new()
        };
        std::fs::write(
            self.dir.join("agentflow.toml"),
            config(
                &self.task_queue,
                self.api_port,
                &self.llm_base_url,
                &BusMode { url, hints },
            ),
        )?;
        terminate(&mut self.worker).await?;
        self.worker = self.spawn_worker()?;
        self.restart_api().await
    }

    /// Where the processes' logs are (until [`Stack::stop`]).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn spawn_temporal(&self) -> anyhow::Result<Child> {
        spawn_temporal(
            &self.binaries.temporal,
            self.store,
            &self.dir,
            self.temporal_ports,
        )
    }

    fn spawn_worker(&self) -> anyhow::Result<Child> {
        let url = self.lookup_url.clone();
        spawn_agentflow(
            &self.binaries.worker,
            &self.dir,
            "worker",
            self.temporal_ports[0],
            move |c| {
                c.env("CHAOS_LOOKUP_URL", url);
            },
        )
    }

    fn spawn_api(&self) -> anyhow::Result<Child> {
        spawn_agentflow(
            &self.binaries.api,
            &self.dir,
            "api",
            self.temporal_ports[0],
            |_| {},
        )
    }

    /// SIGKILLs the worker (no graceful shutdown: its activities time out) and starts another.
    pub async fn kill_worker(&mut self) -> anyhow::Result<()> {
        if self.worker.try_wait()?.is_none() {
            self.worker.kill().await.context("killing the worker")?;
        }
        self.worker = self.spawn_worker()?;
        Ok(())
    }

    /// Makes the worker a zombie: SIGSTOPs it (its calls go on elsewhere once their heartbeats
    /// time out), starts another, lets the stopped one go on after `ZOMBIE_STOPPED` — it keeps
    /// publishing its superseded attempts until it learns it lost them — and SIGKILLs it
    /// `ZOMBIE_LIVES` later.
    pub async fn zombie_worker(&mut self) -> anyhow::Result<()> {
        self.zombies
            .retain_mut(|z| matches!(z.try_wait(), Ok(None)));
        let pid = self.worker.id().context("the worker's pid")?;
        signal(pid, "STOP")?;
        let next = self.spawn_worker()?;
        let zombie = std::mem::replace(&mut self.worker, next);
        self.zombies.push(zombie);
        tokio::spawn(async move {
            tokio::time::sleep(ZOMBIE_STOPPED).await;
            let _ = signal(pid, "CONT");
            tokio::time::sleep(ZOMBIE_LIVES).await;
            let _ = signal(pid, "KILL");
        });
        Ok(())
    }

    /// SIGKILLs the worker and nats-server together, starts another worker at once (its retry
    /// of the call waits for the bus, which holds what the dead attempt stored), and starts
    /// nats-server again `NATS_AWAY` later, past the heartbeat timeout.
    pub async fn kill_nats_and_worker(&mut self) -> anyhow::Result<()> {
        if self.worker.try_wait()?.is_none() {
            self.worker.kill().await.context("killing the worker")?;
        }
        if self.nats.try_wait()?.is_none() {
            self.nats.kill().await.context("killing nats-server")?;
        }
        self.worker = self.spawn_worker()?;
        tokio::time::sleep(NATS_AWAY).await;
        self.nats = spawn_nats(&self.binaries.nats, &self.dir, self.nats_port)?;
        wait_listening(self.nats_port).await
    }

    /// SIGKILLs nats-server and starts it again on the same port and store; returns once it
    /// listens (the worker and api reconnect on their own).
    pub async fn kill_nats(&mut self) -> anyhow::Result<()> {
        if self.nats.try_wait()?.is_none() {
            self.nats.kill().await.context("killing nats-server")?;
        }
        self.nats = spawn_nats(&self.binaries.nats, &self.dir, self.nats_port)?;
        wait_listening(self.nats_port).await
    }

    /// Stops the api (SIGTERM: its streams end, clients reconnect) and starts another on the
    /// same port; returns once it is ready.
    pub async fn restart_api(&mut self) -> anyhow::Result<()> {
        terminate(&mut self.api).await?;
        self.api = self.spawn_api()?;
        self.wait_api_ready().await
    }

    /// Stops the dev server (SIGTERM) and starts it again on the same ports and database;
    /// returns once the api reaches it again.
    pub async fn restart_temporal(&mut self) -> anyhow::Result<()> {
        terminate(&mut self.temporal).await?;
        self.temporal = self.spawn_temporal()?;
        self.wait_temporal().await?;
        self.wait_api_ready().await
    }

    /// The processes that exited on their own since the last call (each is started again).
    pub async fn exited(&mut self) -> anyhow::Result<Vec<String>> {
        let mut exited = Vec::new();
        if let Some(status) = self.worker.try_wait()? {
            exited.push(format!("the worker exited on its own ({status})"));
            self.worker = self.spawn_worker()?;
        }
        if let Some(status) = self.api.try_wait()? {
            exited.push(format!("the api exited on its own ({status})"));
            self.api = self.spawn_api()?;
            self.wait_api_ready().await?;
        }
        if let Some(status) = self.temporal.try_wait()? {
            exited.push(format!("the dev server exited on its own ({status})"));
            self.temporal = self.spawn_temporal()?;
            self.wait_temporal().await?;
            self.wait_api_ready().await?;
        }
        Ok(exited)
    }

    /// Stops every process (SIGTERM, then SIGKILL past the deadline) and removes the directory.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let api = terminate(&mut self.api).await;
        let worker = terminate(&mut self.worker).await;
        let temporal = terminate(&mut self.temporal).await;
        let nats = terminate(&mut self.nats).await;
        for zombie in &mut self.zombies {
            let _ = zombie.kill().await;
        }
        std::fs::remove_dir_all(&self.dir)?;
        api.and(worker).and(temporal).and(nats)
    }

    async fn wait_temporal(&self) -> anyhow::Result<()> {
        wait_listening(self.temporal_ports[0]).await
    }

    async fn wait_api_ready(&self) -> anyhow::Result<()> {
        let url = format!("{}/readyz", self.api_base());
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            let ready = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the api was not ready at {url} within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The children are `kill_on_drop`; only the directory is left to remove.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until something listens on `port` of 127.0.0.1.
async fn wait_listening(port: u16) -> anyhow::Result<()> {
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + PROCESS_DEADLINE;
    while tokio::net::TcpStream::connect(&address).await.is_err() {
        if Instant::now() > deadline {
            bail!("nothing listened on {address} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<Stdio> {
    Ok(OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))?
        .into())
}

fn spawn_temporal(
    program: &Path,
    store: TemporalStore,
    dir: &Path,
    ports: [u16; 3],
) -> anyhow::Result<Child> {
    let [port, http_port, metrics_port] = ports.map(|p| p.to_string());
    let mut command = Command::new(program);
    command
        .args(["server", "start-dev", "--headless", "--ip", "127.0.0.1"])
        .args(["--port", &port, "--http-port", &http_port])
        .args(["--metrics-port", &metrics_port, "--log-level", "error"]);
    if store == TemporalStore::File {
        command.arg("--db-filename").arg(dir.join("temporal.db"));
    }
    for key in agentflow_client::search::ALL {
        command.args(["--search-attribute", &format!("{}=Keyword", key.name())]);
    }
    command
        .stdin(Stdio::null())
        .stdout(log_file(dir, "temporal")?)
        .stderr(log_file(dir, "temporal")?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

fn spawn_nats(program: &Path, dir: &Path, port: u16) -> anyhow::Result<Child> {
    Command::new(program)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("nats"))
        .stdin(Stdio::null())
        .stdout(log_file(dir, "nats")?)
        .stderr(log_file(dir, "nats")?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

fn spawn_agentflow(
    program: &Path,
    dir: &Path,
    name: &str,
    temporal_port: u16,
    extra: impl FnOnce(&mut Command),
) -> anyhow::Result<Child> {
    let config = dir.join("agentflow.toml");
    let mut command = Command::new(program);
    command
        .arg(&config)
        .env("AGENTFLOW_CONFIG", &config)
        .env_remove("AGENTFLOW_API__LISTEN")
        .env_remove("AGENTFLOW_WORKER__TASK_QUEUE")
        .env("TEMPORAL_ADDRESS", format!("127.0.0.1:{temporal_port}"))
        .env("TEMPORAL_NAMESPACE", "default")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log_file(dir, name)?)
        .stderr(log_file(dir, name)?)
        .kill_on_drop(true);
    extra(&mut command);
    command
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

/// SIGTERM, then SIGKILL if the process has not exited within [`PROCESS_DEADLINE`].
async fn terminate(child: &mut Child) -> anyhow::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    if let Some(pid) = child.id() {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        if tokio::time::timeout(PROCESS_DEADLINE, child.wait())
            .await
            .is_ok()
        {
            return Ok(());
        }
    }
    child.kill().await?;
    Ok(())
}
