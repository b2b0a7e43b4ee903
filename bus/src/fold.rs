//! The fold: how every reader (a relay, a new attempt, the recovery after the last one) turns
//! a call's stored messages, in stream order, into the call's events. One rule for all of them
//! is what makes a client's view and the recovered log agree:
//!
//! - a fence of a later attempt starts it: every message of an earlier attempt stored after it
//!   is void (a zombie worker cut off from Temporal but not from NATS cannot win a seq);
//! - an event counts only if it is of the current attempt and continues the call's log at its
//!   next seq; a repeat of an event the log holds is ignored; anything else is dropped.

use crate::message::{Body, BusMessage};
use agentflow_shared::event::Event;
use agentflow_shared::ids::Seq;
use agentflow_shared::log::{Appended, EventLog, LogError};

/// The events of one call so far, as its stored messages make them.
#[derive(Debug, Clone)]
pub struct CallFold {
    log: EventLog,
    attempt: u32,
}

/// What one message did to the fold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Folded {
    /// A fence started this attempt.
    Fenced(u32),
    /// The event continued the call's log.
    Accepted,
    /// The event repeats one the log holds, unchanged.
    Repeated,
    /// A message of an attempt older than the current one: void.
    Stale,
    /// An event that does not continue the log (a gap, or no fence of its attempt yet).
    OutOfOrder,
    /// An event that differs from the one the log holds at its seq, or follows its end.
    Conflict(LogError),
}

impl CallFold {
    /// An empty fold of the call whose first event is `seq_base`.
    pub fn new(seq_base: Seq) -> Self {
        Self {
            log: EventLog::starting_at(seq_base),
            attempt: 0,
        }
    }

    /// Applies the next stored message.
    pub fn apply(&mut self, message: &BusMessage) -> Folded {
        match &message.body {
            Body::Fence if message.attempt > self.attempt => {
                self.attempt = message.attempt;
                Folded::Fenced(message.attempt)
            }
            Body::Fence => Folded::Stale,
            Body::Event(_) if message.attempt < self.attempt => Folded::Stale,
            Body::Event(_) if message.attempt > self.attempt => Folded::OutOfOrder,
            Body::Event(event) => match self.log.append((**event).clone()) {
                Ok(Appended::New) => Folded::Accepted,
                Ok(Appended::Known) => Folded::Repeated,
                Err(LogError::Gap { .. } | LogError::BeforeStart { .. }) => Folded::OutOfOrder,
                Err(error) => Folded::Conflict(error),
            },
        }
    }

    /// The call's events so far, dense from its first seq.
    pub fn events(&self) -> &[Event] {
        self.log.events()
    }

    /// The call's log.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// The current attempt (0 before any fence).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentflow_shared::event::{EventKind, LlmCallDelta};
    use agentflow_shared::ids::{AgentId, TaskId};

    fn delta(seq: u64, text: &str) -> Event {
        Event {
            seq: Seq(seq),
            kind: EventKind::LlmCallDelta(LlmCallDelta {
                step: 1,
                text: text.into(),
                chunk_index: 0,
                kind: Default::default(),
            }),
            task_id: TaskId(Default::default()),
            agent_id: AgentId::from("a"),
            timestamp: chrono::DateTime::UNIX_EPOCH,
            step: 1,
            speaker: None,
        }
    }

    fn fold(messages: &[BusMessage]) -> (CallFold, Vec<Folded>) {
        let mut fold = CallFold::new(Seq(5));
        let outcomes = messages.iter().map(|m| fold.apply(m)).collect();
        (fold, outcomes)
    }

    fn texts(fold: &CallFold) -> Vec<String> {
        fold.events()
            .iter()
            .map(|e| match &e.kind {
                EventKind::LlmCallDelta(d) => d.text.clone(),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn events_count_only_after_their_attempt_is_fenced_and_in_seq_order() {
        let b = delta(6, "b");
        let (fold, outcomes) = fold(&[
            BusMessage::event(1, delta(5, "early")),
            BusMessage::fence(1),
            BusMessage::event(1, delta(5, "a")),
            BusMessage::event(1, delta(7, "gap")),
            BusMessage::event(1, b.clone()),
            BusMessage::event(1, b),
        ]);
        assert_eq!(
            outcomes,
            [
                Folded::OutOfOrder,
                Folded::Fenced(1),
                Folded::Accepted,
                Folded::OutOfOrder,
                Folded::Accepted,
                Folded::Repeated,
            ]
        );
        assert_eq!(texts(&fold), ["a", "b"]);
    }

    #[test]
    fn a_zombie_attempt_loses_every_seq_after_the_new_attempts_fence() {
        let (fold, outcomes) = fold(&[
            BusMessage::fence(1),
            BusMessage::event(1, delta(5, "a")),
            BusMessage::event(1, delta(6, "b")),
            BusMessage::fence(2),
            // The zombie (attempt 1) goes on publishing after attempt 2 fenced the call.
            BusMessage::event(1, delta(7, "zombie")),
            BusMessage::event(2, delta(7, "retry")),
            BusMessage::event(1, delta(8, "zombie")),
            BusMessage::fence(1),
            BusMessage::event(2, delta(8, "c")),
        ]);
        assert_eq!(outcomes[4], Folded::Stale);
        assert_eq!(outcomes[6], Folded::Stale);
        assert_eq!(outcomes[7], Folded::Stale);
        assert_eq!(texts(&fold), ["a", "b", "retry", "c"]);
        assert_eq!(fold.attempt(), 2);
    }

    #[test]
    fn a_changed_event_at_a_known_seq_is_a_conflict() {
        let (fold, outcomes) = fold(&[
            BusMessage::fence(1),
            BusMessage::event(1, delta(5, "a")),
            BusMessage::fence(2),
            BusMessage::event(2, delta(5, "different")),
        ]);
        assert!(matches!(outcomes[3], Folded::Conflict(_)), "{outcomes:?}");
        assert_eq!(texts(&fold), ["a"]);
    }
}
