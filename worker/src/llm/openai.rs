//! The `openai` provider: any OpenAI-compatible Chat Completions server, streaming (SSE) or not.

use super::{LlmChunk, LlmError, LlmProvider, LlmRequest, LlmResponse};
use agentflow_shared::config::ModelConfig;
use agentflow_shared::llm::{ChatMessage, FinishReason, Role, ToolCall, Usage};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use std::time::Duration;

/// A client of one OpenAI-compatible endpoint.
pub struct OpenAiProvider {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    timeout: Duration,
}

impl OpenAiProvider {
    /// Builds the provider from a model's config; the API key is read from `api_key_env`.
    pub fn from_config(model: &ModelConfig, http: reqwest::Client) -> Result<Self, LlmError> {
        let base_url = model
            .base_url
            .clone()
            .ok_or_else(|| LlmError::fatal("model has no base_url"))?;
        let api_key = super::api_key(model)?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            timeout: Duration::from_secs(model.request_timeout_secs),
        })
    }

    fn body(request: &LlmRequest) -> Value {
        let mut body = json!({
            "model": request.model,
            "messages": request.messages.iter().map(message_json).collect::<Vec<_>>(),
            "stream": request.stream,
        });
        if request.stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.parameters}})
                })
                .collect();
        }
        body
    }
}

fn message_json(message: &ChatMessage) -> Value {
    let role = match message.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut value = json!({"role": role, "content": message.content});
    if !message.tool_calls.is_empty() {
        value["tool_calls"] = message
            .tool_calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "type": "function", "function": {
                    "name": c.name, "arguments": c.arguments.to_string()}})
            })
            .collect();
    }
    if let Some(id) = &message.tool_call_id {
        value["tool_call_id"] = json!(id);
    }
    value
}

/// Turns an error response into an [`LlmError`], keeping the vendor's message.
pub fn http_error(status: reqwest::StatusCode, body: &str) -> LlmError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(500).collect());
    let message = format!("HTTP {}: {message}", status.as_u16());
    if status.as_u16() == 429 || status.is_server_error() {
        LlmError::retryable(message)
    } else {
        LlmError::fatal(message)
    }
}

fn network_error(err: reqwest::Error) -> LlmError {
    LlmError::retryable(format!("request failed: {err}"))
}

/// A tool call's arguments from their JSON text (`{}` when empty; the text itself when it is
/// not JSON, so the schema check names the problem).
pub(super) fn parse_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

fn usage_of(value: &Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|u| u.is_object())?;
    // `prompt_tokens` includes cached ones; those are priced as cache reads.
    Some(
        Usage::new(
            usage["prompt_tokens"].as_u64().unwrap_or(0),
            usage["completion_tokens"].as_u64().unwrap_or(0),
        )
        .with_cache(
            0,
            usage["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0),
        ),
    )
}

/// The choice's `finish_reason`, else what the answer implies.
fn finish_reason_of(choice: &Value, tool_calls: &[ToolCall]) -> FinishReason {
    match choice["finish_reason"].as_str() {
        Some(reason) => FinishReason::from_vendor(reason),
        None if tool_calls.is_empty() => FinishReason::Stop,
        None => FinishReason::ToolCalls,
    }
}

/// Parses a non-streaming Chat Completions response.
pub fn parse_completion(body: &Value) -> Result<LlmResponse, LlmError> {
    if let Some(message) = body["error"]["message"].as_str() {
        return Err(LlmError::fatal(message.to_owned()));
    }
    let message = &body["choices"][0]["message"];
    if message.is_null() {
        return Err(LlmError::retryable("response has no choices[0].message"));
    }
    let tool_calls: Vec<ToolCall> = message["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: c["id"].as_str().unwrap_or_default().to_owned(),
                    name: c["function"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    arguments: parse_arguments(c["function"]["arguments"].as_str().unwrap_or("")),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(LlmResponse {
        content: message["content"].as_str().unwrap_or_default().to_owned(),
        finish_reason: finish_reason_of(&body["choices"][0], &tool_calls),
        tool_calls,
        usage: usage_of(body).unwrap_or_default(),
        reasoning: Vec::new(),
    })
}

/// Assembles a streamed response from its `data:` chunks: text deltas, tool calls whose id,
/// name and arguments arrive in pieces by index, the usage chunk and `[DONE]`.
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    content: String,
    tool_calls: Vec<(String, String, String)>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    done: bool,
}

impl StreamAccumulator {
    /// Feeds one `data:` payload; returns the text it adds, if any.
    pub fn push(&mut self, data: &str) -> Result<Option<String>, LlmError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| LlmError::retryable(format!("malformed stream chunk: {e}")))?;
        if let Some(message) = chunk["error"]["message"].as_str() {
            return Err(LlmError::retryable(format!("stream error: {message}")));
        }
        if let Some(usage) = usage_of(&chunk) {
            self.usage = Some(usage);
        }
        if let Some(reason) = chunk["choices"][0]["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_owned());
        }
        let delta = &chunk["choices"][0]["delta"];
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(0) as usize;
            if self.tool_calls.len() <= index {
                self.tool_calls.resize(index + 1, Default::default());
            }
            let slot = &mut self.tool_calls[index];
            if let Some(id) = call["id"].as_str() {
                slot.0.push_str(id);
            }
            if let Some(name) = call["function"]["name"].as_str() {
                slot.1.push_str(name);
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                slot.2.push_str(args);
            }
        }
        match delta["content"].as_str() {
            Some(text) if !text.is_empty() => {
                self.content.push_str(text);
                Ok(Some(text.to_owned()))
            }
            _ => Ok(None),
        }
    }

    /// Whether `[DONE]` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The assembled response.
    pub fn finish(self) -> LlmResponse {
        let tool_calls: Vec<ToolCall> = self
            .tool_calls
            .into_iter()
            .filter(|(_, name, _)| !name.is_empty())
            .map(|(id, name, args)| ToolCall {
                id,
                name,
                arguments: parse_arguments(&args),
            })
            .collect();
        let choice = json!({ "finish_reason": self.finish_reason });
        LlmResponse {
            content: self.content,
            finish_reason: finish_reason_of(&choice, &tool_calls),
            tool_calls,
            usage: self.usage.unwrap_or_default(),
            reasoning: Vec::new(),
        }
    }
}

impl LlmProvider for OpenAiProvider {
    fn call(&self, request: LlmRequest) -> BoxStream<'static, Result<LlmChunk, LlmError>> {
        let mut builder = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .json(&Self::body(&request));
        // A batch request is bounded as a whole; a stream by its silences (a long generation
        // may stream for longer than any sensible whole-request timeout: the activity's
        // start-to-close timeout bounds the call).
        let timeout = self.timeout;
        if !request.stream {
            builder = builder.timeout(timeout);
        }
        let silent = move || {
            LlmError::retryable(format!(
                "the model sent nothing for {} s",
                timeout.as_secs_f64()
            ))
        };
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key);
        }
        let stream = request.stream;
        Box::pin(async_stream::try_stream! {
            let response = tokio::time::timeout(timeout, builder.send())
                .await
                .map_err(|_| silent())?
                .map_err(network_error)?;
            let status = response.status();
            if !status.is_success() {
                let body = tokio::time::timeout(timeout, response.text())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                Err(http_error(status, &body))?;
            } else if !stream {
                let body: Value = response.json().await.map_err(network_error)?;
                yield LlmChunk::Done(parse_completion(&body)?);
            } else {
                let mut events = response.bytes_stream().eventsource();
                let mut acc = StreamAccumulator::default();
                while let Some(event) = tokio::time::timeout(timeout, events.next())
                    .await
                    .map_err(|_| silent())?
                {
                    let event = event.map_err(|e| LlmError::retryable(format!("stream broke: {e}")))?;
                    if let Some(text) = acc.push(&event.data)? {
                        yield LlmChunk::Text(text);
                    }
                    if acc.is_done() {
                        break;
                    }
                }
                if !acc.is_done() {
                    Err(LlmError::retryable("stream ended before [DONE]"))?;
                }
                yield LlmChunk::Done(acc.finish());
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_STREAM: &str = include_str!("../../fixtures/openai/text_stream.txt");
    const TOOL_STREAM: &str = include_str!("../../fixtures/openai/tool_calls_stream.txt");

    fn feed(recording: &str) -> (Vec<String>, StreamAccumulator) {
        let mut acc = StreamAccumulator::default();
        let mut texts = Vec::new();
        for line in recording.lines() {
            if let Some(data) = line.strip_prefix("data: ")
                && let Some(t) = acc.push(data).unwrap()
            {
                texts.push(t);
            }
        }
        (texts, acc)
    }

    #[test]
    fn assembles_text_and_usage() {
        let (texts, acc) = feed(TEXT_STREAM);
        assert_eq!(texts, vec!["Hello", ", world", "!"]);
        assert!(acc.is_done());
        let response = acc.finish();
        assert_eq!(response.content, "Hello, world!");
        assert!(response.tool_calls.is_empty());
        assert_eq!(response.usage, Usage::new(12, 4));
    }

    #[test]
    fn assembles_parallel_tool_calls_from_fragments() {
        let (texts, acc) = feed(TOOL_STREAM);
        assert!(texts.is_empty());
        let response = acc.finish();
        assert_eq!(response.tool_calls.len(), 2);
        assert_eq!(response.tool_calls[0].id, "call_a");
        assert_eq!(response.tool_calls[0].name, "calculator");
        assert_eq!(
            response.tool_calls[0].arguments,
            json!({"expression": "6*7"})
        );
        assert_eq!(response.tool_calls[1].name, "current_time");
        assert_eq!(response.tool_calls[1].arguments, json!({}));
        assert_eq!(response.usage, Usage::new(30, 20));
    }

    #[test]
    fn an_error_chunk_fails_the_stream() {
        let mut acc = StreamAccumulator::default();
        let err = acc
            .push(r#"{"error":{"message":"overloaded","type":"server_error"}}"#)
            .unwrap_err();
        assert!(err.retryable);
        assert!(err.message.contains("overloaded"));
    }

    #[test]
    fn error_bodies_keep_the_vendor_message_and_classify_status() {
        let body = include_str!("../../fixtures/openai/error_body.json");
        let err = http_error(reqwest::StatusCode::BAD_REQUEST, body);
        assert!(!err.retryable);
        assert!(err.message.contains("Invalid model"), "{}", err.message);
        assert!(http_error(reqwest::StatusCode::TOO_MANY_REQUESTS, body).retryable);
        assert!(http_error(reqwest::StatusCode::BAD_GATEWAY, "oops").retryable);
    }

    #[test]
    fn parses_a_non_streaming_completion() {
        let body = json!({
            "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": "{\"expression\":\"1+1\"}"}}
            ]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
        });
        let response = parse_completion(&body).unwrap();
        assert_eq!(response.content, "");
        assert_eq!(
            response.tool_calls[0].arguments,
            json!({"expression": "1+1"})
        );
        assert_eq!(response.usage.total_tokens, 12);
    }

    #[test]
    fn cached_prompt_tokens_are_counted_as_cache_reads_within_the_input() {
        let body = json!({
            "choices": [{"message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
                      "prompt_tokens_details": {"cached_tokens": 64}}
        });
        let usage = parse_completion(&body).unwrap().usage;
        assert_eq!(usage, Usage::new(100, 7).with_cache(0, 64));
        assert_eq!(usage.uncached_input_tokens(), 36);
    }
}
