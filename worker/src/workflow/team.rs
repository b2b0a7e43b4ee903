//! A team's turn: the message is routed, then members speak one at a time — one alone, a
//! discussion in turns until it ends, or a sequence with its bounded loop back and its
//! checkpoints — and the turn's answer is made. Each member turn is the agent loop on that
//! member's agent, after a safe point, so pause and cancel take effect between member turns
//! too; the team's budget bounds the whole, each member's share its own turns.

use super::AgentTaskWorkflow;
use super::agent_loop;
use super::approvals;
use super::conversation::Conversation;
use super::outcome::{Outcome, failure};
use super::safe_points::safe_point;
use super::state::emit;
use super::team_state::Speaker;
use agentflow_shared::event::{Decision, EventKind, FailureKind, Mode, Reason};
use agentflow_shared::llm::{ChatMessage, Role};
use agentflow_shared::task::{
    ExecuteRequest, PendingApproval, TeamMessage, TeamSnapshot, USER_SPEAKER,
};
use agentflow_shared::team::discussion::Discussion;
use agentflow_shared::team::events::{
    DiscussionEnded, MemberBudgetExhausted, MemberMessage, MemberTurnStarted, Routed,
};
use agentflow_shared::team::routing::{Route, RoutingReason, route, router_choice};
use agentflow_shared::team::{
    CHECKPOINT_ID_PREFIX, CHECKPOINT_TOOL, FinalAnswer, LoopBack, RoutingConfig,
};
use serde_json::json;
use temporalio_sdk::WorkflowContext;

/// What the member making a discussion's answer reads last.
const SUMMARY_PROMPT: &str =
    "The discussion is over. Summarise it for the user as the team's answer.";

/// What a member whose work a person rejected reads when no comment was given.
const REJECTED_WITHOUT_COMMENT: &str = "A person rejected this at a checkpoint. Revise it.";

/// Runs the team turn `request` starts; says how it ended.
pub(super) async fn run(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    request: ExecuteRequest,
) -> Outcome {
    let mode = agent_loop::begin(ctx, &request).await;
    let (team, turn) = ctx.state(|s| (s.input.team.clone(), s.turn + 1));
    let Some(team) = team else {
        return failure(
            FailureKind::Internal,
            "a team turn in an agent's task".into(),
        );
    };
    ctx.state_mut(|s| s.team.new_turn());
    say(
        ctx,
        TeamMessage {
            speaker: USER_SPEAKER.into(),
            to: Vec::new(),
            content: request.query.clone(),
            round: 0,
            turn,
        },
        None,
    );
    let (speakers, reason) = match who_speaks(ctx, &team, &request.query).await {
        Ok(routed) => routed,
        Err(outcome) => return outcome,
    };
    emit(
        ctx,
        EventKind::Routed(Routed {
            speakers: speakers.iter().map(|m| name(&team, *m)).collect(),
            routing_reason: reason.to_string(),
        }),
    );
    let mut turn = TeamTurn {
        team: &team,
        mode,
        turn,
        round: 0,
    };
    let answer = match &team.team.routing {
        RoutingConfig::Sequence {
            loop_back,
            checkpoints_before,
            ..
        } => {
            turn.sequence(ctx, &speakers, loop_back.as_ref(), checkpoints_before)
                .await
        }
        RoutingConfig::Mention { .. } if speakers.len() == 1 => turn.alone(ctx, speakers[0]).await,
        RoutingConfig::Mention { .. } => turn.discussion(ctx, speakers, &request.query).await,
    };
    match answer {
        Ok(text) => Outcome::Completed(text),
        Err(outcome) => outcome,
    }
}

/// The members who answer `query`, and why: mentions, the forced mode, a conversation's last
/// speaker, then the router (or the default member); a sequence's order.
async fn who_speaks(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    team: &TeamSnapshot,
    query: &str,
) -> Result<(Vec<usize>, RoutingReason), Outcome> {
    let config = &team.team;
    let default_member = match &config.routing {
        RoutingConfig::Sequence { order, .. } => {
            let order = order
                .iter()
                .filter_map(|name| config.member(name))
                .collect();
            return Ok((order, RoutingReason::Sequence));
        }
        RoutingConfig::Mention { default_member, .. } => default_member
            .as_deref()
            .and_then(|name| config.member(name))
            .unwrap_or(0),
    };
    let forced = ctx
        .state(|s| s.input.parameters.mode.clone())
        .and_then(|mode| config.forced_mode(&mode));
    let (route, reason) = route(query, &config.addressees(), forced.as_ref());
    if let Route::Members(members) = route {
        return Ok((members, reason));
    }
    let (conversation, last) = ctx.state(|s| (s.is_conversation(), s.team.last_speaker()));
    if conversation
        && config.follow_up_to_last_speaker
        && let Some(last) = last
    {
        return Ok((vec![last], RoutingReason::FollowUpLastSpeaker));
    }
    let chosen = match team.router {
        Some(_) => ask_router(ctx, team, query)
            .await?
            .unwrap_or(default_member),
        None => default_member,
    };
    Ok((vec![chosen], reason))
}

/// Asks the router model which member answers `query` (its own LLM call, with
/// `speaker: "router"`); `None` when its answer names no single member.
async fn ask_router(
    ctx: &WorkflowContext<AgentTaskWorkflow>,
    team: &TeamSnapshot,
    query: &str,
) -> Result<Option<usize>, Outcome> {
    ctx.state_mut(|s| {
        s.team.set_speaker(Some(Speaker::Router));
        let instructions = s.agent().agent.instructions.clone();
        s.conversation = Conversation::from_messages(vec![
            ChatMessage::text(Role::System, instructions),
            ChatMessage::text(Role::User, query.to_owned()),
        ]);
    });
    let outcome = agent_loop::steps(ctx, Mode::Batch).await;
    ctx.state_mut(|s| s.team.set_speaker(None));
    match outcome {
        Outcome::Completed(answer) => Ok(router_choice(&answer, &team.team.addressees())),
        other => Err(other),
    }
}

/// The name of member `member`.
fn name(team: &TeamSnapshot, member: usize) -> String {
    team.team.members[member].name.clone()
}

/// Records a message of the discussion (`member`: who said it, when a member did).
fn say(ctx: &WorkflowContext<AgentTaskWorkflow>, message: TeamMessage, member: Option<usize>) {
    ctx.state_mut(|s| {
        let limit = s.input.settings.limits.max_conversation_bytes;
        s.team.say(message, member, limit);
    });
}

impl AgentTaskWorkflow {
    /// Whether `member` has budget left: its share of the team's (current) budget.
    fn can_speak(&self, member: usize) -> bool {
        let Some(team) = &self.input.team else {
            return true;
        };
        team.team
            .member_budget(member, self.budget.limit_usd())
            .is_none_or(|share| self.team.member_cost(member) < share)
    }

    /// The name of who is speaking (a member's, or `router`), for the events' `speaker`.
    pub(super) fn speaker_name(&self) -> Option<String> {
        let team = self.input.team.as_ref()?;
        match self.team.speaker()? {
            Speaker::Member(member) => Some(name(team, member)),
            Speaker::Router => Some(agentflow_shared::task::ROUTER_SPEAKER.into()),
        }
    }
}

/// One team turn in progress.
struct TeamTurn<'a> {
    team: &'a TeamSnapshot,
    mode: Mode,
    /// The task's turn, from 1.
    turn: u32,
    /// Member turns taken in this turn.
    round: u32,
}

/// What a member said in its turn, and what the turn cost.
struct Said {
    text: String,
    cost_usd: f64,
}

impl TeamTurn<'_> {
    /// `member` speaks, after a safe point, reading the discussion and then `extra`; `to` is
    /// its audience when it names no member. `Ok(None)`: its budget share is spent.
    async fn speak(
        &mut self,
        ctx: &WorkflowContext<AgentTaskWorkflow>,
        member: usize,
        to: Vec<String>,
        extra: Option<&str>,
    ) -> Result<Option<Said>, Outcome> {
        safe_point(ctx).await?;
        if !ctx.state(|s| s.can_speak(member)) {
            self.silence(ctx, member);
            return Ok(None);
        }
        self.round += 1;
        let round = self.round;
        let before = ctx.state_mut(|s| {
            s.team.set_speaker(Some(Speaker::Member(member)));
            let view = s.team.member_view(self.team, member, extra);
            s.conversation = Conversation::from_messages(view);
            s.budget.cost_usd()
        });
        emit(
            ctx,
            EventKind::MemberTurnStarted(MemberTurnStarted { round }),
        );
        let outcome = agent_loop::steps(ctx, self.mode).await;
        let cost_usd = ctx.state(|s| s.budget.cost_usd()) - before;
        let member_cost_usd = ctx.state_mut(|s| {
            s.team.charge(member, cost_usd);
            s.team.member_cost(member)
        });
        let text = match outcome {
            Outcome::Completed(text) => text,
            other => {
                ctx.state_mut(|s| s.team.set_speaker(None));
                return Err(other);
            }
        };
        let named = self.named_in(&text, member);
        let to = if named.is_empty() { to } else { named };
        emit(
            ctx,
            EventKind::MemberMessage(MemberMessage {
                to: to.clone(),
                content: text.clone(),
                round,
                cost_usd,
                member_cost_usd,
            }),
        );
        ctx.state_mut(|s| s.team.set_speaker(None));
        say(
            ctx,
            TeamMessage {
                speaker: name(self.team, member),
                to,
                content: text.clone(),
                round,
                turn: self.turn,
            },
            Some(member),
        );
        Ok(Some(Said { text, cost_usd }))
    }

    /// The other members `text` names.
    fn named_in(&self, text: &str, speaker: usize) -> Vec<String> {
        self.team
            .team
            .addressees()
            .iter()
            .enumerate()
            .filter(|(i, m)| *i != speaker && m.named_in(text))
            .map(|(_, m)| m.name.to_owned())
            .collect()
    }

    /// Says, once a turn, that `member`'s budget share is spent.
    fn silence(&self, ctx: &WorkflowContext<AgentTaskWorkflow>, member: usize) {
        let Some((member_cost_usd, share_usd)) = ctx.state_mut(|s| {
            let share = self.team.team.member_budget(member, s.budget.limit_usd())?;
            s.team
                .silence(member)
                .then(|| (s.team.member_cost(member), share))
        }) else {
            return;
        };
        ctx.state_mut(|s| s.team.set_speaker(Some(Speaker::Member(member))));
        emit(
            ctx,
            EventKind::MemberBudgetExhausted(MemberBudgetExhausted {
                member_cost_usd,
                share_usd,
            }),
        );
        ctx.state_mut(|s| s.team.set_speaker(None));
    }

    /// The failure of a turn whose member (and, answering alone, every other) has spent its
    /// share of the team's budget.
    fn spent(&self, member: usize) -> Outcome {
        failure(
            FailureKind::BudgetExceeded,
            format!(
                "member `{}` has spent its share of the team's budget, and no one can speak \
                 for it",
                name(self.team, member)
            ),
        )
    }

    /// One member answers alone; when its budget share is spent, the first other member
    /// (in member order) that has budget left answers instead.
    async fn alone(
        &mut self,
        ctx: &WorkflowContext<AgentTaskWorkflow>,
        member: usize,
    ) -> Result<String, Outcome> {
        let others = (0..self.team.members.len()).filter(|m| *m != member);
        for speaker in std::iter::once(member).chain(others) {
            if let Some(said) = self
                .speak(ctx, speaker, vec![USER_SPEAKER.into()], None)
                .await?
            {
                return Ok(said.text);
            }
        }
        Err(self.spent(member))
    }

    /// `speakers` discuss in turns until the discussion ends; then its answer is made.
    async fn discussion(
        &mut self,
        ctx: &WorkflowContext<AgentTaskWorkflow>,
        speakers: Vec<usize>,
        query: &str,
    ) -> Result<String, Outcome> {
        let config = &self.team.team;
        let settings = &config.discussion;
        let addressees = config.addressees();
        let mut discussion = Discussion::new(speakers.clone());
        let mut last = query.to_owned();
        let mut answer: Option<String> = None;
        let start = ctx.state(|s| s.budget.cost_usd());
        let ended = loop {
            let able: Vec<bool> = ctx.state(|s| {
                (0..config.members.len())
                    .map(|member| s.can_speak(member))
                    .collect()
            });
            for member in speakers.iter().filter(|m| !able[**m]) {
                self.silence(ctx, *member);
            }
            let next = match discussion.next(&last, &addressees, settings, |m| able[m]) {
                Ok(next) => next,
                Err(ended) => break ended,
            };
            let others = speakers
                .iter()
                .filter(|m| **m != next)
                .map(|m| name(self.team, *m))
                .collect();
            let Some(said) = self.speak(ctx, next, others, None).await? else {
                continue;
            };
            let ended = discussion.spoke(next, &said.text, said.cost_usd, settings);
            answer = Some(said.text.clone());
            last = said.text;
            if let Some(ended) = ended {
                break ended;
            }
        };
        let cost_usd = ctx.state(|s| s.budget.cost_usd()) - start;
        emit(
            ctx,
            EventKind::DiscussionEnded(DiscussionEnded {
                reason: ended.into(),
                rounds: discussion.rounds(),
                cost_usd,
            }),
        );
        if let FinalAnswer::SummaryBy(summariser) = &settings.final_answer
            && let Some(member) = config.member(summariser)
            && let Some(said) = self
                .speak(ctx, member, vec![USER_SPEAKER.into()], Some(SUMMARY_PROMPT))
                .await?
        {
            return Ok(said.text);
        }
        answer.ok_or_else(|| {
            failure(
                FailureKind::BudgetExceeded,
                "no member of the discussion had budget left to speak".into(),
            )
        })
    }

    /// The members of `order` work in turn, each on what the previous produced; the judge of
    /// `loop_back` sends the work back until it approves (at most `max` times); before a
    /// member of `checkpoints`, a person approves (maybe editing) or rejects the work so far
    /// — a rejection sends it back to the previous member with the comment. The answer is the
    /// last member's message, or — when that member judges — the last work it approved. The
    /// member the judge sends work back to gets no checkpoint then (a person saw the work
    /// before it the first time).
    async fn sequence(
        &mut self,
        ctx: &WorkflowContext<AgentTaskWorkflow>,
        order: &[usize],
        loop_back: Option<&LoopBack>,
        checkpoints: &[String],
    ) -> Result<String, Outcome> {
        let config = &self.team.team;
        let judge = loop_back.and_then(|back| Some((config.member(&back.from)?, back)));
        let judged = loop_back.and_then(|back| config.member(&back.to));
        let mut at = 0;
        let mut loops = 0;
        let mut checkpoint = 0;
        // The last member output (its text and round): what a checkpoint shows and edits.
        let mut last: Option<(String, u32)> = None;
        let mut work: Option<String> = None;
        // Sent back (by the judge, or by a person's rejection): no checkpoint before the
        // member the work goes back to.
        let mut sent_back = false;
        while let Some(&member) = order.get(at) {
            if !sent_back && checkpoints.iter().any(|n| config.member(n) == Some(member)) {
                checkpoint += 1;
                let shown = last.as_ref().map(|(text, _)| text.as_str());
                match self.checkpoint(ctx, member, checkpoint, shown).await? {
                    Checkpoint::Approved(Some(edited)) => {
                        if let Some((text, round)) = &mut last {
                            ctx.state_mut(|s| s.team.edit(self.turn, *round, edited.clone()));
                            text.clone_from(&edited);
                            if at.checked_sub(1).map(|p| order[p]) == judged {
                                work = Some(edited);
                            }
                        }
                    }
                    Checkpoint::Approved(None) => {}
                    Checkpoint::Rejected(comment) => {
                        let Some(previous) = at.checked_sub(1) else {
                            return Err(Outcome::Cancelled(Reason::new(format!(
                                "checkpoint before {} rejected: {comment}",
                                name(self.team, member)
                            ))));
                        };
                        say(
                            ctx,
                            TeamMessage {
                                speaker: USER_SPEAKER.into(),
                                to: vec![name(self.team, order[previous])],
                                content: comment,
                                round: self.round,
                                turn: self.turn,
                            },
                            None,
                        );
                        at = previous;
                        sent_back = true;
                        continue;
                    }
                }
            }
            let audience = order
                .get(at + 1)
                .map_or_else(|| USER_SPEAKER.into(), |next| name(self.team, *next));
            let Some(said) = self.speak(ctx, member, vec![audience], None).await? else {
                return Err(self.spent(member));
            };
            last = Some((said.text.clone(), self.round));
            if Some(member) == judged {
                work = Some(said.text.clone());
            }
            let mut answer = said.text;
            if let Some((judge, back)) = judge
                && judge == member
            {
                if answer.contains(&back.approval_phrase) || loops >= back.max {
                    if at + 1 == order.len()
                        && let Some(work) = &work
                    {
                        answer.clone_from(work);
                    }
                } else if let Some(to) = order.iter().position(|m| Some(*m) == judged) {
                    loops += 1;
                    at = to;
                    sent_back = true;
                    continue;
                }
            }
            if at + 1 == order.len() {
                return Ok(answer);
            }
            sent_back = false;
            at += 1;
        }
        Err(failure(
            FailureKind::Internal,
            "a sequence ended without a member's answer".into(),
        ))
    }

    /// Waits for a person at the checkpoint before `member` (the `n`-th of the turn), showing
    /// `work` (the last member's output; none before the first member).
    async fn checkpoint(
        &self,
        ctx: &WorkflowContext<AgentTaskWorkflow>,
        member: usize,
        n: u32,
        work: Option<&str>,
    ) -> Result<Checkpoint, Outcome> {
        let id = format!("{CHECKPOINT_ID_PREFIX}{}-{n}", self.turn);
        let text = work.unwrap_or_default();
        let decision = approvals::checkpoint(
            ctx,
            PendingApproval {
                approval_id: id.clone(),
                tool_name: CHECKPOINT_TOOL.into(),
                tool_call_id: id,
                arguments: json!({"before": name(self.team, member), "text": text}),
            },
        )
        .await?;
        Ok(match decision.decision {
            Decision::Approve => Checkpoint::Approved(
                decision
                    .arguments
                    .as_ref()
                    .and_then(|a| a.get("text"))
                    .and_then(|t| t.as_str())
                    .map(str::to_owned),
            ),
            Decision::Reject => Checkpoint::Rejected(
                decision
                    .comment
                    .filter(|c| !c.trim().is_empty())
                    .unwrap_or_else(|| REJECTED_WITHOUT_COMMENT.into()),
            ),
        })
    }
}

/// A person's decision at a checkpoint.
enum Checkpoint {
    /// Go on, with the work as edited (or as it is).
    Approved(Option<String>),
    /// Back to the previous member, with this comment.
    Rejected(String),
}
