//! The `anthropic` provider: Anthropic's Messages API, streaming (SSE) or not, with tool use,
//! exact usage (cache writes and reads apart) and optional prompt caching.

use super::openai::parse_arguments;
use super::{LlmChunk, LlmError, LlmProvider, LlmRequest, LlmResponse};
use agentflow_shared::config::{CacheTtl, ModelConfig};
use agentflow_shared::llm::{ChatMessage, FinishReason, Role, ToolCall, Usage};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use std::time::Duration;

/// The vendor's endpoint when the model sets no `base_url`.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com/v1";

/// The API version every request names (`anthropic-version`).
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` when the model sets none (the API requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// A client of the Messages API.
pub struct AnthropicProvider {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    timeout: Duration,
    max_tokens: u32,
    prompt_caching: bool,
    cache_ttl: CacheTtl,
    thinking_budget: Option<u32>,
}

impl AnthropicProvider {
    /// Builds the provider from a model's config; the API key is read from `api_key_env`.
    pub fn from_config(model: &ModelConfig, http: reqwest::Client) -> Result<Self, LlmError> {
        let api_key = super::api_key(model)?;
        Ok(Self {
            http,
            base_url: model
                .base_url
                .as_deref()
                .unwrap_or(DEFAULT_BASE_URL)
                .trim_end_matches('/')
                .to_owned(),
            api_key,
            timeout: Duration::from_secs(model.request_timeout_secs),
            max_tokens: model.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            prompt_caching: model.prompt_caching,
            cache_ttl: model.prompt_cache_ttl,
            thinking_budget: model.thinking_budget_tokens,
        })
    }

    /// The request body: the system prompt at the top level, the conversation as content
    /// blocks, tools with `input_schema`; with prompt caching, the system prompt and the last
    /// tool definition carry `cache_control`.
    pub fn body(&self, request: &LlmRequest) -> Value {
        let cache = || json!({"type": "ephemeral", "ttl": self.cache_ttl.as_str()});
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .filter_map(|m| m.content.as_deref())
            .collect();
        let mut body = json!({
            "model": request.model,
            "max_tokens": self.max_tokens,
            "messages": messages_json(&request.messages),
            "stream": request.stream,
        });
        if let Some(budget) = self.thinking_budget {
            body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        }
        if !system.is_empty() {
            let mut block = json!({"type": "text", "text": system.join("\n\n")});
            if self.prompt_caching {
                block["cache_control"] = cache();
            }
            body["system"] = json!([block]);
        }
        if !request.tools.is_empty() {
            let mut tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| {
                    json!({"name": t.name, "description": t.description,
                           "input_schema": t.parameters})
                })
                .collect();
            if self.prompt_caching
                && let Some(last) = tools.last_mut()
            {
                last["cache_control"] = cache();
            }
            body["tools"] = json!(tools);
        }
        body
    }
}

/// The conversation as Messages API turns: text, an assistant's `tool_use` blocks, and each
/// run of tool answers as one user turn of `tool_result` blocks (`is_error` for failures).
fn messages_json(messages: &[ChatMessage]) -> Vec<Value> {
    let mut turns: Vec<Value> = Vec::new();
    for message in messages {
        match message.role {
            Role::System => {}
            Role::User => turns.push(json!({"role": "user", "content": [
                {"type": "text", "text": message.content.clone().unwrap_or_default()}
            ]})),
            Role::Assistant => {
                // Thinking blocks go back verbatim, first (the API refuses a tool-use turn
                // whose thinking was changed or left out).
                let mut blocks = message.reasoning.clone();
                if let Some(text) = message.content.as_deref().filter(|t| !t.is_empty()) {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in &message.tool_calls {
                    let input = match &call.arguments {
                        Value::Object(_) => call.arguments.clone(),
                        _ => json!({}),
                    };
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name,
                                       "input": input}));
                }
                if blocks.is_empty() {
                    blocks.push(json!({"type": "text", "text": ""}));
                }
                turns.push(json!({"role": "assistant", "content": blocks}));
            }
            Role::Tool => {
                let mut block = json!({
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id.clone().unwrap_or_default(),
                    "content": message.content.clone().unwrap_or_default(),
                });
                if message.is_error {
                    block["is_error"] = json!(true);
                }
                let continues = turns.last().is_some_and(|t| {
                    t["role"] == "user" && t["content"][0]["type"].as_str() == Some("tool_result")
                });
                match turns.last_mut() {
                    Some(turn) if continues => {
                        if let Some(blocks) = turn["content"].as_array_mut() {
                            blocks.push(block);
                        }
                    }
                    _ => turns.push(json!({"role": "user", "content": [block]})),
                }
            }
        }
    }
    turns
}

/// An error response's [`LlmError`]: the vendor's message; 429, 5xx and 529 (overloaded)
/// retryable, with the `retry-after` seconds when given; 400, 401, 403, 404, 413 not.
pub fn http_error(status: reqwest::StatusCode, retry_after: Option<&str>, body: &str) -> LlmError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(500).collect());
    let mut message = format!("HTTP {}: {message}", status.as_u16());
    if let Some(seconds) = retry_after {
        message.push_str(&format!(" (retry after {seconds} s)"));
    }
    if status.as_u16() == 429 || status.is_server_error() {
        let wait = retry_after
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        LlmError::retryable(message).with_retry_after(wait)
    } else {
        LlmError::fatal(message)
    }
}

fn network_error(err: reqwest::Error) -> LlmError {
    LlmError::retryable(format!("request failed: {err}"))
}

/// The vendor's `stop_reason` as a [`FinishReason`].
fn finish_reason(stop_reason: Option<&str>, tool_calls: &[ToolCall]) -> FinishReason {
    match stop_reason {
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(_) => FinishReason::Stop,
        None if tool_calls.is_empty() => FinishReason::Stop,
        None => FinishReason::ToolCalls,
    }
}

/// Usage from a `usage` object: the vendor's `input_tokens` exclude cache tokens, ours
/// include them.
fn usage_of(usage: &Value) -> Usage {
    let count = |field: &str| usage[field].as_u64().unwrap_or(0);
    let written = count("cache_creation_input_tokens");
    let read = count("cache_read_input_tokens");
    Usage::new(
        count("input_tokens") + written + read,
        count("output_tokens"),
    )
    .with_cache(written, read)
}

/// Parses a non-streaming Messages response.
pub fn parse_message(body: &Value) -> Result<LlmResponse, LlmError> {
    if body["type"] == "error" {
        return Err(stream_error(&body["error"]));
    }
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    let mut reasoning = Vec::new();
    for block in body["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => content.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_owned(),
                name: block["name"].as_str().unwrap_or_default().to_owned(),
                arguments: block["input"].clone(),
            }),
            Some("thinking" | "redacted_thinking") => reasoning.push(block.clone()),
            _ => {}
        }
    }
    Ok(LlmResponse {
        content,
        finish_reason: finish_reason(body["stop_reason"].as_str(), &tool_calls),
        tool_calls,
        usage: usage_of(&body["usage"]),
        reasoning,
    })
}

/// An `error` event's (or body's) failure: overload, rate limit and internal errors are
/// retryable.
fn stream_error(error: &Value) -> LlmError {
    let kind = error["type"].as_str().unwrap_or("error");
    let message = format!(
        "{kind}: {}",
        error["message"]
            .as_str()
            .unwrap_or("the stream reported an error")
    );
    match kind {
        "overloaded_error" | "rate_limit_error" | "api_error" | "timeout_error" => {
            LlmError::retryable(message)
        }
        _ => LlmError::fatal(message),
    }
}

/// A content block being streamed.
#[derive(Debug)]
enum Block {
    Text,
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
    /// Thinking, with the signature that must go back with it.
    Thinking {
        thinking: String,
        signature: String,
    },
    /// Thinking the vendor encrypted: sent back as it came.
    Redacted(Value),
    /// Anything newer: read past.
    Other,
}

/// Assembles a streamed Messages response from its events: text deltas, `tool_use` blocks
/// whose input arrives as JSON fragments (parsed at `content_block_stop`), usage from
/// `message_start` overridden by `message_delta`'s cumulative counts, `ping` anywhere, an
/// `error` event, unknown events ignored.
#[derive(Debug, Default)]
pub struct MessageAccumulator {
    blocks: Vec<(usize, Block)>,
    content: String,
    tool_calls: Vec<ToolCall>,
    reasoning: Vec<Value>,
    usage: Value,
    stop_reason: Option<String>,
    done: bool,
}

impl MessageAccumulator {
    /// Feeds one event's `data`; returns the answer text or thinking it adds, if any.
    pub fn push(&mut self, data: &str) -> Result<Option<LlmChunk>, LlmError> {
        let event: Value = serde_json::from_str(data)
            .map_err(|e| LlmError::retryable(format!("malformed stream event: {e}")))?;
        match event["type"].as_str().unwrap_or_default() {
            "message_start" => {
                self.usage = event["message"]["usage"].clone();
            }
            "content_block_start" => {
                let index = event["index"].as_u64().unwrap_or(0) as usize;
                let block = &event["content_block"];
                let block = match block["type"].as_str() {
                    Some("text") => Block::Text,
                    Some("tool_use") => Block::ToolUse {
                        id: block["id"].as_str().unwrap_or_default().to_owned(),
                        name: block["name"].as_str().unwrap_or_default().to_owned(),
                        json: String::new(),
                    },
                    Some("thinking") => Block::Thinking {
                        thinking: block["thinking"].as_str().unwrap_or_default().to_owned(),
                        signature: block["signature"].as_str().unwrap_or_default().to_owned(),
                    },
                    Some("redacted_thinking") => Block::Redacted(block.clone()),
                    _ => Block::Other,
                };
                self.blocks.push((index, block));
            }
            "content_block_delta" => {
                let index = event["index"].as_u64().unwrap_or(0) as usize;
                let delta = &event["delta"];
                let block = self.blocks.iter_mut().find(|(i, _)| *i == index);
                match (delta["type"].as_str(), block) {
                    (Some("text_delta"), Some((_, Block::Text))) => {
                        let text = delta["text"].as_str().unwrap_or_default();
                        if !text.is_empty() {
                            self.content.push_str(text);
                            return Ok(Some(LlmChunk::Text(text.to_owned())));
                        }
                    }
                    (Some("thinking_delta"), Some((_, Block::Thinking { thinking, .. }))) => {
                        let text = delta["thinking"].as_str().unwrap_or_default();
                        if !text.is_empty() {
                            thinking.push_str(text);
                            return Ok(Some(LlmChunk::Thinking(text.to_owned())));
                        }
                    }
                    (Some("signature_delta"), Some((_, Block::Thinking { signature, .. }))) => {
                        signature.push_str(delta["signature"].as_str().unwrap_or_default());
                    }
                    (Some("input_json_delta"), Some((_, Block::ToolUse { json, .. }))) => {
                        json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = event["index"].as_u64().unwrap_or(0) as usize;
                if let Some(position) = self.blocks.iter().position(|(i, _)| *i == index) {
                    match self.blocks.remove(position).1 {
                        Block::ToolUse { id, name, json } => self.tool_calls.push(ToolCall {
                            id,
                            name,
                            arguments: parse_arguments(&json),
                        }),
                        Block::Thinking {
                            thinking,
                            signature,
                        } => self.reasoning.push(json!({"type": "thinking",
                            "thinking": thinking, "signature": signature})),
                        Block::Redacted(block) => self.reasoning.push(block),
                        Block::Text | Block::Other => {}
                    }
                }
            }
            "message_delta" => {
                if let Some(reason) = event["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(counts) = event["usage"].as_object() {
                    for (field, count) in counts {
                        if !count.is_null() {
                            self.usage[field] = count.clone();
                        }
                    }
                }
            }
            "message_stop" => self.done = true,
            "error" => return Err(stream_error(&event["error"])),
            _ => {}
        }
        Ok(None)
    }

    /// Whether `message_stop` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the model paused its turn (`pause_turn`): the call goes on with another request.
    pub fn paused(&self) -> bool {
        self.stop_reason.as_deref() == Some("pause_turn")
    }

    /// The assembled response.
    pub fn finish(self) -> LlmResponse {
        LlmResponse {
            content: self.content,
            finish_reason: finish_reason(self.stop_reason.as_deref(), &self.tool_calls),
            tool_calls: self.tool_calls,
            usage: usage_of(&self.usage),
            reasoning: self.reasoning,
        }
    }
}

/// `response` when it succeeded; else its error, with the vendor's message and `retry-after`.
async fn successful(
    response: reqwest::Response,
    timeout: Duration,
) -> Result<reqwest::Response, LlmError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = tokio::time::timeout(timeout, response.text())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    Err(http_error(status, retry_after.as_deref(), &text))
}

/// The most times a `pause_turn` answer is continued within one call.
pub const MAX_CONTINUATIONS: usize = 4;

/// `answer` followed by its continuation `next` (after a `pause_turn`): text, tool calls and
/// reasoning appended, usage summed (each request is billed), the last stop reason kept.
fn merge(answer: Option<LlmResponse>, next: LlmResponse) -> LlmResponse {
    let Some(mut answer) = answer else {
        return next;
    };
    answer.content.push_str(&next.content);
    answer.tool_calls.extend(next.tool_calls);
    answer.reasoning.extend(next.reasoning);
    answer.usage = answer.usage + next.usage;
    answer.finish_reason = next.finish_reason;
    answer
}

impl LlmProvider for AnthropicProvider {
    fn call(&self, request: LlmRequest) -> BoxStream<'static, Result<LlmChunk, LlmError>> {
        let (http, url, key) = (
            self.http.clone(),
            format!("{}/messages", self.base_url),
            self.api_key.clone(),
        );
        let timeout = self.timeout;
        let stream = request.stream;
        let send = move |body: &Value| {
            let mut builder = http
                .post(&url)
                .header("anthropic-version", API_VERSION)
                .json(body);
            // A batch request is bounded as a whole; a stream by its silences.
            if !stream {
                builder = builder.timeout(timeout);
            }
            if let Some(key) = &key {
                builder = builder.header("x-api-key", key);
            }
            builder.send()
        };
        let silent = move || {
            LlmError::retryable(format!(
                "the model sent nothing for {} s",
                timeout.as_secs_f64()
            ))
        };
        let mut body = self.body(&request);
        Box::pin(async_stream::try_stream! {
            let mut answer: Option<LlmResponse> = None;
            for round in 0..=MAX_CONTINUATIONS {
                let response = tokio::time::timeout(timeout, send(&body))
                    .await
                    .map_err(|_| silent())?
                    .map_err(network_error)?;
                let response = successful(response, timeout).await?;
                let (part, paused) = if !stream {
                    let message: Value = response.json().await.map_err(network_error)?;
                    (parse_message(&message)?, message["stop_reason"] == "pause_turn")
                } else {
                    let mut events = response.bytes_stream().eventsource();
                    let mut acc = MessageAccumulator::default();
                    while let Some(event) = tokio::time::timeout(timeout, events.next())
                        .await
                        .map_err(|_| silent())?
                    {
                        let event = event.map_err(|e| LlmError::retryable(format!("stream broke: {e}")))?;
                        if let Some(piece) = acc.push(&event.data)? {
                            yield piece;
                        }
                        if acc.is_done() {
                            break;
                        }
                    }
                    if !acc.is_done() {
                        Err(LlmError::retryable("stream ended before message_stop"))?;
                    }
                    let paused = acc.paused();
                    (acc.finish(), paused)
                };
                // A paused turn (a long server-side step) goes on from where it stopped: the
                // answer so far is sent back as the assistant's turn.
                if paused && round < MAX_CONTINUATIONS {
                    let mut turn = ChatMessage::assistant(Some(part.content.clone()), part.tool_calls.clone());
                    turn.reasoning = part.reasoning.clone();
                    if let Some(messages) = body["messages"].as_array_mut() {
                        messages.extend(messages_json(&[turn]));
                    }
                    answer = Some(merge(answer, part));
                    continue;
                }
                answer = Some(merge(answer, part));
                break;
            }
            if let Some(answer) = answer {
                yield LlmChunk::Done(answer);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentflow_shared::llm::ToolSpec;

    const TEXT_STREAM: &str = include_str!("../../fixtures/anthropic/text_stream.txt");
    const TOOL_STREAM: &str = include_str!("../../fixtures/anthropic/tool_use_stream.txt");
    const THINKING_STREAM: &str = include_str!("../../fixtures/anthropic/thinking_stream.txt");

    #[test]
    fn thinking_streams_apart_from_the_answer_and_its_blocks_are_kept_verbatim() {
        let mut acc = MessageAccumulator::default();
        let mut pieces = Vec::new();
        for line in THINKING_STREAM.lines() {
            if let Some(data) = line.strip_prefix("data: ")
                && let Some(piece) = acc.push(data).unwrap()
            {
                pieces.push(piece);
            }
        }
        assert_eq!(
            pieces,
            vec![
                LlmChunk::Thinking("Six times seven".into()),
                LlmChunk::Thinking("; use the calculator.".into()),
            ]
        );
        let response = acc.finish();
        assert_eq!(response.content, "", "thinking is never the answer");
        assert_eq!(
            response.tool_calls[0].arguments,
            json!({"expression": "6*7"})
        );
        assert_eq!(
            response.reasoning,
            vec![
                json!({"type": "thinking", "thinking": "Six times seven; use the calculator.",
                       "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}),
                json!({"type": "redacted_thinking",
                       "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"}),
            ]
        );
        // Sent back first in the assistant turn, before its tool use.
        let mut assistant = ChatMessage::assistant(None, response.tool_calls.clone());
        assistant.reasoning = response.reasoning.clone();
        let turns = messages_json(&[assistant]);
        let blocks = turns[0]["content"].as_array().unwrap();
        assert_eq!(blocks[0], response.reasoning[0]);
        assert_eq!(blocks[1], response.reasoning[1]);
        assert_eq!(blocks[2]["type"], "tool_use");
    }

    fn feed(recording: &str) -> Result<(Vec<String>, MessageAccumulator), LlmError> {
        let mut acc = MessageAccumulator::default();
        let mut texts = Vec::new();
        for line in recording.lines() {
            if let Some(data) = line.strip_prefix("data: ")
                && let Some(LlmChunk::Text(t)) = acc.push(data)?
            {
                texts.push(t);
            }
        }
        Ok((texts, acc))
    }

    #[test]
    fn assembles_text_and_exact_usage_with_cache_tokens() {
        let (texts, acc) = feed(TEXT_STREAM).unwrap();
        assert_eq!(texts, vec!["Hello", "!"]);
        assert!(acc.is_done());
        let response = acc.finish();
        assert_eq!(response.content, "Hello!");
        assert_eq!(response.finish_reason, FinishReason::Stop);
        // input 25 + cache write 10 + cache read 5; output from message_delta (cumulative).
        assert_eq!(response.usage, Usage::new(40, 15).with_cache(10, 5));
    }

    #[test]
    fn assembles_parallel_tool_use_from_json_fragments_past_pings_and_unknown_events() {
        let (texts, acc) = feed(TOOL_STREAM).unwrap();
        assert_eq!(texts, vec!["Let me check."]);
        let response = acc.finish();
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        assert_eq!(response.tool_calls.len(), 2);
        assert_eq!(response.tool_calls[0].id, "toolu_01");
        assert_eq!(response.tool_calls[0].name, "calculator");
        assert_eq!(
            response.tool_calls[0].arguments,
            json!({"expression": "6*7"})
        );
        assert_eq!(response.tool_calls[1].name, "current_time");
        assert_eq!(response.tool_calls[1].arguments, json!({}));
        assert_eq!(response.usage.output_tokens, 89);
    }

    #[test]
    fn an_error_event_fails_the_stream_retryably_when_overloaded() {
        let mut acc = MessageAccumulator::default();
        let error = acc
            .push(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
            .unwrap_err();
        assert!(error.retryable);
        assert!(error.message.contains("Overloaded"));
        let error = acc
            .push(r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#)
            .unwrap_err();
        assert!(!error.retryable);
    }

    #[test]
    fn http_errors_are_classified_and_carry_retry_after() {
        let body = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        let error = http_error(reqwest::StatusCode::UNAUTHORIZED, None, body);
        assert!(!error.retryable);
        assert!(error.message.contains("invalid x-api-key"));
        for status in [400, 403, 404, 413] {
            let status = reqwest::StatusCode::from_u16(status).unwrap();
            assert!(!http_error(status, None, "{}").retryable, "{status}");
        }
        let overloaded = reqwest::StatusCode::from_u16(529).unwrap();
        assert!(http_error(overloaded, None, "{}").retryable);
        let limited = http_error(reqwest::StatusCode::TOO_MANY_REQUESTS, Some("7"), "{}");
        assert!(limited.retryable);
        assert!(
            limited.message.contains("retry after 7 s"),
            "{}",
            limited.message
        );
        assert_eq!(limited.retry_after, Some(Duration::from_secs(7)));
    }

    #[test]
    fn the_request_puts_system_on_top_tool_results_in_one_user_turn_and_caches_the_prefix() {
        let model = ModelConfig {
            prompt_caching: true,
            max_tokens: Some(1000),
            ..agentflow_shared::config::AgentflowConfig::default_config().models["scripted"].clone()
        };
        let provider = AnthropicProvider::from_config(&model, reqwest::Client::new()).unwrap();
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "calculator".into(),
            arguments: json!({"expression": "1+1"}),
        };
        let request = LlmRequest {
            model: "claude".into(),
            messages: vec![
                ChatMessage::text(Role::System, "Be brief."),
                ChatMessage::text(Role::User, "Add."),
                ChatMessage::assistant(None, vec![call("a"), call("b")]),
                ChatMessage::tool_result("a", "2"),
                ChatMessage::tool_error("b", "error: cancelled"),
            ],
            tools: vec![ToolSpec {
                name: "calculator".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            }],
            stream: true,
        };
        let body = provider.body(&request);
        assert_eq!(body["max_tokens"], 1000);
        assert!(
            body.get("thinking").is_none(),
            "no thinking unless configured"
        );
        assert_eq!(body["system"][0]["text"], "Be brief.");
        assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(body["system"][0]["cache_control"]["ttl"], "5m");
        assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(body["tools"][0]["cache_control"]["type"], "ephemeral");
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(
            messages.len(),
            3,
            "user, assistant, one user turn of results"
        );
        assert_eq!(messages[1]["content"][1]["type"], "tool_use");
        let results = messages[2]["content"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["tool_use_id"], "a");
        assert!(results[0].get("is_error").is_none());
        assert_eq!(results[1]["is_error"], true);
    }

    #[test]
    fn parses_a_batch_message() {
        let body = json!({
            "type": "message", "role": "assistant",
            "content": [
                {"type": "text", "text": "Sure."},
                {"type": "tool_use", "id": "toolu_9", "name": "calculator", "input": {"expression": "2*3"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 90}
        });
        let response = parse_message(&body).unwrap();
        assert_eq!(response.content, "Sure.");
        assert_eq!(
            response.tool_calls[0].arguments,
            json!({"expression": "2*3"})
        );
        assert_eq!(response.usage, Usage::new(100, 5).with_cache(0, 90));
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    }
}
