//! The messages the model sees: the instructions, each turn's query, answers and tool results.
//! A conversation keeps them across turns (and runs); they are trimmed by whole turns to
//! `worker.limits.max_conversation_bytes`.

use agentflow_shared::event::ConversationTrimmed;
use agentflow_shared::llm::{ChatMessage, Role, ToolCall};

/// The messages of the task so far.
#[derive(Debug, Default)]
pub(super) struct Conversation {
    messages: Vec<ChatMessage>,
}

impl Conversation {
    /// The conversation a previous run carried over.
    pub(super) fn from_messages(messages: Vec<ChatMessage>) -> Self {
        Self { messages }
    }

    /// The messages, oldest first.
    pub(super) fn messages(&self) -> &[ChatMessage] {
        &self.messages
    }

    /// Starts a turn: the instructions first (once, when not blank), then the query.
    pub(super) fn begin_turn(&mut self, instructions: String, query: String) {
        if self.messages.is_empty() && !instructions.trim().is_empty() {
            self.messages
                .push(ChatMessage::text(Role::System, instructions));
        }
        self.messages.push(ChatMessage::text(Role::User, query));
    }

    /// The model's answer (with the tool calls it asked for, if any).
    /// `reasoning` is the vendor's reasoning blocks, sent back verbatim with the tool results.
    pub(super) fn answered(
        &mut self,
        content: Option<String>,
        tool_calls: Vec<ToolCall>,
        reasoning: Vec<serde_json::Value>,
    ) {
        let mut message = ChatMessage::assistant(content, tool_calls);
        message.reasoning = reasoning;
        self.messages.push(message);
    }

    /// The tools' results, for the model's next step.
    pub(super) fn tool_results(&mut self, results: Vec<ChatMessage>) {
        self.messages.extend(results);
    }

    /// Drops the oldest whole turns (a user message up to the next one), keeping the
    /// instructions and the current turn, until the conversation's JSON fits in `limit`. Says
    /// what it dropped, or — when the current turn alone does not fit — its size.
    pub(super) fn trim(&mut self, limit: usize) -> Result<Option<ConversationTrimmed>, usize> {
        let messages = &mut self.messages;
        let sizes: Vec<usize> = messages
            .iter()
            .map(|m| serde_json::to_vec(m).map_or(0, |b| b.len()))
            .collect();
        let total: usize = sizes.iter().sum();
        if total <= limit {
            return Ok(None);
        }
        let start = usize::from(messages.first().is_some_and(|m| m.role == Role::System));
        let current = messages
            .iter()
            .rposition(|m| m.role == Role::User)
            .unwrap_or(start)
            .max(start);
        let cut = (start + 1..=current)
            .filter(|&i| messages[i].role == Role::User)
            .find(|&cut| total - sizes[start..cut].iter().sum::<usize>() <= limit);
        let Some(cut) = cut else {
            return Err(total - sizes[start..current].iter().sum::<usize>());
        };
        messages.drain(start..cut);
        Ok(Some(ConversationTrimmed {
            dropped_messages: cut - start,
            kept_messages: messages.len(),
            bytes: total - sizes[start..cut].iter().sum::<usize>(),
            limit_bytes: limit,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_drops_whole_old_turns_and_keeps_instructions_and_the_current_turn() {
        let mut conversation = Conversation::default();
        for n in 1..=5 {
            conversation.begin_turn(
                "be brief".into(),
                format!("question {n} {}", "x".repeat(200)),
            );
            conversation.answered(
                Some(format!("answer {n} {}", "y".repeat(200))),
                Vec::new(),
                Vec::new(),
            );
        }
        conversation.begin_turn("be brief".into(), "the current question".into());
        let trimmed = conversation
            .trim(1200)
            .expect("the current turn fits")
            .expect("something was dropped");
        let messages = conversation.messages();
        assert_eq!(messages[0].role, Role::System);
        assert_eq!(messages[1].role, Role::User, "whole turns dropped");
        assert_eq!(
            messages.last().unwrap().content.as_deref(),
            Some("the current question")
        );
        assert_eq!(trimmed.kept_messages, messages.len());
        assert_eq!(trimmed.dropped_messages % 2, 0);
        assert!(trimmed.bytes <= 1200);
        assert_eq!(conversation.trim(1200), Ok(None));
        let mut huge = Conversation::default();
        huge.begin_turn(String::new(), "z".repeat(5000));
        assert_eq!(huge.messages().len(), 1, "blank instructions are left out");
        assert!(huge.trim(1200).is_err());
        assert_eq!(
            huge.messages().len(),
            1,
            "an untrimmable turn is left as it is"
        );
    }
}
