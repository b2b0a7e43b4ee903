//! Activities: the LLM call (the only event-emitting activity) and tool calls.
//!
//! The LLM activity numbers its events from the `seq_base` the workflow hands it. On the bus it
//! first fences the call's subject for its attempt (recovering every event an earlier attempt
//! stored there), then publishes each event as it is made, acknowledgements pipelined, and
//! heartbeats only a small marker about once a second. Without the bus, or once a publish fails,
//! it heartbeats **all** events of the call so far (cumulative details, the degraded path). A
//! retry starts from what earlier attempts left (failure details, heartbeat details, the bus),
//! keeps those events, records `WorkflowLLMCallRetrying` and numbers on after them. A failure or
//! cancellation attaches the events as details, so the workflow can append everything a client
//! may have seen (docs/CONTRACT.md, Invariant 1).

use crate::checkpoint::{CallCheckpoint, CheckpointError, Checkpoints};
use crate::coalesce::Coalescer;
use crate::llm::{LlmChunk, LlmError, LlmRequest, LlmResponse, provider_for};
use crate::tools::{CallContext, ToolError, ToolRegistry};
use agentflow_bus::{Bus, CallFold, CallPublisher, CallSubject};
use agentflow_client::progress::{BusPosition, CallProgress, merge_prefixes};
use agentflow_shared::config::{ModelConfig, SizeLimits};
use agentflow_shared::event::{
    DeltaKind, Event, EventKind, LlmCallCompleted, LlmCallDelta, LlmCallRetrying, LlmCallStarted,
    Mode,
};
use agentflow_shared::ids::{AgentId, Seq, TaskId, TenantId};
use agentflow_shared::llm::{ChatMessage, FinishReason, ToolCall, ToolSpec};
use agentflow_shared::log::{EventLog, LogError};
use agentflow_shared::mcp::McpCatalog;
use agentflow_shared::security::AuthSettings;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tokio::sync::watch;

/// Application failure type of a retryable LLM error.
pub const LLM_ERROR: &str = "LlmError";

/// Input of [`AgentActivities::llm_call`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmCallInput {
    /// The task.
    pub task_id: TaskId,
    /// Its tenant, named by the call's subjects on the bus (absent on tasks created before
    /// tenancy: the worker's `auth.default_tenant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// Its agent.
    pub agent_id: AgentId,
    /// The agent-loop step.
    pub step: u32,
    /// Seq of the first event this call emits.
    pub seq_base: Seq,
    /// Batch or streaming.
    pub mode: Mode,
    /// Model name (as configured).
    pub model_name: String,
    /// The model's config and prices.
    pub model: ModelConfig,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Names of the tools the model may call.
    pub tool_names: Vec<String>,
    /// Tools the model may call that the worker does not know by name: the task's MCP
    /// catalog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_tools: Vec<ToolSpec>,
    /// Cost of the run before this call.
    pub cost_before_usd: f64,
    /// Events of the call's earlier attempts, when the workflow retries the call itself (an
    /// attempt retried by Temporal finds them in its heartbeat details instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_events: Vec<Event>,
    /// The attempt, when the workflow retries the call itself (else Temporal's count).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The most JSON bytes the call's events (all attempts) may weigh; past it the answer is
    /// truncated (`finish_reason: "length"`).
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// The previous attempt left no complete record of its events (it was on the bus, or left
    /// nothing): this attempt reads the bus first, waiting for it if it must.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recover_from_bus: bool,
    /// The workflow's events since the previous call (durable already): published on the bus
    /// before anything else, so they reach clients without waiting for a query.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflow_events: Vec<Event>,
    /// The call's events up to this seq are in the workflow already (checkpoints of earlier
    /// attempts); `previous_events` continue after it. Absent: none are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable_through: Option<Seq>,
    /// The JSON bytes of the call's events in the workflow already (they count in its budget).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub durable_bytes: usize,
    /// The most JSON bytes one answer (its text and tool calls) may weigh; past it the answer
    /// is truncated.
    #[serde(default = "default_max_event_bytes")]
    pub max_answer_bytes: usize,
    /// Hand the events to the workflow (`checkpoint_call`) whenever this many are not durable
    /// yet. Absent (histories from before checkpoints): never; the events stay within
    /// `max_event_bytes` then.
    #[serde(default = "no_checkpoints")]
    pub checkpoint_bytes: usize,
    /// The team member (or `router`) making the call: its events name it in `data.speaker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn no_checkpoints() -> usize {
    usize::MAX
}

fn first_attempt() -> u32 {
    1
}

/// The bound of calls scheduled before it was part of their input.
fn default_max_event_bytes() -> usize {
    256 * 1024
}

fn default_max_result_bytes() -> usize {
    SizeLimits::default().max_tool_result_bytes
}

/// Output of [`AgentActivities::llm_call`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmCallOutput {
    /// The call's events after the last checkpoint (every event, all attempts, numbered from
    /// `seq_base`, when there was none).
    pub events: Vec<Event>,
    /// The model's answer; its text is left out when it is in the events (in
    /// `WorkflowLLMCallCompleted`), so the result carries it once.
    pub response: LlmResponse,
    /// Cost of this call.
    pub cost_usd: f64,
}

/// Input of [`AgentActivities::recover_call`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoverCallInput {
    /// The task.
    pub task_id: TaskId,
    /// Its tenant, as [`LlmCallInput::tenant`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// Seq of the call's first event.
    pub seq_base: Seq,
    /// The attempt number to fence with (one past the call's last attempt).
    pub attempt: u32,
    /// The events the workflow holds of the call (after `durable_through`).
    pub previous_events: Vec<Event>,
    /// The call's events up to this seq are in the workflow's log already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable_through: Option<Seq>,
}

/// Input of [`AgentActivities::tool_call`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallInput {
    /// The task making the call (absent in calls scheduled before it was passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// Tool name.
    pub tool_name: String,
    /// Id of the call.
    pub tool_call_id: String,
    /// Arguments from the model.
    pub arguments: Value,
    /// The most JSON bytes of a result the model reads; longer ones are cut with a marker.
    #[serde(default = "default_max_result_bytes")]
    pub max_result_bytes: usize,
    /// For an `mcp` tool: which server's tool to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpCall>,
}

/// An `mcp` tool's call target, from the task's catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpCall {
    /// The server.
    pub server: String,
    /// The tool's own name on the server.
    pub tool: String,
    /// The tool declares itself idempotent: a call cut off mid-way may be sent again.
    pub idempotent: bool,
}

/// Input of [`AgentActivities::mcp_catalog`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpCatalogInput {
    /// The servers whose tools the task may call.
    pub servers: Vec<String>,
}

/// Attempts of the `mcp_catalog` activity: until the last, a server that did not answer fails
/// the attempt (retried); the last one returns what it could list.
pub const MCP_CATALOG_ATTEMPTS: u32 = 3;

/// How long one server may take to list its tools.
pub const MCP_LIST_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a running tool call heartbeats, so a cancel reaches it.
pub const TOOL_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Output of [`AgentActivities::tool_call`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallOutput {
    /// Whether the tool succeeded.
    pub success: bool,
    /// The result when it succeeded.
    pub result: Option<Value>,
    /// The error when it failed.
    pub error: Option<String>,
    /// Wall time of the call.
    pub duration_ms: u64,
}

/// How streamed text is coalesced into `WorkflowLLMCallDelta` events.
#[derive(Debug, Clone, Copy)]
pub struct CoalesceSettings {
    /// Emit after this long…
    pub interval: Duration,
    /// …or this many characters.
    pub max_chars: usize,
}

/// The activities of the agent loop, with what they need at run time.
pub struct AgentActivities {
    http: reqwest::Client,
    tools: ToolRegistry,
    coalesce: CoalesceSettings,
    heartbeat_interval: Duration,
    shutdown: watch::Receiver<bool>,
    bus: Option<Bus>,
    /// The tenant on the bus of tasks created before tenancy.
    default_tenant: TenantId,
    checkpoints: Option<Checkpoints>,
}

impl AgentActivities {
    /// Activities using these tools and coalescing settings.
    pub fn new(tools: ToolRegistry, coalesce: CoalesceSettings) -> Self {
        Self {
            http: reqwest::Client::new(),
            tools,
            coalesce,
            heartbeat_interval: Duration::from_millis(30),
            shutdown: watch::channel(false).1,
            bus: None,
            default_tenant: AuthSettings::default().default_tenant,
            checkpoints: None,
        }
    }

    /// Hands long calls' events to their workflow in checkpoints. Without, a call's events
    /// stay within one checkpoint's size (its answer is truncated past it).
    pub fn with_checkpoints(mut self, checkpoints: Option<Checkpoints>) -> Self {
        self.checkpoints = checkpoints;
        self
    }

    /// Publishes LLM calls' events on `bus` (when it is ready; else they use heartbeats), on
    /// their task's tenant's subjects — `default_tenant`'s (`auth.default_tenant`) for a task
    /// created before tenancy.
    pub fn with_bus(mut self, bus: Option<Bus>, default_tenant: TenantId) -> Self {
        self.bus = bus;
        self.default_tenant = default_tenant;
        self
    }

    /// The subject of the call of `tenant`'s `task` at `seq_base` (a task created before
    /// tenancy has none: the default tenant's).
    fn call_subject(&self, tenant: Option<&TenantId>, task: TaskId, seq_base: Seq) -> CallSubject {
        CallSubject {
            tenant: tenant.unwrap_or(&self.default_tenant).clone(),
            task,
            seq_base,
        }
    }

    /// The shortest interval between two heartbeats of an LLM call (it grows with the call's
    /// size, see [`PACING_STEP_BYTES`]).
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Fails in-flight calls retryably, with their events, once `shutdown` turns true.
    pub fn with_shutdown(mut self, shutdown: watch::Receiver<bool>) -> Self {
        self.shutdown = shutdown;
        self
    }
}

/// The events of one LLM call across attempts that are not in the workflow yet (the call's
/// whole log until its first checkpoint), and this attempt's answer so far.
struct CallLog {
    task_id: TaskId,
    agent_id: AgentId,
    step: u32,
    /// The team member making the call.
    speaker: Option<String>,
    /// The events after the last checkpoint, dense.
    log: EventLog,
    /// The JSON bytes of the call's events in the workflow already.
    durable_bytes: usize,
    /// This attempt's streamed text.
    answer: String,
}

impl CallLog {
    /// The call's log, holding the events of earlier attempts the workflow does not hold yet
    /// (dense after `durable_through`, or from `seq_base`).
    fn resume(input: &LlmCallInput, previous: Vec<Event>) -> Result<Self, LogError> {
        let first = input.durable_through.map_or(input.seq_base, Seq::next);
        Ok(Self {
            task_id: input.task_id,
            agent_id: input.agent_id.clone(),
            step: input.step,
            speaker: input.speaker.clone(),
            log: EventLog::from_events(first, previous)?,
            durable_bytes: input.durable_bytes,
            answer: String::new(),
        })
    }

    /// Whether the call has no event yet (this is its first attempt).
    fn is_fresh(&self, input: &LlmCallInput) -> bool {
        self.log.is_empty() && input.durable_through.is_none()
    }

    /// The JSON bytes of all the call's events.
    fn bytes(&self) -> usize {
        self.durable_bytes + self.log.encoded_bytes()
    }

    fn push(&mut self, kind: EventKind) {
        let event = Event {
            seq: self.log.next_seq(),
            kind,
            task_id: self.task_id,
            agent_id: self.agent_id.clone(),
            timestamp: chrono::Utc::now(),
            step: self.step,
            speaker: self.speaker.clone(),
        };
        self.log
            .append(event)
            .expect("a call log is only appended at its next seq, before any terminal event");
    }

    /// The events from the start of the log through `through` (those a checkpoint hands on).
    fn through(&self, through: Seq) -> Vec<Event> {
        self.log
            .events()
            .iter()
            .take_while(|e| e.seq <= through)
            .cloned()
            .collect()
    }

    /// Drops the events through `through`: the workflow holds them now. Returns how many.
    fn checkpointed(&mut self, through: Seq) -> usize {
        let kept: Vec<Event> = self.log.after(through).to_vec();
        let dropped = self.log.len() - kept.len();
        let before = self.log.encoded_bytes();
        self.log = EventLog::from_events(through.next(), kept)
            .expect("the events after a seq of a dense log are dense");
        self.durable_bytes += before - self.log.encoded_bytes();
        dropped
    }

    fn events(&self) -> Vec<Event> {
        self.log.events().to_vec()
    }

    fn into_events(self) -> Vec<Event> {
        self.log.into_events()
    }
}

/// Heartbeats carry every event of the call, so their spacing grows with the call's size:
/// one every `interval × ⌈bytes / PACING_STEP_BYTES⌉`. The bytes heartbeated per second stay
/// bounded, and a call's heartbeat cost stays linear in its output.
const PACING_STEP_BYTES: usize = 32 * 1024;

/// When the next heartbeat of a call may go.
struct HeartbeatPacer {
    interval: Duration,
    last: Instant,
    sent: usize,
}

impl HeartbeatPacer {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Instant::now(),
            sent: 0,
        }
    }

    /// When the events not yet heartbeated may be, if there are any.
    fn due(&self, log: &EventLog) -> Option<Instant> {
        (log.len() > self.sent).then(|| {
            let steps = log.encoded_bytes().div_ceil(PACING_STEP_BYTES).max(1);
            self.last + self.interval * u32::try_from(steps).unwrap_or(u32::MAX)
        })
    }

    async fn beat(&mut self, ctx: &ActivityContext, log: &CallLog) -> Result<(), ActivityError> {
        self.last = Instant::now();
        self.sent = log.log.len();
        ctx.record_heartbeat(CallProgress::Events(log.events()))
            .await?;
        Ok(())
    }
}

/// How a call's events reach the relays.
enum Route {
    /// Published on the bus as they are made; heartbeats carry a marker.
    Bus(Box<BusRoute>),
    /// Carried by cumulative heartbeats: no bus, or the call left it.
    Heartbeat,
}

/// A call on the bus: its publisher and how much of its log went out.
struct BusRoute {
    publisher: CallPublisher,
    published: usize,
}

impl Route {
    /// Publishes the log's events not sent yet. A refused publish moves the call to the
    /// heartbeat path at once: from then on its heartbeats carry all its events from its start.
    async fn sync(
        &mut self,
        ctx: &ActivityContext,
        log: &CallLog,
        pacer: &mut HeartbeatPacer,
    ) -> Result<(), ActivityError> {
        let Route::Bus(bus) = self else {
            return Ok(());
        };
        let mut refused = None;
        for event in &log.log.events()[bus.published..] {
            if let Err(error) = bus.publisher.publish(event).await {
                refused = Some(error);
                break;
            }
            bus.published += 1;
        }
        match refused {
            None => Ok(()),
            Some(error) => self.leave(ctx, log, pacer, &error).await,
        }
    }

    /// Leaves the bus for the heartbeat path.
    async fn leave(
        &mut self,
        ctx: &ActivityContext,
        log: &CallLog,
        pacer: &mut HeartbeatPacer,
        error: &agentflow_bus::BusError,
    ) -> Result<(), ActivityError> {
        tracing::warn!(%error, "the call leaves the bus; its heartbeats carry its events");
        *self = Route::Heartbeat;
        pacer.beat(ctx, log).await
    }

    fn in_flight(&self) -> usize {
        match self {
            Route::Bus(bus) => bus.publisher.in_flight(),
            Route::Heartbeat => 0,
        }
    }

    /// The last event a checkpoint may hold: on the bus, the last one it stored (so that the
    /// bus holds whatever the workflow holds); off it, the log's last.
    fn checkpointable(&self, log: &CallLog) -> Seq {
        match self {
            Route::Bus(bus) => bus
                .publisher
                .acked()
                .unwrap_or(Seq(0))
                .min(log.log.last_seq()),
            Route::Heartbeat => log.log.last_seq(),
        }
    }

    /// `dropped` events left the front of the call's log (a checkpoint took them).
    fn checkpointed(&mut self, dropped: usize) {
        if let Route::Bus(bus) = self {
            bus.published -= dropped;
        }
    }

    /// The next acknowledgement on the bus; never resolves on the heartbeat path.
    async fn next_ack(&mut self) -> Result<Seq, agentflow_bus::BusError> {
        match self {
            Route::Bus(bus) => bus.publisher.next_ack().await,
            Route::Heartbeat => std::future::pending().await,
        }
    }

    /// The heartbeat marker on the bus.
    fn marker(&self) -> Option<CallProgress> {
        match self {
            Route::Bus(bus) => Some(CallProgress::OnBus {
                bus: BusPosition {
                    attempt: bus.publisher.attempt(),
                    acked: bus.publisher.acked(),
                    waiting: false,
                },
            }),
            Route::Heartbeat => None,
        }
    }
}

/// Room kept in a call's event budget for its `WorkflowLLMCallCompleted` envelope.
const COMPLETED_ENVELOPE_BYTES: usize = 1024;

/// Keeps a call's events within `max_event_bytes` (the streamed text appears twice — in the
/// deltas and in `WorkflowLLMCallCompleted` — so each delta counts double) and its answer
/// within `max_answer_bytes`.
struct EventBudget {
    max_event_bytes: usize,
    max_answer_bytes: usize,
    truncated: bool,
}

impl EventBudget {
    /// What the call's events would weigh once completed with the text streamed so far.
    fn projected(log: &CallLog, streamed: usize) -> usize {
        log.bytes() + streamed + COMPLETED_ENVELOPE_BYTES
    }

    /// Cuts `text` so that a delta carrying it fits, and the answer with it; marks the call
    /// truncated when it had to.
    fn fit_delta(&mut self, log: &CallLog, streamed: usize, text: String) -> String {
        /// A delta event's size without its text.
        const DELTA_ENVELOPE_BYTES: usize = 256;
        let room = self
            .max_event_bytes
            .saturating_sub(Self::projected(log, streamed) + DELTA_ENVELOPE_BYTES)
            / 2;
        let answer_room = self
            .max_answer_bytes
            .saturating_sub(streamed + COMPLETED_ENVELOPE_BYTES);
        self.cut(text, room.min(answer_room))
    }

    /// Cuts a batch answer so that the completed event fits: the text first, and the tool
    /// calls too when they alone do not fit.
    fn fit_answer(&mut self, log: &CallLog, response: &mut LlmResponse) {
        let json_len = |calls: &[ToolCall]| serde_json::to_vec(calls).map_or(0, |b| b.len());
        let calls = json_len(&response.tool_calls);
        if !response.tool_calls.is_empty()
            && (Self::projected(log, 0) + calls > self.max_event_bytes
                || COMPLETED_ENVELOPE_BYTES + calls > self.max_answer_bytes)
        {
            response.tool_calls.clear();
            self.truncated = true;
        }
        let calls = json_len(&response.tool_calls);
        let events_room = self
            .max_event_bytes
            .saturating_sub(Self::projected(log, 0) + calls);
        let answer_room = self
            .max_answer_bytes
            .saturating_sub(COMPLETED_ENVELOPE_BYTES + calls);
        response.content = self.cut(
            std::mem::take(&mut response.content),
            events_room.min(answer_room),
        );
    }

    /// `text` cut to at most `room` JSON-escaped bytes, on a character boundary.
    fn cut(&mut self, text: String, room: usize) -> String {
        if escaped_len(&text) <= room {
            return text;
        }
        self.truncated = true;
        let mut used = 0;
        let end = text
            .char_indices()
            .take_while(|&(_, c)| {
                used += escaped_char_len(c);
                used <= room
            })
            .last()
            .map_or(0, |(i, c)| i + c.len_utf8());
        text[..end].to_owned()
    }
}

/// Bytes of a character inside a JSON string.
fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Bytes of a string's content inside JSON quotes.
fn escaped_len(text: &str) -> usize {
    text.chars().map(escaped_char_len).sum()
}

fn failure(error: &LlmError, events: Vec<Event>) -> ActivityError {
    ApplicationFailure::builder(error.message.clone())
        .type_name(LLM_ERROR.to_owned())
        .non_retryable(!error.retryable)
        .maybe_next_retry_delay(error.retry_after)
        .details(CallProgress::Events(events))
        .build()
        .into()
}

/// The events a call's subject holds after `durable` (the workflow holds those before);
/// `None` when the subject does not reach `durable` (the workflow holds events it lacks).
fn beyond_durable(stored: &[Event], durable: Option<Seq>) -> Option<&[Event]> {
    let Some(durable) = durable else {
        return Some(stored);
    };
    let held = stored.iter().take_while(|e| e.seq <= durable).count();
    (stored.get(held.wrapping_sub(1)).map(|e| e.seq) == Some(durable)).then(|| &stored[held..])
}

fn non_retryable(message: String) -> ActivityError {
    ApplicationFailure::builder(message)
        .type_name(LLM_ERROR.to_owned())
        .non_retryable(true)
        .build()
        .into()
}

/// Fences `call`'s subject for `attempt` when the bus is ready: the events earlier attempts
/// stored there. `None` when the call takes the heartbeat path: the bus is not ready (or the
/// fence failed) and nothing earlier can be only there. When something can (`must_recover`),
/// the attempt waits for the bus, heartbeating a marker that says so, and never guesses.
async fn join_bus(
    ctx: &ActivityContext,
    bus: &Bus,
    call: &CallSubject,
    attempt: u32,
    must_recover: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<CallFold>, ActivityError> {
    let waiting = CallProgress::OnBus {
        bus: BusPosition {
            attempt,
            acked: None,
            waiting: true,
        },
    };
    loop {
        if bus.is_ready() {
            // Heartbeated before the fence: whoever finds this attempt dead looks on the bus.
            ctx.record_heartbeat(CallProgress::OnBus {
                bus: BusPosition {
                    attempt,
                    acked: None,
                    waiting: false,
                },
            })
            .await?;
            match bus.fence_call(call, attempt).await {
                Ok(fold) => return Ok(Some(fold)),
                Err(error) if !must_recover => {
                    tracing::warn!(%call, %error, "fencing the call failed; it uses heartbeats");
                    return Ok(None);
                }
                Err(error) => tracing::warn!(%call, %error, "fencing the call failed; retrying"),
            }
        } else if !must_recover {
            return Ok(None);
        } else {
            tracing::warn!(%call, "waiting for the bus to read what earlier attempts stored");
        }
        ctx.record_heartbeat(waiting.clone()).await?;
        tokio::select! {
            _ = ctx.cancelled() => {
                return Err(ActivityError::cancelled_with_details(waiting));
            }
            _ = stopping(shutdown) => {
                return Err(ApplicationFailure::builder("the worker is shutting down")
                    .type_name(LLM_ERROR.to_owned())
                    .details(waiting)
                    .build()
                    .into());
            }
            _ = bus.wait_ready(Duration::from_millis(bus.settings().heartbeat_ms)) => {}
        }
    }
}

#[activities]
impl AgentActivities {
    /// Calls the model once (batch or streaming), emitting the call's events.
    #[activity]
    #[tracing::instrument(skip_all, fields(task_id = %input.task_id, step = input.step, attempt))]
    pub async fn llm_call(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: LlmCallInput,
    ) -> Result<LlmCallOutput, ActivityError> {
        let attempt = ctx.info().attempt.max(input.attempt);
        tracing::Span::current().record("attempt", attempt);
        let call = self.call_subject(input.tenant.as_ref(), input.task_id, input.seq_base);
        if let Some(bus) = &self.bus
            && let Err(error) = bus
                .publish_durable(&call.tenant, input.task_id, &input.workflow_events)
                .await
        {
            tracing::debug!(%error, "the workflow's events reach clients from Temporal");
        }
        let heartbeated: Option<CallProgress> = ctx.heartbeat_details().deserialize()?;
        let must_recover =
            input.recover_from_bus || heartbeated.as_ref().is_some_and(CallProgress::on_bus);
        let heartbeated = heartbeated.map(|p| p.events().to_vec()).unwrap_or_default();
        let mut previous = if heartbeated.len() >= input.previous_events.len() {
            heartbeated
        } else {
            input.previous_events.clone()
        };
        let mut shutdown = self.shutdown.clone();
        let mut route = Route::Heartbeat;
        if let Some(bus) = &self.bus
            && let Some(fold) =
                join_bus(&ctx, bus, &call, attempt, must_recover, &mut shutdown).await?
        {
            match beyond_durable(fold.events(), input.durable_through) {
                // The workflow holds events the bus lacks (an earlier attempt left the bus):
                // the call cannot continue there; heartbeats carry it.
                None => {}
                Some(stored) => {
                    previous = merge_prefixes(previous, stored).map_err(|seq| {
                        non_retryable(format!(
                            "the bus and the earlier attempts disagree at seq {seq}"
                        ))
                    })?;
                    route = Route::Bus(Box::new(BusRoute {
                        publisher: CallPublisher::new(bus, call.clone(), attempt),
                        published: stored.len(),
                    }));
                }
            }
        }
        let mut log = CallLog::resume(&input, previous).map_err(|error| {
            non_retryable(format!("the call's earlier events are not dense: {error}"))
        })?;
        if log.is_fresh(&input) {
            log.push(EventKind::LlmCallStarted(LlmCallStarted {
                step: input.step,
                model: input.model_name.clone(),
                message_count: input.messages.len(),
            }));
        } else {
            log.push(EventKind::LlmCallRetrying(LlmCallRetrying {
                step: input.step,
                attempt,
            }));
        }
        let mut pacer = HeartbeatPacer::new(self.heartbeat_interval);
        route.sync(&ctx, &log, &mut pacer).await?;
        // On the bus the marker heartbeated before the fence stands; off it, the events go now.
        if route.marker().is_none() {
            pacer.beat(&ctx, &log).await?;
        }

        let started = Instant::now();
        let provider = match provider_for(&input.model, &self.http) {
            Ok(provider) => provider,
            Err(error) => return Err(failure(&error, log.into_events())),
        };
        let request = LlmRequest {
            model: input
                .model
                .model
                .clone()
                .unwrap_or_else(|| input.model_name.clone()),
            messages: input.messages.clone(),
            tools: self
                .tools
                .specs(&input.tool_names)
                .into_iter()
                .chain(input.extra_tools.iter().cloned())
                .collect(),
            stream: input.mode == Mode::Streaming,
        };
        let mut chunks = provider.call(request);
        let mut coalescer = Coalescer::new(self.coalesce.interval, self.coalesce.max_chars);
        let mut budget = EventBudget {
            // Without checkpoints every event rides in one payload.
            max_event_bytes: match self.checkpoints {
                Some(_) => input.max_event_bytes,
                None => input.max_event_bytes.min(input.checkpoint_bytes),
            },
            max_answer_bytes: input.max_answer_bytes,
            truncated: false,
        };
        let mut streamed = 0usize;
        let keep_alive_every = match (&route, &self.bus) {
            (Route::Bus(_), Some(bus)) => Duration::from_millis(bus.settings().heartbeat_ms),
            _ => Duration::from_secs(1),
        };
        let mut keep_alive = tokio::time::interval_at(
            tokio::time::Instant::now() + keep_alive_every,
            keep_alive_every,
        );
        let mut hints = match (&route, &self.bus) {
            (Route::Bus(_), Some(bus)) => {
                bus.hints(input.tenant.as_ref(), input.task_id).await.ok()
            }
            _ => None,
        };
        // After a hint (a cancel was accepted), heartbeat at the throttle interval for a while:
        // the cancel comes back in a heartbeat response.
        let mut urgent_until: Option<Instant> = None;
        let mut response = loop {
            let due = match route {
                Route::Bus(_) => None,
                Route::Heartbeat => pacer.due(&log.log),
            };
            tokio::select! {
                _ = ctx.cancelled() => {
                    flush(&mut log, input.step, &mut coalescer, &mut budget, &mut streamed);
                    return Err(ActivityError::cancelled_with_details(CallProgress::Events(log.into_events())));
                }
                _ = stopping(&mut shutdown) => {
                    flush(&mut log, input.step, &mut coalescer, &mut budget, &mut streamed);
                    let error = LlmError::retryable("the worker is shutting down");
                    return Err(failure(&error, log.into_events()));
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {
                    pacer.beat(&ctx, &log).await?;
                }
                _ = keep_alive.tick() => match route.marker() {
                    Some(marker) => ctx.record_heartbeat(marker).await?,
                    None => pacer.beat(&ctx, &log).await?,
                },
                hint = next_hint(&mut hints) => {
                    if hint.is_some() {
                        urgent_until = Some(Instant::now() + URGENT_HEARTBEATS);
                    } else {
                        hints = None;
                    }
                    if let Some(marker) = route.marker() {
                        ctx.record_heartbeat(marker).await?;
                    }
                }
                _ = tokio::time::sleep(self.heartbeat_interval), if urgent_until.is_some_and(|until| Instant::now() < until) => {
                    if let Some(marker) = route.marker() {
                        ctx.record_heartbeat(marker).await?;
                    }
                }
                acked = route.next_ack(), if route.in_flight() > 0 => match acked {
                    Ok(_) => {
                        if route.in_flight() == 0 && !budget.truncated {
                            flush(&mut log, input.step, &mut coalescer, &mut budget, &mut streamed);
                            route.sync(&ctx, &log, &mut pacer).await?;
                        }
                        self.checkpoint(&input, attempt, &mut log, &mut route, &mut pacer).await?;
                    }
                    Err(error) => route.leave(&ctx, &log, &mut pacer, &error).await?,
                },
                chunk = chunks.next() => match chunk {
                    Some(Ok(LlmChunk::Text(text))) => {
                        // Past the cap the stream is still read to its end (for the usage the
                        // vendor bills), but nothing more is emitted.
                        if !budget.truncated {
                            let released = match route {
                                Route::Bus(_) => coalescer.push_unless_busy(&text, route.in_flight() > 0),
                                Route::Heartbeat => coalescer.push(&text, Instant::now()),
                            };
                            if let Some(text) = released {
                                push_delta(&mut log, input.step, &mut coalescer, &mut budget, &mut streamed, text);
                                route.sync(&ctx, &log, &mut pacer).await?;
                                self.checkpoint(&input, attempt, &mut log, &mut route, &mut pacer).await?;
                            }
                        }
                        tokio::task::consume_budget().await;
                    }
                    Some(Ok(LlmChunk::Thinking(text))) => {
                        if !budget.truncated {
                            flush(&mut log, input.step, &mut coalescer, &mut budget, &mut streamed);
                            push_thinking(&mut log, input.step, &mut coalescer, &mut budget, streamed, text);
                            route.sync(&ctx, &log, &mut pacer).await?;
                            self.checkpoint(&input, attempt, &mut log, &mut route, &mut pacer).await?;
                        }
                        tokio::task::consume_budget().await;
                    }
                    Some(Ok(LlmChunk::Done(response))) => break response,
                    Some(Err(error)) => {
                        tracing::warn!(error = %error.message, retryable = error.retryable, "LLM call failed");
                        flush(&mut log, input.step, &mut coalescer, &mut budget, &mut streamed);
                        return Err(failure(&error, log.into_events()));
                    }
                    None => {
                        let error = LlmError::retryable("the provider stream ended without an answer");
                        return Err(failure(&error, log.into_events()));
                    }
                }
            }
        };
        flush(
            &mut log,
            input.step,
            &mut coalescer,
            &mut budget,
            &mut streamed,
        );
        if budget.truncated {
            response.content = std::mem::take(&mut log.answer);
            response.tool_calls.clear();
        } else {
            // Streamed text already fits (its deltas were budgeted); tool calls may not.
            budget.fit_answer(&log, &mut response);
        }
        if budget.truncated {
            response.finish_reason = FinishReason::Length;
        }
        let cost_usd = input.model.cost_usd(response.usage);
        log.push(EventKind::LlmCallCompleted(LlmCallCompleted {
            step: input.step,
            model: input.model_name.clone(),
            content: response.content.clone(),
            tool_calls: response.tool_calls.clone(),
            usage: response.usage,
            cost_usd,
            total_cost_usd: input.cost_before_usd + cost_usd,
            duration_ms: started.elapsed().as_millis() as u64,
            finish_reason: response.finish_reason,
        }));
        route.sync(&ctx, &log, &mut pacer).await?;
        // The text is in `WorkflowLLMCallCompleted`: the result carries it once.
        response.content.clear();
        Ok(LlmCallOutput {
            events: log.into_events(),
            response,
            cost_usd,
        })
    }

    /// Once `checkpoint_bytes` of the call's events are not durable, hands those the route
    /// allows to the workflow and drops them from the call's log. A refused checkpoint means
    /// the workflow gave up on this attempt; one not taken in time fails the attempt
    /// (retryably, with the events since the last checkpoint).
    async fn checkpoint(
        &self,
        input: &LlmCallInput,
        attempt: u32,
        log: &mut CallLog,
        route: &mut Route,
        pacer: &mut HeartbeatPacer,
    ) -> Result<(), ActivityError> {
        let Some(checkpoints) = &self.checkpoints else {
            return Ok(());
        };
        if log.log.encoded_bytes() < input.checkpoint_bytes {
            return Ok(());
        }
        let events = log.through(route.checkpointable(log));
        let Some(through) = events.last().map(|e| e.seq) else {
            return Ok(());
        };
        let checkpoint = CallCheckpoint {
            seq_base: input.seq_base,
            attempt,
            events,
        };
        match checkpoints.send(input.task_id, checkpoint).await {
            Ok(_) => {
                let dropped = log.checkpointed(through);
                route.checkpointed(dropped);
                pacer.sent = pacer.sent.saturating_sub(dropped);
                Ok(())
            }
            Err(error @ CheckpointError::Refused(_)) => {
                tracing::warn!(%error, "the workflow moved on from this attempt");
                Err(failure(
                    &LlmError::retryable(error.to_string()),
                    log.events(),
                ))
            }
            Err(error) => {
                tracing::warn!(%error, "a checkpoint was not taken; the attempt fails");
                Err(failure(
                    &LlmError::retryable(error.to_string()),
                    log.events(),
                ))
            }
        }
    }

    /// Recovers a call that ended without a result from the bus: fences its subject (nothing a
    /// lost attempt publishes later counts) and returns its events, merged with what the
    /// workflow holds. Waits for the bus while it is away; without a bus configured, returns
    /// what the workflow holds.
    #[activity]
    #[tracing::instrument(skip_all, fields(task_id = %input.task_id, seq_base = %input.seq_base))]
    pub async fn recover_call(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RecoverCallInput,
    ) -> Result<Vec<Event>, ActivityError> {
        let Some(bus) = &self.bus else {
            return Ok(input.previous_events);
        };
        let call = self.call_subject(input.tenant.as_ref(), input.task_id, input.seq_base);
        let mut shutdown = self.shutdown.clone();
        let fold = join_bus(&ctx, bus, &call, input.attempt, true, &mut shutdown)
            .await?
            .ok_or_else(|| non_retryable("the bus could not be joined".into()))?;
        let Some(stored) = beyond_durable(fold.events(), input.durable_through) else {
            // The bus holds less than the workflow: nothing there is new.
            return Ok(input.previous_events);
        };
        merge_prefixes(input.previous_events, stored)
            .map_err(|seq| non_retryable(format!("the bus and the workflow disagree at seq {seq}")))
    }

    /// Records a chunk of a run's log in history (its input is the record; it does nothing):
    /// a log too large for the workflow result or the next run's input is read from there.
    #[activity]
    pub async fn archive_log(
        _ctx: ActivityContext,
        _chunk: Vec<Event>,
    ) -> Result<(), ActivityError> {
        Ok(())
    }

    /// Lists the tools of the task's MCP servers: the catalog the task fixes when it starts
    /// (a server that does not answer is named as unavailable).
    #[activity]
    #[tracing::instrument(skip_all, fields(servers = ?input.servers))]
    pub async fn mcp_catalog(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: McpCatalogInput,
    ) -> Result<McpCatalog, ActivityError> {
        let catalog = self
            .tools
            .mcp()
            .catalog(&input.servers, MCP_LIST_TIMEOUT)
            .await;
        if !catalog.unavailable.is_empty() && ctx.info().attempt < MCP_CATALOG_ATTEMPTS {
            let failed: Vec<String> = catalog
                .unavailable
                .iter()
                .map(|u| format!("{}: {}", u.server, u.error))
                .collect();
            return Err(ApplicationFailure::new(failed.join("; ")).into());
        }
        if let Some(bus) = &self.bus {
            for server in &input.servers {
                let tools: Vec<_> = catalog
                    .tools
                    .iter()
                    .filter(|t| &t.server == server)
                    .cloned()
                    .collect();
                if !catalog.unavailable.iter().any(|u| &u.server == server) {
                    bus.report_mcp_tools(server, &tools).await;
                }
            }
        }
        Ok(catalog)
    }

    /// Runs one tool, heartbeating so a cancel stops it (an MCP server gets
    /// `notifications/cancelled`, an HTTP request is dropped). Unknown tools and bad arguments
    /// are a failed result, not an error.
    #[activity]
    #[tracing::instrument(skip_all, fields(tool = %input.tool_name, call = %input.tool_call_id))]
    pub async fn tool_call(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ToolCallInput,
    ) -> Result<ToolCallOutput, ActivityError> {
        let started = Instant::now();
        let mut shutdown = self.shutdown.clone();
        let arguments = match input.arguments {
            Value::Null => Value::Object(Default::default()),
            arguments => arguments,
        };
        let context = CallContext {
            task_id: input.task_id,
            tool_call_id: input.tool_call_id.clone(),
        };
        let outcome = match (&input.mcp, self.tools.get(&input.tool_name)) {
            (Some(target), _) => {
                let call = self.tools.mcp().call(
                    &target.server,
                    &target.tool,
                    arguments,
                    target.idempotent,
                );
                run_tool(&ctx, &mut shutdown, call).await?
            }
            (None, None) => Err(format!("unknown tool `{}`", input.tool_name)),
            (None, Some(_))
                if let Err(invalid) = self.tools.check(&input.tool_name, &arguments) =>
            {
                Err(invalid.to_string())
            }
            (None, Some(tool)) => {
                run_tool(&ctx, &mut shutdown, tool.call(&context, arguments)).await?
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let limit = input.max_result_bytes;
        Ok(match outcome {
            Ok(value) => ToolCallOutput {
                success: true,
                result: Some(cap_result(value, limit)),
                error: None,
                duration_ms,
            },
            Err(error) => ToolCallOutput {
                success: false,
                result: None,
                error: Some(cap_text(error, limit)),
                duration_ms,
            },
        })
    }
}

/// A result whose JSON is longer than `limit` becomes the start of that JSON as a string,
/// with a marker the model reads.
pub(crate) fn cap_result(value: Value, limit: usize) -> Value {
    let json = value.to_string();
    if json.len() <= limit {
        return value;
    }
    Value::String(cap_text(json, limit))
}

/// `text` cut to about `limit` bytes (on a character boundary) with a truncation marker.
fn cap_text(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let marker = format!(" … [truncated: {} bytes, limit {limit}]", text.len());
    let mut end = limit.saturating_sub(marker.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &text[..end])
}

/// How long a call heartbeats at the throttle interval after a hint.
const URGENT_HEARTBEATS: Duration = Duration::from_secs(3);

/// The next hint, if the call listens for hints (else never).
async fn next_hint(hints: &mut Option<agentflow_bus::control::Hints>) -> Option<()> {
    match hints {
        Some(hints) => hints.next().await,
        None => std::future::pending().await,
    }
}

/// Resolves once the worker starts shutting down (never, when nobody can tell it to).
/// Runs a tool's `call` while heartbeating: its result for the model (`Err` is a failed
/// result), or the activity's error — cancelled, a transient failure to retry, or the
/// worker shutting down.
async fn run_tool(
    ctx: &ActivityContext,
    shutdown: &mut watch::Receiver<bool>,
    call: impl std::future::Future<Output = Result<Value, ToolError>>,
) -> Result<Result<Value, String>, ActivityError> {
    let result = tokio::select! {
        result = call => result,
        _ = heartbeat_until_cancelled(ctx) => return Err(ActivityError::cancelled()),
        _ = stopping(shutdown) => {
            return Err(ApplicationFailure::new("the worker is shutting down").into());
        }
    };
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(ToolError::Transient(message)) => Err(ApplicationFailure::new(message).into()),
        Err(error) => Ok(Err(error.to_string())),
    }
}

/// Heartbeats every [`TOOL_HEARTBEAT_INTERVAL`] until the activity is cancelled (an activity
/// scheduled without a heartbeat timeout learns of nothing, as before).
async fn heartbeat_until_cancelled(ctx: &ActivityContext) {
    loop {
        let _ = ctx.record_heartbeat(()).await;
        tokio::select! {
            _ = ctx.cancelled() => return,
            _ = tokio::time::sleep(TOOL_HEARTBEAT_INTERVAL) => {}
        }
    }
}

async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Emits a delta with as much of `text` as the call's event budget allows.
fn push_delta(
    log: &mut CallLog,
    step: u32,
    coalescer: &mut Coalescer,
    budget: &mut EventBudget,
    streamed: &mut usize,
    text: String,
) {
    let text = budget.fit_delta(log, *streamed, text);
    if text.is_empty() {
        return;
    }
    *streamed += escaped_len(&text);
    log.answer.push_str(&text);
    let chunk_index = coalescer.take_index();
    log.push(EventKind::LlmCallDelta(LlmCallDelta {
        step,
        text,
        chunk_index,
        kind: DeltaKind::Answer,
    }));
}

/// Emits a piece of the model's thinking as its own delta (within the call's event budget;
/// never part of the answer).
fn push_thinking(
    log: &mut CallLog,
    step: u32,
    coalescer: &mut Coalescer,
    budget: &mut EventBudget,
    streamed: usize,
    text: String,
) {
    let text = budget.fit_delta(log, streamed, text);
    if text.is_empty() {
        return;
    }
    let chunk_index = coalescer.take_index();
    log.push(EventKind::LlmCallDelta(LlmCallDelta {
        step,
        text,
        chunk_index,
        kind: DeltaKind::Thinking,
    }));
}

/// Emits what the coalescer still holds, within the budget.
fn flush(
    log: &mut CallLog,
    step: u32,
    coalescer: &mut Coalescer,
    budget: &mut EventBudget,
    streamed: &mut usize,
) {
    if let Some(text) = coalescer.flush().filter(|_| !budget.truncated) {
        push_delta(log, step, coalescer, budget, streamed, text);
    }
}
