//! Hints to a running call, on core NATS (not stored): the api tells a task's LLM call to
//! heartbeat at once after it accepted a cancel, so the cancel reaches the call in the next
//! heartbeat response rather than after `bus.heartbeat_ms`.

use crate::connection::{Bus, BusError};
use agentflow_shared::ids::TaskId;
use bytes::Bytes;
use futures::StreamExt;

/// The hints sent to one task's calls.
pub struct Hints(async_nats::Subscriber);

impl Hints {
    /// The next hint; `None` once the subscription ended.
    pub async fn next(&mut self) -> Option<()> {
        self.0.next().await.map(|_| ())
    }
}

impl Bus {
    /// The hint subject of `task` (outside the stream's subjects).
    fn hint_subject(&self, task: TaskId) -> String {
        format!("{}-hints.{task}", self.settings.subject_prefix)
    }

    /// Asks `task`'s running call to heartbeat now. Best effort: without the bus the call
    /// heartbeats every `bus.heartbeat_ms` anyway.
    pub async fn hint_heartbeat(&self, task: TaskId) {
        if !self.is_ready() {
            return;
        }
        if let Err(error) = self
            .client
            .publish(self.hint_subject(task), Bytes::from_static(b"heartbeat"))
            .await
        {
            tracing::warn!(%task, %error, "sending a heartbeat hint failed");
        }
    }

    /// The hints sent to `task`'s calls from now on.
    pub async fn hints(&self, task: TaskId) -> Result<Hints, BusError> {
        self.client
            .subscribe(self.hint_subject(task))
            .await
            .map(Hints)
            .map_err(BusError::request)
    }
}
