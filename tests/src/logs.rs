//! Checks of a task's event log: dense from seq 1, its types, the final log of a task.

use crate::harness::TestApp;
use agentflow_shared::EventLog;
use agentflow_shared::event::Event;
use agentflow_shared::ids::{Seq, TaskId};
use std::fmt::Display;

/// The task's whole log as the shared dense log type; panics (naming the gap, duplicate or
/// change) unless `events` are dense from seq 1.
pub fn dense_log(events: &[Event]) -> EventLog {
    EventLog::from_events(Seq::first(), events.to_vec())
        .unwrap_or_else(|error| panic!("not a dense log: {error}"))
}

/// Panics unless `events` are dense from seq 1 ([`dense_log`]).
pub fn assert_dense(events: &[Event]) {
    dense_log(events);
}

/// The events' type names, in order.
pub fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::type_name).collect()
}

/// The final log of `task` (its id as the api shows it): its workflow result's events, once it
/// has ended.
pub async fn final_log(app: &TestApp, task: impl Display) -> Vec<Event> {
    app.result(task.to_string().parse::<TaskId>().unwrap())
        .await
        .events
}
