//! A relay's view of one task on the bus: every message of the task's calls, in stream order,
//! through each call's [fold](crate::fold); out come the events the fold accepted, and the
//! workflow's [durable](crate::durable) events as they are. The ordered
//! consumer behind it recreates itself after a gap or a reconnection and resumes where it was.

use crate::connection::{Bus, BusError};
use crate::counters::BusCounters;
use crate::durable::is_durable_subject;
use crate::fold::{CallFold, Folded};
use crate::message::BusMessage;
use crate::subject::CallSubject;
use agentflow_shared::event::Event;
use agentflow_shared::ids::{Seq, TaskId, TenantId};
use async_nats::jetstream::consumer::{DeliverPolicy, push};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;

/// One task's calls as they are stored.
pub struct TaskFollower {
    messages: push::Ordered,
    folds: HashMap<Seq, CallFold>,
    prefix: String,
    counters: Arc<BusCounters>,
}

impl Bus {
    /// Follows every call of `tenant`'s `task` (`None`: the task's tenant is not known, any
    /// tenant's), from the oldest message still stored.
    pub async fn follow_task(
        &self,
        tenant: Option<&TenantId>,
        task: TaskId,
    ) -> Result<TaskFollower, BusError> {
        let stream = self
            .jetstream
            .get_stream_no_info(&self.settings.stream)
            .await
            .map_err(BusError::request)?;
        let consumer = stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: CallSubject::task_filter(
                    &self.settings.subject_prefix,
                    tenant,
                    task,
                ),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(BusError::request)?;
        Ok(TaskFollower {
            messages: consumer.messages().await.map_err(BusError::request)?,
            folds: HashMap::new(),
            prefix: self.settings.subject_prefix.clone(),
            counters: self.counters.clone(),
        })
    }
}

impl TaskFollower {
    /// The next event a stored message adds to one of the task's calls. Cancel-safe.
    pub async fn next(&mut self) -> Result<Event, BusError> {
        loop {
            let message = match self.messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => return Err(BusError::request(error)),
                None => return Err(BusError::Request("the follower ended".into())),
            };
            BusCounters::count(&self.counters.followed);
            if is_durable_subject(&self.prefix, message.subject.as_str()) {
                match serde_json::from_slice::<Event>(&message.payload) {
                    Ok(event) => return Ok(event),
                    Err(error) => {
                        tracing::warn!(subject = %message.subject, %error, "an undecodable durable event");
                        continue;
                    }
                }
            }
            let Some(call) = CallSubject::parse(&self.prefix, message.subject.as_str()) else {
                continue;
            };
            let decoded = match BusMessage::decode(message.headers.as_ref(), &message.payload) {
                Ok(decoded) => decoded,
                Err(error) => {
                    tracing::warn!(%call, %error, "an undecodable message on a call");
                    continue;
                }
            };
            let fold = self
                .folds
                .entry(call.seq_base)
                .or_insert_with(|| CallFold::new(call.seq_base));
            match fold.apply(&decoded) {
                Folded::Accepted => {
                    return Ok(fold
                        .events()
                        .last()
                        .cloned()
                        .expect("an accepted event is the fold's last"));
                }
                Folded::Fenced(_) | Folded::Repeated => {}
                Folded::Stale | Folded::OutOfOrder => BusCounters::count(&self.counters.dropped),
                Folded::Conflict(error) => {
                    BusCounters::count(&self.counters.dropped);
                    tracing::error!(%call, %error, "a call's messages conflict");
                }
            }
        }
    }
}
