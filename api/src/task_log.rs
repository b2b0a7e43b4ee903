//! A task's whole log across its runs. A conversation that continued as new has its earlier
//! runs' events in each run's start event (the input a run hands on), or — when they did not
//! fit there — in that run's archive (the inputs of its `archive_log` activities) or, last, in
//! the run itself (`get_events`, which needs a worker). The page handler and the relay both
//! join a run's events to the runs before it here. The RPCs themselves are in `temporal`.

use crate::temporal::{HistoryPage, RpcCounters, history_page, query_options};
use agentflow_client::EventsQuery;
use agentflow_client::workflow::{self as contract, AgentTask};
use agentflow_shared::event::Event;
use agentflow_shared::ids::{Seq, TaskId};
use agentflow_shared::task::{EventsRange, TaskInput};
use std::time::Duration;
use temporalio_client::tonic::Status;
use temporalio_client::{Client, WorkflowHandle};

/// Where a task's runs are read from.
#[derive(Clone, Copy)]
pub struct Runs<'a> {
    /// The Temporal client.
    pub client: &'a Client,
    /// Where the reads are counted.
    pub counters: &'a RpcCounters,
    /// The task.
    pub task: TaskId,
    /// Each read gives up after this long.
    pub timeout: Duration,
}

/// Why the runs before a page could not be joined to it.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Temporal did not answer.
    #[error("Temporal did not answer: {}", .0.message())]
    Rpc(#[from] Status),
    /// The earlier runs end before the page starts: the task moved to a new run meanwhile.
    #[error("the task moved to a new run while it was read; retry")]
    Moved,
}

impl<'a> Runs<'a> {
    fn parts(&self) -> (&'a Client, &'a RpcCounters, TaskId, Duration) {
        (self.client, self.counters, self.task, self.timeout)
    }

    /// The events with `seq > after` that come before `first_seq`, the first seq of run
    /// `run_id`: none when the run starts right after `after`; else the earlier runs' events,
    /// which must reach up to `first_seq`.
    pub async fn before(
        &self,
        run_id: String,
        after: Seq,
        first_seq: Seq,
    ) -> Result<Vec<Event>, JoinError> {
        if after.next() >= first_seq {
            return Ok(Vec::new());
        }
        let mut events = self.earlier_events(run_id, after).await?;
        events.retain(|e| e.seq < first_seq);
        if events.last().map_or(after, |e| e.seq).next() != first_seq {
            return Err(JoinError::Moved);
        }
        Ok(events)
    }

    /// The events of the task's earlier runs with `seq > after`, walking back from run `run_id`:
    /// each run's start event carries the previous run's events (the input a run hands on when it
    /// continues as new), and names that run. Each read gives up after `timeout`.
    async fn earlier_events(&self, run_id: String, after: Seq) -> Result<Vec<Event>, Status> {
        let (client, counters, task, timeout) = self.parts();
        use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
        let mut collected: Vec<Event> = Vec::new();
        let mut run = run_id;
        loop {
            RpcCounters::count(&counters.result);
            let page = HistoryPage {
                run_id: run.clone(),
                size: 1,
                token: Vec::new(),
                wait_new_event: false,
                close_only: false,
                timeout,
            };
            let history = history_page(client, task, page).await?;
            let started = history
                .history
                .and_then(|h| h.events.into_iter().next())
                .and_then(|e| e.attributes);
            let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) = started else {
                break;
            };
            let carried = started
                .input
                .as_ref()
                .and_then(|p| p.payloads.first())
                .and_then(|p| serde_json::from_slice::<TaskInput>(&p.data).ok())
                .and_then(|input| input.carried);
            let Some(carried) = carried else { break };
            let previous_run = started.continued_execution_run_id;
            let events = if carried.previous_events_included {
                carried.previous_events
            } else if previous_run.is_empty() {
                break;
            } else {
                let mut archived = self.archived_log(&previous_run).await?;
                if archived.is_empty() {
                    archived = self.run_log(&previous_run, after).await?;
                }
                archived.retain(|e| e.seq > after);
                archived
            };
            let reached = events
                .first()
                .is_none_or(|e| e.seq.0 <= after.0.saturating_add(1));
            collected.splice(0..0, events);
            if reached || previous_run.is_empty() {
                break;
            }
            run = previous_run;
        }
        collected.retain(|e| e.seq > after);
        Ok(collected)
    }

    /// The log a closed run of `task` recorded in its history — the inputs of its `archive_log`
    /// activities, in order — when it rode in neither its result nor the next run's input. Empty
    /// when it recorded none. Needs no worker.
    pub async fn archived_log(&self, run_id: &str) -> Result<Vec<Event>, Status> {
        let (client, counters, task, timeout) = self.parts();
        use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
        let archive = contract::activity::ARCHIVE_LOG;
        let mut events: Vec<Event> = Vec::new();
        let mut token = Vec::new();
        loop {
            RpcCounters::count(&counters.result);
            let page = HistoryPage {
                run_id: run_id.to_owned(),
                size: 100,
                token,
                wait_new_event: false,
                close_only: false,
                timeout,
            };
            let response = history_page(client, task, page).await?;
            for event in response.history.map(|h| h.events).unwrap_or_default() {
                let Some(Attributes::ActivityTaskScheduledEventAttributes(scheduled)) =
                    event.attributes
                else {
                    continue;
                };
                if scheduled.activity_type.is_none_or(|t| t.name != archive) {
                    continue;
                }
                let chunk = scheduled
                    .input
                    .and_then(|input| input.payloads.into_iter().next())
                    .map(|payload| serde_json::from_slice::<Vec<Event>>(&payload.data))
                    .transpose()
                    .map_err(|error| Status::internal(format!("an archived chunk: {error}")))?;
                // A run archives again when it went on after archiving: keep what continues.
                let last = events.last().map_or(Seq(0), |e| e.seq);
                events.extend(
                    chunk
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|e| e.seq > last),
                );
            }
            if response.next_page_token.is_empty() {
                return Ok(events);
            }
            token = response.next_page_token;
        }
    }

    /// The events with `seq > after` of one (closed) run of `task`, page by page from the run
    /// itself (`get_events`; a worker replays the run to answer): for a run whose log was too
    /// large to be carried into the next.
    async fn run_log(&self, run_id: &str, after: Seq) -> Result<Vec<Event>, Status> {
        let (client, counters, task, timeout) = self.parts();
        let info = temporalio_client::WorkflowExecutionInfo::builder()
            .namespace(temporalio_client::NamespacedClient::namespace(client))
            .workflow_id(task.workflow_id())
            .run_id(run_id.to_owned())
            .build();
        let handle = WorkflowHandle::<Client, AgentTask>::new(client.clone(), info);
        let mut events: Vec<Event> = Vec::new();
        loop {
            RpcCounters::count(&counters.query);
            let range = EventsRange {
                after: events.last().map_or(after, |e| e.seq),
                limit: EventsRange::DEFAULT_LIMIT,
            };
            let page = handle
                .query(
                    contract::GetEvents,
                    EventsQuery(range),
                    query_options(timeout),
                )
                .await
                .map_err(|error| Status::unavailable(format!("reading run {run_id}: {error}")))?;
            let more = page.has_more && !page.events.is_empty();
            events.extend(page.events);
            if !more {
                return Ok(events);
            }
        }
    }
}
