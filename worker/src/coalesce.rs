//! Coalescing streamed text into `WorkflowLLMCallDelta` chunks.

use std::time::{Duration, Instant};

/// Buffers streamed text and releases it every `interval` or every `max_chars` characters —
/// or, once a call has streamed much, every [`GROWTH`]th of what it streamed: a long answer
/// from a fast model then makes a few hundred deltas per order of magnitude of its size,
/// not one per `max_chars` (its events' overhead stays small), and a slow model still gets
/// its text out every `interval`.
#[derive(Debug)]
pub struct Coalescer {
    interval: Duration,
    max_chars: usize,
    buffer: String,
    buffered_chars: usize,
    released_chars: usize,
    last_emit: Option<Instant>,
    next_index: u32,
}

/// A chunk may hold up to 1/`GROWTH` of the text released before it.
pub const GROWTH: usize = 256;

impl Coalescer {
    /// A coalescer with these limits.
    pub fn new(interval: Duration, max_chars: usize) -> Self {
        Self {
            interval,
            max_chars: max_chars.max(1),
            buffer: String::new(),
            buffered_chars: 0,
            released_chars: 0,
            last_emit: None,
            next_index: 0,
        }
    }

    /// Adds text; returns a chunk when one is due. The first text of a call is released at once.
    pub fn push(&mut self, text: &str, now: Instant) -> Option<String> {
        self.add(text);
        let due = match self.last_emit {
            None => true,
            Some(last) => now.duration_since(last) >= self.interval || self.full(),
        };
        if !due {
            return None;
        }
        let chunk = self.flush();
        if chunk.is_some() {
            self.last_emit = Some(now);
        }
        chunk
    }

    /// Adds text on the bus path: released at once unless a publish is in flight (`busy`), then
    /// merged until the publish is acknowledged or the chunk is full. A fast model thus
    /// yields few events, a slow one no added wait.
    pub fn push_unless_busy(&mut self, text: &str, busy: bool) -> Option<String> {
        self.add(text);
        if !busy || self.full() {
            self.flush()
        } else {
            None
        }
    }

    /// Releases whatever is buffered.
    pub fn flush(&mut self) -> Option<String> {
        if self.buffer.is_empty() {
            return None;
        }
        self.released_chars += self.buffered_chars;
        self.buffered_chars = 0;
        Some(std::mem::take(&mut self.buffer))
    }

    fn add(&mut self, text: &str) {
        self.buffer.push_str(text);
        self.buffered_chars += text.chars().count();
    }

    /// Whether the buffer holds a whole chunk.
    fn full(&self) -> bool {
        self.buffered_chars >= self.max_chars.max(self.released_chars / GROWTH)
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

    #[test]
    fn a_long_answer_gets_chunks_that_grow_with_it() {
        let start = Instant::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 64);
        let mut chunks = 0;
        let mut total = 0;
        // A fast model: 1 MB of 8-character tokens, all within one interval.
        for _ in 0..125_000 {
            if let Some(chunk) = c.push("1234567 ", start) {
                total += chunk.len();
                chunks += 1;
            }
        }
        total += c.flush().map_or(0, |chunk| chunk.len());
        assert_eq!(total, 1_000_000, "nothing is lost");
        assert!(
            chunks < 2_000,
            "{chunks} chunks (64-character chunks would be 15,625)"
        );
    }
}
