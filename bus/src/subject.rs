//! Subjects: one per LLM call, `<prefix>.<task>.<seq_base>`, so that a task's calls are
//! `<prefix>.<task>.*` and a call's first seq names it.

use agentflow_shared::ids::{Seq, TaskId};
use std::fmt;

/// The subject of one LLM call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallSubject {
    /// The task.
    pub task: TaskId,
    /// Seq of the call's first event.
    pub seq_base: Seq,
}

impl CallSubject {
    /// The subject's name under `prefix`.
    pub fn name(&self, prefix: &str) -> String {
        format!("{prefix}.{}.{}", self.task, self.seq_base.0)
    }

    /// The call a subject under `prefix` names, if it names one.
    pub fn parse(prefix: &str, subject: &str) -> Option<Self> {
        let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
        let (task, seq_base) = rest.split_once('.')?;
        Some(Self {
            task: task.parse().ok()?,
            seq_base: Seq(seq_base.parse().ok()?),
        })
    }

    /// The filter matching every call of `task` under `prefix`.
    pub fn task_filter(prefix: &str, task: TaskId) -> String {
        format!("{prefix}.{task}.*")
    }
}

impl fmt::Display for CallSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.task, self.seq_base.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_other_subjects_do_not() {
        let call = CallSubject {
            task: TaskId::new(),
            seq_base: Seq(42),
        };
        let name = call.name("agentflow.calls");
        assert_eq!(CallSubject::parse("agentflow.calls", &name), Some(call));
        assert_eq!(CallSubject::parse("other", &name), None);
        assert_eq!(
            CallSubject::parse("agentflow.calls", "agentflow.calls.x.1"),
            None
        );
        assert_eq!(
            CallSubject::task_filter("agentflow.calls", call.task),
            format!("agentflow.calls.{}.*", call.task)
        );
    }
}
