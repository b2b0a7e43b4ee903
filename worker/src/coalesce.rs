//! Coalescing streamed text into `WorkflowLLMCallDelta` chunks.

use std::time::{Duration, Instant};

/// Buffers streamed text and releases it every `interval` or every `max_chars` characters.
#[derive(Debug)]
pub struct Coalescer {
    interval: Duration,
    max_chars: usize,
    buffer: String,
    last_emit: Option<Instant>,
    next_index: u32,
}

impl Coalescer {
    /// A coalescer with these limits.
    pub fn new(interval: Duration, max_chars: usize) -> Self {
        Self {
            interval,
            max_chars: max_chars.max(1),
            buffer: String::new(),
            last_emit: None,
            next_index: 0,
        }
    }

    /// Adds text; returns a chunk when one is due. The first text of a call is released at once.
    pub fn push(&mut self, text: &str, now: Instant) -> Option<String> {
        self.buffer.push_str(text);
        let due = match self.last_emit {
            None => true,
            Some(last) => {
                now.duration_since(last) >= self.interval
                    || self.buffer.chars().count() >= self.max_chars
            }
        };
        if due && !self.buffer.is_empty() {
            self.last_emit = Some(now);
            Some(std::mem::take(&mut self.buffer))
        } else {
            None
        }
    }

    /// Adds text on the bus path: released at once unless a publish is in flight (`busy`), then
    /// merged until the publish is acknowledged or `max_chars` is reached. A fast model thus
    /// yields few events, a slow one no added wait.
    pub fn push_unless_busy(&mut self, text: &str, busy: bool) -> Option<String> {
        self.buffer.push_str(text);
        let due = !busy || self.buffer.chars().count() >= self.max_chars;
        (due && !self.buffer.is_empty()).then(|| std::mem::take(&mut self.buffer))
    }

    /// Releases whatever is buffered.
    pub fn flush(&mut self) -> Option<String> {
        (!self.buffer.is_empty()).then(|| std::mem::take(&mut self.buffer))
    }

    /// The chunk index for the next released chunk, advancing it.
    pub fn take_index(&mut self) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_by_time_or_size_and_loses_nothing() {
        let start = Instant::now();
        let mut c = Coalescer::new(Duration::from_millis(50), 10);
        assert_eq!(c.push("a", start).as_deref(), Some("a"));
        assert_eq!(c.push("b", start + Duration::from_millis(10)), None);
        assert_eq!(
            c.push("c", start + Duration::from_millis(60)).as_deref(),
            Some("bc")
        );
        assert_eq!(
            c.push("0123456789", start + Duration::from_millis(61))
                .as_deref(),
            Some("0123456789")
        );
        assert_eq!(c.push("x", start + Duration::from_millis(62)), None);
        assert_eq!(c.flush().as_deref(), Some("x"));
        assert_eq!(c.flush(), None);
        assert_eq!((c.take_index(), c.take_index()), (0, 1));
    }

    #[test]
    fn on_the_bus_text_waits_only_while_a_publish_is_in_flight() {
        let mut c = Coalescer::new(Duration::from_millis(50), 4);
        assert_eq!(c.push_unless_busy("a", false).as_deref(), Some("a"));
        assert_eq!(c.push_unless_busy("b", true), None);
        assert_eq!(c.push_unless_busy("c", true), None);
        assert_eq!(c.push_unless_busy("de", true).as_deref(), Some("bcde"));
        assert_eq!(c.push_unless_busy("f", true), None);
        assert_eq!(c.flush().as_deref(), Some("f"));
    }
}
