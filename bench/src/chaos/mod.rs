//! The chaos scenario: seeded rounds of faults on a private stack, each round checked against
//! Invariant 1 ([`check_prefix`]).
//!
//! A round runs one streaming task of the `assistant` on the fake model: the model asks for
//! `lookup` and `calculator`, then streams its answer in paced chunks. Its plan, drawn from the
//! round's seed, mixes:
//!
//! - model faults, decided per request by the fake server: HTTP 500 (retryable) before the tool
//!   calls or the answer, and answer streams that break after some chunks;
//! - transient tool failures (the `lookup` backend answers 500; Temporal retries the activity);
//! - process faults (at least one per round), each fired when the first subscriber has seen
//!   enough of the log: SIGKILL of the worker mid-delta (a new one is started at once), a
//!   restart of the api on its port, a restart of the dev server on its database, a SIGKILL of
//!   nats-server mid-delta (started again on its store; calls move to heartbeats meanwhile);
//! - subscribers: one that stays from start to end (it also paces the process faults), and
//!   others that reconnect with `Last-Event-ID` every few events, leave early, or read slowly.
//!
//! After the task has ended, its final log is read page by page; every subscriber's events must
//! be a prefix of it ([`check_prefix`]), and the whole of it for those that stayed. A failure is
//! counted as lost, duplicated or diverged (an event past the log's end counts as diverged)
//! and listed with the round's replay arguments. Rounds replay their plan from `--seed` and
//! `--first-round`; the timing of the processes is not replayed.

mod stack;

pub use stack::{Binaries, Stack, TemporalStore};

use crate::fake_llm::{FakeLlm, Script, Turn};
use crate::stats::{Percentiles, Report};
use crate::target::Target;
use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::ids::Seq;
use agentflow_shared::log::{EventLog, PrefixError, check_prefix};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The query every round's task runs (the fake model decides the answers).
pub const CHAOS_QUERY: &str = "Look up this round's key and compute 6*7, then answer at length";

/// What a chaos run does.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// How many rounds.
    pub rounds: u64,
    /// The run's seed: round `r`'s plan is drawn from (`seed`, `r`).
    pub seed: u64,
    /// The number of the first round (to replay round `r` alone: `first_round = r`, one round).
    pub first_round: u64,
    /// The programs of the stack.
    pub binaries: Binaries,
    /// How long a round's task may take to end, faults included.
    pub round_timeout: Duration,
}

/// A small seedable generator (SplitMix64): plans must replay exactly from a printed seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator of round `round` of a run seeded with `seed`.
    pub fn for_round(seed: u64, round: u64) -> Self {
        let mut mixer = Self(seed ^ round.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Self(mixer.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high.saturating_sub(low) + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// The kinds of fault a round injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// The worker SIGKILLed while the answer streams; another one started.
    WorkerKill,
    /// The api stopped (its streams end) and started again on the same port.
    ApiRestart,
    /// The dev server stopped and started again on the same ports and database.
    TemporalRestart,
    /// A subscriber dropped its stream and reconnected with `Last-Event-ID`.
    ClientReconnect,
    /// A subscriber left before the end.
    EarlyLeave,
    /// A subscriber that sleeps between reads.
    SlowSubscriber,
    /// The model answered HTTP 500.
    Llm500,
    /// The model's stream broke mid-way.
    LlmDrop,
    /// The `lookup` tool's backend answered HTTP 500.
    Tool500,
    /// nats-server was killed (SIGKILL) mid-delta and started again on its store.
    NatsKill,
    /// The worker was stopped (SIGSTOP) past the heartbeat timeout while another took its
    /// calls, then let go on (SIGCONT): a zombie that still publishes.
    WorkerZombie,
    /// The worker and nats-server were killed together; the next worker waited for the bus.
    NatsAndWorkerKill,
}

impl FaultKind {
    /// Every kind, in report order.
    pub const ALL: [Self; 12] = [
        Self::WorkerKill,
        Self::ApiRestart,
        Self::TemporalRestart,
        Self::ClientReconnect,
        Self::EarlyLeave,
        Self::SlowSubscriber,
        Self::Llm500,
        Self::LlmDrop,
        Self::Tool500,
        Self::NatsKill,
        Self::WorkerZombie,
        Self::NatsAndWorkerKill,
    ];

    /// The kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::WorkerKill => "worker_sigkill",
            Self::ApiRestart => "api_restart",
            Self::TemporalRestart => "temporal_restart",
            Self::ClientReconnect => "client_reconnect",
            Self::EarlyLeave => "client_early_leave",
            Self::SlowSubscriber => "slow_subscriber",
            Self::Llm500 => "llm_http_500",
            Self::LlmDrop => "llm_stream_dropped",
            Self::Tool500 => "tool_http_500",
            Self::NatsKill => "nats_sigkill",
            Self::WorkerZombie => "worker_zombie_sigstop",
            Self::NatsAndWorkerKill => "nats_and_worker_sigkill",
        }
    }
}

/// Faults injected so far, by kind.
#[derive(Debug, Default)]
struct Faults(Mutex<BTreeMap<FaultKind, u64>>);

impl Faults {
    fn add(&self, kind: FaultKind) {
        *self
            .0
            .lock()
            .expect("the fault counts")
            .entry(kind)
            .or_default() += 1;
    }

    fn snapshot(&self) -> BTreeMap<FaultKind, u64> {
        self.0.lock().expect("the fault counts").clone()
    }
}

/// How an answer attempt fails.
#[derive(Debug, Clone, Copy)]
enum AnswerFault {
    /// HTTP 500.
    Error500,
    /// The stream breaks after this many chunks.
    Drop(usize),
}

/// A process fault and when it fires.
#[derive(Debug, Clone, Copy)]
enum ProcessFault {
    /// SIGKILL the worker once the first subscriber has seen this many deltas.
    KillWorker(usize),
    /// Restart the api once the first subscriber has seen this many events.
    RestartApi(usize),
    /// Restart the dev server once the first subscriber has seen this many events.
    RestartTemporal(usize),
    /// SIGKILL nats-server (and start it again) once the first subscriber has seen this many
    /// deltas.
    KillNats(usize),
    /// Make the worker a zombie once the first subscriber has seen this many deltas.
    ZombieWorker(usize),
    /// SIGKILL the worker and nats-server together once the first subscriber has seen this
    /// many deltas.
    KillNatsAndWorker(usize),
}

impl ProcessFault {
    fn kind(self) -> FaultKind {
        match self {
            Self::KillWorker(_) => FaultKind::WorkerKill,
            Self::RestartApi(_) => FaultKind::ApiRestart,
            Self::RestartTemporal(_) => FaultKind::TemporalRestart,
            Self::KillNats(_) => FaultKind::NatsKill,
            Self::ZombieWorker(_) => FaultKind::WorkerZombie,
            Self::KillNatsAndWorker(_) => FaultKind::NatsAndWorkerKill,
        }
    }

    fn due(self, progress: &Progress) -> bool {
        match self {
            Self::KillWorker(deltas)
            | Self::KillNats(deltas)
            | Self::ZombieWorker(deltas)
            | Self::KillNatsAndWorker(deltas) => progress.deltas >= deltas,
            Self::RestartApi(events) | Self::RestartTemporal(events) => progress.events >= events,
        }
    }

    /// Roughly where in the log it fires (the answer's deltas start after ≈ 8 events).
    fn position(self) -> usize {
        match self {
            Self::KillWorker(deltas)
            | Self::KillNats(deltas)
            | Self::ZombieWorker(deltas)
            | Self::KillNatsAndWorker(deltas) => 8 + deltas,
            Self::RestartApi(events) | Self::RestartTemporal(events) => events,
        }
    }
}

/// How a subscriber reads.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// From the start to the end.
    Steady,
    /// Drops its stream after every this many events and reconnects with `Last-Event-ID`.
    Reconnecting(usize),
    /// Leaves after this many events.
    Leaves(usize),
    /// Sleeps this long after each event.
    Slow(Duration),
}

/// Chunks of a long round's answer (`word0 word1 …`: ≈ 60 KB of text in ≈ 1 MB of events,
/// several checkpoints).
const LONG_ANSWER_CHUNKS: usize = 6_000;

/// One round's plan, drawn from its seed.
#[derive(Debug, Clone)]
struct Plan {
    answer: Vec<String>,
    every: Duration,
    tool_call_errors: u32,
    answer_faults: Vec<AnswerFault>,
    tool_errors: u32,
    subscribers: Vec<Role>,
    process_faults: Vec<ProcessFault>,
}

impl Plan {
    fn draw(rng: &mut Rng) -> Self {
        // One round in ten is a long generation (thousands of events as fast as the model can
        // send it: the call hands its events to the workflow in checkpoints), with its
        // process faults spread further into the answer.
        let long = rng.chance(0.1);
        let (chunks, every, spread) = if long {
            (LONG_ANSWER_CHUNKS, Duration::ZERO, 20)
        } else {
            (
                rng.range(20, 50) as usize,
                Duration::from_millis(rng.range(10, 30)),
                1,
            )
        };
        let answer = (0..chunks).map(|i| format!("word{i} ")).collect();
        let tool_call_errors = u32::from(rng.chance(0.25));
        let answer_faults = (0..rng.range(0, 2))
            .map(|_| {
                if rng.chance(0.5) {
                    AnswerFault::Error500
                } else {
                    AnswerFault::Drop(rng.range(1, chunks as u64 - 1) as usize)
                }
            })
            .collect();
        let tool_errors = if rng.chance(0.35) {
            rng.range(1, 2) as u32
        } else {
            0
        };
        let mut subscribers = vec![Role::Steady];
        for _ in 0..rng.range(1, 4) {
            subscribers.push(match rng.range(0, 3) {
                0 => Role::Steady,
                1 => Role::Reconnecting(rng.range(2, 8) as usize),
                2 => Role::Leaves(rng.range(1, 20) as usize),
                // A long answer has thousands of events: its slow readers sleep less.
                _ if long => Role::Slow(Duration::from_millis(rng.range(1, 3))),
                _ => Role::Slow(Duration::from_millis(rng.range(20, 80))),
            });
        }
        let mut process_faults = Vec::new();
        if rng.chance(0.5) {
            process_faults.push(ProcessFault::KillWorker(spread * rng.range(1, 3) as usize));
        }
        if rng.chance(0.4) {
            process_faults.push(ProcessFault::RestartApi(rng.range(1, 25) as usize));
        }
        if rng.chance(0.3) {
            process_faults.push(ProcessFault::RestartTemporal(rng.range(1, 25) as usize));
        }
        if rng.chance(0.3) {
            process_faults.push(ProcessFault::KillNats(spread * rng.range(1, 6) as usize));
        }
        if rng.chance(0.15) {
            process_faults.push(ProcessFault::ZombieWorker(
                spread * rng.range(1, 3) as usize,
            ));
        }
        if rng.chance(0.15) {
            process_faults.push(ProcessFault::KillNatsAndWorker(
                spread * rng.range(1, 3) as usize,
            ));
        }
        if process_faults.is_empty() {
            process_faults.push(match rng.range(0, 2) {
                0 => ProcessFault::KillWorker(rng.range(1, 3) as usize),
                1 => ProcessFault::RestartApi(rng.range(1, 25) as usize),
                _ => ProcessFault::RestartTemporal(rng.range(1, 25) as usize),
            });
        }
        process_faults.sort_by_key(|f| f.position());
        Self {
            answer,
            every,
            tool_call_errors,
            answer_faults,
            tool_errors,
            subscribers,
            process_faults,
        }
    }

    /// One line for the log of the run.
    fn describe(&self) -> String {
        format!(
            "answer {}×{}ms, model 500 before tools ×{}, answer faults {:?}, tool 500 ×{}, \
             subscribers {:?}, process faults {:?}",
            self.answer.len(),
            self.every.as_millis(),
            self.tool_call_errors,
            self.answer_faults,
            self.tool_errors,
            self.subscribers,
            self.process_faults
        )
    }
}

/// What the fake server still has to inject in the current round.
#[derive(Debug, Default)]
struct ScriptState {
    round: u64,
    answer: Vec<String>,
    every: Duration,
    tool_call_errors: u32,
    answer_faults: VecDeque<AnswerFault>,
    tool_errors: u32,
}

/// The fake server's script for a chaos run: the model asks for the tools until a tool result
/// is in the conversation, then answers; faults are served in the plan's order.
struct ChaosScript {
    state: Mutex<ScriptState>,
    faults: Arc<Faults>,
}

impl ChaosScript {
    fn set(&self, round: u64, plan: &Plan) {
        *self.state.lock().expect("the script") = ScriptState {
            round,
            answer: plan.answer.clone(),
            every: plan.every,
            tool_call_errors: plan.tool_call_errors,
            answer_faults: plan.answer_faults.iter().copied().collect(),
            tool_errors: plan.tool_errors,
        };
    }
}

impl Script for ChaosScript {
    fn chat(&self, request: &Value) -> Turn {
        let answering = request["messages"]
            .as_array()
            .is_some_and(|messages| messages.iter().any(|m| m["role"] == "tool"));
        let mut state = self.state.lock().expect("the script");
        if !answering {
            if state.tool_call_errors > 0 {
                state.tool_call_errors -= 1;
                self.faults.add(FaultKind::Llm500);
                return Turn::Error(500, "chaos: injected server error".into());
            }
            let key = json!({"key": format!("round-{}", state.round)}).to_string();
            return Turn::ToolCalls(vec![
                ("call_lookup".into(), "lookup".into(), key),
                (
                    "call_calc".into(),
                    "calculator".into(),
                    r#"{"expression":"6*7"}"#.into(),
                ),
            ]);
        }
        match state.answer_faults.pop_front() {
            Some(AnswerFault::Error500) => {
                self.faults.add(FaultKind::Llm500);
                Turn::Error(500, "chaos: injected server error".into())
            }
            Some(AnswerFault::Drop(after)) => {
                self.faults.add(FaultKind::LlmDrop);
                Turn::Dropped(state.answer[..after].to_vec(), state.every)
            }
            None => Turn::Paced(state.answer.clone(), state.every),
        }
    }

    fn lookup(&self, arguments: &Value) -> Result<Value, u16> {
        let mut state = self.state.lock().expect("the script");
        if state.tool_errors > 0 {
            state.tool_errors -= 1;
            self.faults.add(FaultKind::Tool500);
            return Err(500);
        }
        Ok(json!({"key": arguments["key"], "value": "found"}))
    }
}

/// How far the first subscriber has read.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    events: usize,
    deltas: usize,
    ended: bool,
}

/// What one subscriber received, across its reconnects.
#[derive(Debug, Default)]
struct Seen {
    events: Vec<Event>,
    /// It read to the end (the terminal event, or a 204 at the end of the ended log).
    ended: bool,
    /// It left early on purpose.
    left: bool,
    /// Why it stopped otherwise.
    error: Option<String>,
}

/// Pause before reconnecting to a stack that is restarting.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// Reads the task's stream as `role` says until its end, reconnecting with `Last-Event-ID`
/// whenever the stream ends early or the api is away; reports its progress if it is the
/// first subscriber.
async fn subscribe(
    http: reqwest::Client,
    url: String,
    role: Role,
    faults: Arc<Faults>,
    progress: Option<watch::Sender<Progress>>,
    deadline: Instant,
) -> Seen {
    let mut seen = Seen::default();
    let mut deltas = 0;
    let deadline = tokio::time::Instant::from_std(deadline);
    if let Role::Slow(_) = role {
        faults.add(FaultKind::SlowSubscriber);
    }
    'connections: loop {
        if tokio::time::Instant::now() >= deadline {
            seen.error = Some("no terminal event before the round's deadline".into());
            break;
        }
        let mut request = http.get(&url).header("accept", "text/event-stream");
        if let Some(last) = seen.events.last() {
            request = request.header("last-event-id", last.seq.0.to_string());
        }
        let response = match tokio::time::timeout_at(deadline, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(_)) => {
                tokio::time::sleep(RECONNECT_BACKOFF).await;
                continue;
            }
            Err(_) => continue,
        };
        match response.status().as_u16() {
            200 => {}
            204 => {
                seen.ended = true;
                break;
            }
            _ => {
                tokio::time::sleep(RECONNECT_BACKOFF).await;
                continue;
            }
        }
        let mut stream = response.bytes_stream().eventsource();
        let mut on_this_connection = 0;
        loop {
            let message = match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => continue 'connections,
                Ok(None | Some(Err(_))) => {
                    tokio::time::sleep(RECONNECT_BACKOFF).await;
                    continue 'connections;
                }
                Ok(Some(Ok(message))) => message,
            };
            if message.data.is_empty() {
                continue;
            }
            let event: Event = match serde_json::from_str(&message.data) {
                Ok(event) => event,
                Err(e) => {
                    seen.error = Some(format!("an event that does not parse: {e}"));
                    break 'connections;
                }
            };
            if matches!(event.kind, EventKind::LlmCallDelta(_)) {
                deltas += 1;
            }
            let terminal = event.is_terminal();
            seen.events.push(event);
            on_this_connection += 1;
            if let Some(progress) = &progress {
                progress.send_replace(Progress {
                    events: seen.events.len(),
                    deltas,
                    ended: false,
                });
            }
            if terminal {
                seen.ended = true;
                break 'connections;
            }
            match role {
                Role::Leaves(after) if seen.events.len() >= after => {
                    faults.add(FaultKind::EarlyLeave);
                    seen.left = true;
                    break 'connections;
                }
                Role::Reconnecting(every) if on_this_connection >= every => {
                    faults.add(FaultKind::ClientReconnect);
                    continue 'connections;
                }
                Role::Slow(pause) => tokio::time::sleep(pause).await,
                _ => {}
            }
        }
    }
    if let Some(progress) = &progress {
        progress.send_modify(|p| p.ended = true);
    }
    seen
}

/// What one round found.
#[derive(Debug, Default)]
struct Outcome {
    subscribers: u64,
    stayed: u64,
    left: u64,
    events_checked: u64,
    lost: u64,
    duplicated: u64,
    diverged: u64,
    terminal: Option<&'static str>,
    /// Why the task failed, when it ended with `WorkflowFailed`.
    failure: Option<String>,
    violations: Vec<String>,
}

impl Outcome {
    /// Checks a subscriber against the final log.
    fn check(&mut self, index: usize, role: Role, seen: &Seen, log: &EventLog) {
        self.subscribers += 1;
        self.events_checked += seen.events.len() as u64;
        let who = format!("subscriber {index} ({role:?})");
        if let Some(error) = &seen.error {
            self.violations.push(format!("{who}: {error}"));
        }
        if let Err(error) = check_prefix(Seq(0), &seen.events, log) {
            match error {
                PrefixError::Lost { .. } => self.lost += 1,
                PrefixError::Duplicated { .. } => self.duplicated += 1,
                PrefixError::Diverged(_) | PrefixError::Beyond(_) => self.diverged += 1,
            }
            self.violations.push(format!("{who}: {error}"));
            return;
        }
        if seen.left {
            self.left += 1;
        } else if seen.ended {
            self.stayed += 1;
            if seen.events.len() != log.len() {
                self.lost += 1;
                self.violations.push(format!(
                    "{who}: lost: stayed to the end with {} events, the log has {}",
                    seen.events.len(),
                    log.len()
                ));
            }
        }
    }
}

/// Runs one round on the stack.
async fn round(
    stack: &mut Stack,
    script: &ChaosScript,
    faults: &Arc<Faults>,
    number: u64,
    plan: &Plan,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    script.set(number, plan);
    let target = Target::new(&stack.api_base(), "assistant");
    let id = target.create(true, None, None).await?;
    let url = target.stream_url(&id);
    let deadline = Instant::now() + timeout;
    let http = reqwest::Client::new();
    let (progress, mut watched) = watch::channel(Progress::default());
    let mut progress = Some(progress);
    let readers: Vec<_> = plan
        .subscribers
        .iter()
        .map(|&role| {
            tokio::spawn(subscribe(
                http.clone(),
                url.clone(),
                role,
                faults.clone(),
                progress.take(),
                deadline,
            ))
        })
        .collect();
    target.execute(&id, CHAOS_QUERY).await?;
    for &fault in &plan.process_faults {
        let due = tokio::time::timeout_at(deadline.into(), async {
            watched
                .wait_for(|p| p.ended || fault.due(p))
                .await
                .is_ok_and(|p| !p.ended)
        })
        .await;
        if !matches!(due, Ok(true)) {
            break;
        }
        match fault {
            ProcessFault::KillWorker(_) => stack.kill_worker().await?,
            ProcessFault::RestartApi(_) => stack.restart_api().await?,
            ProcessFault::RestartTemporal(_) => stack.restart_temporal().await?,
            ProcessFault::KillNats(_) => stack.kill_nats().await?,
            ProcessFault::ZombieWorker(_) => stack.zombie_worker().await?,
            ProcessFault::KillNatsAndWorker(_) => stack.kill_nats_and_worker().await?,
        }
        faults.add(fault.kind());
    }
    let mut seen = Vec::new();
    for reader in readers {
        seen.push(reader.await?);
    }
    let mut outcome = Outcome::default();
    outcome.violations.extend(stack.exited().await?);
    let (events, finished) = final_log(&target, &id).await?;
    if !finished {
        outcome.violations.push(format!(
            "task {id} did not end within {} s ({} events)",
            timeout.as_secs(),
            events.len()
        ));
    }
    outcome.terminal = events
        .last()
        .filter(|e| e.is_terminal())
        .map(Event::type_name);
    if let Some(EventKind::Failed(failed)) = events.last().map(|e| &e.kind) {
        outcome.failure = Some(format!("{}: {}", failed.error.kind, failed.error.message));
    }
    let log = match EventLog::from_events(Seq(1), events) {
        Ok(log) => log,
        Err(error) => {
            outcome
                .violations
                .push(format!("task {id}: the final log is not dense: {error}"));
            return Ok(outcome);
        }
    };
    for (index, (role, seen)) in plan.subscribers.iter().zip(&seen).enumerate() {
        outcome.check(index, *role, seen, &log);
    }
    Ok(outcome)
}

/// The task's final log, read again while the api or Temporal settle after a restart.
async fn final_log(target: &Target, id: &str) -> anyhow::Result<(Vec<Event>, bool)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match target.paged_log(id).await {
            Ok((events, true)) => return Ok((events, true)),
            Ok(read) if Instant::now() > deadline => return Ok(read),
            Err(error) if Instant::now() > deadline => return Err(error),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Runs the chaos scenario: starts the fake model server and the stack, runs the rounds,
/// stops everything, and reports the faults injected and the checks.
pub async fn chaos(options: &ChaosOptions) -> anyhow::Result<Report> {
    let last_round = options.first_round + options.rounds.max(1) - 1;
    println!(
        "chaos: seed {} rounds {}..={} (replay round R: --seed {} --first-round R --rounds 1)",
        options.seed, options.first_round, last_round, options.seed
    );
    let faults = Arc::new(Faults::default());
    let script = Arc::new(ChaosScript {
        state: Mutex::new(ScriptState::default()),
        faults: faults.clone(),
    });
    let fake = FakeLlm::start_with(script.clone()).await?;
    let mut stack = Stack::start(
        options.binaries.clone(),
        TemporalStore::File,
        &fake.base_url,
        &fake.lookup_url(),
    )
    .await?;
    println!("chaos: stack up, logs in {}", stack.dir().display());
    let started = Instant::now();
    let outcomes = rounds(&mut stack, &script, &faults, options).await;
    let stopped = stack.stop().await;
    let (outcomes, round_seconds) = outcomes?;
    stopped?;
    let wall = started.elapsed();
    let mut total = Outcome::default();
    let mut terminals: BTreeMap<&str, u64> = BTreeMap::new();
    let mut violations = Vec::new();
    for (number, outcome) in &outcomes {
        total.subscribers += outcome.subscribers;
        total.stayed += outcome.stayed;
        total.left += outcome.left;
        total.events_checked += outcome.events_checked;
        total.lost += outcome.lost;
        total.duplicated += outcome.duplicated;
        total.diverged += outcome.diverged;
        *terminals
            .entry(outcome.terminal.unwrap_or("none"))
            .or_default() += 1;
        violations.extend(outcome.violations.iter().map(|v| {
            format!(
                "round {number} (--seed {} --first-round {number} --rounds 1): {v}",
                options.seed
            )
        }));
    }
    let injected = faults.snapshot();
    let by_kind: serde_json::Map<String, Value> = FaultKind::ALL
        .iter()
        .map(|kind| {
            (
                kind.name().to_owned(),
                json!(injected.get(kind).copied().unwrap_or(0)),
            )
        })
        .collect();
    Ok(Report {
        scenario: "chaos".into(),
        parameters: json!({
            "seed": options.seed,
            "first_round": options.first_round,
            "rounds": options.rounds.max(1),
            "round_timeout_seconds": options.round_timeout.as_secs(),
        }),
        metrics: json!({
            "rounds": outcomes.len(),
            "faults": by_kind,
            "faults_total": injected.values().sum::<u64>(),
            "subscribers_checked": total.subscribers,
            "subscribers_stayed_to_end": total.stayed,
            "subscribers_left_early": total.left,
            "events_checked": total.events_checked,
            "lost": total.lost,
            "duplicated": total.duplicated,
            "diverged": total.diverged,
            "tasks_by_terminal_event": terminals,
            "round_seconds": Percentiles::of(round_seconds),
            "wall_seconds": wall.as_secs_f64(),
        }),
        violations,
    })
}

/// The rounds, in order: (round number, outcome) and each round's wall time.
async fn rounds(
    stack: &mut Stack,
    script: &ChaosScript,
    faults: &Arc<Faults>,
    options: &ChaosOptions,
) -> anyhow::Result<(Vec<(u64, Outcome)>, Vec<f64>)> {
    let mut outcomes = Vec::new();
    let mut seconds = Vec::new();
    for number in options.first_round..options.first_round + options.rounds.max(1) {
        let plan = Plan::draw(&mut Rng::for_round(options.seed, number));
        println!("round {number}: {}", plan.describe());
        let started = Instant::now();
        let outcome = round(stack, script, faults, number, &plan, options.round_timeout).await?;
        seconds.push(started.elapsed().as_secs_f64());
        println!(
            "round {number}: {} subscribers, {} events checked, ended with {}{}, {:.1} s{}",
            outcome.subscribers,
            outcome.events_checked,
            outcome.terminal.unwrap_or("nothing"),
            outcome
                .failure
                .as_ref()
                .map(|why| format!(" ({why})"))
                .unwrap_or_default(),
            started.elapsed().as_secs_f64(),
            if outcome.violations.is_empty() {
                String::new()
            } else {
                format!(": VIOLATIONS {:?}", outcome.violations)
            }
        );
        outcomes.push((number, outcome));
    }
    Ok((outcomes, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_plan_replays_from_the_seed_and_round_number() {
        let plan = |seed, round| Plan::draw(&mut Rng::for_round(seed, round)).describe();
        assert_eq!(plan(42, 7), plan(42, 7));
        assert_ne!(plan(42, 7), plan(42, 8));
        assert_ne!(plan(42, 7), plan(43, 7));
    }

    #[test]
    fn every_plan_has_a_steady_first_subscriber_and_a_process_fault() {
        for round in 0..1000 {
            let plan = Plan::draw(&mut Rng::for_round(1, round));
            assert!(matches!(plan.subscribers[0], Role::Steady), "{plan:?}");
            assert!((2..=5).contains(&plan.subscribers.len()), "{plan:?}");
            assert!(!plan.process_faults.is_empty(), "{plan:?}");
            for fault in &plan.answer_faults {
                if let AnswerFault::Drop(after) = fault {
                    assert!((1..plan.answer.len()).contains(after), "{plan:?}");
                }
            }
        }
    }
}
