//! Server-Sent Events framing of events (docs/CONTRACT.md, "Server-Sent Events").

use crate::event::Event;
use std::fmt::Write;
use std::time::Duration;

/// Encodes one event as an SSE frame: `id`, `event`, one `data` line, blank line; with a
/// `retry` line first when `retry` is given (the first frame of a stream).
pub fn frame(event: &Event, retry: Option<Duration>) -> String {
    let json = serde_json::to_string(event).expect("an event always serializes");
    let mut out = String::with_capacity(json.len() + 64);
    if let Some(retry) = retry {
        let _ = writeln!(out, "retry: {}", retry.as_millis());
    }
    let _ = write!(
        out,
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.seq,
        event.type_name(),
        json
    );
    out
}

/// A keep-alive comment frame.
pub const KEEP_ALIVE: &str = ": keep-alive\n\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, StepStarted};
    use crate::ids::{AgentId, Seq, TaskId};

    #[test]
    fn frames_an_event_with_and_without_retry() {
        let event = Event {
            seq: Seq(3),
            kind: EventKind::StepStarted(StepStarted { step: 1 }),
            task_id: TaskId::new(),
            agent_id: AgentId::from("assistant"),
            timestamp: chrono::Utc::now(),
            step: 1,
            speaker: None,
        };
        let plain = frame(&event, None);
        let lines: Vec<&str> = plain.split('\n').collect();
        assert_eq!(lines[0], "id: 3");
        assert_eq!(lines[1], "event: WorkflowStepStarted");
        assert!(lines[2].starts_with("data: {"));
        assert_eq!(&lines[3..], &["", ""]);
        let first = frame(&event, Some(Duration::from_millis(1500)));
        assert!(first.starts_with("retry: 1500\nid: 3\n"));
    }
}
