//! The data of a team task's own events. The member speaking is `data.speaker` (the event's
//! [`speaker`](crate::event::Event::speaker)), as on its LLM, tool and approval events.

use serde::{Deserialize, Serialize};

/// Data of `WorkflowRouted`: who answers the message, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Routed {
    /// The members who speak, in order (one alone, several in a discussion or sequence).
    pub speakers: Vec<String>,
    /// Why: `explicit_mention_<name>`, `both_agents_mentioned`, `forced_mode_<mode>`,
    /// `intent_classifier_auto`, `follow_up_last_speaker` or `sequence`.
    pub routing_reason: String,
}

/// Data of `WorkflowMemberTurnStarted` (the member is `data.speaker`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberTurnStarted {
    /// The member turn within the task's turn, from 1.
    pub round: u32,
}

/// Data of `WorkflowMemberMessage`: what a member said (the member is `data.speaker`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberMessage {
    /// Whom it is addressed to: the members it names, else its audience (`user`, the next
    /// member, the other speakers).
    pub to: Vec<String>,
    /// The message.
    pub content: String,
    /// The member turn within the task's turn, from 1.
    pub round: u32,
    /// What this turn of the member cost, USD.
    pub cost_usd: f64,
    /// What the member has cost in the task so far, USD.
    pub member_cost_usd: f64,
}

/// Data of `WorkflowMemberBudgetExhausted`: a member spent its share of the team's budget and
/// stops speaking (the member is `data.speaker`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberBudgetExhausted {
    /// What the member has cost, USD.
    pub member_cost_usd: f64,
    /// Its share of the team's budget, USD.
    pub share_usd: f64,
}

/// Why a discussion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscussionEnd {
    /// `discussion.max_rounds` member turns were taken.
    MaxRounds,
    /// A member said `discussion.stop_phrase`.
    StopPhrase,
    /// The discussion cost `discussion.max_cost_usd`.
    CostCap,
    /// No speaker has budget left.
    NoBudget,
}

impl From<super::discussion::Ended> for DiscussionEnd {
    fn from(ended: super::discussion::Ended) -> Self {
        use super::discussion::Ended;
        match ended {
            Ended::MaxRounds => Self::MaxRounds,
            Ended::StopPhrase => Self::StopPhrase,
            Ended::CostCap => Self::CostCap,
            Ended::NoBudget => Self::NoBudget,
        }
    }
}

/// Data of `WorkflowDiscussionEnded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiscussionEnded {
    /// Why it ended.
    pub reason: DiscussionEnd,
    /// Member turns taken.
    pub rounds: u32,
    /// What the discussion cost, USD.
    pub cost_usd: f64,
}
