//! A task's event log: a page (`…/events`) and the live SSE stream (`…/events/stream`).

use crate::auth::Caller;
use crate::auth::usage::StreamSlot;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::relay::{Frame, RelayError, Subscription};
use crate::routes::tasks::closed_log;
use crate::state::AppState;
use crate::task_log::Runs;
use crate::task_path::TaskPath;
use crate::update;
use agentflow_client::EventsQuery;
use agentflow_client::workflow::{self as contract, AgentTask};
use agentflow_shared::EventLog;
use agentflow_shared::event::EventKind;
use agentflow_shared::ids::{KeyId, Seq, TaskId, TenantId};
use agentflow_shared::task::{
    ControlRequest, EventsPage, EventsRange, ExecuteRequest, TaskParameters,
};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

/// Paging of `GET …/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Events with `seq > after` (default 0).
    pub after: Option<u64>,
    /// At most this many (1 to 1000, default 500).
    pub limit: Option<usize>,
}

/// A page of the task's event log.
#[utoipa::path(get, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/events", tag = "events",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)"), PageParams),
    responses((status = 200, body = EventsPage), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
#[tracing::instrument(skip(state))]
pub async fn page(
    State(state): State<AppState>,
    path: TaskPath,
    QueryParams(params): QueryParams<PageParams>,
) -> Result<Json<EventsPage>, ApiError> {
    let task = path.task;
    let limit = params.limit.unwrap_or(EventsRange::DEFAULT_LIMIT);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let range = EventsRange {
        after: Seq(params.after.unwrap_or(0)),
        limit,
    };
    let running = path.describe(&state).await?.running;
    let page = if running {
        crate::temporal::RpcCounters::count(&state.handler_rpcs.query);
        let options = crate::temporal::query_options(state.config.api.query_timeout());
        state
            .client
            .get_workflow_handle::<AgentTask>(task.workflow_id())
            .query(contract::GetEvents, EventsQuery(range), options)
            .await
            .map_err(|e| ApiError::Unavailable(format!("the task's worker did not answer: {e}")))?
    } else {
        match closed_log(&state, task).await? {
            Some(result) if result.events_included => {
                EventLog::from_events(result.state.first_seq, result.events)
                    .map_err(|e| {
                        ApiError::Internal(format!("the task's stored log is not dense: {e}"))
                    })?
                    .page(range, EventsRange::MAX_PAGE_BYTES)
            }
            // No result (terminated from outside), or a log too large for it.
            _ => relayed_page(&state, task, range).await?,
        }
    };
    if range.after.next() >= page.first_seq {
        return Ok(Json(page));
    }
    // The page may come from a newer run than the one described: read the runs before it
    // from the task's latest run, and make sure they meet.
    let latest = path.describe(&state).await?;
    let runs = Runs {
        client: &state.client,
        counters: &state.handler_rpcs,
        task,
        timeout: state.config.api.rpc_timeout(),
    };
    let mut events = runs
        .before(latest.run_id(), range.after, page.first_seq)
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    events.extend(page.events);
    let has_more = page.has_more || events.len() > limit;
    events.truncate(limit);
    Ok(Json(EventsPage {
        events,
        last_seq: page.last_seq,
        has_more,
        finished: page.finished,
        first_seq: Seq::first(),
    }))
}

/// The problem of a subscription the registry refused: the limits answer 429 or 503 with
/// `Retry-After` (a departed subscriber is noticed within two keep-alives; a relay with no
/// subscriber stops after its linger).
fn relay_error(
    state: &AppState,
    error: RelayError,
    not_found: impl FnOnce() -> ApiError,
) -> ApiError {
    match error {
        RelayError::NotFound => not_found(),
        RelayError::Unavailable(message) => ApiError::Unavailable(message),
        RelayError::TooManyStreams(detail) => ApiError::TooManyRequests {
            detail,
            retry_after_secs: state.config.api.keep_alive_secs.max(1),
        },
        RelayError::TooManyRelays(detail) => ApiError::Overloaded {
            detail,
            retry_after_secs: state.config.api.relay_linger_ms.div_ceil(1000).max(1),
        },
    }
}

/// A page of a task that closed without a result (terminated or timed out from outside), from
/// its relay: the same log as its stream, the relay's closing event included.
async fn relayed_page(
    state: &AppState,
    task: TaskId,
    range: EventsRange,
) -> Result<EventsPage, ApiError> {
    let not_found = || ApiError::NotFound(format!("task `{task}` does not exist"));
    let mut subscription = state
        .relays
        .subscribe(task)
        .await
        .map_err(|e| relay_error(state, e, not_found))?;
    let wait = 2 * state.config.api.query_timeout();
    tokio::time::timeout(wait, subscription.ended())
        .await
        .map_err(|_| {
            ApiError::Unavailable(format!(
                "the log of task `{task}` could not be read in time (no worker answered); retry"
            ))
        })?;
    Ok(EventLog::from_events(Seq::first(), subscription.events())
        .map_err(|e| ApiError::Internal(format!("the relayed log is not dense: {e}")))?
        .page(range, EventsRange::MAX_PAGE_BYTES))
}

/// Options of the SSE stream.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Start after this seq (`Last-Event-ID` wins when both are given).
    pub after: Option<u64>,
    /// Only these event types, comma-separated (the terminal event is always sent).
    pub types: Option<String>,
    /// `false` skips `WorkflowLLMCallDelta` (never a durable step).
    pub deltas: Option<bool>,
}

struct Filter {
    types: Option<HashSet<&'static str>>,
    deltas: bool,
}

impl Filter {
    fn parse(params: &StreamParams) -> Result<Self, ApiError> {
        let types = match &params.types {
            None => None,
            Some(list) => {
                let mut types = HashSet::new();
                for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let known = EventKind::TYPE_NAMES
                        .iter()
                        .find(|known| **known == name)
                        .ok_or_else(|| {
                            ApiError::BadRequest(format!("types: `{name}` is not an event type"))
                        })?;
                    types.insert(*known);
                }
                Some(types)
            }
        };
        Ok(Self {
            types,
            deltas: params.deltas.unwrap_or(true),
        })
    }

    fn accepts(&self, frame: &Frame) -> bool {
        if frame.terminal {
            return true;
        }
        if !self.deltas && frame.type_name == EventKind::LLM_CALL_DELTA {
            return false;
        }
        self.types
            .as_ref()
            .is_none_or(|types| types.contains(frame.type_name))
    }
}

fn cursor(headers: &HeaderMap, params: &StreamParams) -> Result<Seq, ApiError> {
    match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Seq)
            .ok_or_else(|| ApiError::BadRequest("Last-Event-ID must be an event seq".into())),
        None => Ok(Seq(params.after.unwrap_or(0))),
    }
}

/// The task's events as Server-Sent Events, live, from the cursor on; `204` once ended.
#[utoipa::path(get, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/events/stream", tag = "events",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this seq"),
        StreamParams),
    responses(
        (status = 200, description = "`text/event-stream`: `id: <seq>`, `event: <type>`, `data: <event JSON>`", content_type = "text/event-stream"),
        (status = 204, description = "The log has ended at or before the cursor"),
        (status = 400, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, caller, headers))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    path: TaskPath,
    QueryParams(params): QueryParams<StreamParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let slot = stream_slot(&state, &caller)?;
    let agent_id = path.agent.clone();
    let task = path.task;
    let filter = Filter::parse(&params)?;
    let position = cursor(&headers, &params)?;
    let not_found = || {
        ApiError::NotFound(format!(
            "task `{task}` does not exist for agent `{agent_id}`"
        ))
    };
    let subscription = state
        .relays
        .subscribe_if(task, |relay| {
            relay.agent_id() == Some(&agent_id) && path.sees(&state, relay.tenant())
        })
        .await
        .map_err(|e| relay_error(&state, e, not_found))?;
    if position > Seq(0) && subscription.frames_after(position, 1).is_empty() {
        // A fresh relay may not have read the log yet: wait (briefly) before deciding that a
        // cursor is at the end (an ended log is never empty, so cursor 0 never is).
        let wait = state.config.api.query_timeout();
        let _ = tokio::time::timeout(wait, subscription.caught_up()).await;
    }
    if subscription.ended_at(position) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let open = OpenStream {
        _slot: slot,
        key: caller.key,
    };
    Ok(sse_response(
        &state,
        subscription,
        position,
        filter,
        None,
        open,
    ))
}

/// What an open stream holds: its tenant's stream slot, and the key it was opened with
/// (directly or through a token): the stream ends once that key is revoked.
struct OpenStream {
    _slot: Option<StreamSlot>,
    key: Option<KeyId>,
}

/// With auth on, a slot for one more stream of the caller's tenant (429 past
/// `limits.tenant.max_streams`); with auth off only the api-wide bounds apply.
fn stream_slot(state: &AppState, caller: &Caller) -> Result<Option<StreamSlot>, ApiError> {
    if !state.config.auth.enabled {
        return Ok(None);
    }
    state
        .auth
        .usage
        .open_stream(&caller.tenant)
        .map(Some)
        .map_err(|limit| ApiError::TooManyRequests {
            detail: format!(
                "tenant `{}` has {limit} streams open on this api process, the most allowed \
                 (limits.tenant.max_streams)",
                caller.tenant
            ),
            retry_after_secs: state.config.api.keep_alive_secs.max(1),
        })
}

/// Cancels its task when dropped before the log ended: the one-request stream's
/// `on_disconnect: cancel`.
struct CancelOnDisconnect {
    state: AppState,
    tenant: TenantId,
    task: TaskId,
    requested_by: Option<String>,
    armed: bool,
}

impl Drop for CancelOnDisconnect {
    fn drop(&mut self) {
        if !self.armed || *self.state.shutting_down.borrow() {
            return;
        }
        let (state, tenant, task) = (self.state.clone(), self.tenant.clone(), self.task);
        let requested_by = self.requested_by.take();
        tracing::info!(%task, "stream client disconnected; cancelling the task");
        tokio::spawn(async move {
            let request = ControlRequest {
                reason: Some("the streaming client disconnected".into()),
                requested_by,
            };
            match update::call(&state, task, contract::Cancel, request).await {
                Ok(_) => {
                    if let Some(bus) = state.relays.bus() {
                        bus.hint_heartbeat(&tenant, task).await;
                    }
                }
                Err(error) => {
                    tracing::info!(%task, %error, "cancel after disconnect not applied");
                }
            }
        });
    }
}

/// The SSE response of a subscription from `position` on: frames as the relay publishes them,
/// keep-alive comments, the end after the terminal event (or when the api shuts down).
fn sse_response(
    state: &AppState,
    mut subscription: Subscription,
    mut position: Seq,
    filter: Filter,
    mut guard: Option<CancelOnDisconnect>,
    open: OpenStream,
) -> Response {
    let retry = state.config.api.sse_retry_ms;
    let keys = state.auth.keys.clone();
    let keep_alive = Duration::from_secs(state.config.api.keep_alive_secs.max(1));
    let mut shutting_down = state.shutting_down.clone();
    let body = async_stream::stream! {
        let open = open;
        let revoked = async {
            match &open.key {
                Some(key) => keys.revoked(key).await,
                None => std::future::pending().await,
            }
        };
        let mut revoked = std::pin::pin!(revoked);
        let mut retry_line = Some(format!("retry: {retry}\n"));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
        loop {
            if futures::FutureExt::now_or_never(&mut revoked).is_some() {
                tracing::info!(key = ?open.key, "key revoked; ending its stream");
                return;
            }
            let frames = subscription.frames_after(position, 256);
            if frames.is_empty() {
                if subscription.ended_at(position) || *shutting_down.borrow() {
                    if let Some(guard) = guard.as_mut() {
                        guard.armed = false;
                    }
                    return;
                }
                tokio::select! {
                    _ = subscription.changed() => {}
                    changed = shutting_down.changed() => if changed.is_err() {
                        if let Some(guard) = guard.as_mut() {
                            guard.armed = false;
                        }
                        return;
                    },
                    _ = ticks.tick() => yield Ok(Bytes::from_static(agentflow_shared::sse::KEEP_ALIVE.as_bytes())),
                    () = &mut revoked => {
                        tracing::info!(key = ?open.key, "key revoked; ending its stream");
                        return;
                    }
                }
                continue;
            }
            for frame in frames {
                position = frame.seq;
                if frame.terminal && let Some(guard) = guard.as_mut() {
                    guard.armed = false;
                }
                if filter.accepts(&frame) {
                    match retry_line.take() {
                        Some(line) => yield Ok::<Bytes, Infallible>(Bytes::from([line.as_bytes(), &frame.bytes].concat())),
                        None => yield Ok(frame.bytes.clone()),
                    }
                }
                if frame.terminal {
                    return;
                }
            }
        }
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// What the one-request stream does when its client goes away before the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnDisconnect {
    /// The task runs on; reconnect with `GET …/events/stream` and `Last-Event-ID`.
    #[default]
    Continue,
    /// The task is cancelled.
    Cancel,
}

/// Body of `POST /api/v1/agents/{agent_id}/tasks/stream`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamTaskRequest {
    /// A client-chosen UUID.
    pub id: Option<uuid::Uuid>,
    /// What the task is about.
    #[serde(default)]
    pub description: String,
    /// Who creates it.
    pub user_id: Option<String>,
    /// The query to run.
    pub query: String,
    /// Stream the LLM output (overrides task parameters and agent config).
    pub enable_streaming: Option<bool>,
    /// Per-task overrides.
    #[serde(default)]
    pub task_parameters: TaskParameters,
    /// What happens when the client disconnects before the end (default `continue`).
    #[serde(default)]
    pub on_disconnect: OnDisconnect,
}

/// Creates a task, runs the query and streams its events in this one response (the same
/// frames as `GET …/events/stream`); `X-Task-Id` names the task for reconnecting.
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/stream", tag = "events",
    params(("agent_id" = String, Path, description = "Agent id")),
    request_body = StreamTaskRequest,
    responses(
        (status = 200, description = "`text/event-stream` of the new task's events", content_type = "text/event-stream"),
        (status = 400, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 415, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, caller, body))]
pub async fn create_and_stream(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(agent_id): PathParams<String>,
    JsonBody(body): JsonBody<StreamTaskRequest>,
) -> Result<Response, ApiError> {
    if body.query.trim().is_empty() {
        return Err(ApiError::Unprocessable("query: must not be empty".into()));
    }
    if body.task_parameters.conversation == Some(true) {
        return Err(ApiError::Unprocessable(
            "task_parameters.conversation: a conversation never ends after one turn; create it \
             and stream it with GET …/events/stream instead"
                .into(),
        ));
    }
    state.relays.has_room().map_err(|e| {
        relay_error(&state, e, || {
            ApiError::internal("checking the stream limits", "an unexpected not found")
        })
    })?;
    let slot = stream_slot(&state, &caller)?;
    let (task, _) = crate::routes::tasks::start(
        &state,
        &caller,
        &agent_id,
        crate::routes::tasks::CreateTaskRequest {
            id: body.id,
            description: body.description,
            user_id: body.user_id,
            query: None,
            task_parameters: body.task_parameters,
        },
    )
    .await?;
    let vanished = || ApiError::Unavailable(format!("task {task} vanished"));
    let subscription = state
        .relays
        .subscribe(task)
        .await
        .map_err(|e| relay_error(&state, e, vanished))?;
    let guard = (body.on_disconnect == OnDisconnect::Cancel).then(|| CancelOnDisconnect {
        state: state.clone(),
        tenant: caller.tenant.clone(),
        task,
        requested_by: caller.identity.clone(),
        armed: true,
    });
    let request = ExecuteRequest {
        query: body.query,
        enable_streaming: body.enable_streaming,
    };
    update::call(&state, task, contract::Execute, request).await?;
    let filter = Filter {
        types: None,
        deltas: true,
    };
    let open = OpenStream {
        _slot: slot,
        key: caller.key,
    };
    let mut response = sse_response(&state, subscription, Seq(0), filter, guard, open);
    if let Ok(value) = header::HeaderValue::from_str(&task.to_string()) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-task-id"), value);
    }
    Ok(response)
}
