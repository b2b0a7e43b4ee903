//! Teams of agents under `[teams.<id>]`: their members, how a message is routed among them
//! (by name mention with a fallback, or in sequence with an optional loop back), how a
//! discussion runs and ends — and the checks that refuse a team that could not run or could
//! run unbounded.
//!
//! - [`mentions`]: who a message names (whole words, any case or accent, possessives, never
//!   in quotes or code).
//! - [`routing`]: where a message goes, and why.
//! - [`discussion`]: who speaks next and when a discussion ends.
//! - [`events`]: the data of a team task's own events.

pub mod discussion;
pub mod events;
pub mod mentions;
pub mod routing;

use routing::{Addressee, ForcedMode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The most members a team has (each member's agent is copied into the task's input).
pub const MAX_MEMBERS: usize = 16;

/// The most member turns a discussion may take (`discussion.max_rounds`).
pub const MAX_ROUNDS: u32 = 64;

/// The most times a sequence's work may go back (`loop_back.max`).
pub const MAX_LOOP_BACKS: u32 = 16;

/// Names no member or alias may have (folded): the user's, the router's, the forced mode's.
const RESERVED_NAMES: [&str; 3] = ["user", "router", "discussion"];

/// The forced mode (`task_parameters.mode`) that makes every member discuss.
pub const FORCED_DISCUSSION: &str = "discussion";

/// The `tool_name` of a checkpoint's approval: a person approves, edits or rejects what a
/// sequence produced before a member goes on.
pub const CHECKPOINT_TOOL: &str = "checkpoint";

/// The prefix of a checkpoint's approval id (`checkpoint-<turn>-<n>`; a tool call's is
/// `s<step>c<n>`).
pub const CHECKPOINT_ID_PREFIX: &str = "checkpoint-";

/// The JSON Schema an approver's edit of a checkpoint must fit: `{"text": "…"}`.
pub fn checkpoint_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": false
    })
}

/// A team, addressed like an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// Display name.
    pub name: String,
    /// What the team does.
    #[serde(default)]
    pub description: String,
    /// The members, each an agent under `[agents]`.
    pub members: Vec<MemberConfig>,
    /// How a message finds its speakers.
    pub routing: RoutingConfig,
    /// How a discussion runs and ends.
    #[serde(default)]
    pub discussion: DiscussionConfig,
    /// The budget of the whole team per task, USD.
    pub budget_usd: f64,
    /// In a conversation, a follow-up that names no one goes to the member who spoke last
    /// (`false`: to the fallback, like a first message).
    #[serde(default = "default_true")]
    pub follow_up_to_last_speaker: bool,
}

fn default_true() -> bool {
    true
}

/// A member of a team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// The agent (with its own model, instructions and tools).
    pub agent: String,
    /// The name people and other members call it by (`Plume`).
    pub name: String,
    /// Other names it answers to.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Its share of the team's budget (0 < share ≤ 1); past it, it stops speaking.
    #[serde(default)]
    pub budget_share: Option<f64>,
}

/// How a message finds its speakers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoutingConfig {
    /// By name mention; when no one is named, the fallback decides.
    Mention {
        /// A member's name: it answers what names no one.
        #[serde(default)]
        default_member: Option<String>,
        /// A model that picks the member (answering with its name); an unknown answer goes
        /// to `default_member`.
        #[serde(default)]
        router_model: Option<String>,
        /// The router's instructions.
        #[serde(default)]
        router_instructions: Option<String>,
    },
    /// In order, each member working on what the previous produced.
    Sequence {
        /// The members' names, in order.
        order: Vec<String>,
        /// The critic's loop back to an earlier member, bounded.
        #[serde(default)]
        loop_back: Option<LoopBack>,
        /// Members before whom the run waits for a person (approve, edit or reject).
        #[serde(default)]
        checkpoints_before: Vec<String>,
    },
}

/// A bounded loop back in a sequence: `from` sends the work back to `to` until its message
/// holds `approval_phrase`, at most `max` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoopBack {
    /// The member that judges (the critic).
    pub from: String,
    /// The member the work goes back to (the writer).
    pub to: String,
    /// The phrase that approves the work.
    pub approval_phrase: String,
    /// The most times the work goes back.
    pub max: u32,
}

/// Who speaks next in a discussion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpeakerSelection {
    /// The members in turn.
    #[default]
    RoundRobin,
    /// The member the last message names (else the next in turn).
    Named,
}

/// How a discussion's answer is made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinalAnswer {
    /// The last message.
    #[default]
    LastMessage,
    /// This member summarises the discussion.
    SummaryBy(String),
}

/// How a discussion runs and ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscussionConfig {
    /// Who speaks next.
    #[serde(default)]
    pub speaker_selection: SpeakerSelection,
    /// The most member turns (≥ 1): a discussion never runs unbounded.
    #[serde(default = "default_max_rounds")]
    pub max_rounds: u32,
    /// A phrase that ends the discussion when a member says it.
    #[serde(default)]
    pub stop_phrase: Option<String>,
    /// The discussion ends once it has cost this much, USD.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// How the answer is made.
    #[serde(default)]
    pub final_answer: FinalAnswer,
}

fn default_max_rounds() -> u32 {
    6
}

impl Default for DiscussionConfig {
    fn default() -> Self {
        Self {
            speaker_selection: SpeakerSelection::default(),
            max_rounds: default_max_rounds(),
            stop_phrase: None,
            max_cost_usd: None,
            final_answer: FinalAnswer::default(),
        }
    }
}

impl TeamConfig {
    /// The members as routing sees them (names and aliases), in member order.
    pub fn addressees(&self) -> Vec<Addressee<'_>> {
        self.members
            .iter()
            .map(|m| Addressee {
                name: &m.name,
                aliases: &m.aliases,
            })
            .collect()
    }

    /// The forced mode `mode` names: `discussion`, or a member (by name or alias).
    pub fn forced_mode(&self, mode: &str) -> Option<ForcedMode> {
        if mode == FORCED_DISCUSSION {
            return Some(ForcedMode::Discussion);
        }
        self.member(mode).map(ForcedMode::Member)
    }

    /// The most a member may spend, USD: its share of the team's budget `budget_usd`.
    pub fn member_budget(&self, member: usize, budget_usd: f64) -> Option<f64> {
        self.members[member]
            .budget_share
            .map(|share| share * budget_usd)
    }

    /// The member called `name` (or by that alias), by index.
    pub fn member(&self, name: &str) -> Option<usize> {
        let name = mentions::fold(name);
        self.members.iter().position(|m| {
            mentions::fold(&m.name) == name || m.aliases.iter().any(|a| mentions::fold(a) == name)
        })
    }

    /// Checks team `id` against the config's `agents` and `models`: members exist, names
    /// and aliases are unique (folded), every reference names a member, loops and
    /// discussions are bounded, shares and budgets are sane.
    pub fn validate(
        &self,
        id: &str,
        agents: &BTreeSet<&str>,
        models: &BTreeSet<&str>,
    ) -> Result<(), String> {
        let fail = |problem: String| Err(format!("team `{id}`: {problem}"));
        if agents.contains(id) {
            return fail("an agent has this id too; a team is addressed like an agent".into());
        }
        if self.members.is_empty() {
            return fail("it has no members".into());
        }
        if self.members.len() > MAX_MEMBERS {
            return fail(format!(
                "it has {} members, at most {MAX_MEMBERS} are allowed",
                self.members.len()
            ));
        }
        let mut names = BTreeMap::new();
        for member in &self.members {
            if !agents.contains(member.agent.as_str()) {
                return fail(format!(
                    "member `{}` is agent `{}`, which is not under [agents]",
                    member.name, member.agent
                ));
            }
            for name in std::iter::once(&member.name).chain(&member.aliases) {
                let folded = mentions::fold(name);
                if folded.trim().is_empty() {
                    return fail("a member has an empty name or alias".into());
                }
                if RESERVED_NAMES.contains(&folded.trim()) {
                    return fail(format!(
                        "`{name}` is reserved (user, router and discussion name the user, the \
                         router and the forced discussion)"
                    ));
                }
                if let Some(other) = names.insert(folded, member.name.clone()) {
                    return fail(format!(
                        "`{name}` names both `{other}` and `{}`",
                        member.name
                    ));
                }
            }
            if member
                .budget_share
                .is_some_and(|share| share <= 0.0 || share > 1.0 || share.is_nan())
            {
                return fail(format!(
                    "member `{}`: budget_share must be in (0, 1]",
                    member.name
                ));
            }
        }
        let known = |name: &str, what: &str| match self.member(name) {
            Some(_) => Ok(()),
            None => Err(format!("team `{id}`: {what} `{name}` is not a member")),
        };
        match &self.routing {
            RoutingConfig::Mention {
                default_member,
                router_model,
                ..
            } => {
                if let Some(member) = default_member {
                    known(member, "default_member")?;
                }
                if let Some(model) = router_model
                    && !models.contains(model.as_str())
                {
                    return fail(format!("router_model `{model}` is not under [models]"));
                }
                if default_member.is_none() && router_model.is_none() {
                    return fail(
                        "mention routing needs a default_member or a router_model for a \
                         message that names no one"
                            .into(),
                    );
                }
            }
            RoutingConfig::Sequence {
                order,
                loop_back,
                checkpoints_before,
            } => {
                if order.is_empty() {
                    return fail("a sequence needs an order".into());
                }
                let mut positions = Vec::new();
                for name in order {
                    known(name, "order names")?;
                    let member = self.member(name);
                    if positions.contains(&member) {
                        return fail(format!("order names `{name}` twice"));
                    }
                    positions.push(member);
                }
                let position = |name: &str| positions.iter().position(|m| *m == self.member(name));
                for name in checkpoints_before {
                    known(name, "checkpoints_before names")?;
                    if position(name).is_none() {
                        return fail(format!("checkpoints_before names `{name}`, not in order"));
                    }
                }
                if let Some(back) = loop_back {
                    known(&back.from, "loop_back.from")?;
                    known(&back.to, "loop_back.to")?;
                    match (position(&back.to), position(&back.from)) {
                        (Some(to), Some(from)) if to < from => {}
                        _ => {
                            return fail(
                                "loop_back.to must come before loop_back.from in order".into(),
                            );
                        }
                    }
                    if back.max == 0 || back.max > MAX_LOOP_BACKS {
                        return fail(format!("loop_back.max must be in 1..={MAX_LOOP_BACKS}"));
                    }
                    if back.approval_phrase.trim().is_empty() {
                        return fail("loop_back needs an approval_phrase".into());
                    }
                }
                if matches!(self.discussion.final_answer, FinalAnswer::SummaryBy(_)) {
                    return fail(
                        "final_answer.summary_by is for discussions, not sequences".into(),
                    );
                }
            }
        }
        if self
            .discussion
            .stop_phrase
            .as_ref()
            .is_some_and(|phrase| phrase.trim().is_empty())
        {
            return fail("discussion.stop_phrase must not be blank".into());
        }
        if self
            .discussion
            .max_cost_usd
            .is_some_and(|cap| !cap.is_finite() || cap <= 0.0)
        {
            return fail("discussion.max_cost_usd must be a positive number".into());
        }
        if self.discussion.max_rounds == 0 || self.discussion.max_rounds > MAX_ROUNDS {
            return fail(format!("discussion.max_rounds must be in 1..={MAX_ROUNDS}"));
        }
        if let FinalAnswer::SummaryBy(member) = &self.discussion.final_answer {
            known(member, "final_answer.summary_by")?;
        }
        if !self.budget_usd.is_finite() || self.budget_usd <= 0.0 {
            return fail("budget_usd must be a positive number".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scribe() -> TeamConfig {
        serde_json::from_value(serde_json::json!({
            "name": "Scribe",
            "members": [
                {"agent": "plume", "name": "Plume"},
                {"agent": "mimir", "name": "Mimir", "aliases": ["Keeper"]}
            ],
            "routing": {"mode": "mention", "default_member": "Mimir"},
            "budget_usd": 1.0
        }))
        .expect("a team")
    }

    fn check(team: &TeamConfig) -> Result<(), String> {
        let agents = BTreeSet::from(["plume", "mimir", "critic"]);
        let models = BTreeSet::from(["scripted"]);
        team.validate("scribe", &agents, &models)
    }

    #[test]
    fn a_valid_duo_passes_and_members_are_found_by_name_or_alias() {
        let team = scribe();
        check(&team).unwrap();
        assert_eq!(team.member("mímir"), Some(1));
        assert_eq!(team.member("keeper"), Some(1));
        assert_eq!(team.member("nobody"), None);
        assert_eq!(team.discussion.max_rounds, 6, "bounded by default");
    }

    #[test]
    fn unknown_members_colliding_names_and_unbounded_loops_are_refused() {
        let mut unknown = scribe();
        unknown.members[0].agent = "ghost".into();
        assert!(check(&unknown).unwrap_err().contains("ghost"));

        let mut collide = scribe();
        collide.members[1].aliases = vec!["PLUME".into()];
        assert!(check(&collide).unwrap_err().contains("names both"));

        let mut pipeline = scribe();
        pipeline.routing = RoutingConfig::Sequence {
            order: vec!["Plume".into(), "Mimir".into()],
            loop_back: Some(LoopBack {
                from: "Mimir".into(),
                to: "Plume".into(),
                approval_phrase: "APPROVED".into(),
                max: 0,
            }),
            checkpoints_before: vec!["Mimir".into()],
        };
        assert!(check(&pipeline).unwrap_err().contains("max"));

        let mut no_fallback = scribe();
        no_fallback.routing = RoutingConfig::Mention {
            default_member: None,
            router_model: None,
            router_instructions: None,
        };
        assert!(check(&no_fallback).is_err());

        let mut zero_rounds = scribe();
        zero_rounds.discussion.max_rounds = 0;
        assert!(check(&zero_rounds).is_err());

        let mut shares = scribe();
        shares.members[0].budget_share = Some(1.5);
        assert!(check(&shares).is_err());

        let mut reserved = scribe();
        reserved.members[0].aliases = vec!["User".into()];
        assert!(check(&reserved).unwrap_err().contains("reserved"));

        let mut forward = scribe();
        forward.routing = RoutingConfig::Sequence {
            order: vec!["Plume".into(), "Mimir".into()],
            loop_back: Some(LoopBack {
                from: "Plume".into(),
                to: "Mimir".into(),
                approval_phrase: "OK".into(),
                max: 1,
            }),
            checkpoints_before: Vec::new(),
        };
        assert!(check(&forward).unwrap_err().contains("before"));

        let mut blank = scribe();
        blank.discussion.stop_phrase = Some(" ".into());
        assert!(check(&blank).is_err());
        let mut endless = scribe();
        endless.discussion.max_rounds = MAX_ROUNDS + 1;
        assert!(check(&endless).is_err());
    }
}
