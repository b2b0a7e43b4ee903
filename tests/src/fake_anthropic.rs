//! A fake Anthropic Messages server: `POST /v1/messages` answers scripted turns, as an SSE
//! stream of the vendor's documented events (`message_start`, content blocks, `ping`,
//! `message_delta` with cumulative usage, `message_stop`, an unknown event) when the request
//! asks to stream, else as one JSON message. Every answer reports cache tokens, so cost with
//! cache prices can be checked.

use agentflow_shared::config::{AgentflowConfig, ModelConfig, ProviderKind};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Input tokens every answer reports (the vendor's count: without cache tokens).
pub const INPUT_TOKENS: u64 = 100;
/// Cache-write tokens every answer reports.
pub const CACHE_WRITE_TOKENS: u64 = 20;
/// Cache-read tokens every answer reports.
pub const CACHE_READ_TOKENS: u64 = 30;
/// Output tokens every answer reports (in `message_delta`; `message_start` says 1).
pub const OUTPUT_TOKENS: u64 = 10;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum AnthropicTurn {
    /// Text, streamed piece by piece.
    Text(Vec<String>),
    /// Text, then `stop_reason: "pause_turn"` (the client is to continue the turn).
    Paused(Vec<String>),
    /// Some text, then parallel `tool_use` blocks: (id, name, input JSON in fragments).
    ToolUse(String, Vec<(String, String, Vec<String>)>),
    /// These text pieces, then an `overloaded_error` event mid-stream.
    Overloaded(Vec<String>),
    /// Text every 20 ms until the client goes away.
    Endless,
    /// HTTP 429 with `retry-after` of this many seconds.
    RateLimited(u64),
    /// A thinking block (pieces, then its signature), then one `tool_use` (id, name, input
    /// JSON).
    ThinkingToolUse(Vec<String>, String, (String, String, String)),
}

struct Shared {
    turns: Mutex<VecDeque<AnthropicTurn>>,
    requests: Mutex<Vec<(HeaderMap, Value)>>,
    closed: tokio::sync::watch::Sender<usize>,
}

/// Counts a stream whose client went away, when dropped.
struct ClosedOnDrop(tokio::sync::watch::Sender<usize>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// A running fake server (it stops with the runtime that started it).
pub struct FakeAnthropic {
    /// Base URL for a model's `base_url` (ends in `/v1`).
    pub base_url: String,
    shared: Arc<Shared>,
}

impl FakeAnthropic {
    /// Starts the server on a free port of 127.0.0.1, answering these turns in order.
    pub async fn start(turns: Vec<AnthropicTurn>) -> Self {
        let shared = Arc::new(Shared {
            turns: Mutex::new(turns.into()),
            requests: Mutex::new(Vec::new()),
            closed: tokio::sync::watch::Sender::new(0),
        });
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, shared }
    }

    /// The model `claude-fake` served here, with cache prices.
    pub fn model(&self) -> ModelConfig {
        ModelConfig {
            provider: ProviderKind::Anthropic,
            model: Some("claude-fake".into()),
            base_url: Some(self.base_url.clone()),
            api_key_env: None,
            input_price_per_mtok: 3.0,
            output_price_per_mtok: 15.0,
            cache_write_price_per_mtok: Some(3.75),
            cache_read_price_per_mtok: Some(0.3),
            max_tokens: Some(1024),
            prompt_caching: true,
            thinking_budget_tokens: None,
            prompt_cache_ttl: Default::default(),
            token_delay_ms: 0,
            request_timeout_secs: 10,
            script: Vec::new(),
        }
    }

    /// `config` with the model `claude-fake` added.
    pub fn config(&self, mut config: AgentflowConfig) -> AgentflowConfig {
        config.models.insert("claude-fake".into(), self.model());
        config
    }

    /// The request bodies received so far, with their headers.
    pub fn requests(&self) -> Vec<(HeaderMap, Value)> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Resolves once an [`AnthropicTurn::Endless`] stream has lost its client.
    pub async fn stream_closed(&self) {
        let mut closed = self.shared.closed.subscribe();
        closed.wait_for(|n| *n >= 1).await.unwrap();
    }
}

fn usage(output: u64) -> Value {
    json!({
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
        "cache_read_input_tokens": CACHE_READ_TOKENS,
        "output_tokens": output,
    })
}

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The events of a turn (all but `Endless`), in the vendor's order.
fn events(turn: &AnthropicTurn) -> Vec<String> {
    let mut out = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message",
            "role": "assistant", "content": [], "model": "claude-fake", "stop_reason": null,
            "usage": usage(1)}}),
    )];
    let text_block = |out: &mut Vec<String>, index: usize, pieces: &[String]| {
        out.push(event(
            "content_block_start",
            json!({"type": "content_block_start",
            "index": index, "content_block": {"type": "text", "text": ""}}),
        ));
        out.push(event("ping", json!({"type": "ping"})));
        for piece in pieces {
            out.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta",
                "index": index, "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        out.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    };
    let stop = match turn {
        AnthropicTurn::Text(pieces) => {
            text_block(&mut out, 0, pieces);
            "end_turn"
        }
        AnthropicTurn::Paused(pieces) => {
            text_block(&mut out, 0, pieces);
            "pause_turn"
        }
        AnthropicTurn::ToolUse(text, calls) => {
            text_block(&mut out, 0, std::slice::from_ref(text));
            for (i, (id, name, fragments)) in calls.iter().enumerate() {
                let index = i + 1;
                out.push(event(
                    "content_block_start",
                    json!({"type": "content_block_start",
                    "index": index, "content_block": {"type": "tool_use", "id": id,
                    "name": name, "input": {}}}),
                ));
                out.push(event(
                    "an_unknown_event",
                    json!({"type": "an_unknown_event"}),
                ));
                for fragment in fragments {
                    out.push(event(
                        "content_block_delta",
                        json!({"type": "content_block_delta",
                        "index": index, "delta": {"type": "input_json_delta",
                        "partial_json": fragment}}),
                    ));
                }
                out.push(event(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": index}),
                ));
            }
            "tool_use"
        }
        AnthropicTurn::Overloaded(pieces) => {
            out.push(event(
                "content_block_start",
                json!({"type": "content_block_start",
                "index": 0, "content_block": {"type": "text", "text": ""}}),
            ));
            for piece in pieces {
                out.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta",
                    "index": 0, "delta": {"type": "text_delta", "text": piece}}),
                ));
            }
            out.push(event(
                "error",
                json!({"type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ));
            return out;
        }
        AnthropicTurn::ThinkingToolUse(pieces, signature, (id, name, input)) => {
            out.push(event(
                "content_block_start",
                json!({"type": "content_block_start",
                "index": 0, "content_block": {"type": "thinking", "thinking": "",
                "signature": ""}}),
            ));
            for piece in pieces {
                out.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta",
                    "index": 0, "delta": {"type": "thinking_delta", "thinking": piece}}),
                ));
            }
            out.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta",
                "index": 0, "delta": {"type": "signature_delta", "signature": signature}}),
            ));
            out.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            out.push(event(
                "content_block_start",
                json!({"type": "content_block_start",
                "index": 1, "content_block": {"type": "tool_use", "id": id, "name": name,
                "input": {}}}),
            ));
            out.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta",
                "index": 1, "delta": {"type": "input_json_delta", "partial_json": input}}),
            ));
            out.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
            ));
            "tool_use"
        }
        AnthropicTurn::Endless | AnthropicTurn::RateLimited(_) => {
            unreachable!("answered apart")
        }
    };
    out.push(event(
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": OUTPUT_TOKENS}}),
    ));
    out.push(event("message_stop", json!({"type": "message_stop"})));
    out
}

/// The batch answer of a turn.
fn message(turn: &AnthropicTurn) -> Value {
    let (content, stop) = match turn {
        AnthropicTurn::Text(pieces) => (
            json!([{"type": "text", "text": pieces.concat()}]),
            "end_turn",
        ),
        AnthropicTurn::Paused(pieces) => (
            json!([{"type": "text", "text": pieces.concat()}]),
            "pause_turn",
        ),
        AnthropicTurn::ToolUse(text, calls) => {
            let mut blocks = vec![json!({"type": "text", "text": text})];
            for (id, name, fragments) in calls {
                let input: Value = serde_json::from_str(&fragments.concat()).unwrap_or(json!({}));
                blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
            }
            (json!(blocks), "tool_use")
        }
        AnthropicTurn::ThinkingToolUse(pieces, signature, (id, name, input)) => {
            let input: Value = serde_json::from_str(input).unwrap_or(json!({}));
            (
                json!([
                    {"type": "thinking", "thinking": pieces.concat(), "signature": signature},
                    {"type": "tool_use", "id": id, "name": name, "input": input}
                ]),
                "tool_use",
            )
        }
        _ => (json!([]), "end_turn"),
    };
    json!({"id": "msg_fake", "type": "message", "role": "assistant", "model": "claude-fake",
        "content": content, "stop_reason": stop, "usage": usage(OUTPUT_TOKENS)})
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    shared
        .requests
        .lock()
        .unwrap()
        .push((headers, body.clone()));
    let turn = shared.turns.lock().unwrap().pop_front();
    let Some(turn) = turn else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"type": "error", "error": {"type": "invalid_request_error",
                "message": "no scripted turn left"}}),
            ),
        )
            .into_response();
    };
    if let AnthropicTurn::RateLimited(seconds) = turn {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", seconds.to_string())],
            Json(
                json!({"type": "error", "error": {"type": "rate_limit_error",
                "message": "slow down"}}),
            ),
        )
            .into_response();
    }
    let sse =
        |body: axum::body::Body| ([("content-type", "text/event-stream")], body).into_response();
    if body["stream"] != true {
        return Json(message(&turn)).into_response();
    }
    if let AnthropicTurn::Endless = turn {
        let guard = ClosedOnDrop(shared.closed.clone());
        let start = events(&AnthropicTurn::Overloaded(Vec::new()));
        let stream = futures::stream::iter(start.into_iter().take(2))
            .chain(futures::stream::unfold(guard, |guard| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let piece = event(
                    "content_block_delta",
                    json!({"type": "content_block_delta",
                    "index": 0, "delta": {"type": "text_delta", "text": "more "}}),
                );
                Some((piece, guard))
            }))
            .map(Ok::<_, std::convert::Infallible>);
        return sse(axum::body::Body::from_stream(stream));
    }
    let stream = futures::stream::iter(events(&turn)).then(|piece| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok::<_, std::convert::Infallible>(piece)
    });
    sse(axum::body::Body::from_stream(stream))
}
