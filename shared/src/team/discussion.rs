//! A discussion's turn-taking as a small state machine: who speaks next (in turn, or the
//! member the last message names) and when it ends (max rounds, a stop phrase, a cost cap, or
//! no member left with budget) — deterministic, so the workflow can replay it.

use super::routing::Addressee;
use super::{DiscussionConfig, SpeakerSelection};

/// Why a discussion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `max_rounds` member turns were taken.
    MaxRounds,
    /// A member said the stop phrase.
    StopPhrase,
    /// The discussion cost `max_cost_usd`.
    CostCap,
    /// No speaker has budget left.
    NoBudget,
}

/// Where a discussion stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Discussion {
    /// The speakers taking part (member indexes), in turn order.
    speakers: Vec<usize>,
    /// Member turns taken.
    rounds: u32,
    /// Index into `speakers` of the last speaker.
    last: Option<usize>,
    /// Cost so far, USD.
    cost_usd: f64,
}

impl Discussion {
    /// A discussion among `speakers` (member indexes, in turn order).
    pub fn new(speakers: Vec<usize>) -> Self {
        Self {
            speakers,
            rounds: 0,
            last: None,
            cost_usd: 0.0,
        }
    }

    /// Member turns taken so far.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    /// Records a turn of `member` that said `message` and cost `cost_usd`; says whether the
    /// discussion ends with it.
    pub fn spoke(
        &mut self,
        member: usize,
        message: &str,
        cost_usd: f64,
        settings: &DiscussionConfig,
    ) -> Option<Ended> {
        self.rounds += 1;
        self.cost_usd += cost_usd;
        self.last = self.speakers.iter().position(|s| *s == member);
        if let Some(phrase) = &settings.stop_phrase
            && message.contains(phrase.as_str())
        {
            return Some(Ended::StopPhrase);
        }
        if settings
            .max_cost_usd
            .is_some_and(|cap| self.cost_usd >= cap)
        {
            return Some(Ended::CostCap);
        }
        (self.rounds >= settings.max_rounds).then_some(Ended::MaxRounds)
    }

    /// Who speaks next, after `last_message`: the next in turn, or (with
    /// [`SpeakerSelection::Named`]) the one other speaker the message names; never a member
    /// `can_speak` refuses (its budget share is spent). `Err` when no one can.
    pub fn next(
        &self,
        last_message: &str,
        members: &[Addressee<'_>],
        settings: &DiscussionConfig,
        can_speak: impl Fn(usize) -> bool,
    ) -> Result<usize, Ended> {
        let count = self.speakers.len();
        let start = self.last.map_or(0, |last| (last + 1) % count);
        if settings.speaker_selection == SpeakerSelection::Named
            && let Some(last) = self.last
        {
            let named: Vec<usize> = self
                .speakers
                .iter()
                .enumerate()
                .filter(|(i, member)| *i != last && members[**member].named_in(last_message))
                .map(|(_, member)| *member)
                .collect();
            if let [one] = named.as_slice()
                && can_speak(*one)
            {
                return Ok(*one);
            }
        }
        (0..count)
            .map(|offset| self.speakers[(start + offset) % count])
            .find(|member| can_speak(*member))
            .ok_or(Ended::NoBudget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<Addressee<'static>> {
        ["Plume", "Mimir", "Critic"]
            .into_iter()
            .map(|name| Addressee { name, aliases: &[] })
            .collect()
    }

    #[test]
    fn speakers_take_turns_and_the_discussion_ends_at_max_rounds() {
        let settings = DiscussionConfig {
            max_rounds: 3,
            ..Default::default()
        };
        let mut discussion = Discussion::new(vec![0, 1]);
        let members = members();
        let mut spoken = Vec::new();
        let mut ended = None;
        while ended.is_none() {
            let next = discussion.next("", &members, &settings, |_| true).unwrap();
            spoken.push(next);
            ended = discussion.spoke(next, "...", 0.01, &settings);
        }
        assert_eq!(spoken, vec![0, 1, 0], "alternating");
        assert_eq!(ended, Some(Ended::MaxRounds));
    }

    #[test]
    fn a_stop_phrase_or_the_cost_cap_ends_it_early() {
        let settings = DiscussionConfig {
            max_rounds: 10,
            stop_phrase: Some("AGREED".into()),
            max_cost_usd: Some(0.05),
            ..Default::default()
        };
        let mut discussion = Discussion::new(vec![0, 1]);
        assert_eq!(discussion.spoke(0, "I think so", 0.01, &settings), None);
        assert_eq!(
            discussion.spoke(1, "AGREED, then", 0.01, &settings),
            Some(Ended::StopPhrase)
        );
        let mut costly = Discussion::new(vec![0, 1]);
        assert_eq!(costly.spoke(0, "a", 0.03, &settings), None);
        assert_eq!(costly.spoke(1, "b", 0.03, &settings), Some(Ended::CostCap));
    }

    #[test]
    fn the_named_member_speaks_next_and_a_spent_member_is_skipped() {
        let settings = DiscussionConfig {
            speaker_selection: SpeakerSelection::Named,
            ..Default::default()
        };
        let members = members();
        let mut discussion = Discussion::new(vec![0, 1, 2]);
        discussion.spoke(0, "Critic, what do you think?", 0.0, &settings);
        let next = discussion
            .next("Critic, what do you think?", &members, &settings, |_| true)
            .unwrap();
        assert_eq!(next, 2, "named, not the next in turn");
        let next = discussion
            .next("no one named", &members, &settings, |_| true)
            .unwrap();
        assert_eq!(next, 1, "else the next in turn");
        let next = discussion
            .next("no one named", &members, &settings, |m| m != 1)
            .unwrap();
        assert_eq!(next, 2, "a member without budget is skipped");
        assert_eq!(
            discussion.next("", &members, &settings, |_| false),
            Err(Ended::NoBudget)
        );
    }
}
