//! The dense event log: one type for the workflow's log, the LLM activity's call log, the
//! relay's copy and every check in tests and benchmarks.
//!
//! A log holds the events `first_seq, first_seq + 1, …` with no gap. [`EventLog::append`] is
//! checked: it takes the next seq, accepts an event it already holds unchanged (idempotent),
//! and refuses a gap, a changed event or anything after the terminal event. It counts the
//! encoded (JSON) size of what it holds, which is what Temporal's payload limits see, and cuts
//! pages bounded by count and by bytes. [`check_prefix`] is Invariant 1 as a function: what a
//! subscriber received is a gap-free, duplicate-free prefix of the log from its cursor on.

use crate::event::Event;
use crate::ids::Seq;
use crate::task::{EventsPage, EventsRange};

/// A dense, checked event log (a whole task's, one run's part, or one LLM call's part).
#[derive(Debug, Clone, PartialEq)]
pub struct EventLog {
    first_seq: Seq,
    events: Vec<Event>,
    sizes: Vec<u32>,
    encoded_bytes: usize,
}

/// Why an event cannot be appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The event's seq is beyond the log's next seq.
    #[error("event seq {got} does not continue the log at {expected}")]
    Gap {
        /// The seq the log expects next.
        expected: Seq,
        /// The seq of the event offered.
        got: Seq,
    },
    /// The log holds a different event at this seq.
    #[error("event seq {0} differs from the event the log holds at that seq")]
    Changed(Seq),
    /// The event's seq is before the log's first seq.
    #[error("event seq {got} is before the log's first seq {first}")]
    BeforeStart {
        /// The log's first seq.
        first: Seq,
        /// The seq of the event offered.
        got: Seq,
    },
    /// The log has ended; nothing follows its terminal event.
    #[error("event seq {0} follows the terminal event")]
    AfterEnd(Seq),
}

/// What [`EventLog::append`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The event was new and is now the last one.
    New,
    /// The log already held this very event.
    Known,
}

/// The size of an event encoded as JSON, as Temporal and SSE clients see it.
pub fn encoded_len(event: &Event) -> usize {
    serde_json::to_vec(event).map_or(0, |bytes| bytes.len())
}

impl Default for EventLog {
    fn default() -> Self {
        Self::starting_at(Seq::first())
    }
}

impl EventLog {
    /// An empty log whose first event will have seq 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty log whose first event will have `first_seq`.
    pub fn starting_at(first_seq: Seq) -> Self {
        Self {
            first_seq,
            events: Vec::new(),
            sizes: Vec::new(),
            encoded_bytes: 0,
        }
    }

    /// A log of `events`, which must be dense from `first_seq`.
    pub fn from_events(first_seq: Seq, events: Vec<Event>) -> Result<Self, LogError> {
        let mut log = Self::starting_at(first_seq);
        log.extend(events)?;
        Ok(log)
    }

    /// The seq of the first event (held or to come).
    pub fn first_seq(&self) -> Seq {
        self.first_seq
    }

    /// The seq the next event must have.
    pub fn next_seq(&self) -> Seq {
        Seq(self.first_seq.0 + self.events.len() as u64)
    }

    /// The seq of the last event held (`first_seq - 1` when empty).
    pub fn last_seq(&self) -> Seq {
        Seq(self.next_seq().0.saturating_sub(1))
    }

    /// How many events the log holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the log holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events, in seq order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The events, in seq order, by value.
    pub fn into_events(self) -> Vec<Event> {
        self.events
    }

    /// The sum of the events' JSON sizes.
    pub fn encoded_bytes(&self) -> usize {
        self.encoded_bytes
    }

    /// Whether the last event is terminal.
    pub fn is_finished(&self) -> bool {
        self.events.last().is_some_and(Event::is_terminal)
    }

    /// The event at `seq`, if the log holds it.
    pub fn get(&self, seq: Seq) -> Option<&Event> {
        let index = seq.0.checked_sub(self.first_seq.0)?;
        self.events.get(usize::try_from(index).ok()?)
    }

    /// The events with `seq > after` that the log holds.
    pub fn after(&self, after: Seq) -> &[Event] {
        &self.events[self.index_after(after)..]
    }

    fn index_after(&self, after: Seq) -> usize {
        let skipped = (after.0 + 1).saturating_sub(self.first_seq.0);
        usize::try_from(skipped)
            .unwrap_or(usize::MAX)
            .min(self.events.len())
    }

    /// Appends the next event, or confirms one the log holds unchanged.
    pub fn append(&mut self, event: Event) -> Result<Appended, LogError> {
        if event.seq == self.next_seq() {
            if self.is_finished() {
                return Err(LogError::AfterEnd(event.seq));
            }
            let size = encoded_len(&event);
            self.encoded_bytes += size;
            self.sizes.push(u32::try_from(size).unwrap_or(u32::MAX));
            self.events.push(event);
            return Ok(Appended::New);
        }
        if event.seq < self.first_seq {
            return Err(LogError::BeforeStart {
                first: self.first_seq,
                got: event.seq,
            });
        }
        match self.get(event.seq) {
            Some(held) if *held == event => Ok(Appended::Known),
            Some(_) => Err(LogError::Changed(event.seq)),
            None => Err(LogError::Gap {
                expected: self.next_seq(),
                got: event.seq,
            }),
        }
    }

    /// Whether [`EventLog::extend`] would take `events` whole, without changing the log: each
    /// is one the log holds unchanged, or the next.
    pub fn accepts(&self, events: &[Event]) -> Result<(), LogError> {
        let mut next = self.next_seq();
        for event in events {
            if event.seq < next {
                if event.seq < self.first_seq {
                    return Err(LogError::BeforeStart {
                        first: self.first_seq,
                        got: event.seq,
                    });
                }
                if self.get(event.seq) != Some(event) {
                    return Err(LogError::Changed(event.seq));
                }
            } else if event.seq == next {
                if self.is_finished() {
                    return Err(LogError::AfterEnd(event.seq));
                }
                next = next.next();
            } else {
                return Err(LogError::Gap {
                    expected: next,
                    got: event.seq,
                });
            }
        }
        Ok(())
    }

    /// Appends events in order (see [`EventLog::append`]); returns how many were new. Stops at
    /// the first refused event, keeping those before it.
    pub fn extend(&mut self, events: impl IntoIterator<Item = Event>) -> Result<usize, LogError> {
        let mut new = 0;
        for event in events {
            if self.append(event)? == Appended::New {
                new += 1;
            }
        }
        Ok(new)
    }

    /// A page of the events with `seq > range.after`: at most `range.limit` of them and at most
    /// `max_bytes` of encoded events, but always at least one when any follows.
    pub fn page(&self, range: EventsRange, max_bytes: usize) -> EventsPage {
        let start = self.index_after(range.after);
        let limit = range.limit.clamp(1, EventsRange::MAX_LIMIT);
        let mut end = start;
        let mut bytes = 0usize;
        while end < self.events.len() && end - start < limit {
            let size = self.sizes[end] as usize;
            if end > start && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            end += 1;
        }
        EventsPage {
            events: self.events[start..end].to_vec(),
            last_seq: self.last_seq(),
            has_more: end < self.events.len(),
            finished: self.is_finished(),
            first_seq: self.first_seq,
        }
    }
}

/// How what a subscriber received departs from the log (Invariant 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// An event was skipped: `got` arrived where `expected` was due.
    #[error("lost: expected seq {expected}, got seq {got}")]
    Lost {
        /// The seq that was due.
        expected: Seq,
        /// The seq that arrived.
        got: Seq,
    },
    /// An event arrived twice (or an earlier seq arrived again).
    #[error("duplicated: seq {got} arrived again after seq {last}")]
    Duplicated {
        /// The seq that arrived again.
        got: Seq,
        /// The last seq received before it.
        last: Seq,
    },
    /// An event differs from the log's event at its seq.
    #[error("diverged: seq {0} differs from the log")]
    Diverged(Seq),
    /// An event arrived that the log does not hold.
    #[error("beyond the log: seq {0}")]
    Beyond(Seq),
}

/// Checks that `received` — everything a subscriber got, in arrival order, across reconnects,
/// having started after cursor `after` — is a gap-free, duplicate-free prefix of `log` from
/// `after` on.
pub fn check_prefix(after: Seq, received: &[Event], log: &EventLog) -> Result<(), PrefixError> {
    let mut last = after;
    for event in received {
        if event.seq <= last {
            return Err(PrefixError::Duplicated {
                got: event.seq,
                last,
            });
        }
        if event.seq != last.next() {
            return Err(PrefixError::Lost {
                expected: last.next(),
                got: event.seq,
            });
        }
        match log.get(event.seq) {
            Some(held) if held == event => {}
            Some(_) => return Err(PrefixError::Diverged(event.seq)),
            None => return Err(PrefixError::Beyond(event.seq)),
        }
        last = event.seq;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, LlmCallDelta, Reason};
    use crate::ids::{AgentId, TaskId};

    fn delta(seq: u64, text: &str) -> Event {
        Event {
            seq: Seq(seq),
            kind: EventKind::LlmCallDelta(LlmCallDelta {
                step: 1,
                text: text.into(),
                chunk_index: 0,
                kind: Default::default(),
            }),
            task_id: TaskId(uuid::Uuid::nil()),
            agent_id: AgentId::from("a"),
            timestamp: chrono::DateTime::UNIX_EPOCH,
            step: 1,
            speaker: None,
        }
    }

    fn cancelled(seq: u64) -> Event {
        Event {
            kind: EventKind::Cancelled(Reason::new("stop")),
            ..delta(seq, "")
        }
    }

    #[test]
    fn accepts_tells_what_extend_would_take_without_changing_the_log() {
        let log = EventLog::from_events(Seq(3), vec![delta(3, "a"), delta(4, "b")]).unwrap();
        assert_eq!(
            log.accepts(&[delta(4, "b"), delta(5, "c"), delta(6, "d")]),
            Ok(())
        );
        assert_eq!(
            log.accepts(&[delta(4, "x")]),
            Err(LogError::Changed(Seq(4)))
        );
        assert_eq!(
            log.accepts(&[delta(5, "c"), delta(7, "e")]),
            Err(LogError::Gap {
                expected: Seq(6),
                got: Seq(7)
            })
        );
        assert!(matches!(
            log.accepts(&[delta(2, "z")]),
            Err(LogError::BeforeStart { .. })
        ));
        assert_eq!(log.len(), 2, "nothing was appended");
    }

    #[test]
    fn append_is_dense_idempotent_and_checked() {
        let mut log = EventLog::new();
        assert_eq!(log.append(delta(1, "a")), Ok(Appended::New));
        assert_eq!(log.append(delta(2, "b")), Ok(Appended::New));
        assert_eq!(log.append(delta(1, "a")), Ok(Appended::Known));
        assert_eq!(log.append(delta(2, "x")), Err(LogError::Changed(Seq(2))));
        assert_eq!(
            log.append(delta(4, "d")),
            Err(LogError::Gap {
                expected: Seq(3),
                got: Seq(4)
            })
        );
        assert_eq!(log.append(cancelled(3)), Ok(Appended::New));
        assert_eq!(log.append(delta(4, "d")), Err(LogError::AfterEnd(Seq(4))));
        assert!(log.is_finished());
        assert_eq!(log.last_seq(), Seq(3));
        let sizes: usize = log.events().iter().map(encoded_len).sum();
        assert_eq!(log.encoded_bytes(), sizes);
    }

    #[test]
    fn a_run_starts_where_the_previous_ended() {
        let mut log = EventLog::starting_at(Seq(10));
        assert_eq!(
            log.append(delta(9, "a")),
            Err(LogError::BeforeStart {
                first: Seq(10),
                got: Seq(9)
            })
        );
        log.extend([delta(10, "a"), delta(11, "b")]).unwrap();
        assert_eq!(log.after(Seq(10)).len(), 1);
        assert_eq!(log.after(Seq(3)).len(), 2);
        assert_eq!(log.get(Seq(11)).unwrap().seq, Seq(11));
        assert!(log.get(Seq(12)).is_none());
    }

    #[test]
    fn pages_are_bounded_by_count_and_bytes_with_at_least_one_event() {
        let big = "x".repeat(1000);
        let log =
            EventLog::from_events(Seq(1), (1..=10).map(|s| delta(s, &big)).collect()).unwrap();
        let one = encoded_len(&log.events()[0]);
        let page = log.page(EventsRange::default(), one * 3 + 10);
        assert_eq!(page.events.len(), 3);
        assert!(page.has_more);
        let page = log.page(
            EventsRange {
                after: Seq(8),
                limit: 5,
            },
            1,
        );
        assert_eq!(page.events.len(), 1, "at least one event per page");
        assert_eq!(page.events[0].seq, Seq(9));
        let page = log.page(
            EventsRange {
                after: Seq(0),
                limit: 4,
            },
            usize::MAX,
        );
        assert_eq!(page.events.len(), 4);
        assert_eq!(page.last_seq, Seq(10));
    }

    #[test]
    fn prefix_check_names_each_departure() {
        let log = EventLog::from_events(Seq(1), (1..=4).map(|s| delta(s, "t")).collect()).unwrap();
        assert_eq!(
            check_prefix(Seq(0), &[delta(1, "t"), delta(2, "t")], &log),
            Ok(())
        );
        assert_eq!(check_prefix(Seq(2), &[delta(3, "t")], &log), Ok(()));
        assert_eq!(
            check_prefix(Seq(0), &[delta(1, "t"), delta(3, "t")], &log),
            Err(PrefixError::Lost {
                expected: Seq(2),
                got: Seq(3)
            })
        );
        assert_eq!(
            check_prefix(Seq(0), &[delta(1, "t"), delta(1, "t")], &log),
            Err(PrefixError::Duplicated {
                got: Seq(1),
                last: Seq(1)
            })
        );
        assert_eq!(
            check_prefix(Seq(0), &[delta(1, "other")], &log),
            Err(PrefixError::Diverged(Seq(1)))
        );
        assert_eq!(
            check_prefix(Seq(4), &[delta(5, "t")], &log),
            Err(PrefixError::Beyond(Seq(5)))
        );
    }
}
