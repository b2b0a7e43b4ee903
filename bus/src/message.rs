//! A message on a call's subject: a fence that starts an attempt, or one event of an attempt.
//!
//! The attempt and the kind travel in headers, the event as its contract JSON, and the
//! message id (`Nats-Msg-Id`: task, call, attempt and seq) makes a repeated publish a no-op.

use crate::subject::CallSubject;
use agentflow_shared::event::Event;
use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;

/// Header carrying the attempt a message belongs to.
pub const ATTEMPT_HEADER: &str = "Agentflow-Attempt";
/// Header telling a fence from an event.
pub const KIND_HEADER: &str = "Agentflow-Kind";

/// What a message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// The attempt starts: every message of an earlier attempt stored after this one is void.
    Fence,
    /// One event of the attempt, with its seq (boxed: a fence carries nothing).
    Event(Box<Event>),
}

/// The kind of a message, as its header spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fence,
    Event,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Fence => "fence",
            Kind::Event => "event",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "fence" => Some(Kind::Fence),
            "event" => Some(Kind::Event),
            _ => None,
        }
    }
}

/// A message of one attempt of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct BusMessage {
    /// The attempt (1, 2, …; a recovery after the last attempt fences with the next number).
    pub attempt: u32,
    /// Its content.
    pub body: Body,
}

/// Why a stored message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A header is missing or malformed.
    #[error("header {0} missing or malformed")]
    Header(&'static str),
    /// The event's JSON is not an event.
    #[error("the event does not decode: {0}")]
    Event(#[from] serde_json::Error),
}

impl BusMessage {
    /// The fence that starts `attempt`.
    pub fn fence(attempt: u32) -> Self {
        Self {
            attempt,
            body: Body::Fence,
        }
    }

    /// One event of `attempt`.
    pub fn event(attempt: u32, event: Event) -> Self {
        Self {
            attempt,
            body: Body::Event(Box::new(event)),
        }
    }

    fn kind(&self) -> Kind {
        match self.body {
            Body::Fence => Kind::Fence,
            Body::Event(_) => Kind::Event,
        }
    }

    /// The message id: the same message published twice is stored once.
    pub fn message_id(&self, call: &CallSubject) -> String {
        match &self.body {
            Body::Fence => format!("{}.{}.{}.fence", call.task, call.seq_base.0, self.attempt),
            Body::Event(event) => format!(
                "{}.{}.{}.{}",
                call.task, call.seq_base.0, self.attempt, event.seq.0
            ),
        }
    }

    /// The message ready to publish on `call`'s subject.
    pub fn encode(&self, call: &CallSubject) -> PublishMessage {
        let payload = match &self.body {
            Body::Fence => Bytes::new(),
            Body::Event(event) => {
                Bytes::from(serde_json::to_vec(event).expect("an event always encodes as JSON"))
            }
        };
        PublishMessage::build()
            .payload(payload)
            .message_id(self.message_id(call))
            .header(ATTEMPT_HEADER, self.attempt.to_string().as_str())
            .header(KIND_HEADER, self.kind().as_str())
    }

    /// Reads a stored message.
    pub fn decode(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Self, DecodeError> {
        let header = |name: &'static str| {
            headers
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
                .ok_or(DecodeError::Header(name))
        };
        let attempt = header(ATTEMPT_HEADER)?
            .parse()
            .map_err(|_| DecodeError::Header(ATTEMPT_HEADER))?;
        let kind = Kind::parse(&header(KIND_HEADER)?).ok_or(DecodeError::Header(KIND_HEADER))?;
        Ok(match kind {
            Kind::Fence => Self::fence(attempt),
            Kind::Event => Self::event(attempt, serde_json::from_slice(payload)?),
        })
    }
}
