//! Per-tenant usage in this api process: a token bucket of requests per second and a count of
//! open streams (`[limits.tenant]`, `[limits.tenants.<id>]`).

use agentflow_shared::ids::TenantId;
use agentflow_shared::security::LimitsSettings;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens a second, at most `burst` saved.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One tenant's open tasks as last counted in visibility, plus the tasks this process created
/// since.
#[derive(Debug, Clone, Copy)]
struct OpenTasks {
    counted: u64,
    at: Instant,
    created_since: u64,
}

/// One tenant's usage.
#[derive(Debug)]
struct Usage {
    bucket: Bucket,
    streams: usize,
    open_tasks: Option<OpenTasks>,
}

/// How long a visibility count of a tenant's open tasks is reused (plus the tasks created
/// since): at most one count RPC a second per tenant and api process.
pub const OPEN_TASKS_COUNT_TTL: Duration = Duration::from_secs(1);

/// Request rates and open streams, by tenant.
#[derive(Clone)]
pub struct TenantUsage {
    limits: Arc<LimitsSettings>,
    tenants: Arc<Mutex<HashMap<TenantId, Usage>>>,
}

/// An open stream of a tenant, counted until dropped.
pub struct StreamSlot {
    usage: TenantUsage,
    tenant: TenantId,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut tenants = self.usage.lock();
        if let Some(usage) = tenants.get_mut(&self.tenant) {
            usage.streams = usage.streams.saturating_sub(1);
        }
    }
}

impl TenantUsage {
    /// Usage under these limits.
    pub fn new(limits: LimitsSettings) -> Self {
        Self {
            limits: Arc::new(limits),
            tenants: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Usage>> {
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with<T>(&self, tenant: &TenantId, f: impl FnOnce(&mut Usage) -> T) -> T {
        let burst = f64::from(self.limits.of_tenant(tenant).request_burst);
        let mut tenants = self.lock();
        let usage = tenants.entry(tenant.clone()).or_insert_with(|| Usage {
            bucket: Bucket {
                tokens: burst,
                updated: Instant::now(),
            },
            streams: 0,
            open_tasks: None,
        });
        f(usage)
    }

    /// Takes one request from the tenant's bucket; when it is empty, how long until it is not.
    pub fn admit_request(&self, tenant: &TenantId) -> Result<(), Duration> {
        let limits = self.limits.of_tenant(tenant);
        let rate = f64::from(limits.requests_per_sec);
        let burst = f64::from(limits.request_burst);
        self.with(tenant, |usage| {
            let now = Instant::now();
            let bucket = &mut usage.bucket;
            let refill = now.duration_since(bucket.updated).as_secs_f64() * rate;
            bucket.tokens = (bucket.tokens + refill).min(burst);
            bucket.updated = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                Ok(())
            } else {
                Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
            }
        })
    }

    /// The tenant's open tasks, when counted less than [`OPEN_TASKS_COUNT_TTL`] ago (that count
    /// plus the tasks created here since).
    pub fn open_tasks(&self, tenant: &TenantId) -> Option<u64> {
        self.with(tenant, |usage| {
            let open = usage.open_tasks?;
            (open.at.elapsed() < OPEN_TASKS_COUNT_TTL).then_some(open.counted + open.created_since)
        })
    }

    /// Records a fresh visibility count of the tenant's open tasks.
    pub fn counted_open_tasks(&self, tenant: &TenantId, counted: u64) {
        self.with(tenant, |usage| {
            usage.open_tasks = Some(OpenTasks {
                counted,
                at: Instant::now(),
                created_since: 0,
            });
        });
    }

    /// Counts one more open task for the tenant, atomically with the check against `limit`
    /// (so concurrent creations cannot all pass at `limit - 1`); `false` when it is reached.
    pub fn reserve_task(&self, tenant: &TenantId, limit: u64) -> bool {
        self.with(tenant, |usage| match usage.open_tasks.as_mut() {
            Some(open) if open.counted + open.created_since >= limit => false,
            Some(open) => {
                open.created_since += 1;
                true
            }
            None => true,
        })
    }

    /// Gives back a reservation whose task was not created.
    pub fn task_not_created(&self, tenant: &TenantId) {
        self.with(tenant, |usage| {
            if let Some(open) = usage.open_tasks.as_mut() {
                open.created_since = open.created_since.saturating_sub(1);
            }
        });
    }

    /// A slot for one more stream of the tenant; `Err(limit)` when it has that many open.
    pub fn open_stream(&self, tenant: &TenantId) -> Result<StreamSlot, usize> {
        let limit = self.limits.of_tenant(tenant).max_streams;
        self.with(tenant, |usage| {
            if usage.streams >= limit {
                return Err(limit);
            }
            usage.streams += 1;
            Ok(())
        })?;
        Ok(StreamSlot {
            usage: self.clone(),
            tenant: tenant.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentflow_shared::security::TenantLimits;

    fn usage(limits: TenantLimits) -> TenantUsage {
        let mut settings = LimitsSettings::default();
        settings.tenants.insert("small".parse().unwrap(), limits);
        TenantUsage::new(settings)
    }

    #[test]
    fn a_burst_is_admitted_then_the_rate_holds_and_tenants_are_apart() {
        let usage = usage(TenantLimits {
            requests_per_sec: 1,
            request_burst: 3,
            ..TenantLimits::default()
        });
        let small: TenantId = "small".parse().unwrap();
        for _ in 0..3 {
            usage.admit_request(&small).unwrap();
        }
        let wait = usage.admit_request(&small).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(usage.admit_request(&"other".parse().unwrap()).is_ok());
    }

    #[test]
    fn an_open_task_count_is_reused_for_a_second_with_the_tasks_created_since() {
        let usage = usage(TenantLimits::default());
        let small: TenantId = "small".parse().unwrap();
        assert_eq!(usage.open_tasks(&small), None, "never counted");
        usage.counted_open_tasks(&small, 5);
        assert!(usage.reserve_task(&small, 7));
        assert!(usage.reserve_task(&small, 7));
        assert_eq!(usage.open_tasks(&small), Some(7));
        assert!(!usage.reserve_task(&small, 7), "the limit is reached");
        usage.task_not_created(&small);
        assert_eq!(usage.open_tasks(&small), Some(6));
        assert_eq!(usage.open_tasks(&"other".parse().unwrap()), None);
    }

    #[test]
    fn streams_are_counted_until_their_slot_drops() {
        let usage = usage(TenantLimits {
            max_streams: 2,
            ..TenantLimits::default()
        });
        let small: TenantId = "small".parse().unwrap();
        let one = usage.open_stream(&small).unwrap();
        let _two = usage.open_stream(&small).unwrap();
        assert_eq!(usage.open_stream(&small).err(), Some(2));
        drop(one);
        assert!(usage.open_stream(&small).is_ok());
    }
}
