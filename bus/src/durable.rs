//! The workflow's own events on the bus: events a workflow task already made durable in
//! Temporal (steps, tool calls), handed to the next LLM call, which publishes them before its
//! own. No fence applies to them: every attempt hands out the same events, and the message id
//! (`Nats-Msg-Id`: task and seq) stores each once. Subject: `<prefix>.<tenant>.<task>.w`, one
//! per task, inside the task's filter, so a relay's follower reads them with the task's calls.

use crate::connection::{Bus, BusError};
use crate::counters::BusCounters;
use crate::message::KIND_HEADER;
use agentflow_shared::event::Event;
use agentflow_shared::ids::{TaskId, TenantId};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;

/// The last token of a task's durable-events subject.
const TOKEN: &str = "w";
/// The kind header's value on a durable event.
pub const DURABLE_KIND: &str = "durable";

/// The subject of `task`'s durable events under `prefix`.
pub fn durable_subject(prefix: &str, tenant: &TenantId, task: TaskId) -> String {
    format!("{prefix}.{tenant}.{task}.{TOKEN}")
}

/// Whether `subject` (under `prefix`) is a task's durable-events subject.
pub fn is_durable_subject(prefix: &str, subject: &str) -> bool {
    let tokens = subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|rest| rest.split('.').collect::<Vec<_>>());
    matches!(
        tokens.as_deref(),
        Some([tenant, task, TOKEN])
            if tenant.parse::<TenantId>().is_ok() && task.parse::<TaskId>().is_ok()
    )
}

impl Bus {
    /// Sends `events` (already durable in Temporal) on the durable subject of `tenant`'s
    /// `task`, in order, without waiting for their acknowledgements: one that is not stored
    /// reaches clients from Temporal instead. Refused at once while the bus is not ready.
    pub async fn publish_durable(
        &self,
        tenant: &TenantId,
        task: TaskId,
        events: &[Event],
    ) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        if !self.is_ready() {
            BusCounters::count(&self.counters.refused);
            return Err(BusError::NotReady(self.state()));
        }
        let subject = durable_subject(&self.settings.subject_prefix, tenant, task);
        for event in events {
            let message = PublishMessage::build()
                .payload(Bytes::from(
                    serde_json::to_vec(event).expect("an event always encodes as JSON"),
                ))
                .message_id(format!("{task}.{TOKEN}.{}", event.seq.0))
                .header(KIND_HEADER, DURABLE_KIND);
            if let Err(error) = self.jetstream.send_publish(subject.clone(), message).await {
                BusCounters::count(&self.counters.refused);
                return Err(BusError::request(error));
            }
            BusCounters::count(&self.counters.published);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_subjects_are_told_from_call_subjects() {
        let task = TaskId::new();
        let tenant: TenantId = "acme".parse().unwrap();
        let subject = durable_subject("agentflow.calls", &tenant, task);
        assert_eq!(subject, format!("agentflow.calls.acme.{task}.w"));
        assert!(is_durable_subject("agentflow.calls", &subject));
        assert!(!is_durable_subject("other", &subject));
        for other in [
            format!("agentflow.calls.acme.{task}.7"),
            format!("agentflow.calls.{task}.w"),
            "agentflow.calls.acme.x.w".to_owned(),
            format!("{subject}.w"),
        ] {
            assert!(!is_durable_subject("agentflow.calls", &other), "{other}");
        }
    }
}
