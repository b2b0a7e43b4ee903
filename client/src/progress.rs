//! What an LLM call's heartbeats carry, and how a retry merges what earlier attempts left.
//!
//! On the heartbeat path (no bus, or a call that left it) the details are every event of the
//! call so far; on the bus they are a small marker, the events being on the call's subject.

use agentflow_shared::event::Event;
use agentflow_shared::ids::Seq;
use serde::{Deserialize, Serialize};

/// The heartbeat details of an LLM call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CallProgress {
    /// Every event of the call so far (the heartbeat path).
    Events(Vec<Event>),
    /// The call publishes on the bus.
    OnBus {
        /// Where it stands there.
        bus: BusPosition,
    },
}

/// Where a call on the bus stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusPosition {
    /// The attempt publishing.
    pub attempt: u32,
    /// The last seq stored on the bus, if any yet.
    pub acked: Option<Seq>,
    /// The attempt waits for the bus to come back before it can read what earlier ones stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting: bool,
}

impl CallProgress {
    /// The events the details carry (none on the bus).
    pub fn events(&self) -> &[Event] {
        match self {
            CallProgress::Events(events) => events,
            CallProgress::OnBus { .. } => &[],
        }
    }

    /// Whether the call was on the bus (its events are there, not here).
    pub fn on_bus(&self) -> bool {
        matches!(self, CallProgress::OnBus { .. })
    }
}

/// `a` and `b` must agree where both have an event (they are prefixes of one log); the longer.
/// On disagreement, the first seq where they differ.
pub fn merge_prefixes(a: Vec<Event>, b: &[Event]) -> Result<Vec<Event>, Seq> {
    if let Some((x, _)) = a.iter().zip(b).find(|(x, y)| x != y) {
        return Err(x.seq);
    }
    Ok(if b.len() > a.len() { b.to_vec() } else { a })
}

/// What the heartbeat details of a task's pending LLM activity carry (its events on the
/// heartbeat path, a marker on the bus), from a `DescribeWorkflowExecution` response.
pub fn heartbeat_progress(
    description: &temporalio_common::protos::temporal::api::workflowservice::v1::DescribeWorkflowExecutionResponse,
) -> Option<CallProgress> {
    description
        .pending_activities
        .iter()
        .filter_map(|activity| activity.heartbeat_details.as_ref())
        .filter_map(|details| details.payloads.first())
        .filter_map(|payload| serde_json::from_slice(&payload.data).ok())
        .max_by_key(|progress: &CallProgress| progress.events().len())
}

/// The events carried by the heartbeat details of a task's pending LLM activity (what a client
/// may see before the activity returns on the heartbeat path; none while it is on the bus).
pub fn heartbeat_events(
    description: &temporalio_common::protos::temporal::api::workflowservice::v1::DescribeWorkflowExecutionResponse,
) -> Vec<agentflow_shared::Event> {
    heartbeat_progress(description)
        .map(|progress| progress.events().to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentflow_shared::event::{EventKind, Reason};
    use agentflow_shared::ids::{AgentId, TaskId};

    fn event(seq: u64, reason: &str) -> Event {
        Event {
            seq: Seq(seq),
            kind: EventKind::Paused(Reason::new(reason)),
            task_id: TaskId(Default::default()),
            agent_id: AgentId::from("a"),
            timestamp: chrono::DateTime::UNIX_EPOCH,
            step: 0,
            speaker: None,
        }
    }

    #[test]
    fn details_decode_as_events_or_as_a_marker() {
        let events = CallProgress::Events(vec![event(1, "x")]);
        let json = serde_json::to_string(&events).unwrap();
        assert!(json.starts_with('['), "{json}");
        assert_eq!(serde_json::from_str::<CallProgress>(&json).unwrap(), events);
        let marker = CallProgress::OnBus {
            bus: BusPosition {
                attempt: 2,
                acked: Some(Seq(7)),
                waiting: false,
            },
        };
        let json = serde_json::to_string(&marker).unwrap();
        assert_eq!(json, r#"{"bus":{"attempt":2,"acked":7}}"#);
        assert_eq!(serde_json::from_str::<CallProgress>(&json).unwrap(), marker);
        assert!(marker.on_bus() && marker.events().is_empty());
    }

    #[test]
    fn merging_keeps_the_longer_prefix_and_refuses_a_disagreement() {
        let long = vec![event(1, "a"), event(2, "b"), event(3, "c")];
        assert_eq!(merge_prefixes(long[..1].to_vec(), &long).unwrap(), long);
        assert_eq!(merge_prefixes(long.clone(), &long[..2]).unwrap(), long);
        assert_eq!(
            merge_prefixes(long.clone(), &[event(1, "a"), event(2, "other")]),
            Err(Seq(2))
        );
    }
}
