//! A team task's own state: who is speaking, the discussion so far, what each member has cost,
//! and the messages a member's model sees of it.

use agentflow_shared::llm::{ChatMessage, Role};
use agentflow_shared::task::{TeamMessage, TeamSnapshot, USER_SPEAKER, trim_messages};

/// What a member reads first when the discussion it sees starts with its own message.
const EARLIER: &str = "(The start of the discussion was dropped to keep it short.)";

/// What a member reads when it speaks again right after itself.
const AGAIN: &str = "It is your turn again.";

/// Who is speaking in a team task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Speaker {
    /// A member, by index.
    Member(usize),
    /// The router picking a member.
    Router,
}

/// A team task's discussion and speakers (empty for an agent's task).
#[derive(Debug, Default)]
pub(super) struct TeamState {
    speaker: Option<Speaker>,
    messages: Vec<TeamMessage>,
    last_speaker: Option<usize>,
    member_costs: Vec<f64>,
    /// Members told their budget share is spent, this turn.
    silenced: Vec<usize>,
}

impl TeamState {
    /// The state a previous run carried over.
    pub(super) fn carried(
        messages: Vec<TeamMessage>,
        last_speaker: Option<usize>,
        member_costs: Vec<f64>,
    ) -> Self {
        Self {
            messages,
            last_speaker,
            member_costs,
            ..Self::default()
        }
    }

    /// Who is speaking now.
    pub(super) fn speaker(&self) -> Option<Speaker> {
        self.speaker
    }

    /// Sets who speaks (`None`: the team itself, between turns).
    pub(super) fn set_speaker(&mut self, speaker: Option<Speaker>) {
        self.speaker = speaker;
    }

    /// The discussion so far.
    pub(super) fn messages(&self) -> &[TeamMessage] {
        &self.messages
    }

    /// The member who spoke last.
    pub(super) fn last_speaker(&self) -> Option<usize> {
        self.last_speaker
    }

    /// What each member has cost, USD.
    pub(super) fn member_costs(&self) -> &[f64] {
        &self.member_costs
    }

    /// What `member` has cost, USD.
    pub(super) fn member_cost(&self, member: usize) -> f64 {
        self.member_costs.get(member).copied().unwrap_or(0.0)
    }

    /// Adds `cost_usd` to what `member` has cost.
    pub(super) fn charge(&mut self, member: usize, cost_usd: f64) {
        if self.member_costs.len() <= member {
            self.member_costs.resize(member + 1, 0.0);
        }
        self.member_costs[member] += cost_usd;
    }

    /// Records a message, keeping the discussion within half of `limit` bytes (oldest
    /// dropped), so a member's view of it — with instructions and name prefixes — stays
    /// within the conversation bound `limit`.
    pub(super) fn say(&mut self, message: TeamMessage, member: Option<usize>, limit: usize) {
        self.messages.push(message);
        trim_messages(&mut self.messages, limit / 2);
        if member.is_some() {
            self.last_speaker = member;
        }
    }

    /// Replaces the text of the member message of `turn` and `round` (a person's edit at a
    /// checkpoint; the edit itself is in the log's `WorkflowApprovalReceived`).
    pub(super) fn edit(&mut self, turn: u32, round: u32, content: String) {
        if let Some(message) = self
            .messages
            .iter_mut()
            .rev()
            .find(|m| m.turn == turn && m.round == round && m.speaker != USER_SPEAKER)
        {
            message.content = content;
        }
    }

    /// Marks `member` as told its share is spent; `false` when it was already.
    pub(super) fn silence(&mut self, member: usize) -> bool {
        if self.silenced.contains(&member) {
            return false;
        }
        self.silenced.push(member);
        true
    }

    /// Forgets the members silenced in the last turn (a new turn may raise the budget).
    pub(super) fn new_turn(&mut self) {
        self.silenced.clear();
    }

    /// The messages `member`'s model sees: its instructions with a word on the team, then the
    /// discussion — its own messages as the assistant's, everyone else's as the user's
    /// (members' prefixed with their name), consecutive ones merged — and `extra` last.
    pub(super) fn member_view(
        &self,
        team: &TeamSnapshot,
        member: usize,
        extra: Option<&str>,
    ) -> Vec<ChatMessage> {
        let me = &team.team.members[member].name;
        let others: Vec<&str> = team
            .team
            .members
            .iter()
            .filter(|m| &m.name != me)
            .map(|m| m.name.as_str())
            .collect();
        let mut system = team.members[member].agent.instructions.clone();
        if !system.is_empty() {
            system.push_str("\n\n");
        }
        system.push_str(&format!(
            "You are {me}, in the team \"{}\" with {}. The others' messages come prefixed \
             with their name.",
            team.team.name,
            others.join(", ")
        ));
        let mut view = vec![ChatMessage::text(Role::System, system)];
        let mut push = |role: Role, text: String| match view.last_mut() {
            Some(last) if last.role == role && role == Role::User => {
                let merged = format!("{}\n\n{text}", last.content.as_deref().unwrap_or(""));
                last.content = Some(merged);
            }
            _ => view.push(ChatMessage::text(role, text)),
        };
        for message in &self.messages {
            if &message.speaker == me {
                push(Role::Assistant, message.content.clone());
            } else if message.speaker == USER_SPEAKER {
                push(Role::User, message.content.clone());
            } else {
                push(
                    Role::User,
                    format!("{}: {}", message.speaker, message.content),
                );
            }
        }
        if let Some(extra) = extra {
            push(Role::User, extra.to_owned());
        }
        // Every vendor wants the user first and last: a view that trimming left starting with
        // the member's own message, or that ends with it (it speaks twice in a row), gets a
        // word from the user.
        if view.get(1).is_some_and(|m| m.role == Role::Assistant) {
            view.insert(1, ChatMessage::text(Role::User, EARLIER.to_owned()));
        }
        if view.last().is_some_and(|m| m.role == Role::Assistant) {
            view.push(ChatMessage::text(Role::User, AGAIN.to_owned()));
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentflow_client::tasks::{NewTask, task_input};
    use agentflow_shared::config::AgentflowConfig;

    fn scribe() -> TeamSnapshot {
        let config = AgentflowConfig::default_config();
        let input = task_input(&config, &"scribe".into(), NewTask::default()).expect("a team");
        *input.team.expect("scribe is a team")
    }

    fn message(speaker: &str, content: &str) -> TeamMessage {
        TeamMessage {
            speaker: speaker.into(),
            to: Vec::new(),
            content: content.into(),
            round: 0,
            turn: 1,
        }
    }

    #[test]
    fn a_member_sees_its_own_messages_as_the_assistant_and_the_others_named() {
        let team = scribe();
        let mut state = TeamState::default();
        state.say(
            message(USER_SPEAKER, "Plume and Mimir, discuss"),
            None,
            1 << 20,
        );
        state.say(
            message("Plume", "Mimir, what do you know?"),
            Some(0),
            1 << 20,
        );
        state.say(message("Mimir", "Much, Plume."), Some(1), 1 << 20);
        let view = state.member_view(&team, 0, Some("Summarise."));
        let roles: Vec<Role> = view.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            vec![Role::System, Role::User, Role::Assistant, Role::User]
        );
        assert!(
            view[0]
                .content
                .as_deref()
                .unwrap()
                .contains("You are Plume")
        );
        assert_eq!(
            view[3].content.as_deref(),
            Some("Mimir: Much, Plume.\n\nSummarise."),
            "consecutive user messages merged"
        );
        assert_eq!(state.last_speaker(), Some(1));
        let again = state.member_view(&team, 1, None);
        assert_eq!(again.last().unwrap().content.as_deref(), Some(AGAIN));
    }

    #[test]
    fn costs_add_up_per_member_and_a_member_is_silenced_once_a_turn() {
        let mut state = TeamState::default();
        state.charge(1, 0.25);
        state.charge(1, 0.25);
        assert_eq!(state.member_cost(1), 0.5);
        assert_eq!(state.member_cost(0), 0.0);
        assert!(state.silence(1));
        assert!(!state.silence(1));
        state.new_turn();
        assert!(state.silence(1));
    }
}
