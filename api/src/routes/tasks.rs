//! Tasks: create, list, show, execute.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::state::AppState;
use crate::task_path::{TaskPath, check_agent};
use crate::temporal;
use crate::update;
use agentflow_client::progress::CallProgress;
use agentflow_client::search::{AGENT_ID, TASK_STATUS, USER_ID};
use agentflow_client::tasks::{CreateTaskError, NewTask, start_task, task_input};
use agentflow_client::workflow::{self as contract, AgentTask};
use agentflow_shared::ids::{AgentId, TaskId, TenantId};
use agentflow_shared::task::{
    ExecuteAccepted, ExecuteRequest, TaskParameters, TaskResult, TaskState, TaskStatus,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use temporalio_client::WorkflowQueryOptions;
use temporalio_client::errors::{WorkflowGetResultError, WorkflowStartError};

/// Body of `POST /api/v1/agents/{agent_id}/tasks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// A client-chosen UUID, so the stream can be opened before anything runs.
    pub id: Option<uuid::Uuid>,
    /// What the task is about.
    pub description: String,
    /// Who creates it (letters, digits and `_.@:-`, at most 128).
    pub user_id: Option<String>,
    /// A query to execute at once.
    pub query: Option<String>,
    /// Per-task overrides.
    #[serde(default)]
    pub task_parameters: TaskParameters,
}

/// Links of a task.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskLinks {
    /// This task.
    #[serde(rename = "self")]
    pub self_: String,
    /// Its event log, page by page.
    pub events: String,
    /// Its live event stream (SSE).
    pub stream: String,
    /// Where to POST a query.
    pub execute: String,
}

/// A task.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Task {
    /// Its id.
    pub id: TaskId,
    /// Its agent.
    pub agent_id: String,
    /// Its status.
    pub status: TaskStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The Temporal workflow id.
    pub workflow_id: String,
    /// Related URLs.
    pub links: TaskLinks,
    /// Live (or final) state, on `GET` of one task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    /// The LLM call in progress, on `GET` of one task that has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_call: Option<LlmCallView>,
}

/// Where the events of an LLM call in progress travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LivePath {
    /// Published on the live bus; heartbeats carry a small marker.
    Bus,
    /// Carried by the activity's heartbeats (no bus, or the call left it).
    Heartbeats,
}

/// The LLM call in progress, as its last heartbeat tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LlmCallView {
    /// Where its events travel.
    pub path: LivePath,
    /// The attempt on the bus (absent on the heartbeat path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The attempt waits for the bus to come back, to read what an earlier attempt stored
    /// there before it goes on (it never guesses).
    pub waiting_for_bus: bool,
}

impl LlmCallView {
    fn new(progress: &CallProgress) -> Self {
        match progress {
            CallProgress::Events(_) => Self {
                path: LivePath::Heartbeats,
                attempt: None,
                waiting_for_bus: false,
            },
            CallProgress::OnBus { bus } => Self {
                path: LivePath::Bus,
                attempt: Some(bus.attempt),
                waiting_for_bus: bus.waiting,
            },
        }
    }
}

impl Task {
    fn new(agent: &str, id: TaskId, status: TaskStatus, created_at: DateTime<Utc>) -> Self {
        let base = format!("/api/v1/agents/{agent}/tasks/{id}");
        Self {
            id,
            agent_id: agent.to_owned(),
            status,
            created_at,
            workflow_id: id.workflow_id(),
            links: TaskLinks {
                events: format!("{base}/events"),
                stream: format!("{base}/events/stream"),
                execute: format!("{base}/execute"),
                self_: base,
            },
            state: None,
            llm_call: None,
        }
    }
}

/// A page of tasks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskList {
    /// The tasks, newest first.
    pub tasks: Vec<Task>,
    /// Pass as `page_token` for the next page; absent on the last one.
    pub next_page_token: Option<String>,
}

/// Filters and paging of `GET …/tasks`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only tasks with this status.
    pub status: Option<TaskStatus>,
    /// Only tasks of this user.
    pub user_id: Option<String>,
    /// Tasks per page (default 50).
    pub page_size: Option<usize>,
    /// From a previous page's `next_page_token`.
    pub page_token: Option<String>,
}

fn check_user_id(user: &str) -> Result<(), ApiError> {
    let valid = !user.is_empty()
        && user.len() <= 128
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@:-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(
            "user_id: use 1 to 128 letters, digits or `_.@:-`".into(),
        ))
    }
}

fn query_options(state: &AppState) -> WorkflowQueryOptions {
    temporal::query_options(state.config.api.query_timeout())
}

/// The result of a closed task; `None` when its workflow closed without one (terminated or
/// timed out from outside agentflow).
pub(crate) async fn closed_log(
    state: &AppState,
    task: TaskId,
) -> Result<Option<TaskResult>, ApiError> {
    crate::temporal::RpcCounters::count(&state.handler_rpcs.result);
    let result = state
        .client
        .get_workflow_handle::<AgentTask>(task.workflow_id())
        .get_result(temporal::result_options(state.config.api.rpc_timeout()))
        .await;
    match result {
        Ok(result) => Ok(Some(result)),
        Err(WorkflowGetResultError::NotFound(_)) => {
            Err(ApiError::NotFound(format!("task `{task}` does not exist")))
        }
        Err(
            WorkflowGetResultError::Terminated { .. }
            | WorkflowGetResultError::TimedOut
            | WorkflowGetResultError::Failed(_)
            | WorkflowGetResultError::Cancelled { .. },
        ) => Ok(None),
        Err(error) => Err(ApiError::Unavailable(format!(
            "reading the result of task `{task}` failed: {error}"
        ))),
    }
}

/// The result of a closed task (409 when it closed without one).
async fn closed_result(state: &AppState, task: TaskId) -> Result<TaskResult, ApiError> {
    closed_log(state, task)
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("task `{task}` closed without a result")))
}

/// The live state of a running task, from its worker.
async fn live_state(state: &AppState, task: TaskId) -> Result<TaskState, ApiError> {
    crate::temporal::RpcCounters::count(&state.handler_rpcs.query);
    state
        .client
        .get_workflow_handle::<AgentTask>(task.workflow_id())
        .query(contract::GetCurrentState, (), query_options(state))
        .await
        .map_err(|e| ApiError::Unavailable(format!("the task's worker did not answer: {e}")))
}

/// Creates a task; with `query` it runs at once.
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks", tag = "tasks",
    params(("agent_id" = String, Path, description = "Agent id")),
    request_body = CreateTaskRequest,
    responses(
        (status = 201, body = Task),
        (status = 400, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 413, body = crate::error::Problem),
        (status = 415, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, caller, body))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(agent_id): PathParams<String>,
    JsonBody(body): JsonBody<CreateTaskRequest>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let runs_now = body.query.as_deref().is_some_and(|q| !q.trim().is_empty());
    let (id, created_at) = start(&state, &caller, &agent_id, body).await?;
    let status = if runs_now {
        TaskStatus::Running
    } else {
        TaskStatus::Created
    };
    Ok((
        StatusCode::CREATED,
        Json(Task::new(&agent_id, id, status, created_at)),
    ))
}

/// Validates a creation request and starts the task's workflow; returns its id and creation
/// time.
pub(crate) async fn start(
    state: &AppState,
    caller: &Caller,
    agent_id: &str,
    body: CreateTaskRequest,
) -> Result<(TaskId, DateTime<Utc>), ApiError> {
    check_agent(state, agent_id)?;
    let mut user_id = body.user_id;
    caller.stamp("user_id", &mut user_id)?;
    if let Some(user) = &user_id {
        check_user_id(user)?;
    }
    let input = task_input(
        &state.config,
        &AgentId(agent_id.to_owned()),
        NewTask {
            id: body.id.map(TaskId),
            description: body.description,
            user_id,
            tenant: Some(caller.tenant.clone()),
            query: body.query,
            parameters: body.task_parameters,
        },
    )
    .map_err(create_error)?;
    check_open_tasks(state, &caller.tenant).await?;
    let reservation = OpenTaskReservation {
        state,
        tenant: &caller.tenant,
        kept: false,
    };
    let (id, created_at) = (input.task_id, input.created_at);
    let started = start_task(&state.client, &state.config.worker.task_queue, input);
    tokio::time::timeout(state.config.api.rpc_timeout(), started)
        .await
        .map_err(|_| ApiError::Unavailable("Temporal did not start the task in time".into()))?
        .map_err(create_error)?;
    reservation.keep();
    Ok((id, created_at))
}

/// A new task counted in its tenant's open tasks from the check on; given back when its start
/// fails.
struct OpenTaskReservation<'a> {
    state: &'a AppState,
    tenant: &'a TenantId,
    kept: bool,
}

impl OpenTaskReservation<'_> {
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for OpenTaskReservation<'_> {
    fn drop(&mut self) {
        if !self.kept && self.state.config.auth.enabled {
            self.state.auth.usage.task_not_created(self.tenant);
        }
    }
}

/// With auth on, refuses a new task (429) when the tenant has `limits.tenant.max_open_tasks` open, as
/// Temporal visibility counts them — at most once a second per tenant (`OPEN_TASKS_COUNT_TTL`),
/// adding the tasks this process created since; visibility may lag a new task by a moment.
async fn check_open_tasks(state: &AppState, tenant: &TenantId) -> Result<(), ApiError> {
    if !state.config.auth.enabled {
        return Ok(());
    }
    let limit = state.config.limits.of_tenant(tenant).max_open_tasks;
    let usage = &state.auth.usage;
    let open = match usage.open_tasks(tenant) {
        Some(open) => open,
        None => {
            let query = format!(
                "WorkflowType = '{}' AND ExecutionStatus = 'Running' AND {}",
                contract::WORKFLOW_TYPE,
                temporal::tenant_clause(tenant, &state.config.auth.default_tenant)
            );
            let counted = temporal::count(&state.client, query, state.config.api.rpc_timeout())
                .await
                .map_err(|status| {
                    ApiError::Unavailable(format!(
                        "Temporal visibility failed: {}",
                        status.message()
                    ))
                })?;
            let counted = u64::try_from(counted).unwrap_or(0);
            usage.counted_open_tasks(tenant, counted);
            counted
        }
    };
    if open >= limit || !usage.reserve_task(tenant, limit) {
        return Err(ApiError::TooManyRequests {
            detail: format!(
                "tenant `{tenant}` has {open} tasks open, the most allowed \
                 (limits.tenant.max_open_tasks: {limit}); let one finish or cancel one"
            ),
            retry_after_secs: 5,
        });
    }
    Ok(())
}

fn create_error(error: CreateTaskError) -> ApiError {
    match error {
        CreateTaskError::UnknownAgent(_) => ApiError::NotFound(error.to_string()),
        CreateTaskError::UnknownModel(model) => ApiError::Unprocessable(format!(
            "task_parameters.model: `{model}` is not a configured model"
        )),
        CreateTaskError::InvalidParameter(message) | CreateTaskError::OutsideLimit(message) => {
            ApiError::Unprocessable(message)
        }
        CreateTaskError::Start(WorkflowStartError::AlreadyStarted { .. }) => {
            ApiError::Conflict("a task with this id already exists".into())
        }
        CreateTaskError::Start(other) => {
            ApiError::Unavailable(format!("starting the task failed: {other}"))
        }
    }
}

/// Lists the agent's tasks from Temporal visibility, newest first.
#[utoipa::path(get, path = "/api/v1/agents/{agent_id}/tasks", tag = "tasks",
    params(("agent_id" = String, Path, description = "Agent id"), ListParams),
    responses((status = 200, body = TaskList), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, caller))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(agent_id): PathParams<String>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<TaskList>, ApiError> {
    check_agent(&state, &agent_id)?;
    let page_size = params.page_size.unwrap_or(50);
    if page_size == 0 || page_size > state.config.api.max_page_size {
        return Err(ApiError::BadRequest(format!(
            "page_size must be between 1 and {}",
            state.config.api.max_page_size
        )));
    }
    let mut query = format!(
        "WorkflowType = '{}' AND {} = '{agent_id}' AND {}",
        contract::WORKFLOW_TYPE,
        AGENT_ID.name(),
        temporal::tenant_clause(&caller.tenant, &state.config.auth.default_tenant)
    );
    if let Some(status) = params.status {
        query.push_str(&format!(
            " AND {} = '{}'",
            TASK_STATUS.name(),
            status.as_str()
        ));
    }
    if let Some(user) = &params.user_id {
        check_user_id(user)
            .map_err(|_| ApiError::BadRequest("user_id is not a valid user id".into()))?;
        query.push_str(&format!(" AND {} = '{user}'", USER_ID.name()));
    }
    let token = match &params.page_token {
        Some(token) => URL_SAFE_NO_PAD.decode(token).map_err(|_| {
            ApiError::BadRequest("page_token is not a token this api issued".into())
        })?,
        None => Vec::new(),
    };
    let timeout = state.config.api.rpc_timeout();
    let (executions, next) = temporal::list(&state.client, query, page_size as i32, token, timeout)
        .await
        .map_err(|status| match status.code() {
            temporalio_client::tonic::Code::InvalidArgument => {
                ApiError::BadRequest(format!("invalid listing request: {}", status.message()))
            }
            _ => ApiError::Unavailable(format!("Temporal visibility failed: {}", status.message())),
        })?;
    let tasks = executions
        .iter()
        .filter_map(|info| {
            let id = TaskId::from_workflow_id(&info.execution.as_ref()?.workflow_id)?;
            let (_, status, started) = temporal::task_fields(info);
            Some(Task::new(
                &agent_id,
                id,
                status.unwrap_or(TaskStatus::Created),
                started.unwrap_or_default(),
            ))
        })
        .collect();
    Ok(Json(TaskList {
        tasks,
        next_page_token: (!next.is_empty()).then(|| URL_SAFE_NO_PAD.encode(next)),
    }))
}

/// A task with its live state (or its final state once closed; no worker needed then).
#[utoipa::path(get, path = "/api/v1/agents/{agent_id}/tasks/{task_id}", tag = "tasks",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    responses((status = 200, body = Task), (status = 404, body = crate::error::Problem),
        (status = 503, body = crate::error::Problem)))]
#[tracing::instrument(skip(state))]
pub async fn show(State(state): State<AppState>, path: TaskPath) -> Result<Json<Task>, ApiError> {
    let task = path.task;
    let description = path.describe(&state).await?;
    let task_state = if description.running {
        live_state(&state, task).await?
    } else {
        closed_result(&state, task).await?.state
    };
    let mut view = Task::new(
        path.agent.as_str(),
        task,
        task_state.status,
        description.started_at.unwrap_or_default(),
    );
    view.state = Some(task_state);
    view.llm_call = description.llm_progress().as_ref().map(LlmCallView::new);
    Ok(Json(view))
}

/// Runs a query on a created task (a validated Temporal update).
#[utoipa::path(post, path = "/api/v1/agents/{agent_id}/tasks/{task_id}/execute", tag = "tasks",
    params(("agent_id" = String, Path, description = "Agent id"),
        ("task_id" = String, Path, description = "Task id (UUID)")),
    request_body = ExecuteRequest,
    responses((status = 202, body = ExecuteAccepted), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
#[tracing::instrument(skip(state, body))]
pub async fn execute(
    State(state): State<AppState>,
    path: TaskPath,
    JsonBody(body): JsonBody<ExecuteRequest>,
) -> Result<(StatusCode, Json<ExecuteAccepted>), ApiError> {
    if body.query.trim().is_empty() {
        return Err(ApiError::Unprocessable("query: must not be empty".into()));
    }
    path.open(&state, "; create a new task to run another query")
        .await?;
    let accepted = update::call(&state, path.task, contract::Execute, body).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}
