//! Thin wrappers over the Temporal RPCs the api makes, each counted in [`RpcCounters`].

use agentflow_client::progress::CallProgress;
use agentflow_client::search::{AGENT_ID, TASK_STATUS, TENANT_ID};
use agentflow_client::workflow as contract;
use agentflow_shared::event::Event;
use agentflow_shared::ids::{AgentId, TaskId, TenantId};
use agentflow_shared::task::TaskStatus;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use temporalio_client::Client;
use temporalio_client::grpc::WorkflowService;
use temporalio_client::tonic::{Code, IntoRequest, Status};
use temporalio_common::protos::temporal::api::common::v1::{Payload, WorkflowExecution};
use temporalio_common::protos::temporal::api::enums::v1::{
    EventType, HistoryEventFilterType, WorkflowExecutionStatus,
};
use temporalio_common::protos::temporal::api::workflow::v1::WorkflowExecutionInfo;
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    CountWorkflowExecutionsRequest, DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse, GetSystemInfoRequest, GetWorkflowExecutionHistoryRequest,
    GetWorkflowExecutionHistoryResponse, ListWorkflowExecutionsRequest,
};

/// Counts of Temporal RPCs made by this api process, by kind (they feed the benchmark).
#[derive(Debug, Default)]
pub struct RpcCounters {
    /// `DescribeWorkflowExecution`.
    pub describe: AtomicU64,
    /// Workflow queries (`get_events`, `get_current_state`).
    pub query: AtomicU64,
    /// `GetWorkflowExecutionHistory` long polls.
    pub history_poll: AtomicU64,
    /// Reads of a closed task's result, and of earlier runs' start events.
    pub result: AtomicU64,
    /// Workflow updates (execute and the controls).
    pub update: AtomicU64,
}

/// A snapshot of [`RpcCounters`].
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct RpcCounts {
    /// `DescribeWorkflowExecution` calls.
    pub describe: u64,
    /// Workflow queries.
    pub query: u64,
    /// History long polls.
    pub history_poll: u64,
    /// Result reads.
    pub result: u64,
    /// Workflow updates.
    pub update: u64,
    /// All of them.
    pub total: u64,
}

impl RpcCounters {
    /// Current counts.
    pub fn snapshot(&self) -> RpcCounts {
        let describe = self.describe.load(Ordering::Relaxed);
        let query = self.query.load(Ordering::Relaxed);
        let history_poll = self.history_poll.load(Ordering::Relaxed);
        let result = self.result.load(Ordering::Relaxed);
        let update = self.update.load(Ordering::Relaxed);
        RpcCounts {
            describe,
            query,
            history_poll,
            result,
            update,
            total: describe + query + history_poll + result + update,
        }
    }

    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Options of a workflow query that gives up after `timeout` (a query waits for a worker).
pub fn query_options(timeout: Duration) -> temporalio_client::WorkflowQueryOptions {
    temporalio_client::WorkflowQueryOptions::builder()
        .rpc_options(
            temporalio_client::RpcOptions::builder()
                .timeout(timeout)
                .build(),
        )
        .build()
}

/// Options of a workflow update whose every RPC gives up after `timeout`. The client repeats
/// the start RPC until a worker accepts the update, so callers also bound the whole call.
pub fn update_options(timeout: Duration) -> temporalio_client::WorkflowExecuteUpdateOptions {
    temporalio_client::WorkflowExecuteUpdateOptions::builder()
        .rpc_options(
            temporalio_client::RpcOptions::builder()
                .timeout(timeout)
                .build(),
        )
        .build()
}

/// Options of a result read whose every RPC gives up after `timeout`.
pub fn result_options(timeout: Duration) -> temporalio_client::WorkflowGetResultOptions {
    temporalio_client::WorkflowGetResultOptions::builder()
        .rpc_options(
            temporalio_client::RpcOptions::builder()
                .timeout(timeout)
                .build(),
        )
        .build()
}

/// What the api knows of a task from `DescribeWorkflowExecution`.
#[derive(Debug, Clone)]
pub struct TaskDescription {
    /// The agent (search attribute `AgentId`).
    pub agent_id: Option<AgentId>,
    /// The tenant (search attribute `TenantId`; absent on tasks created before tenancy).
    pub tenant: Option<TenantId>,
    /// Whether the workflow is still running.
    pub running: bool,
    /// The Temporal status of the workflow.
    pub workflow_status: WorkflowExecutionStatus,
    /// The task status (search attribute `TaskStatus`).
    pub task_status: Option<TaskStatus>,
    /// When it started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The raw response (pending activities and their heartbeats).
    pub raw: DescribeWorkflowExecutionResponse,
}

impl TaskDescription {
    /// The id of the run described (the task's latest run).
    pub fn run_id(&self) -> String {
        self.raw
            .workflow_execution_info
            .as_ref()
            .and_then(|i| i.execution.as_ref())
            .map(|e| e.run_id.clone())
            .unwrap_or_default()
    }

    /// What the pending LLM activity heartbeated (its events, or its marker on the bus), if one
    /// is pending; an activity that has not heartbeated yet counts as carrying no events.
    pub fn llm_progress(&self) -> Option<CallProgress> {
        let llm_call = contract::activity::LLM_CALL;
        let pending = self
            .raw
            .pending_activities
            .iter()
            .any(|a| a.activity_type.as_ref().is_some_and(|t| t.name == llm_call));
        pending.then(|| {
            agentflow_client::progress::heartbeat_progress(&self.raw)
                .unwrap_or(CallProgress::Events(Vec::new()))
        })
    }

    /// How many events the run's history holds.
    pub fn history_length(&self) -> i64 {
        self.raw
            .workflow_execution_info
            .as_ref()
            .map_or(0, |info| info.history_length)
    }

    /// The events in the pending LLM activity's heartbeat, if one is pending on the heartbeat
    /// path.
    pub fn llm_events(&self) -> Option<Vec<Event>> {
        match self.llm_progress()? {
            CallProgress::Events(events) => Some(events),
            CallProgress::OnBus { .. } => None,
        }
    }
}

/// Why a task could not be described.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    /// No such workflow.
    #[error("task not found")]
    NotFound,
    /// Temporal failed or is unreachable.
    #[error("describe failed: {0}")]
    Rpc(Status),
}

fn keyword(payload: Option<&Payload>) -> Option<String> {
    payload.and_then(|p| serde_json::from_slice(&p.data).ok())
}

/// Decodes the task fields of a visibility or describe record.
pub fn task_fields(
    info: &WorkflowExecutionInfo,
) -> (
    Option<AgentId>,
    Option<TaskStatus>,
    Option<chrono::DateTime<chrono::Utc>>,
) {
    let attributes = info.search_attributes.as_ref().map(|s| &s.indexed_fields);
    let agent = keyword(attributes.and_then(|a| a.get(AGENT_ID.name()))).map(AgentId);
    let status = keyword(attributes.and_then(|a| a.get(TASK_STATUS.name())))
        .and_then(|s| serde_json::from_value(serde_json::Value::String(s)).ok());
    let started = info
        .start_time
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
    (agent, status, started)
}

/// The tenant of a visibility or describe record (`Ok(None)`: created before tenancy); `Err`
/// with the value when it is no tenant id (only someone with Temporal access writes one).
fn tenant_of(info: &WorkflowExecutionInfo) -> Result<Option<TenantId>, String> {
    let attributes = info.search_attributes.as_ref().map(|s| &s.indexed_fields);
    match attributes.and_then(|a| a.get(TENANT_ID.name())) {
        None => Ok(None),
        Some(payload) => keyword(Some(payload))
            .and_then(|t| t.parse().ok())
            .map(Some)
            .ok_or_else(|| String::from_utf8_lossy(&payload.data).into_owned()),
    }
}

/// The visibility clause selecting `tenant`'s tasks; the default tenant's include those
/// created before tenancy (no `TenantId`).
pub fn tenant_clause(tenant: &TenantId, default: &TenantId) -> String {
    let name = TENANT_ID.name();
    if tenant == default {
        format!("({name} = '{tenant}' OR {name} IS NULL)")
    } else {
        format!("{name} = '{tenant}'")
    }
}

/// Counts the workflows matching `query` in visibility.
pub async fn count(client: &Client, query: String, timeout: Duration) -> Result<i64, Status> {
    let mut client = client.clone();
    let namespace = temporalio_client::NamespacedClient::namespace(&client);
    let mut request = CountWorkflowExecutionsRequest { namespace, query }.into_request();
    request.set_timeout(timeout);
    Ok(
        WorkflowService::count_workflow_executions(&mut client, request)
            .await?
            .into_inner()
            .count,
    )
}

/// Describes a task's workflow, giving up after `timeout`.
pub async fn describe(
    client: &Client,
    counters: &RpcCounters,
    task: TaskId,
    timeout: Duration,
) -> Result<TaskDescription, DescribeError> {
    RpcCounters::count(&counters.describe);
    let mut client = client.clone();
    let namespace = temporalio_client::NamespacedClient::namespace(&client);
    let mut request = DescribeWorkflowExecutionRequest {
        namespace,
        execution: Some(WorkflowExecution {
            workflow_id: task.workflow_id(),
            run_id: String::new(),
        }),
    }
    .into_request();
    request.set_timeout(timeout);
    let raw = WorkflowService::describe_workflow_execution(&mut client, request)
        .await
        .map_err(|status| match status.code() {
            Code::NotFound => DescribeError::NotFound,
            _ => DescribeError::Rpc(status),
        })?
        .into_inner();
    let info = raw.workflow_execution_info.clone().unwrap_or_default();
    let (agent_id, task_status, started_at) = task_fields(&info);
    // A task whose tenant cannot be read is nobody's: not found, rather than the default's.
    let tenant = tenant_of(&info).map_err(|value| {
        tracing::warn!(%task, value, "the task's TenantId is no tenant id; it is not served");
        DescribeError::NotFound
    })?;
    let workflow_status = WorkflowExecutionStatus::try_from(info.status)
        .unwrap_or(WorkflowExecutionStatus::Unspecified);
    Ok(TaskDescription {
        agent_id,
        tenant,
        running: workflow_status == WorkflowExecutionStatus::Running,
        workflow_status,
        task_status,
        started_at,
        raw,
    })
}

/// Which page of a task's history to read.
pub(crate) struct HistoryPage {
    /// The run (empty: the latest).
    pub(crate) run_id: String,
    /// Events per page at most.
    pub(crate) size: i32,
    /// Where to start (empty: the first event).
    pub(crate) token: Vec<u8>,
    /// Wait for new events (a long poll) rather than answer at once.
    pub(crate) wait_new_event: bool,
    /// Only the close event (with `wait_new_event`: wait until the run closes).
    pub(crate) close_only: bool,
    /// The RPC gives up after this long.
    pub(crate) timeout: Duration,
}

/// One `GetWorkflowExecutionHistory` call.
pub(crate) async fn history_page(
    client: &Client,
    task: TaskId,
    page: HistoryPage,
) -> Result<GetWorkflowExecutionHistoryResponse, Status> {
    let mut rpc = client.clone();
    let namespace = temporalio_client::NamespacedClient::namespace(&rpc);
    let mut request = GetWorkflowExecutionHistoryRequest {
        namespace,
        execution: Some(WorkflowExecution {
            workflow_id: task.workflow_id(),
            run_id: page.run_id,
        }),
        maximum_page_size: page.size,
        next_page_token: page.token,
        wait_new_event: page.wait_new_event,
        history_event_filter_type: if page.close_only {
            HistoryEventFilterType::CloseEvent as i32
        } else {
            HistoryEventFilterType::AllEvent as i32
        },
        skip_archival: true,
    }
    .into_request();
    request.set_timeout(page.timeout);
    Ok(
        WorkflowService::get_workflow_execution_history(&mut rpc, request)
            .await?
            .into_inner(),
    )
}

/// What one long poll of a task's history brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryPoll {
    /// New events; `progressed` when a workflow task completed among them (only then can the
    /// workflow's log have grown: the rest — activity and workflow task starts and ends,
    /// admitted updates — changes nothing a query would show). Poll on from `token`.
    More {
        /// Where the next poll starts.
        token: Vec<u8>,
        /// A workflow task completed.
        progressed: bool,
    },
    /// The history is complete: the workflow closed.
    Closed,
}

/// One long poll of the task's history from `token` (empty: from the start). Returns early with
/// nothing new when the server's long poll times out.
pub async fn poll_history(
    client: &Client,
    counters: &RpcCounters,
    task: TaskId,
    token: Vec<u8>,
) -> Result<HistoryPoll, Status> {
    RpcCounters::count(&counters.history_poll);
    let page = HistoryPage {
        run_id: String::new(),
        size: 1000,
        token,
        wait_new_event: true,
        close_only: false,
        timeout: Duration::from_secs(70),
    };
    let response = history_page(client, task, page).await?;
    if response.next_page_token.is_empty() {
        return Ok(HistoryPoll::Closed);
    }
    let progressed = response.history.is_some_and(|history| {
        history
            .events
            .iter()
            .any(|event| event.event_type == EventType::WorkflowTaskCompleted as i32)
    });
    Ok(HistoryPoll::More {
        token: response.next_page_token,
        progressed,
    })
}

/// Waits (at most `timeout`) until the task's latest run closes; `true` once it has.
pub async fn wait_closed(
    client: &Client,
    counters: &RpcCounters,
    task: TaskId,
    timeout: Duration,
) -> Result<bool, Status> {
    RpcCounters::count(&counters.history_poll);
    let page = HistoryPage {
        run_id: String::new(),
        size: 1,
        token: Vec::new(),
        wait_new_event: true,
        close_only: true,
        timeout,
    };
    match history_page(client, task, page).await {
        Ok(response) => Ok(response.history.is_some_and(|h| !h.events.is_empty())),
        Err(status) if status.code() == Code::DeadlineExceeded => Ok(false),
        Err(status) => Err(status),
    }
}

/// A page of tasks from visibility, giving up after `timeout`.
pub async fn list(
    client: &Client,
    query: String,
    page_size: i32,
    token: Vec<u8>,
    timeout: Duration,
) -> Result<(Vec<WorkflowExecutionInfo>, Vec<u8>), Status> {
    let mut client = client.clone();
    let namespace = temporalio_client::NamespacedClient::namespace(&client);
    let mut request = ListWorkflowExecutionsRequest {
        namespace,
        page_size,
        next_page_token: token,
        query,
    }
    .into_request();
    request.set_timeout(timeout);
    let response = WorkflowService::list_workflow_executions(&mut client, request)
        .await?
        .into_inner();
    Ok((response.executions, response.next_page_token))
}

/// Whether Temporal answers.
pub async fn reachable(client: &Client) -> bool {
    let mut client = client.clone();
    let mut request = GetSystemInfoRequest::default().into_request();
    request.set_timeout(Duration::from_secs(2));
    WorkflowService::get_system_info(&mut client, request)
        .await
        .is_ok()
}
