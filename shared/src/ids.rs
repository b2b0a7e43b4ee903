//! Identifier newtypes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The id of one task; the workflow id is derived from it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct TaskId(pub Uuid);

impl TaskId {
    /// A fresh random task id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// The Temporal workflow id of this task: `agent-task-{task_id}`.
    pub fn workflow_id(&self) -> String {
        format!("{WORKFLOW_ID_PREFIX}{}", self.0)
    }

    /// Parses a workflow id of the form `agent-task-{uuid}` back into a task id.
    pub fn from_workflow_id(workflow_id: &str) -> Option<Self> {
        workflow_id
            .strip_prefix(WORKFLOW_ID_PREFIX)
            .and_then(|rest| rest.parse().ok())
    }
}

/// The prefix of every task's workflow id.
pub const WORKFLOW_ID_PREFIX: &str = "agent-task-";

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// The id of an agent as configured in `agentflow.toml` (e.g. `assistant`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct AgentId(pub String);

impl AgentId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for AgentId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// A tenant: every task belongs to one, and a key sees only its tenant's tasks. 1 to 64 of
/// `a-z`, `0-9`, `_` and `-` (it is a search attribute value and part of bus subjects).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let valid = (1..=64).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if valid {
            Ok(Self(value))
        } else {
            Err(format!(
                "tenant `{value}`: use 1 to 64 of a-z, 0-9, `_` and `-`"
            ))
        }
    }
}

impl FromStr for TenantId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::try_from(s.to_owned())
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> Self {
        id.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public id of an API key (the part of the key before its secret), e.g. `k7f3a9c21`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Position of an event in a task's log: dense, starting at 1.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The seq of a log's first event.
    pub fn first() -> Self {
        Self(1)
    }

    /// The seq that follows this one.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }

    /// The seq before this one (`0`, "before the log", for the first).
    pub fn prev(self) -> Self {
        Self(self.0.saturating_sub(1))
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_id_round_trips() {
        let id = TaskId::new();
        assert!(id.workflow_id().starts_with("agent-task-"));
        assert_eq!(TaskId::from_workflow_id(&id.workflow_id()), Some(id));
        assert_eq!(TaskId::from_workflow_id("other-123"), None);
    }

    #[test]
    fn tenant_ids_are_narrow() {
        assert!("acme-1_x".parse::<TenantId>().is_ok());
        for bad in ["", "Acme", "a.b", "a b", "a*", &"a".repeat(65)] {
            assert!(bad.parse::<TenantId>().is_err(), "{bad:?}");
        }
    }
}
