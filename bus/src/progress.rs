//! Progress hints, on core NATS (not stored): after every workflow activation that was more
//! than queries, the worker tells the task's relays that its log may have grown, so a relay
//! reads it with one `get_events` query instead of long-polling the task's history. A hint is
//! only a wake-up — what a relay shows still comes from the workflow (a query, the result) —
//! so a lost hint delays events, never changes them.

use crate::connection::{Bus, BusError};
use crate::subject::tenant_token;
use agentflow_shared::ids::{TaskId, TenantId};
use bytes::Bytes;
use futures::StreamExt;

/// What a workflow activation did, as far as a relay cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// It may have appended events; the workflow runs on.
    Appended,
    /// It closed the run (completed, failed, cancelled or continued as new).
    Closing,
}

impl Progress {
    fn payload(self) -> Bytes {
        match self {
            Self::Appended => Bytes::from_static(b"appended"),
            Self::Closing => Bytes::from_static(b"closing"),
        }
    }

    fn parse(payload: &[u8]) -> Self {
        if payload == b"closing" {
            Self::Closing
        } else {
            Self::Appended
        }
    }
}

/// The longest a hint may wait to be handed to the NATS client.
pub const HINT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(100);

/// The progress hints of one task.
pub struct ProgressHints(async_nats::Subscriber);

impl ProgressHints {
    /// The next hint; `None` once the subscription ended.
    pub async fn next(&mut self) -> Option<Progress> {
        self.0
            .next()
            .await
            .map(|message| Progress::parse(&message.payload))
    }
}

impl Bus {
    /// The progress subject of `task` (outside the stream's subjects):
    /// `<prefix>-progress.<tenant>.<task>`, the tenant's token as [`tenant_token`] makes it.
    fn progress_subject(&self, tenant: Option<&TenantId>, task: TaskId) -> String {
        format!(
            "{}-progress.{}.{task}",
            self.settings.subject_prefix,
            tenant_token(tenant)
        )
    }

    /// Tells the relays of `tenant`'s `task` what its workflow just did; whether the hint went
    /// out. It needs only core NATS (not the stream), and gives up after [`HINT_TIMEOUT`]
    /// rather than hold up the workflow task (a client whose server stalls stops taking
    /// publishes).
    pub async fn hint_progress(&self, tenant: &TenantId, task: TaskId, progress: Progress) -> bool {
        if !self.is_connected() {
            return false;
        }
        let publish = self.client.publish(
            self.progress_subject(Some(tenant), task),
            progress.payload(),
        );
        match tokio::time::timeout(HINT_TIMEOUT, publish).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(%task, %error, "sending a progress hint failed");
                false
            }
            Err(_) => {
                tracing::warn!(%task, "sending a progress hint timed out");
                false
            }
        }
    }

    /// The progress hints of `tenant`'s `task` from now on (`None`: the task's tenant is not
    /// known, any tenant's).
    pub async fn progress(
        &self,
        tenant: Option<&TenantId>,
        task: TaskId,
    ) -> Result<ProgressHints, BusError> {
        self.client
            .subscribe(self.progress_subject(tenant, task))
            .await
            .map(ProgressHints)
            .map_err(BusError::request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_back() {
        for progress in [Progress::Appended, Progress::Closing] {
            assert_eq!(Progress::parse(&progress.payload()), progress);
        }
    }
}
