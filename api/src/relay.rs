//! The per-task relay: one per task per api process, shared by all of the task's subscribers.
//!
//! It keeps the task's whole log in memory as pre-encoded SSE frames and advances it from
//! Temporal and the bus: the `get_events` query for durable events, woken by the workers'
//! progress hints on the bus (or, with the bus down or hints off, by the history long poll;
//! one parked close-only long poll notices a run closed from outside), the workflow result
//! once the task is closed (no worker needed), and for live
//! ones the task's calls on the bus (a follower, each call through the bus's fold) — or, for a
//! call on the heartbeat path (no bus, or a call that left it), the heartbeat details of the
//! pending LLM activity, polled with `Describe` only while one runs. A call on the bus costs
//! one `Describe` per `bus.marker_interval_ms` (to notice a call that leaves it). Bus events
//! that run ahead of the durable log wait in the follower until the query has caught up.
//! Subscribers read frames after their own cursor at their own pace, so a slow subscriber is
//! never skipped and never slows the others; Temporal RPCs do not depend on how many there are
//! (docs/CONTRACT.md, Invariants 1 and 2).

use crate::task_log::Runs;
use crate::temporal::{self, DescribeError, HistoryPoll, RpcCounters, TaskDescription};
use agentflow_bus::{Bus, Progress};
use agentflow_client::EventsQuery;
use agentflow_client::progress::CallProgress;
use agentflow_client::workflow::{self as contract, AgentTask};
use agentflow_shared::event::{ErrorInfo, Event, EventKind, Failed, FailureKind, Reason};
use agentflow_shared::ids::{AgentId, Seq, TaskId, TenantId};
use agentflow_shared::log::{Appended, EventLog, LogError};
use agentflow_shared::task::{EventsPage, EventsRange, TaskResult};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use temporalio_client::tonic::{self, Code};
use temporalio_client::{Client, WorkflowQueryOptions, errors::WorkflowQueryError};
use temporalio_common::protos::temporal::api::enums::v1::WorkflowExecutionStatus;
use tokio::sync::{Notify, OnceCell, watch};

/// How relays talk to Temporal, and how many relays and subscribers there may be.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// `Describe` interval while an LLM call streams and its heartbeats change.
    pub describe_interval: Duration,
    /// Longest `Describe` interval, reached while heartbeats stay the same.
    pub max_describe_interval: Duration,
    /// Timeout of one workflow query.
    pub query_timeout: Duration,
    /// Timeout of every other RPC but the history long poll.
    pub rpc_timeout: Duration,
    /// How long a relay with no subscriber lives on.
    pub linger: Duration,
    /// Most relays at once.
    pub max_relays: usize,
    /// Most subscribers at once, over all relays.
    pub max_streams: usize,
    /// Most subscribers of one relay.
    pub max_streams_per_task: usize,
    /// How often the pending call's heartbeat marker is read while the call is on the bus.
    pub marker_interval: Duration,
    /// Read the log on progress hints (the bus) rather than on the history long poll.
    pub progress_hints: bool,
}

/// One event of the log, encoded once for every subscriber.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The event's seq.
    pub seq: Seq,
    /// The event's type name.
    pub type_name: &'static str,
    /// Whether it ends the log.
    pub terminal: bool,
    /// The SSE frame (`id`, `event`, `data`, blank line).
    pub bytes: Bytes,
}

impl Frame {
    fn new(event: &Event) -> Self {
        Self {
            seq: event.seq,
            type_name: event.type_name(),
            terminal: event.is_terminal(),
            bytes: Bytes::from(agentflow_shared::sse::frame(event, None)),
        }
    }
}

/// The relay's copy of the task's log: the checked dense log, and each event's SSE frame.
#[derive(Default)]
struct RelayLog {
    log: EventLog,
    frames: Vec<Frame>,
    /// Live (bus) events past the log's end, waiting for the durable events before them.
    /// Bounded by what one call emits (`worker.limits.max_call_event_bytes`).
    ahead: BTreeMap<Seq, Event>,
    /// The relay saw the durable log differ from what it had relayed: it serves nothing more.
    diverged: bool,
}

/// What appending to the relay's log did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Published {
    /// The events continued (or confirmed) the log; this many were new.
    New(usize),
    /// The events start beyond the log's end: the durable log must be read first.
    Ahead,
    /// An event differs from the one relayed at its seq (never expected: Invariant 1).
    Diverged,
}

/// Why a subscription could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The task does not exist.
    #[error("task not found")]
    NotFound,
    /// Temporal is unreachable.
    #[error("Temporal is unavailable: {0}")]
    Unavailable(String),
    /// The task, or the process, has as many subscribers as allowed.
    #[error("{0}")]
    TooManyStreams(String),
    /// The process runs as many relays as allowed.
    #[error("{0}")]
    TooManyRelays(String),
}

#[derive(Default)]
struct Life {
    subscribers: usize,
    stopped: bool,
}

/// The relay of one task.
pub struct Relay {
    task_id: TaskId,
    agent_id: Option<AgentId>,
    tenant: Option<TenantId>,
    log: RwLock<RelayLog>,
    published: watch::Sender<usize>,
    caught_up: watch::Sender<bool>,
    streams: Arc<AtomicUsize>,
    life: Mutex<Life>,
    idle: Notify,
    joined: Notify,
    /// Bus events ran ahead of the log: the durable events before them must be read now.
    behind: Notify,
}

impl Relay {
    /// The task's agent, as recorded in its search attributes.
    pub fn agent_id(&self) -> Option<&AgentId> {
        self.agent_id.as_ref()
    }

    /// The task's tenant, as recorded in its search attributes (`None`: created before
    /// tenancy).
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }
}

/// A subscriber's handle on a relay; leaving is dropping it.
pub struct Subscription {
    relay: Arc<Relay>,
    changes: watch::Receiver<usize>,
}

impl Subscription {
    /// The task's agent, as recorded in its search attributes.
    pub fn agent_id(&self) -> Option<&AgentId> {
        self.relay.agent_id.as_ref()
    }

    /// Up to `max` frames with `seq > after`.
    pub fn frames_after(&self, after: Seq, max: usize) -> Vec<Frame> {
        let relayed = self.relay.log.read().expect("relay lock");
        let frames = &relayed.frames;
        let start = (after.0 as usize).min(frames.len());
        frames[start..(start + max).min(frames.len())].to_vec()
    }

    /// Whether the stream after `after` is over: the log has ended and holds nothing after it,
    /// or the relay stopped serving (its log diverged; a reconnect reads the durable log).
    pub fn ended_at(&self, after: Seq) -> bool {
        let relayed = self.relay.log.read().expect("relay lock");
        relayed.diverged || (relayed.log.is_finished() && after.0 as usize >= relayed.frames.len())
    }

    /// Waits until the relay has read what Temporal had when it started (or tried to, when
    /// Temporal or the task's worker did not answer), so an empty log means "nothing yet".
    pub async fn caught_up(&self) {
        let mut caught_up = self.relay.caught_up.subscribe();
        let _ = caught_up.wait_for(|done| *done).await;
    }

    /// Waits until the log has ended.
    pub async fn ended(&mut self) {
        while !self.relay.ended() {
            self.changed().await;
        }
    }

    /// Every event of the log so far.
    pub fn events(&self) -> Vec<Event> {
        let relayed = self.relay.log.read().expect("relay lock");
        relayed.log.events().to_vec()
    }

    /// Waits until the log grows.
    pub async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut life = self.relay.life.lock().expect("relay lock");
        life.subscribers -= 1;
        self.relay.streams.fetch_sub(1, Ordering::Relaxed);
        if life.subscribers == 0 {
            self.relay.idle.notify_one();
        }
    }
}

impl Relay {
    /// A new subscription, within the limits; `None` when the relay has stopped.
    fn join(
        self: &Arc<Self>,
        settings: &RelaySettings,
    ) -> Result<Option<Subscription>, RelayError> {
        let mut life = self.life.lock().expect("relay lock");
        if life.stopped {
            return Ok(None);
        }
        if life.subscribers >= settings.max_streams_per_task {
            return Err(RelayError::TooManyStreams(format!(
                "task {} has {} streams, the most allowed (api.max_streams_per_task)",
                self.task_id, settings.max_streams_per_task
            )));
        }
        let room = |open: usize| (open < settings.max_streams).then_some(open + 1);
        if self
            .streams
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, room)
            .is_err()
        {
            return Err(RelayError::TooManyStreams(format!(
                "the api serves {} streams, the most allowed (api.max_streams)",
                settings.max_streams
            )));
        }
        life.subscribers += 1;
        self.joined.notify_one();
        Ok(Some(Subscription {
            relay: self.clone(),
            changes: self.published.subscribe(),
        }))
    }

    fn len(&self) -> usize {
        self.log.read().expect("relay lock").log.len()
    }

    /// Whether the relay has nothing more to do: the log ended, or it diverged.
    fn ended(&self) -> bool {
        let relayed = self.log.read().expect("relay lock");
        relayed.diverged || relayed.log.is_finished()
    }

    fn subscribers(&self) -> usize {
        self.life.lock().expect("relay lock").subscribers
    }

    fn diverged(&self) -> bool {
        self.log.read().expect("relay lock").diverged
    }

    /// Appends the events that continue the log and checks the ones it already has; returns
    /// `false` when the events start beyond the log's end (the durable log must be read first).
    fn publish(&self, events: impl IntoIterator<Item = Event>) -> bool {
        matches!(self.append(events), Published::New(_))
    }

    /// [`Relay::publish`], telling how many events were new. An event that differs from the
    /// one relayed at its seq means a client holds something the durable log does not: the
    /// relay then serves nothing more (its streams end; a reconnect reads the durable log).
    /// Live events that were waiting ahead follow once the log reaches them.
    fn append(&self, events: impl IntoIterator<Item = Event>) -> Published {
        self.append_from(events, false)
    }

    /// Appends a live event from the bus; one past the log's end waits in the relay (and says
    /// `Ahead`) until the durable events before it are read.
    fn append_live(&self, event: Event) -> Published {
        self.append_from([event], true)
    }

    /// Whether an LLM call is under way, as far as the log shows: its last event is a call's
    /// start, delta or retry.
    fn call_open(&self) -> bool {
        let relayed = self.log.read().expect("relay lock");
        relayed.log.events().last().is_some_and(|event| {
            matches!(
                event.kind,
                EventKind::LlmCallStarted(_)
                    | EventKind::LlmCallDelta(_)
                    | EventKind::LlmCallRetrying(_)
            )
        }) || !relayed.ahead.is_empty()
    }

    /// Whether live events wait for durable ones the relay has not read yet.
    fn is_behind(&self) -> bool {
        !self.log.read().expect("relay lock").ahead.is_empty()
    }

    fn append_from(&self, events: impl IntoIterator<Item = Event>, live: bool) -> Published {
        let mut relayed = self.log.write().expect("relay lock");
        if relayed.diverged {
            return Published::Diverged;
        }
        let before = relayed.log.len();
        let mut outcome = None;
        for event in events {
            if let Some(gap) = self.push(&mut relayed, event) {
                if live && gap.seq.0 > relayed.log.len() as u64 {
                    relayed.ahead.insert(gap.seq, gap);
                }
                outcome = Some(Published::Ahead);
                break;
            }
            if relayed.diverged {
                outcome = Some(Published::Diverged);
                break;
            }
        }
        while !relayed.diverged {
            let next = relayed.log.next_seq();
            let len = relayed.log.len() as u64;
            relayed.ahead.retain(|seq, _| seq.0 > len);
            let Some(event) = relayed.ahead.remove(&next) else {
                break;
            };
            if self.push(&mut relayed, event).is_some() {
                break;
            }
        }
        if relayed.diverged {
            outcome = Some(Published::Diverged);
        } else if live && !relayed.ahead.is_empty() {
            outcome = Some(Published::Ahead);
        }
        let after = relayed.log.len();
        let diverged = relayed.diverged;
        drop(relayed);
        if after != before || diverged {
            self.published.send_replace(after);
        }
        outcome.unwrap_or(Published::New(after - before))
    }

    /// Appends one event (or checks it against the one relayed at its seq); gives it back when
    /// it starts beyond the log's end. A differing event marks the relay diverged.
    fn push(&self, relayed: &mut RelayLog, event: Event) -> Option<Event> {
        let frame = (event.seq == relayed.log.next_seq()).then(|| Frame::new(&event));
        let kept = (event.seq > relayed.log.next_seq()).then(|| event.clone());
        match relayed.log.append(event) {
            Ok(Appended::New) => relayed.frames.extend(frame),
            Ok(Appended::Known) => {}
            Err(LogError::Gap { .. }) => return kept,
            Err(error) => {
                tracing::error!(task = %self.task_id, %error,
                    "invariant violated: the durable log differs from what was relayed; \
                     ending this relay's streams");
                relayed.diverged = true;
            }
        }
        None
    }

    /// Returns `false` as soon as the relay has a subscriber; `true` once it has had none for
    /// `linger`, after marking it stopped (a later subscriber then starts a new relay).
    async fn wait_for_subscriber(&self, linger: Duration) -> bool {
        loop {
            if self.subscribers() > 0 {
                return false;
            }
            tokio::select! {
                _ = self.joined.notified() => {}
                _ = tokio::time::sleep(linger) => {
                    let mut life = self.life.lock().expect("relay lock");
                    if life.subscribers == 0 {
                        life.stopped = true;
                        return true;
                    }
                }
            }
        }
    }

    /// Serves subscribers until none has been left for `linger`; then marks the relay stopped.
    async fn until_unused(&self, linger: Duration) {
        loop {
            while self.subscribers() > 0 {
                self.idle.notified().await;
            }
            if self.wait_for_subscriber(linger).await {
                return;
            }
        }
    }
}

/// Context the relay loop needs.
struct RelayContext {
    client: Client,
    counters: Arc<RpcCounters>,
    settings: RelaySettings,
    bus: Option<Bus>,
}

impl RelayContext {
    fn query_options(&self) -> WorkflowQueryOptions {
        temporal::query_options(self.settings.query_timeout)
    }

    /// `get_events` from `after`, retrying a busy workflow a few times.
    async fn query_events(
        &self,
        task: TaskId,
        after: Seq,
    ) -> Result<EventsPage, WorkflowQueryError> {
        let handle = self
            .client
            .get_workflow_handle::<AgentTask>(task.workflow_id());
        let mut attempt = 0;
        loop {
            RpcCounters::count(&self.counters.query);
            let range = EventsRange {
                after,
                limit: EventsRange::DEFAULT_LIMIT,
            };
            match handle
                .query(
                    contract::GetEvents,
                    EventsQuery(range),
                    self.query_options(),
                )
                .await
            {
                Err(error) if attempt < 3 && is_busy(&error) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                other => return other,
            }
        }
    }
}

fn is_busy(error: &WorkflowQueryError) -> bool {
    let text = error.to_string();
    text.contains("BUSY") || text.contains("busy")
}

async fn run(
    relay: Arc<Relay>,
    ctx: RelayContext,
    first: TaskDescription,
    registry: Arc<Registry>,
) {
    let task = relay.task_id;
    let follower = match &ctx.bus {
        Some(bus) if first.running => tokio::spawn(follow_bus(relay.clone(), bus.clone())),
        _ => tokio::spawn(async {}),
    };
    // Subscribed before the first query, so no step of the workflow after it goes unhinted.
    let mut hints = match &ctx.bus {
        Some(bus) if ctx.settings.progress_hints && first.running => {
            // A task created before tenancy (no tenant recorded): its hints under any tenant.
            let subscribe = bus.progress(relay.tenant.as_ref(), task);
            match tokio::time::timeout(ctx.settings.rpc_timeout, subscribe).await {
                Ok(Ok(hints)) => Some(hints),
                Ok(Err(error)) => {
                    tracing::warn!(%task, %error, "relay: subscribing to progress hints failed");
                    None
                }
                Err(_) => None,
            }
        }
        _ => None,
    };
    let mut description = Some(first);
    // With the bus, a wake-up after a read that brought new events (or any progress hint)
    // reuses the last description (the query says what is new; a call's live events come from
    // the bus), and the marker ticks check it; a read that brought nothing is followed by a
    // `Describe`.
    let mut last: Option<TaskDescription> = None;
    let mut reuse_last = false;
    let mut history_token: Vec<u8> = Vec::new();
    let mut backoff = Backoff::default();
    let mut query_backoff = Backoff::default();
    // With hints: the run's close, awaited by one parked long poll that outlives iterations
    // (a run closed from outside sends no hint), and the bus's state (a hint lost while it was
    // away is made up for by a read when it changes).
    let mut close_watch: Option<CloseWatch<'_>> = None;
    let mut bus_state = ctx.bus.as_ref().map(Bus::watch_state);
    loop {
        if relay.diverged() {
            // A fresh relay (started by the next subscriber) reads the durable log.
            relay.life.lock().expect("relay lock").stopped = true;
            break;
        }
        if relay.ended() {
            relay.until_unused(ctx.settings.linger).await;
            break;
        }
        if relay.wait_for_subscriber(ctx.settings.linger).await {
            break;
        }
        let reused = reuse_last && last.is_some();
        reuse_last = false;
        let current = match description.take() {
            Some(d) => d,
            None if reused => last.take().expect("checked above"),
            None => {
                match temporal::describe(&ctx.client, &ctx.counters, task, ctx.settings.rpc_timeout)
                    .await
                {
                    Ok(d) => d,
                    Err(error) => {
                        tracing::warn!(%task, %error, "relay: describe failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
        };
        if !current.running {
            let before = relay.len();
            read_closed(&relay, &ctx, &current).await;
            relay.caught_up.send_replace(true);
            if !relay.ended() && relay.len() == before {
                // Nothing new and no end: wait before asking Temporal again (never spin).
                backoff.wait().await;
            } else {
                backoff.reset();
            }
            continue;
        }
        backoff.reset();
        let before_query = relay.len();
        match ctx.query_events(task, Seq(relay.len() as u64)).await {
            Ok(page) => {
                let more = page.has_more;
                if !read_earlier_runs(&relay, &ctx, current.run_id(), page.first_seq).await {
                    continue;
                }
                relay.publish(page.events);
                if more {
                    description = Some(current);
                    continue;
                }
            }
            Err(error) => {
                tracing::warn!(%task, %error, "relay: get_events failed");
                if hints.is_some() && ctx.bus.as_ref().is_some_and(Bus::is_ready) {
                    // No history poll would bring another wake-up: read again after a pause
                    // (growing while the reads fail, e.g. while no worker answers).
                    query_backoff.wait().await;
                    continue;
                }
            }
        }
        query_backoff.reset();
        relay.caught_up.send_replace(true);
        let bus_ready = ctx.bus.as_ref().is_some_and(Bus::is_ready);
        if let Some(events) = current.llm_events()
            && (!events.is_empty() || !bus_ready)
            && relay.publish(events)
        {
            follow_llm_call(&relay, &ctx).await;
            continue;
        }
        let brought_news = relay.len() > before_query;
        // Progress hints replace the history long poll while the bus is up; without it (or
        // without hints) the long poll says when a workflow task completed.
        let hinted = bus_ready && hints.is_some();
        if hinted && close_watch.is_none() {
            close_watch = Some(Box::pin(watch_close(&ctx, task)));
        }
        // A call that has not heartbeated yet is taken to be on the bus while the bus is ready
        // (the marker tick finds out within `marker_interval` if it is not). With hints, the
        // marker is read only while the log shows a call under way.
        let mut ticking = if hinted {
            relay.call_open()
        } else {
            reused
                || match current.llm_progress() {
                    Some(CallProgress::OnBus { .. }) => true,
                    Some(CallProgress::Events(events)) => events.is_empty() && bus_ready,
                    None => false,
                }
        };
        last = Some(current);
        let token = history_token.clone();
        let mut durable_wake: WakeFuture<'_> = Box::pin(async {
            match (hints.as_mut(), close_watch.as_mut()) {
                (Some(hints), Some(closing)) if hinted => tokio::select! {
                    hint = hints.next() => match hint {
                        Some(Progress::Appended) => Ok(Wake::Hinted),
                        // The hint precedes the closing task's completion: wait for it.
                        Some(Progress::Closing) => tokio::select! {
                            () = &mut *closing => Ok(Wake::Closed),
                            // A later step: the close did not happen (or this hint is stale).
                            next = hints.next() => Ok(match next {
                                Some(_) => Wake::Hinted,
                                None => Wake::HintsEnded,
                            }),
                            () = tokio::time::sleep(ctx.settings.rpc_timeout) => Ok(Wake::Hinted),
                        },
                        None => Ok(Wake::HintsEnded),
                    },
                    () = &mut *closing => Ok(Wake::Closed),
                },
                _ => temporal::poll_history(&ctx.client, &ctx.counters, task, token)
                    .await
                    .map(Wake::History),
            }
        });
        let mut marker = tokio::time::interval_at(
            tokio::time::Instant::now() + ctx.settings.marker_interval,
            ctx.settings.marker_interval,
        );
        let mut hints_ended = false;
        let mut closed = false;
        loop {
            let idle = async {
                loop {
                    relay.idle.notified().await;
                    if relay.subscribers() == 0 {
                        return;
                    }
                }
            };
            tokio::select! {
                result = &mut durable_wake => {
                    match result {
                        Ok(Wake::History(HistoryPoll::More { token, progressed })) => {
                            history_token = token;
                            if !progressed {
                                // Nothing a query would show: poll on.
                                let token = history_token.clone();
                                durable_wake = Box::pin(async {
                                    temporal::poll_history(&ctx.client, &ctx.counters, task, token)
                                        .await
                                        .map(Wake::History)
                                });
                                continue;
                            }
                            reuse_last = bus_ready && brought_news;
                        }
                        Ok(Wake::Hinted) => reuse_last = true,
                        Ok(Wake::Closed) => closed = true,
                        Ok(Wake::History(HistoryPoll::Closed)) => history_token.clear(),
                        Ok(Wake::HintsEnded) => hints_ended = true,
                        Err(status) => {
                            tracing::warn!(%task, %status, "relay: history poll failed");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                    break;
                }
                _ = idle => break,
                _ = bus_changed(bus_state.as_mut()) => break,
                // A stale wake-up (a read since caught up) is not worth another query.
                _ = relay.behind.notified() => if relay.is_behind() {
                    break;
                },
                _ = marker.tick(), if ticking => {
                    // A call on the bus: only notice it leaving the bus (or the task ending);
                    // with hints, also a step whose hint did not come (the history grew).
                    match temporal::describe(&ctx.client, &ctx.counters, task, ctx.settings.rpc_timeout).await {
                        Ok(d) if !d.running || d.llm_events().is_some_and(|e| !e.is_empty()) => {
                            description = Some(d);
                            break;
                        }
                        Ok(d) if hinted
                            && last.as_ref().is_some_and(|l| l.history_length() != d.history_length()) =>
                        {
                            description = Some(d);
                            break;
                        }
                        Ok(d) => {
                            ticking = if hinted {
                                relay.call_open()
                            } else {
                                matches!(d.llm_progress(), Some(CallProgress::OnBus { .. }))
                                    || d.llm_events().is_some()
                            };
                            last = Some(d);
                        }
                        Err(error) => tracing::warn!(%task, %error, "relay: describe failed"),
                    }
                }
            }
        }
        drop(durable_wake);
        if hints_ended {
            hints = None;
        }
        // Hints that piled up meanwhile are covered by the read that follows.
        if let Some(hints) = hints.as_mut() {
            while let Some(Some(_)) = futures::FutureExt::now_or_never(hints.next()) {}
        }
        if closed {
            history_token.clear();
            close_watch = None;
        }
    }
    follower.abort();
    registry.remove(task, &relay);
}

/// A relay's wait for the run to close.
type CloseWatch<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// Returns once the task's latest run (as of the call) has closed: one parked long poll of
/// its close event at a time.
async fn watch_close(ctx: &RelayContext, task: TaskId) {
    loop {
        match temporal::wait_closed(&ctx.client, &ctx.counters, task, CLOSE_POLL).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(status) => {
                tracing::warn!(%task, %status, "relay: waiting for the close failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The longest one wait for a run's close event lasts (the server ends it after ~60 s).
const CLOSE_POLL: Duration = Duration::from_secs(70);

/// Resolves when the bus becomes ready or stops being ready (compared with when this was
/// called); never without a bus.
async fn bus_changed(state: Option<&mut tokio::sync::watch::Receiver<agentflow_bus::BusState>>) {
    if let Some(state) = state {
        let was_ready = *state.borrow() == agentflow_bus::BusState::Ready;
        if state
            .wait_for(|now| (*now == agentflow_bus::BusState::Ready) != was_ready)
            .await
            .is_ok()
        {
            return;
        }
    }
    std::future::pending().await
}

/// A relay's wait for the durable log to change.
type WakeFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Wake, tonic::Status>> + Send + 'a>>;

/// What ended a relay's wait for the durable log to change.
enum Wake {
    /// The history long poll returned.
    History(HistoryPoll),
    /// A progress hint: the workflow may have appended events.
    Hinted,
    /// The run closed (after a closing hint, or from outside).
    Closed,
    /// The hint subscription ended (the relay long-polls history from now on).
    HintsEnded,
}

/// Follows the task's calls on the bus for as long as the relay runs: each event the bus's
/// fold accepts is appended to the relay's log; one that runs ahead of it (the durable events
/// before the call are not read yet) waits in the relay while the relay reads them (`behind`).
/// The calls are on the task's tenant's subjects; those of a task created before tenancy (no
/// tenant recorded: its worker's default tenant) are followed under any tenant.
async fn follow_bus(relay: Arc<Relay>, bus: Bus) {
    let task = relay.task_id;
    loop {
        let mut follower = match bus.follow_task(relay.tenant.as_ref(), task).await {
            Ok(follower) => follower,
            Err(error) => {
                tracing::warn!(%task, %error, "relay: following the bus failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            if relay.ended() || relay.diverged() {
                return;
            }
            match follower.next().await {
                Ok(event) => {
                    if relay.append_live(event) == Published::Ahead {
                        relay.behind.notify_one();
                    }
                }
                Err(error) => {
                    tracing::warn!(%task, %error, "relay: the bus follower failed; following again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    break;
                }
            }
        }
    }
}

/// Waits that grow while retries find nothing new: 250 ms, doubling up to 5 s.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(5);

    async fn wait(&mut self) {
        let delay = (Self::FIRST * 2u32.saturating_pow(self.failures)).min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        tokio::time::sleep(delay).await;
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The next `Describe` interval: back to the base after a change, half as long again (up to
/// the max) after a poll that found nothing new.
fn next_interval(current: Duration, new_events: usize, settings: &RelaySettings) -> Duration {
    if new_events > 0 {
        settings.describe_interval
    } else {
        (current + current / 2).min(settings.max_describe_interval)
    }
}

/// Polls `Describe` while the LLM activity is pending, publishing its heartbeated events.
async fn follow_llm_call(relay: &Relay, ctx: &RelayContext) {
    let mut interval = ctx.settings.describe_interval;
    loop {
        tokio::time::sleep(interval).await;
        if relay.subscribers() == 0 {
            return;
        }
        match temporal::describe(
            &ctx.client,
            &ctx.counters,
            relay.task_id,
            ctx.settings.rpc_timeout,
        )
        .await
        {
            Ok(description) if description.running => match description.llm_events() {
                Some(events) => match relay.append(events) {
                    Published::New(new_events) => {
                        interval = next_interval(interval, new_events, &ctx.settings);
                    }
                    Published::Ahead | Published::Diverged => return,
                },
                None => return,
            },
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(task = %relay.task_id, %error, "relay: describe failed");
                return;
            }
        }
    }
}

/// Publishes the events of the task's earlier runs (it continued as new) between the relay's
/// log and `first_seq`, where run `run_id` starts; `false` (after a pause) when they could not
/// be read or joined now.
async fn read_earlier_runs(
    relay: &Relay,
    ctx: &RelayContext,
    run_id: String,
    first_seq: Seq,
) -> bool {
    let runs = Runs {
        client: &ctx.client,
        counters: &ctx.counters,
        task: relay.task_id,
        timeout: ctx.settings.rpc_timeout,
    };
    match runs
        .before(run_id, Seq(relay.len() as u64), first_seq)
        .await
    {
        Ok(events) => {
            relay.publish(events);
            true
        }
        Err(error) => {
            tracing::warn!(task = %relay.task_id, %error, "relay: reading earlier runs failed");
            tokio::time::sleep(Duration::from_millis(500)).await;
            false
        }
    }
}

/// Whether a query failed for good (a workflow closed before its first workflow task
/// completed has no state to query), rather than for want of a worker.
fn never_answers(error: &WorkflowQueryError) -> bool {
    match error {
        WorkflowQueryError::Rejected { .. } | WorkflowQueryError::NotFound(_) => true,
        WorkflowQueryError::Rpc(status) => matches!(
            status.code(),
            Code::FailedPrecondition | Code::InvalidArgument
        ),
        _ => false,
    }
}

/// Publishes every page of `get_events` after the relay's log (the earlier runs' events first,
/// when the current run starts later); `false` when a page could not be read now (no worker
/// answered), `true` once the log is read as far as it can ever be.
async fn read_all_pages(relay: &Relay, ctx: &RelayContext, description: &TaskDescription) -> bool {
    let task = relay.task_id;
    loop {
        let before = relay.len();
        let page = match ctx.query_events(task, Seq(before as u64)).await {
            Ok(page) => page,
            Err(error) if never_answers(&error) => {
                tracing::warn!(%task, %error, "relay: a closed task's log cannot be read further");
                return true;
            }
            Err(error) => {
                tracing::warn!(%task, %error, "relay: get_events of a closed task failed; retrying");
                return false;
            }
        };
        if !read_earlier_runs(relay, ctx, description.run_id(), page.first_seq).await {
            return false;
        }
        let more = page.has_more;
        if !relay.publish(page.events) {
            tracing::warn!(%task, "relay: get_events answered a page that does not continue the log");
            return false;
        }
        if !more || relay.len() == before {
            return true;
        }
    }
}

/// Reads a closed task's log from its result. A workflow that did not complete (terminated,
/// timed out outside agentflow) has no result: its whole log is read with `get_events` (a
/// worker replays the closed workflow to answer) and a terminal event made from its close
/// status is appended after it; while no worker answers, nothing is appended (the caller retries).
async fn read_closed(relay: &Relay, ctx: &RelayContext, description: &TaskDescription) {
    let task = relay.task_id;
    RpcCounters::count(&ctx.counters.result);
    let handle = ctx
        .client
        .get_workflow_handle::<AgentTask>(task.workflow_id());
    let result: Result<TaskResult, _> = handle
        .get_result(temporal::result_options(ctx.settings.rpc_timeout))
        .await;
    match result {
        Ok(result) if result.events_included => {
            if !read_earlier_runs(relay, ctx, description.run_id(), result.state.first_seq).await {
                return;
            }
            relay.publish(result.events);
        }
        Ok(result) => {
            // A log too large for the result: the run recorded it in its history (else the
            // closed run answers `get_events`).
            let runs = Runs {
                client: &ctx.client,
                counters: &ctx.counters,
                task,
                timeout: ctx.settings.rpc_timeout,
            };
            let archived = runs.archived_log(&description.run_id()).await;
            match archived {
                Ok(events) if !events.is_empty() => {
                    if !read_earlier_runs(relay, ctx, description.run_id(), result.state.first_seq)
                        .await
                    {
                        return;
                    }
                    relay.publish(events);
                }
                other => {
                    if let Err(status) = other {
                        tracing::warn!(%task, %status, "relay: reading the archived log failed");
                    }
                    if !read_all_pages(relay, ctx, description).await {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
        Err(error) => {
            tracing::warn!(%task, %error, "relay: the workflow closed without a result");
            if !read_all_pages(relay, ctx, description).await {
                tokio::time::sleep(Duration::from_millis(500)).await;
                return;
            }
            let seq = Seq(relay.len() as u64).next();
            let status = description.workflow_status;
            let kind = match status {
                WorkflowExecutionStatus::Canceled => {
                    EventKind::Cancelled(Reason::new("the workflow was cancelled"))
                }
                _ => EventKind::Failed(Failed {
                    error: ErrorInfo::new(
                        FailureKind::WorkflowClosed,
                        format!("the workflow closed as {}", status.as_str_name()),
                    ),
                    retryable: false,
                }),
            };
            let closed_at = description
                .raw
                .workflow_execution_info
                .as_ref()
                .and_then(|i| i.close_time)
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
                .unwrap_or_default();
            relay.publish([Event {
                seq,
                kind,
                task_id: task,
                agent_id: relay.agent_id.clone().unwrap_or_else(|| AgentId::from("")),
                timestamp: closed_at,
                step: 0,
                speaker: None,
            }]);
        }
    }
}

/// All relays of this process.
pub struct Registry {
    client: Client,
    counters: Arc<RpcCounters>,
    settings: RelaySettings,
    relays: Mutex<HashMap<TaskId, Arc<OnceCell<Arc<Relay>>>>>,
    streams: Arc<AtomicUsize>,
    bus: Option<Bus>,
}

impl Registry {
    /// An empty registry; relays follow live events on `bus` when there is one.
    pub fn new(client: Client, settings: RelaySettings, bus: Option<Bus>) -> Arc<Self> {
        Arc::new(Self {
            client,
            counters: Arc::default(),
            settings,
            relays: Mutex::default(),
            streams: Arc::default(),
            bus,
        })
    }

    /// The bus relays follow, if one is configured.
    pub fn bus(&self) -> Option<&Bus> {
        self.bus.as_ref()
    }

    /// Temporal RPCs made by relays so far.
    pub fn counters(&self) -> &RpcCounters {
        &self.counters
    }

    /// Relays running now, and their subscribers.
    pub fn active(&self) -> (usize, usize) {
        let relays = self.relays.lock().expect("registry lock");
        let subscribers = relays
            .values()
            .filter_map(|cell| cell.get())
            .map(|relay| relay.subscribers())
            .sum();
        (relays.len(), subscribers)
    }

    /// Whether one more stream of a new task would be within the limits.
    pub fn has_room(&self) -> Result<(), RelayError> {
        if self.streams.load(Ordering::Relaxed) >= self.settings.max_streams {
            return Err(RelayError::TooManyStreams(format!(
                "the api serves {} streams, the most allowed (api.max_streams)",
                self.settings.max_streams
            )));
        }
        if self.relays.lock().expect("registry lock").len() >= self.settings.max_relays {
            return Err(self.too_many_relays());
        }
        Ok(())
    }

    fn too_many_relays(&self) -> RelayError {
        RelayError::TooManyRelays(format!(
            "the api follows {} tasks, the most allowed (api.max_relays)",
            self.settings.max_relays
        ))
    }

    /// Subscribes to a task's relay, starting it if needed (within `max_relays`).
    pub async fn subscribe(self: &Arc<Self>, task: TaskId) -> Result<Subscription, RelayError> {
        self.subscribe_if(task, |_| true).await
    }

    /// [`Registry::subscribe`], refusing (as not found, before counting the subscriber) a task
    /// whose relay `accept` rejects — another agent's or tenant's.
    pub async fn subscribe_if(
        self: &Arc<Self>,
        task: TaskId,
        accept: impl Fn(&Relay) -> bool,
    ) -> Result<Subscription, RelayError> {
        loop {
            let cell = {
                let mut relays = self.relays.lock().expect("registry lock");
                match relays.get(&task) {
                    Some(cell) => cell.clone(),
                    None if relays.len() >= self.settings.max_relays => {
                        return Err(self.too_many_relays());
                    }
                    None => relays.entry(task).or_default().clone(),
                }
            };
            match cell.get_or_try_init(|| self.start(task)).await {
                Ok(relay) => {
                    if !accept(relay) {
                        return Err(RelayError::NotFound);
                    }
                    if let Some(subscription) = relay.join(&self.settings)? {
                        return Ok(subscription);
                    }
                    self.remove(task, relay);
                }
                Err(error) => {
                    let mut relays = self.relays.lock().expect("registry lock");
                    if relays.get(&task).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                        relays.remove(&task);
                    }
                    return Err(error);
                }
            }
        }
    }

    async fn start(self: &Arc<Self>, task: TaskId) -> Result<Arc<Relay>, RelayError> {
        let description = temporal::describe(
            &self.client,
            &self.counters,
            task,
            self.settings.rpc_timeout,
        )
        .await
        .map_err(|error| match error {
            DescribeError::NotFound => RelayError::NotFound,
            DescribeError::Rpc(status) => RelayError::Unavailable(status.message().to_owned()),
        })?;
        let (published, _) = watch::channel(0);
        let (caught_up, _) = watch::channel(false);
        let relay = Arc::new(Relay {
            task_id: task,
            agent_id: description.agent_id.clone(),
            tenant: description.tenant.clone(),
            log: RwLock::default(),
            published,
            caught_up,
            streams: self.streams.clone(),
            life: Mutex::default(),
            idle: Notify::new(),
            joined: Notify::new(),
            behind: Notify::new(),
        });
        let ctx = RelayContext {
            client: self.client.clone(),
            counters: self.counters.clone(),
            settings: self.settings,
            bus: self.bus.clone(),
        };
        tokio::spawn(run(relay.clone(), ctx, description, self.clone()));
        Ok(relay)
    }

    fn remove(&self, task: TaskId, relay: &Arc<Relay>) {
        let mut relays = self.relays.lock().expect("registry lock");
        if relays
            .get(&task)
            .and_then(|cell| cell.get())
            .is_some_and(|r| Arc::ptr_eq(r, relay))
        {
            relays.remove(&task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_interval_stretches_while_nothing_changes_and_snaps_back() {
        let settings = RelaySettings {
            describe_interval: Duration::from_millis(20),
            max_describe_interval: Duration::from_millis(100),
            query_timeout: Duration::from_secs(1),
            rpc_timeout: Duration::from_secs(1),
            linger: Duration::from_secs(1),
            max_relays: 1,
            max_streams: 1,
            max_streams_per_task: 1,
            marker_interval: Duration::from_secs(1),
            progress_hints: true,
        };
        let mut interval = settings.describe_interval;
        let mut seen = Vec::new();
        for _ in 0..6 {
            interval = next_interval(interval, 0, &settings);
            seen.push(interval.as_millis());
        }
        assert_eq!(seen, [30, 45, 67, 100, 100, 100]);
        assert_eq!(
            next_interval(interval, 3, &settings),
            settings.describe_interval
        );
    }

    fn event(seq: u64, text: &str, terminal: bool) -> Event {
        let kind = if terminal {
            EventKind::Cancelled(Reason::new(text))
        } else {
            EventKind::LlmCallDelta(agentflow_shared::event::LlmCallDelta {
                step: 1,
                text: text.into(),
                chunk_index: 0,
                kind: Default::default(),
            })
        };
        Event {
            seq: Seq(seq),
            kind,
            task_id: TaskId::new(),
            agent_id: AgentId::from("a"),
            timestamp: chrono::DateTime::UNIX_EPOCH,
            step: 1,
            speaker: None,
        }
    }

    fn relay() -> Arc<Relay> {
        let task_id = TaskId::new();
        Arc::new(Relay {
            task_id,
            agent_id: None,
            tenant: None,
            log: RwLock::default(),
            published: watch::channel(0).0,
            caught_up: watch::channel(false).0,
            streams: Arc::default(),
            life: Mutex::default(),
            idle: Notify::new(),
            joined: Notify::new(),
            behind: Notify::new(),
        })
    }

    fn with_task(mut event: Event, relay: &Relay) -> Event {
        event.task_id = relay.task_id;
        event
    }

    #[test]
    fn the_relay_log_is_checked_and_a_divergence_ends_its_streams() {
        let relay = relay();
        let e = |seq, text: &str, terminal| with_task(event(seq, text, terminal), &relay);
        assert_eq!(
            relay.append([e(1, "a", false), e(2, "b", false)]),
            Published::New(2)
        );
        assert_eq!(
            relay.append([e(2, "b", false), e(3, "c", false)]),
            Published::New(1)
        );
        assert_eq!(relay.append([e(5, "e", false)]), Published::Ahead);
        assert_eq!(relay.len(), 3);
        assert!(!relay.ended());
        // A terminal event at a seq the relay already served with other content.
        assert_eq!(relay.append([e(3, "failed", true)]), Published::Diverged);
        assert!(relay.diverged() && relay.ended(), "the relay stops serving");
        assert_eq!(relay.append([e(4, "d", false)]), Published::Diverged);
        assert_eq!(relay.len(), 3, "nothing is appended after a divergence");
    }

    #[test]
    fn live_events_ahead_of_the_log_wait_for_the_durable_ones_before_them() {
        let relay = relay();
        let e = |seq, text: &str| with_task(event(seq, text, false), &relay);
        assert_eq!(relay.append([e(1, "a")]), Published::New(1));
        assert_eq!(relay.append_live(e(3, "c")), Published::Ahead);
        assert_eq!(relay.append_live(e(4, "d")), Published::Ahead);
        assert!(relay.is_behind());
        assert_eq!(relay.len(), 1);
        // The durable read brings seq 2: the live events waiting follow at once.
        assert_eq!(relay.append([e(2, "b")]), Published::New(3));
        assert!(!relay.is_behind());
        assert_eq!(relay.len(), 4);
        // A live event the log already holds is checked, not kept.
        assert_eq!(relay.append_live(e(4, "d")), Published::New(0));
        assert!(!relay.is_behind());
    }
}
