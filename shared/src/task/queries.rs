//! The workflow's queries and result: a page of the log, the task's state, the final result.

use super::PendingApproval;
use super::{TaskStatus, TeamMessage};
use crate::event::Event;
use crate::ids::{AgentId, Seq, TaskId};
use crate::llm::Usage;
use serde::{Deserialize, Serialize};

/// The range argument of the `get_events` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EventsRange {
    /// Return events with `seq > after`.
    pub after: Seq,
    /// At most this many events.
    pub limit: usize,
}

impl EventsRange {
    /// The default page size.
    pub const DEFAULT_LIMIT: usize = 500;
    /// The largest page size a request may ask for.
    pub const MAX_LIMIT: usize = 10_000;
    /// The most encoded bytes of events in one page (at least one event is always served), so a
    /// query result stays far below Temporal's 2 MiB payload limit.
    pub const MAX_PAGE_BYTES: usize = 512 * 1024;
}

impl Default for EventsRange {
    fn default() -> Self {
        Self {
            after: Seq(0),
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// A page of a task's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventsPage {
    /// The events, in seq order.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub events: Vec<Event>,
    /// The seq of the last event in the whole log so far.
    pub last_seq: Seq,
    /// Whether more events follow this page.
    pub has_more: bool,
    /// Whether the log has ended (its terminal event exists).
    pub finished: bool,
    /// Seq of the first event this run holds; earlier ones belong to earlier runs (read them
    /// from those runs' close events).
    #[serde(default = "Seq::first")]
    pub first_seq: Seq,
}

/// Answer of the `get_current_state` query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskState {
    /// The task.
    pub task_id: TaskId,
    /// Its agent.
    pub agent_id: AgentId,
    /// Lifecycle status.
    pub status: TaskStatus,
    /// Current (or last) step.
    pub step: u32,
    /// Cost so far.
    pub cost_usd: f64,
    /// The budget limit.
    pub budget_limit_usd: f64,
    /// What is left of the budget.
    pub budget_remaining_usd: f64,
    /// Token usage so far.
    pub usage: Usage,
    /// Whether the run is paused.
    pub paused: bool,
    /// Seq of the last event.
    pub last_seq: Seq,
    /// The final answer, once there is one.
    pub final_response: Option<String>,
    /// Turns completed (conversations).
    #[serde(default)]
    pub turn: u32,
    /// Tool calls waiting for a decision.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub pending_approvals: Vec<PendingApproval>,
    /// Seq of the first event of the current run (1 unless the task continued as new).
    #[serde(default = "Seq::first")]
    pub first_seq: Seq,
    /// A team's discussion so far: the user's queries and every member's message (within
    /// `worker.limits.max_conversation_bytes`, oldest dropped first); absent for an agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub team_messages: Vec<TeamMessage>,
}

/// Result of `AgentTaskWorkflow`: the final state and, when it fits in the payload, the event
/// log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskResult {
    /// Final state.
    pub state: TaskState,
    /// The event log of this run (the whole log unless the task continued as new; then the
    /// events from `state.first_seq` on), when `events_included`.
    #[serde(default, deserialize_with = "crate::nullable::or_default")]
    pub events: Vec<Event>,
    /// Whether `events` holds this run's whole log. A log too large for one payload is not
    /// in the result: read it with `get_events` (a worker replays the closed run to answer).
    #[serde(default = "included")]
    pub events_included: bool,
}

/// Logs written before the flag existed were always included.
pub(super) fn included() -> bool {
    true
}
