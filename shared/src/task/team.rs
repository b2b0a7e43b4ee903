//! A team's task: the team and its members as they were at creation, and the messages of its
//! discussion so far.

use super::AgentSnapshot;
use crate::team::TeamConfig;
use serde::{Deserialize, Serialize};

/// The team a task runs, copied at creation like an agent's snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TeamSnapshot {
    /// The team's config.
    pub team: TeamConfig,
    /// Each member's agent, in the team's member order (model and tools resolved).
    pub members: Vec<AgentSnapshot>,
    /// The router's model and instructions, when the team routes with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<AgentSnapshot>,
}

/// Who says a message of a team's discussion.
pub const USER_SPEAKER: &str = "user";

/// The speaker name of the router's own call.
pub const ROUTER_SPEAKER: &str = "router";

/// One message of a team's discussion: the user's query, or a member's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TeamMessage {
    /// `user`, or the member's name.
    pub speaker: String,
    /// Whom it is addressed to: the members it names, else its audience (`user`, the next
    /// member, the other speakers).
    pub to: Vec<String>,
    /// What was said.
    pub content: String,
    /// The member turn within the task's turn, from 1 (0 for the user's query).
    pub round: u32,
    /// The task's turn (conversations), from 1.
    pub turn: u32,
}

impl TeamMessage {
    /// The JSON size of the message.
    pub fn bytes(&self) -> usize {
        serde_json::to_vec(self).map_or(0, |b| b.len())
    }
}

/// Drops the oldest messages until the rest fit in `limit` bytes (the last always stays).
pub fn trim_messages(messages: &mut Vec<TeamMessage>, limit: usize) {
    let mut total: usize = messages.iter().map(TeamMessage::bytes).sum();
    let mut cut = 0;
    while total > limit && cut + 1 < messages.len() {
        total -= messages[cut].bytes();
        cut += 1;
    }
    messages.drain(..cut);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(content: &str) -> TeamMessage {
        TeamMessage {
            speaker: "Plume".into(),
            to: vec!["Mimir".into()],
            content: content.into(),
            round: 1,
            turn: 1,
        }
    }

    #[test]
    fn trimming_drops_the_oldest_and_keeps_the_last() {
        let mut messages = vec![message("a"), message("b"), message(&"c".repeat(500))];
        let one = messages[0].bytes();
        trim_messages(&mut messages, one);
        assert_eq!(
            messages.len(),
            1,
            "the last one stays, even alone past the limit"
        );
        assert!(messages[0].content.starts_with('c'));
        let mut short = vec![message("a"), message("b")];
        trim_messages(&mut short, 10 * one);
        assert_eq!(short.len(), 2);
    }
}
