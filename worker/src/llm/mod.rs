//! LLM providers behind one trait: `scripted` (offline, deterministic), `openai` (any
//! OpenAI-compatible Chat Completions server) and `anthropic` (the Messages API).

mod anthropic;
mod openai;
mod scripted;

pub use anthropic::{AnthropicProvider, MessageAccumulator};
pub use openai::{OpenAiProvider, StreamAccumulator};
pub use scripted::{
    ScriptedProvider, respond as scripted_response, respond_with as scripted_response_with,
};

use agentflow_shared::config::{ModelConfig, ProviderKind};
use agentflow_shared::llm::{ChatMessage, FinishReason, ToolCall, ToolSpec, Usage};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// One call to a model.
#[derive(Debug, Clone)]
pub struct LlmRequest {
    /// The vendor's model name.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// Stream the answer.
    pub stream: bool,
}

/// A model's complete answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmResponse {
    /// The text answer (empty when only tools are called).
    pub content: String,
    /// Tool calls requested.
    pub tool_calls: Vec<ToolCall>,
    /// Token usage.
    pub usage: Usage,
    /// Why the model stopped.
    #[serde(default)]
    pub finish_reason: FinishReason,
    /// The vendor's reasoning blocks, verbatim (sent back with the tool results).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasoning: Vec<serde_json::Value>,
}

/// What a provider's stream yields: text as it arrives, then the whole answer once.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmChunk {
    /// A piece of the answer's text.
    Text(String),
    /// A piece of the model's thinking (never part of the answer).
    Thinking(String),
    /// The complete answer; the last item of the stream.
    Done(LlmResponse),
}

/// Why an LLM call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct LlmError {
    /// Whether another attempt may succeed (HTTP 429/5xx, network errors).
    pub retryable: bool,
    /// The vendor's message, or what went wrong.
    pub message: String,
    /// How long the vendor asked to wait before another attempt (`retry-after`).
    pub retry_after: Option<std::time::Duration>,
}

impl LlmError {
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same failure, with the vendor's `retry-after`.
    pub fn with_retry_after(mut self, retry_after: Option<std::time::Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// A failure no retry will fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// The API key a model's `api_key_env` names, read from the worker's environment (none when
/// it names no variable).
pub(crate) fn api_key(model: &ModelConfig) -> Result<Option<String>, LlmError> {
    match &model.api_key_env {
        Some(var) => std::env::var(var)
            .map(Some)
            .map_err(|_| LlmError::fatal(format!("the API key variable {var} is not set"))),
        None => Ok(None),
    }
}

/// A model provider. `call` returns text chunks (streaming only) and then [`LlmChunk::Done`].
pub trait LlmProvider: Send + Sync {
    /// Starts a call; the stream ends after `Done` or an error.
    fn call(&self, request: LlmRequest) -> BoxStream<'static, Result<LlmChunk, LlmError>>;
}

/// Builds the provider for a model's config.
pub fn provider_for(
    model: &ModelConfig,
    http: &reqwest::Client,
) -> Result<Box<dyn LlmProvider>, LlmError> {
    Ok(match model.provider {
        ProviderKind::Scripted => Box::new(
            ScriptedProvider::new(std::time::Duration::from_millis(model.token_delay_ms))
                .with_script(model.script.clone()),
        ),
        ProviderKind::Openai => Box::new(OpenAiProvider::from_config(model, http.clone())?),
        ProviderKind::Anthropic => Box::new(AnthropicProvider::from_config(model, http.clone())?),
    })
}
