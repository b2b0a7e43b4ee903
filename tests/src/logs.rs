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

/// The text of a workflow history as `temporal workflow show --output json` (or the SDK)
/// prints it, with every payload's base64 `data` decoded: what a secret must never be found
/// in.
pub fn decoded_history(json: &str) -> String {
    use base64::Engine;
    fn walk(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    if let (true, Some(data)) = (key == "data", value.as_str())
                        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data)
                    {
                        out.push_str(&String::from_utf8_lossy(&bytes));
                        out.push('\n');
                    }
                    walk(value, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            serde_json::Value::String(text) => {
                out.push_str(text);
                out.push('\n');
            }
            _ => {}
        }
    }
    let value: serde_json::Value = serde_json::from_str(json).expect("a history as JSON");
    let mut out = String::new();
    walk(&value, &mut out);
    out
}
