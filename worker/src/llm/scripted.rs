//! The `scripted` model: deterministic and offline, for the demo, tests and benchmarks.
//!
//! - A query asking for arithmetic (`What is (2+3)*4?`) gets a `calculator` call; one asking for
//!   the time or date gets a `current_time` call; one asking for both gets both, in parallel.
//! - Once the tool results are in, it answers with them.
//! - `use <tool> {json}` calls any offered tool with that argument object (every kind of tool,
//!   without a real model).
//! - `Count to N` answers `1 2 … N` (a long stream on demand), also after tool results;
//!   anything else gets a fixed answer.
//! - A model's `script` (`[{ when = "poem", turn = 1, say = "…" }, …]`) comes first: unless
//!   tool results follow the last user message, the first rule whose `when` the last user
//!   message contains (case-insensitive) and whose `turn` is this answer's number (1 + the
//!   assistant messages with text so far) answers its `say`, never with tool calls; with no
//!   rule matching, the behaviour above answers.
//!
//! Text is streamed one token (word) at a time with the configured delay. Usage counts ~4
//! characters per input token and one output token per streamed token.

use super::{LlmChunk, LlmError, LlmProvider, LlmRequest, LlmResponse};
use agentflow_shared::config::ScriptRule;
use agentflow_shared::llm::{ChatMessage, FinishReason, Role, ToolCall, Usage};
use futures::stream::BoxStream;
use serde_json::json;
use std::time::Duration;

/// The scripted provider.
pub struct ScriptedProvider {
    token_delay: Duration,
    script: Vec<ScriptRule>,
}

impl ScriptedProvider {
    /// A provider that waits `token_delay` between streamed tokens.
    pub fn new(token_delay: Duration) -> Self {
        Self {
            token_delay,
            script: Vec::new(),
        }
    }

    /// The same provider, answering by `script` first (see the module documentation).
    pub fn with_script(mut self, script: Vec<ScriptRule>) -> Self {
        self.script = script;
        self
    }
}

impl LlmProvider for ScriptedProvider {
    fn call(&self, request: LlmRequest) -> BoxStream<'static, Result<LlmChunk, LlmError>> {
        let delay = self.token_delay;
        let response = respond_with(&request, &self.script);
        let stream = request.stream;
        Box::pin(async_stream::stream! {
            let tokens = tokenize(&response.content);
            for token in tokens {
                if delay.is_zero() {
                    // A zero-delay stream still lets the worker's other tasks run.
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(delay).await;
                }
                if stream {
                    yield Ok(LlmChunk::Text(token));
                }
            }
            yield Ok(LlmChunk::Done(response));
        })
    }
}

/// The deterministic answer to a request, without a script.
pub fn respond(request: &LlmRequest) -> LlmResponse {
    respond_with(request, &[])
}

/// The deterministic answer to a request from a model with this `script`.
pub fn respond_with(request: &LlmRequest, script: &[ScriptRule]) -> LlmResponse {
    let input_chars: usize = request
        .messages
        .iter()
        .map(|m| m.content.as_deref().map_or(0, str::len) + 16)
        .sum();
    let input_tokens = (input_chars as u64).div_ceil(4);
    let last_user = request
        .messages
        .iter()
        .rposition(|m| m.role == Role::User)
        .unwrap_or(0);
    let query = request
        .messages
        .get(last_user)
        .and_then(|m| m.content.clone())
        .unwrap_or_default();
    let tool_results: Vec<&ChatMessage> = request.messages[last_user..]
        .iter()
        .filter(|m| m.role == Role::Tool)
        .collect();
    let offered = |name: &str| request.tools.iter().any(|t| t.name == name);

    let scripted = if tool_results.is_empty() {
        scripted_answer(request, script)
    } else {
        None
    };
    let (content, tool_calls) = if let Some(say) = scripted {
        (say, Vec::new())
    } else if !tool_results.is_empty() {
        let results: Vec<String> = tool_results
            .iter()
            .filter_map(|m| m.content.clone())
            .collect();
        let mut answer = format!("Based on the tools: {}.", results.join("; "));
        if let Some(count) = counting(&query) {
            answer.push(' ');
            answer.push_str(&count);
        }
        (answer, Vec::new())
    } else {
        let mut calls = Vec::new();
        if let Some((name, arguments)) = use_tool(&query).filter(|(name, _)| offered(name)) {
            calls.push(ToolCall {
                id: "call_1".into(),
                name,
                arguments,
            });
        }
        let using = !calls.is_empty();
        if let Some(expression) = arithmetic_in(&query).filter(|_| offered("calculator") && !using)
        {
            calls.push(ToolCall {
                id: format!("call_{}", calls.len() + 1),
                name: "calculator".into(),
                arguments: json!({ "expression": expression }),
            });
        }
        if asks_for_time(&query) && offered("current_time") && !using {
            calls.push(ToolCall {
                id: format!("call_{}", calls.len() + 1),
                name: "current_time".into(),
                arguments: json!({}),
            });
        }
        if calls.is_empty() {
            (answer(&query), calls)
        } else {
            (String::new(), calls)
        }
    };
    let output_tokens = tokenize(&content).len() as u64 + 8 * tool_calls.len() as u64;
    LlmResponse {
        content,
        finish_reason: if tool_calls.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        },
        tool_calls,
        usage: Usage::new(input_tokens, output_tokens),
        reasoning: Vec::new(),
    }
}

/// The `say` of the first rule of `script` that matches the request, if any.
fn scripted_answer(request: &LlmRequest, script: &[ScriptRule]) -> Option<String> {
    if script.is_empty() {
        return None;
    }
    let last_user = request
        .messages
        .iter()
        .rfind(|m| m.role == Role::User)
        .and_then(|m| m.content.as_deref())
        .unwrap_or_default()
        .to_lowercase();
    let answered = request
        .messages
        .iter()
        .filter(|m| {
            m.role == Role::Assistant && m.content.as_deref().is_some_and(|c| !c.is_empty())
        })
        .count();
    let turn = u32::try_from(answered).map_or(u32::MAX, |n| n.saturating_add(1));
    script
        .iter()
        .find(|rule| {
            rule.when
                .as_ref()
                .is_none_or(|when| last_user.contains(&when.to_lowercase()))
                && rule.turn.is_none_or(|t| t == turn)
        })
        .map(|rule| rule.say.clone())
}

/// The tool and argument object of `use <tool> {json}` (the JSON to the end of the query).
fn use_tool(query: &str) -> Option<(String, serde_json::Value)> {
    let rest = query.trim().strip_prefix("use ")?;
    let (name, json) = rest.split_once(char::is_whitespace).unwrap_or((rest, "{}"));
    let arguments = serde_json::from_str(json.trim()).ok()?;
    Some((name.to_owned(), arguments))
}

/// The most `Count to N` counts (≈ 6.9 MB of text; answers are cut at
/// `worker.limits.max_answer_bytes` anyway).
const MAX_COUNT: u32 = 1_000_000;

/// `1 2 … N` when the query asks to "count to N" (N at most [`MAX_COUNT`]).
fn counting(query: &str) -> Option<String> {
    let lower = query.to_lowercase();
    let rest = lower.split("count to ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n = digits.parse::<u32>().ok()?;
    let numbers: Vec<String> = (1..=n.min(MAX_COUNT)).map(|i| i.to_string()).collect();
    Some(numbers.join(" "))
}

fn answer(query: &str) -> String {
    if let Some(count) = counting(query) {
        return count;
    }
    format!(
        "This is the scripted model answering \"{}\". It runs offline and always gives this \
         answer, so runs can be compared event for event.",
        query.trim()
    )
}

fn asks_for_time(query: &str) -> bool {
    let lower = query.to_lowercase();
    ["time", "date", "clock", "today"].iter().any(|word| {
        lower
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| w == *word)
    })
}

/// The longest run of arithmetic characters with a digit and an operator between operands.
fn arithmetic_in(query: &str) -> Option<String> {
    let is_math = |c: char| c.is_ascii_digit() || " .+-*/%^()".contains(c);
    query
        .split(|c: char| !is_math(c))
        .map(str::trim)
        .filter(|s| s.chars().any(|c| c.is_ascii_digit()))
        .filter(|s| {
            s.trim_start_matches(['-', '+', '('])
                .chars()
                .any(|c| "+-*/%^".contains(c))
        })
        .max_by_key(|s| s.len())
        .map(str::to_owned)
}

/// Splits text into tokens that concatenate back to it: each word with its leading space.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == ' ' && !current.trim().is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentflow_shared::llm::ToolSpec;
    use futures::StreamExt;

    fn request(messages: Vec<ChatMessage>, stream: bool) -> LlmRequest {
        let spec = |name: &str| ToolSpec {
            name: name.into(),
            description: String::new(),
            parameters: json!({}),
        };
        LlmRequest {
            model: "scripted".into(),
            messages,
            tools: vec![spec("calculator"), spec("current_time")],
            stream,
        }
    }

    #[test]
    fn use_calls_the_named_tool_with_the_given_arguments() {
        assert_eq!(
            use_tool(r#"use lookup {"city": "Oslo", "n": 2}"#),
            Some(("lookup".into(), serde_json::json!({"city": "Oslo", "n": 2})))
        );
        assert_eq!(
            use_tool("use clock"),
            Some(("clock".into(), serde_json::json!({})))
        );
        assert_eq!(use_tool("use lookup {not json"), None);
        assert_eq!(use_tool("what is 2+2"), None);
    }

    #[test]
    fn plans_tools_then_answers_with_their_results() {
        let user = ChatMessage::text(Role::User, "What is (2+3)*4 and what time is it?");
        let first = respond(&request(vec![user.clone()], false));
        assert_eq!(first.tool_calls.len(), 2);
        assert_eq!(
            first.tool_calls[0].arguments,
            json!({"expression": "(2+3)*4"})
        );
        assert_eq!(first.tool_calls[1].name, "current_time");
        let second = respond(&request(
            vec![
                user,
                ChatMessage::assistant(None, first.tool_calls),
                ChatMessage::tool_result("call_1", "20"),
            ],
            false,
        ));
        assert!(second.tool_calls.is_empty());
        assert!(second.content.contains("20"));
        let counted = respond(&request(
            vec![
                ChatMessage::text(Role::User, "What is 1+1? Then count to 3"),
                ChatMessage::tool_result("call_1", "2"),
            ],
            false,
        ));
        assert_eq!(counted.content, "Based on the tools: 2. 1 2 3");
    }

    #[test]
    fn answers_plain_questions_without_tools() {
        let r = respond(&request(
            vec![ChatMessage::text(Role::User, "Hi there")],
            false,
        ));
        assert!(r.tool_calls.is_empty());
        assert!(r.content.contains("Hi there"));
        assert!(r.usage.output_tokens > 5);
        let count = respond(&request(
            vec![ChatMessage::text(Role::User, "Count to 5")],
            false,
        ));
        assert_eq!(count.content, "1 2 3 4 5");
    }

    fn rule(when: Option<&str>, turn: Option<u32>, say: &str) -> ScriptRule {
        ScriptRule {
            when: when.map(Into::into),
            turn,
            say: say.into(),
        }
    }

    #[test]
    fn a_script_rule_with_when_picks_by_the_last_user_message() {
        let script = [
            rule(Some("POEM"), None, "Mimir, here is the poem."),
            rule(Some("archive"), None, "Filed."),
        ];
        let r = respond_with(
            &request(
                vec![
                    ChatMessage::text(Role::System, "You are Plume; archive everything."),
                    ChatMessage::text(Role::User, "Archive this"),
                    ChatMessage::text(Role::Assistant, "Filed."),
                    ChatMessage::text(Role::User, "Write a short Poem, then count to 3"),
                ],
                true,
            ),
            &script,
        );
        assert_eq!(r.content, "Mimir, here is the poem.");
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.finish_reason, FinishReason::Stop);
        assert_eq!(r.usage.output_tokens, 5, "one per streamed word");
        let archive = respond_with(
            &request(
                vec![ChatMessage::text(Role::User, "please ARCHIVE it")],
                false,
            ),
            &script,
        );
        assert_eq!(archive.content, "Filed.");
    }

    #[test]
    fn a_script_rule_with_turn_picks_by_the_earlier_text_answers() {
        let script = [
            rule(None, Some(1), "first"),
            rule(None, Some(2), "second"),
            rule(None, None, "later"),
        ];
        let user = ChatMessage::text(Role::User, "What is 1+1?");
        let answer = |messages: Vec<ChatMessage>| respond_with(&request(messages, false), &script);
        let first = answer(vec![user.clone()]);
        assert_eq!(first.content, "first");
        assert!(first.tool_calls.is_empty(), "a script reply calls no tool");
        // A tool-call-only assistant message is not an answer.
        let call = ToolCall {
            id: "call_1".into(),
            name: "calculator".into(),
            arguments: json!({"expression": "1+1"}),
        };
        let with_call = ChatMessage::assistant(None, vec![call.clone()]);
        let empty_call = ChatMessage::assistant(Some(String::new()), vec![call]);
        let reply = |text: &str| ChatMessage::text(Role::Assistant, text);
        let again = ChatMessage::text(Role::User, "And again?");
        assert_eq!(
            answer(vec![user.clone(), with_call, empty_call, again.clone()]).content,
            "first"
        );
        assert_eq!(
            answer(vec![user.clone(), reply("first"), again.clone()]).content,
            "second"
        );
        let third = vec![user, reply("first"), again.clone(), reply("second"), again];
        assert_eq!(answer(third).content, "later");
    }

    #[test]
    fn without_a_matching_rule_the_built_in_answer_is_unchanged() {
        let script = [
            rule(Some("poem"), None, "Plume"),
            rule(None, Some(2), "Mimir"),
        ];
        for query in ["Hi there", "What is (2+3)*4 and what time is it?"] {
            let request = request(vec![ChatMessage::text(Role::User, query)], false);
            assert_eq!(
                respond_with(&request, &script),
                respond(&request),
                "{query}"
            );
        }
    }

    #[test]
    fn with_tool_results_the_script_gives_way_to_the_built_in_behaviour() {
        let script = [rule(None, None, "Mimir")];
        let request = request(
            vec![
                ChatMessage::text(Role::User, "What is 1+1?"),
                ChatMessage::assistant(
                    None,
                    vec![ToolCall {
                        id: "call_1".into(),
                        name: "calculator".into(),
                        arguments: json!({"expression": "1+1"}),
                    }],
                ),
                ChatMessage::tool_result("call_1", "2"),
            ],
            false,
        );
        let r = respond_with(&request, &script);
        assert_eq!(r.content, "Based on the tools: 2.");
        assert_eq!(r, respond(&request));
    }

    #[tokio::test]
    async fn the_provider_streams_its_script_word_by_word() {
        let provider = ScriptedProvider::new(Duration::ZERO).with_script(vec![rule(
            None,
            None,
            "Mimir, the scroll is yours.",
        )]);
        let chunks: Vec<_> = provider
            .call(request(vec![ChatMessage::text(Role::User, "Hi")], true))
            .collect()
            .await;
        let texts: Vec<String> = chunks
            .iter()
            .filter_map(|c| match c {
                Ok(LlmChunk::Text(t)) => Some(t.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(texts.len(), 5);
        assert_eq!(texts.concat(), "Mimir, the scroll is yours.");
    }

    #[test]
    fn tokens_concatenate_back_to_the_text() {
        let text = "one two  three";
        assert_eq!(tokenize(text).concat(), text);
        assert_eq!(tokenize(text).len(), 3);
    }

    #[tokio::test]
    async fn streams_tokens_then_done() {
        let provider = ScriptedProvider::new(Duration::ZERO);
        let chunks: Vec<_> = provider
            .call(request(
                vec![ChatMessage::text(Role::User, "Count to 3")],
                true,
            ))
            .collect()
            .await;
        let texts: Vec<String> = chunks
            .iter()
            .filter_map(|c| match c {
                Ok(LlmChunk::Text(t)) => Some(t.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(texts.concat(), "1 2 3");
        assert!(matches!(chunks.last(), Some(Ok(LlmChunk::Done(r))) if r.content == "1 2 3"));
    }
}
