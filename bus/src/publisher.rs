//! A call's publisher: each event goes out at once and its acknowledgement is awaited later
//! (pipelined, never one round trip per token). The first failure ends the call's time on the
//! bus: the caller moves it to the heartbeat path.

use crate::connection::{Bus, BusError};
use crate::counters::BusCounters;
use crate::message::BusMessage;
use crate::subject::CallSubject;
use agentflow_shared::event::Event;
use agentflow_shared::ids::Seq;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use std::future::Future;
use std::pin::Pin;

type AckFuture = Pin<Box<dyn Future<Output = (Seq, Result<PublishAck, PublishError>)> + Send>>;

/// Publishes one attempt's events on its call's subject.
pub struct CallPublisher {
    bus: Bus,
    call: CallSubject,
    subject: String,
    attempt: u32,
    pending: FuturesOrdered<AckFuture>,
    acked: Option<Seq>,
}

impl CallPublisher {
    /// A publisher of `attempt` on `call` (whose subject the attempt has fenced).
    pub fn new(bus: &Bus, call: CallSubject, attempt: u32) -> Self {
        Self {
            subject: call.name(&bus.settings.subject_prefix),
            bus: bus.clone(),
            call,
            attempt,
            pending: FuturesOrdered::new(),
            acked: None,
        }
    }

    /// Sends `event`; its acknowledgement comes through [`CallPublisher::next_ack`]. Refused at
    /// once while the bus is not ready (the client would otherwise hold it until it reconnects).
    pub async fn publish(&mut self, event: &Event) -> Result<(), BusError> {
        if !self.bus.is_ready() {
            BusCounters::count(&self.bus.counters.refused);
            return Err(BusError::NotReady(self.bus.state()));
        }
        let message = BusMessage::event(self.attempt, event.clone()).encode(&self.call);
        let sent = self
            .bus
            .jetstream
            .send_publish(self.subject.clone(), message)
            .await;
        let ack = match sent {
            Ok(ack) => ack,
            Err(error) => {
                BusCounters::count(&self.bus.counters.refused);
                return Err(refused(&error));
            }
        };
        BusCounters::count(&self.bus.counters.published);
        let seq = event.seq;
        self.pending
            .push_back(Box::pin(async move { (seq, ack.await) }));
        Ok(())
    }

    /// Publishes awaiting their acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The next acknowledgement (in publish order): the seq now stored. Never resolves while
    /// nothing is in flight; cancel-safe.
    pub async fn next_ack(&mut self) -> Result<Seq, BusError> {
        match self.pending.next().await {
            None => std::future::pending().await,
            Some((seq, Ok(_))) => {
                BusCounters::count(&self.bus.counters.acked);
                self.acked = Some(seq);
                Ok(seq)
            }
            Some((_, Err(error))) => {
                BusCounters::count(&self.bus.counters.refused);
                Err(refused(&error))
            }
        }
    }

    /// Waits for every acknowledgement; the last seq stored.
    pub async fn flush(&mut self) -> Result<Option<Seq>, BusError> {
        while !self.pending.is_empty() {
            self.next_ack().await?;
        }
        Ok(self.acked)
    }

    /// The last seq acknowledged.
    pub fn acked(&self) -> Option<Seq> {
        self.acked
    }

    /// The attempt this publisher publishes for.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

fn refused(error: &PublishError) -> BusError {
    match error.kind() {
        PublishErrorKind::TimedOut => BusError::Request("publish not acknowledged in time".into()),
        _ => BusError::request(error),
    }
}
