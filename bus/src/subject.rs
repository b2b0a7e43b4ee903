//! Subjects: one per LLM call, `<prefix>.<tenant>.<task>.<seq_base>`, so that a task's calls
//! are `<prefix>.<tenant>.<task>.*`, a tenant's `<prefix>.<tenant>.>`, and a call's first seq
//! names it. The tenant comes right after the prefix on every subject a task uses (its calls,
//! its durable events, its progress and heartbeat hints), so NATS permissions can be given per tenant.

use agentflow_shared::ids::{Seq, TaskId, TenantId};
use std::fmt;

/// The subject of one LLM call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallSubject {
    /// The task's tenant (a task created before tenancy is its worker's `auth.default_tenant`).
    pub tenant: TenantId,
    /// The task.
    pub task: TaskId,
    /// Seq of the call's first event.
    pub seq_base: Seq,
}

impl CallSubject {
    /// The subject's name under `prefix`.
    pub fn name(&self, prefix: &str) -> String {
        format!("{prefix}.{}.{}.{}", self.tenant, self.task, self.seq_base.0)
    }

    /// The call a subject under `prefix` names, if it names one.
    pub fn parse(prefix: &str, subject: &str) -> Option<Self> {
        let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
        let mut tokens = rest.split('.');
        let call = Self {
            tenant: tokens.next()?.parse().ok()?,
            task: tokens.next()?.parse().ok()?,
            seq_base: Seq(tokens.next()?.parse().ok()?),
        };
        tokens.next().is_none().then_some(call)
    }

    /// The filter matching every call of `task` under `prefix` (see [`tenant_token`]).
    pub fn task_filter(prefix: &str, tenant: Option<&TenantId>, task: TaskId) -> String {
        format!("{prefix}.{}.{task}.*", tenant_token(tenant))
    }
}

/// The tenant's token in a reader's subject or filter: the tenant, or `*` — any tenant — for a
/// reader that does not know the task's tenant (task ids are unique, so it matches one task).
pub(crate) fn tenant_token(tenant: Option<&TenantId>) -> &str {
    tenant.map_or("*", TenantId::as_str)
}

impl fmt::Display for CallSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.tenant, self.task, self.seq_base.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        name.parse().unwrap()
    }

    #[test]
    fn names_carry_the_tenant_after_the_prefix_and_parse_back() {
        let call = CallSubject {
            tenant: tenant("acme"),
            task: TaskId::new(),
            seq_base: Seq(42),
        };
        let name = call.name("agentflow.calls");
        assert_eq!(name, format!("agentflow.calls.acme.{}.42", call.task));
        assert_eq!(
            CallSubject::parse("agentflow.calls", &name),
            Some(call.clone())
        );
        assert_eq!(CallSubject::parse("other", &name), None);
        for other in [
            "agentflow.calls.x.1".to_owned(),
            format!("agentflow.calls.{}.42", call.task),
            format!("agentflow.calls.Acme.{}.42", call.task),
            format!("{name}.7"),
        ] {
            assert_eq!(
                CallSubject::parse("agentflow.calls", &other),
                None,
                "{other}"
            );
        }
        assert_eq!(
            CallSubject::task_filter("agentflow.calls", Some(&call.tenant), call.task),
            format!("agentflow.calls.acme.{}.*", call.task)
        );
        assert_eq!(
            CallSubject::task_filter("agentflow.calls", None, call.task),
            format!("agentflow.calls.*.{}.*", call.task)
        );
    }
}
