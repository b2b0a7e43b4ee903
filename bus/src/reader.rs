//! Reading a call's subject, and fencing it for a new attempt: the attempt reads every stored
//! message (through the [fold](crate::fold)), then stores its fence on the condition that
//! nothing else was stored on the subject meanwhile; if something was, it reads again. What any
//! client was sent is a stored message before the fence, so the attempt recovers all of it.

use crate::connection::{Bus, BusError};
use crate::counters::BusCounters;
use crate::fold::{CallFold, Folded};
use crate::message::BusMessage;
use crate::subject::CallSubject;
use async_nats::jetstream::consumer::{DeliverPolicy, push};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures::StreamExt;
use std::time::Duration;

/// Most times a fence reads the subject again because something was stored meanwhile.
const MAX_FENCE_TRIES: u32 = 50;

/// What a call's subject held when it was read.
#[derive(Debug, Clone)]
pub struct CallRead {
    /// The call's events as the stored messages make them.
    pub fold: CallFold,
    /// The stream sequence of the subject's last message (0: none).
    pub last: u64,
}

impl Bus {
    /// Reads every message stored on `call`'s subject, in order.
    pub async fn read_call(&self, call: &CallSubject) -> Result<CallRead, BusError> {
        let subject = call.name(&self.settings.subject_prefix);
        let mut fold = CallFold::new(call.seq_base);
        let stream = self
            .jetstream
            .get_stream_no_info(&self.settings.stream)
            .await
            .map_err(BusError::request)?;
        let last = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message.sequence,
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Ok(CallRead { fold, last: 0 });
            }
            Err(error) => return Err(BusError::request(error)),
        };
        let consumer = stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: subject,
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(BusError::request)?;
        let mut messages = consumer.messages().await.map_err(BusError::request)?;
        let wait = Duration::from_millis(self.settings.ack_timeout_ms);
        loop {
            let message = match tokio::time::timeout(wait, messages.next()).await {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(error))) => return Err(BusError::request(error)),
                Ok(None) => return Err(BusError::Request("the read ended early".into())),
                Err(_) => return Err(BusError::Request("reading the call timed out".into())),
            };
            let sequence = message.info().map_err(BusError::request)?.stream_sequence;
            if sequence > last {
                break;
            }
            match BusMessage::decode(message.headers.as_ref(), &message.payload) {
                Ok(decoded) => {
                    if !matches!(
                        fold.apply(&decoded),
                        Folded::Accepted | Folded::Fenced(_) | Folded::Repeated
                    ) {
                        BusCounters::count(&self.counters.dropped);
                    }
                }
                Err(error) => tracing::warn!(%call, %error, "an undecodable message on a call"),
            }
            if sequence == last {
                break;
            }
        }
        Ok(CallRead { fold, last })
    }

    /// Reads `call`'s subject and stores the fence of `attempt` after what was read; returns the
    /// fold with the fence applied. Every later reader voids earlier attempts' later messages.
    pub async fn fence_call(&self, call: &CallSubject, attempt: u32) -> Result<CallFold, BusError> {
        let subject = call.name(&self.settings.subject_prefix);
        for _ in 0..MAX_FENCE_TRIES {
            let read = self.read_call(call).await?;
            let fence = BusMessage::fence(attempt)
                .encode(call)
                .expected_last_subject_sequence(read.last);
            let stored = match self.jetstream.send_publish(subject.clone(), fence).await {
                Ok(ack) => ack.await,
                Err(error) => return Err(BusError::request(error)),
            };
            match stored {
                Ok(_) => {
                    BusCounters::count(&self.counters.fences);
                    let mut fold = read.fold;
                    fold.apply(&BusMessage::fence(attempt));
                    return Ok(fold);
                }
                Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {
                    BusCounters::count(&self.counters.fence_retries);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(error) => return Err(BusError::request(error)),
            }
        }
        Err(BusError::Request(format!(
            "messages kept arriving on {call}; the fence did not hold"
        )))
    }
}
