//! What a process did on the bus, for `/metrics`.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of bus operations since the process started.
#[derive(Debug, Default)]
pub struct BusCounters {
    /// Events published.
    pub published: AtomicU64,
    /// Publishes acknowledged (stored).
    pub acked: AtomicU64,
    /// Publishes refused or unacknowledged (each moved its call to the heartbeat path).
    pub refused: AtomicU64,
    /// Fences stored.
    pub fences: AtomicU64,
    /// Fences that found the call's subject moved on and read it again.
    pub fence_retries: AtomicU64,
    /// Messages a follower received.
    pub followed: AtomicU64,
    /// Messages a fold voided or dropped (superseded attempts, gaps).
    pub dropped: AtomicU64,
}

/// A snapshot of [`BusCounters`].
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct BusCounts {
    /// Events published.
    pub published: u64,
    /// Publishes acknowledged.
    pub acked: u64,
    /// Publishes refused or unacknowledged.
    pub refused: u64,
    /// Fences stored.
    pub fences: u64,
    /// Fences retried.
    pub fence_retries: u64,
    /// Messages followers received.
    pub followed: u64,
    /// Messages folds dropped.
    pub dropped: u64,
}

impl BusCounters {
    /// Adds one to `counter`.
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> BusCounts {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BusCounts {
            published: read(&self.published),
            acked: read(&self.acked),
            refused: read(&self.refused),
            fences: read(&self.fences),
            fence_retries: read(&self.fence_retries),
            followed: read(&self.followed),
            dropped: read(&self.dropped),
        }
    }
}
