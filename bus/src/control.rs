//! Hints to a running call, on core NATS (not stored): the api tells a task's LLM call to
//! heartbeat at once after it accepted a cancel, so the cancel reaches the call in the next
//! heartbeat response rather than after `bus.heartbeat_ms`.

use crate::connection::{Bus, BusError};
use crate::subject::tenant_token;
use agentflow_shared::ids::{TaskId, TenantId};
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
    /// The hint subject of `tenant`'s `task` (outside the stream's subjects):
    /// `<prefix>-hints.<tenant>.<task>`, the tenant's token as [`tenant_token`] makes it.
    fn hint_subject(&self, tenant: Option<&TenantId>, task: TaskId) -> String {
        format!(
            "{}-hints.{}.{task}",
            self.settings.subject_prefix,
            tenant_token(tenant)
        )
    }

    /// Asks the running call of `tenant`'s `task` to heartbeat now. Best effort: without the
    /// bus the call heartbeats every `bus.heartbeat_ms` anyway.
    pub async fn hint_heartbeat(&self, tenant: &TenantId, task: TaskId) {
        if !self.is_ready() {
            return;
        }
        if let Err(error) = self
            .client
            .publish(
                self.hint_subject(Some(tenant), task),
                Bytes::from_static(b"heartbeat"),
            )
            .await
        {
            tracing::warn!(%task, %error, "sending a heartbeat hint failed");
        }
    }

    /// The hints sent to the calls of `tenant`'s `task` from now on (`None`: a task created
    /// before tenancy, whose hints the api sends under its own default tenant: any tenant's).
    pub async fn hints(&self, tenant: Option<&TenantId>, task: TaskId) -> Result<Hints, BusError> {
        self.client
            .subscribe(self.hint_subject(tenant, task))
            .await
            .map(Hints)
            .map_err(BusError::request)
    }
}
