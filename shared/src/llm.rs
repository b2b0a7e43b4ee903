//! Chat messages, tool calls and token usage.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The agent's instructions.
    System,
    /// The human's query.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    /// Author of the message.
    pub role: Role,
    /// Text content, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool calls requested by the assistant.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::nullable::or_default"
    )]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a tool message: the call failed (or was rejected or cancelled).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
    /// For an assistant message: the vendor's reasoning blocks (Anthropic `thinking` and
    /// `redacted_thinking`, with their signatures), sent back verbatim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub reasoning: Vec<Value>,
}

impl ChatMessage {
    /// A message with text only.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            is_error: false,
            reasoning: Vec::new(),
        }
    }

    /// The assistant's turn: optional text and the tool calls it asked for.
    pub fn assistant(content: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            role: Role::Assistant,
            content,
            tool_calls,
            tool_call_id: None,
            is_error: false,
            reasoning: Vec::new(),
        }
    }

    /// A tool's answer to one call.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: Role::Tool,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(tool_call_id.into()),
            is_error: false,
            reasoning: Vec::new(),
        }
    }

    /// A failed (rejected, cancelled) call's answer: the error, marked as one.
    pub fn tool_error(tool_call_id: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            is_error: true,
            ..Self::tool_result(tool_call_id, error)
        }
    }
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolCall {
    /// Provider-assigned id of the call.
    pub id: String,
    /// Name of the tool.
    pub name: String,
    /// Arguments as JSON (an object for well-formed calls).
    pub arguments: Value,
}

/// Description of a tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolSpec {
    /// Name of the tool.
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON schema of the arguments.
    pub parameters: Value,
}

/// Why a model stopped generating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end of the answer.
    #[default]
    Stop,
    /// The model asked for tool calls.
    ToolCalls,
    /// The answer was cut at a length limit: the vendor's, or the call's event-size cap.
    Length,
    /// The vendor's content filter stopped the answer.
    ContentFilter,
}

impl FinishReason {
    /// Reads an OpenAI-style `finish_reason` (`stop`, `length`, `tool_calls`, …).
    pub fn from_vendor(reason: &str) -> Self {
        match reason {
            "length" | "max_tokens" => Self::Length,
            "tool_calls" | "function_call" | "tool_use" => Self::ToolCalls,
            "content_filter" => Self::ContentFilter,
            _ => Self::Stop,
        }
    }
}

/// Token usage of one or more LLM calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// Prompt tokens: all input, cache writes and reads included (whatever the vendor counts).
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Sum of both.
    pub total_tokens: u64,
    /// Of `input_tokens`, those written to the vendor's prompt cache (priced as cache writes).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_creation_input_tokens: u64,
    /// Of `input_tokens`, those read from the vendor's prompt cache (priced as cache reads).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_input_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Usage from input and output counts.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
        }
    }

    /// With this many of the input tokens written to and read from the prompt cache.
    pub fn with_cache(mut self, written: u64, read: u64) -> Self {
        self.cache_creation_input_tokens = written;
        self.cache_read_input_tokens = read;
        self
    }

    /// Input tokens priced at the plain input price (neither written to nor read from a cache).
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cache_creation_input_tokens + self.cache_read_input_tokens)
    }
}

impl std::ops::Add for Usage {
    type Output = Self;

    fn add(self, other: Usage) -> Self {
        Self::new(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
        )
        .with_cache(
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
        )
    }
}
