//! This run's part of the task's dense log, which of its events went live with an LLM call,
//! and which call attempt may add checkpoints to it.

use crate::checkpoint::CallCheckpoint;
use agentflow_shared::event::{Event, EventKind};
use agentflow_shared::ids::Seq;
use agentflow_shared::log::{EventLog, encoded_len};
use agentflow_shared::task::{EventsPage, EventsRange, Rejection};

/// The LLM call attempt the workflow waits for: only its checkpoints are taken (an attempt
/// the workflow gave up on — timed out, failed, cancelled — may still run somewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RunningCall {
    /// The call's first seq.
    pub(super) seq_base: Seq,
    /// Its attempt, from 1.
    pub(super) attempt: u32,
}

/// This run's events (from the seq the previous run ended at).
#[derive(Debug)]
pub(super) struct RunLog {
    events: EventLog,
    /// The last seq handed to an LLM call to publish on the bus (or published by one).
    handed: Seq,
    /// The LLM call attempt running now, whose checkpoints are accepted.
    running_call: Option<RunningCall>,
}

impl RunLog {
    /// An empty run log whose first event will have `first_seq`.
    pub(super) fn starting_at(first_seq: Seq) -> Self {
        Self {
            events: EventLog::starting_at(first_seq),
            handed: first_seq.prev(),
            running_call: None,
        }
    }

    /// The log itself.
    pub(super) fn events(&self) -> &EventLog {
        &self.events
    }

    /// The seq of this run's first event.
    pub(super) fn first_seq(&self) -> Seq {
        self.events.first_seq()
    }

    /// The seq the next event gets.
    pub(super) fn next_seq(&self) -> Seq {
        self.events.next_seq()
    }

    /// The last seq the log holds (the one before `first_seq` when empty).
    pub(super) fn last_seq(&self) -> Seq {
        self.events.last_seq()
    }

    /// JSON bytes of the whole run log.
    pub(super) fn encoded_bytes(&self) -> usize {
        self.events.encoded_bytes()
    }

    /// Appends an event the workflow numbered itself.
    pub(super) fn append(&mut self, event: Event) {
        if let Err(error) = self.events.append(event) {
            tracing::error!(%error, "an event was not appended");
        }
    }

    /// Appends events an activity numbered; they must continue the log densely.
    pub(super) fn extend(&mut self, events: Vec<Event>) -> Result<(), String> {
        self.events
            .extend(events)
            .map(|_| ())
            .map_err(|error| format!("an activity's events do not continue the log: {error}"))
    }

    /// Whether the log has room for `bytes` more and, after them, a terminal event that
    /// repeats half as much again (a final answer is in its LLM call's events and in
    /// `WorkflowCompleted`), within `max_run_log_bytes`.
    pub(super) fn has_room_for(&self, bytes: usize, max_run_log_bytes: usize) -> bool {
        self.events.encoded_bytes() + bytes + bytes / 2 <= max_run_log_bytes
    }

    /// The text of the last `WorkflowLLMCallCompleted` in the log.
    pub(super) fn last_answer(&self) -> Option<String> {
        self.events
            .events()
            .iter()
            .rev()
            .find_map(|e| match &e.kind {
                EventKind::LlmCallCompleted(done) => Some(done.content.clone()),
                _ => None,
            })
    }

    /// The events appended since the last LLM call, for the next one to publish on the bus
    /// first (at most `max_bytes` of them, oldest first; the rest reach clients from Temporal).
    /// They are durable: the workflow task that schedules the call is the one that made them.
    pub(super) fn hand_over(&mut self, max_bytes: usize) -> Vec<Event> {
        let mut bytes = 0;
        let events = self
            .events
            .after(self.handed)
            .iter()
            .take_while(|event| {
                bytes += serde_json::to_vec(event).map_or(usize::MAX / 2, |b| b.len());
                bytes <= max_bytes
            })
            .cloned()
            .collect();
        self.handed = self.last_seq();
        events
    }

    /// Everything in the log went live (a call's own events go live with it).
    pub(super) fn all_handed(&mut self) {
        self.handed = self.last_seq();
    }

    /// How much of the call starting at `seq_base` is in the log already: through which seq,
    /// and how many JSON bytes.
    pub(super) fn durable_part(&self, seq_base: Seq) -> (Option<Seq>, usize) {
        let held = self.events.after(seq_base.prev());
        let bytes = held.iter().map(encoded_len).sum();
        (held.last().map(|e| e.seq), bytes)
    }

    /// Attempt `attempt` of the call at `seq_base` starts: its checkpoints are taken from now
    /// on. Returns how much of the call is durable already.
    pub(super) fn start_call(&mut self, seq_base: Seq, attempt: u32) -> (Option<Seq>, usize) {
        self.running_call = Some(RunningCall { seq_base, attempt });
        self.durable_part(seq_base)
    }

    /// The running attempt ended (or was given up on): its checkpoints are refused from now on.
    pub(super) fn end_call(&mut self) {
        self.running_call = None;
    }

    /// Checks a checkpoint: it comes from the running attempt and continues the log.
    pub(super) fn check_checkpoint(&self, checkpoint: &CallCheckpoint) -> Result<(), Rejection> {
        let running = RunningCall {
            seq_base: checkpoint.seq_base,
            attempt: checkpoint.attempt,
        };
        if self.running_call != Some(running) {
            return Err(Rejection::Conflict(format!(
                "attempt {} of the call at seq {} is not the one running",
                checkpoint.attempt, checkpoint.seq_base.0
            )));
        }
        self.events.accepts(&checkpoint.events).map_err(|error| {
            Rejection::Invalid(format!("the checkpoint does not continue the log: {error}"))
        })
    }

    /// Appends a validated checkpoint; returns the last seq the log holds.
    pub(super) fn take_checkpoint(&mut self, checkpoint: CallCheckpoint) -> Seq {
        if let Err(error) = self.events.extend(checkpoint.events) {
            tracing::error!(%error, "a validated checkpoint did not continue the log");
        }
        self.last_seq()
    }

    /// A page of this run's events.
    pub(super) fn page(&self, range: EventsRange, max_bytes: usize) -> EventsPage {
        self.events.page(range, max_bytes)
    }

    /// The log in chunks of at most `max_bytes` (one larger event alone).
    pub(super) fn chunks(&self, max_bytes: usize) -> Vec<Vec<Event>> {
        let mut chunks: Vec<Vec<Event>> = Vec::new();
        let mut bytes = 0;
        for event in self.events.events() {
            let size = encoded_len(event);
            match chunks.last_mut() {
                Some(chunk) if bytes + size <= max_bytes => chunk.push(event.clone()),
                _ => {
                    chunks.push(vec![event.clone()]);
                    bytes = 0;
                }
            }
            bytes += size;
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentflow_shared::event::Reason;
    use agentflow_shared::ids::TaskId;

    fn event(seq: u64, text: &str) -> Event {
        Event {
            seq: Seq(seq),
            kind: EventKind::Paused(Reason::new(text)),
            task_id: TaskId::new(),
            agent_id: "a".into(),
            timestamp: std::time::UNIX_EPOCH.into(),
            step: 0,
            speaker: None,
        }
    }

    fn log_of(texts: &[&str]) -> RunLog {
        let mut log = RunLog::starting_at(Seq(1));
        for (i, text) in texts.iter().enumerate() {
            log.append(event(i as u64 + 1, text));
        }
        log
    }

    #[test]
    fn chunks_keep_order_and_bound_all_but_oversized_events() {
        let log = log_of(&["a", "b", "c", &"x".repeat(500), "d"]);
        let one = encoded_len(&log.events().events()[0]);
        let chunks = log.chunks(2 * one + 1);
        let flat: Vec<Event> = chunks.iter().flatten().cloned().collect();
        assert_eq!(flat, log.events().events());
        assert!(chunks.iter().all(|c| !c.is_empty()));
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(encoded_len).sum();
            assert!(chunk.len() == 1 || bytes <= 2 * one + 1, "{bytes}");
        }
        assert!(RunLog::starting_at(Seq(7)).chunks(10).is_empty());
    }

    #[test]
    fn hand_over_gives_each_event_once_and_within_the_bound() {
        let mut log = log_of(&["a", "b", "c"]);
        let one = serde_json::to_vec(&log.events().events()[0]).unwrap().len();
        let first = log.hand_over(2 * one);
        assert_eq!(first.len(), 2, "the bound cuts the rest");
        assert!(
            log.hand_over(usize::MAX).is_empty(),
            "the rest is left to Temporal"
        );
        log.append(event(4, "d"));
        assert_eq!(log.hand_over(usize::MAX).len(), 1);
    }

    #[test]
    fn only_the_running_attempt_may_checkpoint_and_only_what_continues_the_log() {
        let mut log = log_of(&["a"]);
        let checkpoint = |attempt, seq| CallCheckpoint {
            seq_base: Seq(2),
            attempt,
            events: vec![event(seq, "b")],
        };
        assert!(matches!(
            log.check_checkpoint(&checkpoint(1, 2)),
            Err(Rejection::Conflict(_))
        ));
        assert_eq!(log.start_call(Seq(2), 1), (None, 0));
        assert!(matches!(
            log.check_checkpoint(&checkpoint(2, 2)),
            Err(Rejection::Conflict(_))
        ));
        assert!(matches!(
            log.check_checkpoint(&checkpoint(1, 3)),
            Err(Rejection::Invalid(_))
        ));
        log.check_checkpoint(&checkpoint(1, 2)).unwrap();
        assert_eq!(log.take_checkpoint(checkpoint(1, 2)), Seq(2));
        assert_eq!(log.durable_part(Seq(2)).0, Some(Seq(2)));
        log.end_call();
        assert!(log.check_checkpoint(&checkpoint(1, 3)).is_err());
    }
}
