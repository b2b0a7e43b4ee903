//! Routing a message to a team's members by name mention: several named → a discussion
//! among them; one → that member alone; none → the forced mode, else the fallback (a router
//! model, or the default member). Every decision names its reason.

use super::mentions::mentions;
use serde::{Serialize, Serializer};

/// Why a turn went to whom it went to, as `WorkflowRouted.routing_reason` spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingReason {
    /// One member was named: `explicit_mention_<name>` (the name folded to lower case).
    ExplicitMention(String),
    /// Several members were named: a discussion among them.
    BothAgentsMentioned,
    /// The request forced a mode: `forced_mode_<mode>`.
    ForcedMode(String),
    /// No one was named and nothing forced: the fallback picked.
    IntentClassifierAuto,
    /// A conversation's follow-up named no one: the member who spoke last answers.
    FollowUpLastSpeaker,
    /// A sequence team: every member in its order.
    Sequence,
}

impl std::fmt::Display for RoutingReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ExplicitMention(name) => write!(f, "explicit_mention_{}", name.to_lowercase()),
            Self::BothAgentsMentioned => f.write_str("both_agents_mentioned"),
            Self::ForcedMode(mode) => write!(f, "forced_mode_{mode}"),
            Self::IntentClassifierAuto => f.write_str("intent_classifier_auto"),
            Self::FollowUpLastSpeaker => f.write_str("follow_up_last_speaker"),
            Self::Sequence => f.write_str("sequence"),
        }
    }
}

impl Serialize for RoutingReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A member as routing sees it: its name and aliases.
#[derive(Debug, Clone, Copy)]
pub struct Addressee<'a> {
    /// The member's name (`Plume`).
    pub name: &'a str,
    /// Other names it answers to.
    pub aliases: &'a [String],
}

impl Addressee<'_> {
    /// Whether `text` names this member (by name or alias, as [`mentions`] reads it).
    pub fn named_in(&self, text: &str) -> bool {
        let mut names: Vec<&str> = vec![self.name];
        names.extend(self.aliases.iter().map(String::as_str));
        mentions(text, &names)
    }
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// These members (by index), in this order: one speaks alone, several discuss.
    Members(Vec<usize>),
    /// No one was named and nothing forced: ask the fallback.
    Fallback,
}

/// A forced mode (`task_parameters.mode`): a discussion among all members, or one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForcedMode {
    /// Every member discusses.
    Discussion,
    /// This member (by index) alone.
    Member(usize),
}

/// Routes `text` among `members`: mentions first, then `forced`, then the fallback.
pub fn route(
    text: &str,
    members: &[Addressee<'_>],
    forced: Option<&ForcedMode>,
) -> (Route, RoutingReason) {
    let named: Vec<usize> = members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.named_in(text))
        .map(|(i, _)| i)
        .collect();
    match (named.as_slice(), forced) {
        ([one], _) => (
            Route::Members(vec![*one]),
            RoutingReason::ExplicitMention(super::mentions::fold(members[*one].name)),
        ),
        ([_, _, ..], _) => (Route::Members(named), RoutingReason::BothAgentsMentioned),
        ([], Some(ForcedMode::Discussion)) => (
            Route::Members((0..members.len()).collect()),
            RoutingReason::ForcedMode("discussion".into()),
        ),
        ([], Some(ForcedMode::Member(member))) => (
            Route::Members(vec![*member]),
            RoutingReason::ForcedMode(super::mentions::fold(members[*member].name)),
        ),
        ([], None) => (Route::Fallback, RoutingReason::IntentClassifierAuto),
    }
}

/// The member a router model's answer names (its first line, as a name or alias); `None`
/// for anything else (the caller then takes the default member).
pub fn router_choice(answer: &str, members: &[Addressee<'_>]) -> Option<usize> {
    let first = answer.lines().map(str::trim).find(|l| !l.is_empty())?;
    let matching: Vec<usize> = members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.named_in(first))
        .map(|(i, _)| i)
        .collect();
    match matching.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duo() -> Vec<Addressee<'static>> {
        static MIMIR: [String; 0] = [];
        vec![
            Addressee {
                name: "Plume",
                aliases: &[],
            },
            Addressee {
                name: "Mimir",
                aliases: &MIMIR,
            },
        ]
    }

    #[test]
    fn the_four_cases_of_the_duo_and_their_reasons() {
        let members = duo();
        let (route_one, reason) = route("Plume, a haiku please", &members, None);
        assert_eq!(route_one, Route::Members(vec![0]));
        assert_eq!(reason.to_string(), "explicit_mention_plume");
        let (route_two, reason) = route("Mímir: when was it built?", &members, None);
        assert_eq!(route_two, Route::Members(vec![1]));
        assert_eq!(reason.to_string(), "explicit_mention_mimir");
        let (both, reason) = route("Mimir and Plume, discuss", &members, None);
        assert_eq!(both, Route::Members(vec![0, 1]));
        assert_eq!(reason.to_string(), "both_agents_mentioned");
        let (none, reason) = route("hello there", &members, None);
        assert_eq!(none, Route::Fallback);
        assert_eq!(reason.to_string(), "intent_classifier_auto");
    }

    #[test]
    fn a_mention_wins_over_a_forced_mode_which_wins_over_the_fallback() {
        let members = duo();
        let forced = ForcedMode::Discussion;
        let (route_one, _) = route("Plume, go", &members, Some(&forced));
        assert_eq!(route_one, Route::Members(vec![0]));
        let (all, reason) = route("hello", &members, Some(&forced));
        assert_eq!(all, Route::Members(vec![0, 1]));
        assert_eq!(reason.to_string(), "forced_mode_discussion");
        let (mimir, reason) = route("hello", &members, Some(&ForcedMode::Member(1)));
        assert_eq!(mimir, Route::Members(vec![1]));
        assert_eq!(reason.to_string(), "forced_mode_mimir");
    }

    #[test]
    fn a_router_answer_must_name_exactly_one_member() {
        let members = duo();
        assert_eq!(
            router_choice("Mimir\nbecause it is a fact", &members),
            Some(1)
        );
        assert_eq!(router_choice("  plume ", &members), Some(0));
        assert_eq!(router_choice("Plume or Mimir", &members), None);
        assert_eq!(router_choice("nobody", &members), None);
        assert_eq!(router_choice("", &members), None);
    }
}
