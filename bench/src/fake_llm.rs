//! A local OpenAI-compatible Chat Completions server, for tests and for the chaos scenario.
//!
//! What it answers is decided per request by a [`Script`]: [`FakeLlm::start`] replays a list of
//! [`Turn`]s in order; [`FakeLlm::start_with`] asks a script of the caller's (the chaos scenario
//! picks its faults per request: HTTP 500, a stream that breaks mid-way). It also serves
//! `POST /v1/tools/lookup`, the backend of [`LookupTool`], whose answers (a result or a
//! retryable HTTP 500) the script decides too. Every chat request body is recorded.

use agentflow_shared::config::{AgentflowConfig, ModelConfig, ProviderKind};
use agentflow_shared::llm::ToolSpec;
use agentflow_worker::tools::{CallContext, Tool, ToolError};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server answers to one chat request.
#[derive(Debug, Clone)]
pub enum Turn {
    /// Text, streamed chunk by chunk (or whole when the request is not streaming).
    Text(Vec<String>),
    /// Text streamed one chunk per interval (whole when the request is not streaming).
    Paced(Vec<String>, Duration),
    /// Text streamed one chunk per interval, after which the connection breaks: no `[DONE]`,
    /// the HTTP body ends in an error (a vendor dropping the stream mid-way).
    Dropped(Vec<String>, Duration),
    /// Tool calls `(id, name, arguments JSON)`, streamed as argument fragments.
    ToolCalls(Vec<(String, String, String)>),
    /// An HTTP error with an OpenAI-style error body.
    Error(u16, String),
    /// Text streamed forever, a chunk every 20 ms, until the client goes away (which
    /// [`FakeLlm::stream_closed`] then reports).
    Endless,
    /// `tokens` tokens one per interval, each carrying the moment it was sent
    /// ([`emitted_at`] reads it back), then these tool calls (none: a plain answer).
    Timed {
        /// How many tokens.
        tokens: usize,
        /// The interval between two tokens.
        every: Duration,
        /// Tool calls `(id, name, arguments JSON)` after the text.
        then_tools: Vec<(String, String, String)>,
    },
}

/// A timed token: `⟨micros since the Unix epoch⟩` and a space.
fn timed_token() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("t{micros} ")
}

/// The emission times (µs since the Unix epoch) of the timed tokens in `text`.
pub fn emitted_at(text: &str) -> Vec<u128> {
    text.split_whitespace()
        .filter_map(|word| word.strip_prefix('t')?.parse().ok())
        .collect()
}

/// Decides the server's answers, request by request.
pub trait Script: Send + Sync + 'static {
    /// The answer to a chat request (its JSON body).
    fn chat(&self, request: &Value) -> Turn;
    /// The answer to a `lookup` tool call (its arguments): a result, or an HTTP status.
    fn lookup(&self, arguments: &Value) -> Result<Value, u16>;
}

/// Scripted turns in order (an error once they run out); every lookup succeeds.
struct Turns(Mutex<VecDeque<Turn>>);

impl Script for Turns {
    fn chat(&self, _request: &Value) -> Turn {
        self.0
            .lock()
            .expect("the turns")
            .pop_front()
            .unwrap_or_else(|| Turn::Error(500, "no scripted turn left".into()))
    }

    fn lookup(&self, arguments: &Value) -> Result<Value, u16> {
        Ok(json!({"key": arguments["key"], "value": 42}))
    }
}

struct Shared {
    script: Arc<dyn Script>,
    requests: Mutex<Vec<Value>>,
    closed: tokio::sync::watch::Sender<usize>,
    answered: tokio::sync::watch::Sender<usize>,
}

/// Counts an answered request when dropped (the handler has built its response).
struct CountOnDrop(tokio::sync::watch::Sender<usize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// Counts an endless stream whose client went away, when dropped.
struct ClosedOnDrop(tokio::sync::watch::Sender<usize>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// A running fake server (it stops with the runtime that started it).
pub struct FakeLlm {
    /// Base URL to put in a model's `base_url` (ends in `/v1`).
    pub base_url: String,
    shared: Arc<Shared>,
}

impl FakeLlm {
    /// Starts the server on a free port of 127.0.0.1, replaying these turns in order.
    pub async fn start(turns: Vec<Turn>) -> Self {
        Self::start_with(Arc::new(Turns(Mutex::new(turns.into()))))
            .await
            .expect("starting the fake LLM server")
    }

    /// Starts the server on a free port of 127.0.0.1, answering as `script` says.
    pub async fn start_with(script: Arc<dyn Script>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            script,
            requests: Mutex::new(Vec::new()),
            closed: tokio::sync::watch::Sender::new(0),
            answered: tokio::sync::watch::Sender::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/v1/tools/lookup", post(lookup))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { base_url, shared })
    }

    /// The model `fake` (provider `openai`, model `gpt-fake`) served here.
    pub fn model(&self) -> ModelConfig {
        ModelConfig {
            provider: ProviderKind::Openai,
            model: Some("gpt-fake".into()),
            base_url: Some(self.base_url.clone()),
            api_key_env: None,
            input_price_per_mtok: 1.0,
            output_price_per_mtok: 2.0,
            token_delay_ms: 0,
            request_timeout_secs: 10,
            cache_write_price_per_mtok: None,
            cache_read_price_per_mtok: None,
            max_tokens: None,
            prompt_caching: false,
            thinking_budget_tokens: None,
            prompt_cache_ttl: Default::default(),
            script: Vec::new(),
        }
    }

    /// `config` with the model `fake` ([`FakeLlm::model`]) added.
    pub fn config(&self, mut config: AgentflowConfig) -> AgentflowConfig {
        config.models.insert("fake".into(), self.model());
        config
    }

    /// The URL of the `lookup` tool's backend.
    pub fn lookup_url(&self) -> String {
        format!("{}/tools/lookup", self.base_url)
    }

    /// The chat request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().expect("the requests").clone()
    }

    /// Resolves once `count` chat requests have been answered (or started streaming).
    pub async fn answered(&self, count: usize) {
        let mut answered = self.shared.answered.subscribe();
        answered
            .wait_for(|n| *n >= count)
            .await
            .expect("the fake server's state");
    }

    /// Resolves once the client of an [`Turn::Endless`] stream has gone away.
    pub async fn stream_closed(&self) {
        self.streams_closed(1).await;
    }

    /// How many [`Turn::Endless`] streams have lost their client so far.
    pub fn closed_streams(&self) -> usize {
        *self.shared.closed.borrow()
    }

    /// Resolves once `count` [`Turn::Endless`] streams have lost their client.
    pub async fn streams_closed(&self, count: usize) {
        let mut closed = self.shared.closed.subscribe();
        closed
            .wait_for(|closed| *closed >= count)
            .await
            .expect("the fake server's state");
    }
}

/// A tool whose result comes from the fake server's `POST /v1/tools/lookup`: an HTTP 5xx or a
/// connection failure is a [`ToolError::Transient`] (the activity is retried), so a [`Script`]
/// can inject transient tool failures into a real worker.
pub struct LookupTool {
    url: String,
    http: reqwest::Client,
}

impl LookupTool {
    /// The tool, asking the backend at `url` ([`FakeLlm::lookup_url`]).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            http: reqwest::Client::new(),
        }
    }
}

impl Tool for LookupTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "lookup".into(),
            description: "Looks a key up in a remote store.".into(),
            parameters: json!({"type": "object", "properties": {"key": {"type": "string"}},
                "required": ["key"]}),
        }
    }

    fn call(
        &self,
        _context: &CallContext,
        arguments: Value,
    ) -> BoxFuture<'static, Result<Value, ToolError>> {
        let request = self.http.post(&self.url).json(&arguments);
        Box::pin(async move {
            let response = request
                .send()
                .await
                .map_err(|e| ToolError::Transient(format!("lookup unreachable: {e}")))?;
            let status = response.status();
            if status.is_server_error() {
                return Err(ToolError::Transient(format!("lookup: HTTP {status}")));
            }
            if !status.is_success() {
                return Err(ToolError::Failed(format!("lookup: HTTP {status}")));
            }
            response
                .json()
                .await
                .map_err(|e| ToolError::Transient(format!("lookup: {e}")))
        })
    }
}

async fn lookup(State(shared): State<Arc<Shared>>, body: axum::Json<Value>) -> Response {
    match shared.script.lookup(&body.0) {
        Ok(value) => axum::Json(value).into_response(),
        Err(status) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "lookup failed",
        )
            .into_response(),
    }
}

fn chunk(delta: Value) -> String {
    let body = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
        "model": "fake", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
    format!("data: {body}\n\n")
}

/// Usage of every answer.
fn usage() -> Value {
    json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
}

/// The end of a complete stream: the usage chunk and `[DONE]`.
fn stream_end() -> String {
    let usage_chunk = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
        "created": 1, "model": "fake", "choices": [], "usage": usage()});
    format!("data: {usage_chunk}\n\ndata: [DONE]\n\n")
}

fn event_stream(body: axum::body::Body) -> Response {
    ([("content-type", "text/event-stream")], body).into_response()
}

/// `parts` streamed one per `every`; then the end of the stream, or a broken body if `drop`.
fn paced(parts: Vec<String>, every: Duration, drop: bool) -> Response {
    let first = chunk(json!({"role": "assistant", "content": ""}));
    let chunks = futures::stream::iter(parts).then(move |part| async move {
        tokio::time::sleep(every).await;
        Ok::<_, std::io::Error>(chunk(json!({"content": part})))
    });
    let end = futures::stream::once(async move {
        if drop {
            Err(std::io::Error::other("the fake server drops the stream"))
        } else {
            Ok(stream_end())
        }
    });
    let body = futures::stream::once(async move { Ok(first) })
        .chain(chunks)
        .chain(end);
    event_stream(axum::body::Body::from_stream(body))
}

async fn completions(State(shared): State<Arc<Shared>>, body: axum::Json<Value>) -> Response {
    shared
        .requests
        .lock()
        .expect("the requests")
        .push(body.0.clone());
    let turn = shared.script.chat(&body.0);
    let stream = body.0["stream"].as_bool().unwrap_or(false);
    let _count = CountOnDrop(shared.answered.clone());
    match turn {
        Turn::Endless => {
            let first = chunk(json!({"role": "assistant", "content": ""}));
            let ticks = futures::stream::unfold(
                (0u64, ClosedOnDrop(shared.closed.clone())),
                |(index, guard)| async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let text = chunk(json!({"content": format!("tick{index} ")}));
                    Some((
                        Ok::<_, std::convert::Infallible>(text),
                        (index + 1, guard),
                    ))
                },
            );
            let body = futures::stream::once(async move { Ok(first) }).chain(ticks);
            event_stream(axum::body::Body::from_stream(body))
        }
        Turn::Error(status, message) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(json!({"error": {"message": message, "type": "invalid_request_error"}})),
        )
            .into_response(),
        Turn::Text(parts) | Turn::Paced(parts, _) | Turn::Dropped(parts, _) if !stream => {
            axum::Json(json!({
                "choices": [{"index": 0, "message": {"role": "assistant", "content": parts.concat()}, "finish_reason": "stop"}],
                "usage": usage(),
            }))
            .into_response()
        }
        Turn::ToolCalls(calls) if !stream => axum::Json(json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls":
                calls.iter().map(|(id, name, args)| json!({"id": id, "type": "function",
                    "function": {"name": name, "arguments": args}})).collect::<Vec<_>>()},
                "finish_reason": "tool_calls"}],
            "usage": usage(),
        }))
        .into_response(),
        Turn::Timed {
            tokens,
            every,
            then_tools,
        } if !stream => {
            let content: String = (0..tokens).map(|_| timed_token()).collect();
            let calls: Vec<Value> = then_tools
                .iter()
                .map(|(id, name, args)| {
                    json!({"id": id, "type": "function",
                        "function": {"name": name, "arguments": args}})
                })
                .collect();
            let _ = every;
            axum::Json(json!({
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content,
                    "tool_calls": if calls.is_empty() { Value::Null } else { Value::Array(calls) }},
                    "finish_reason": "stop"}],
                "usage": usage(),
            }))
            .into_response()
        }
        Turn::Timed {
            tokens,
            every,
            then_tools,
        } => {
            let first = chunk(json!({"role": "assistant", "content": ""}));
            let text = futures::stream::iter(0..tokens).then(move |_| async move {
                tokio::time::sleep(every).await;
                Ok::<_, std::io::Error>(chunk(json!({"content": timed_token()})))
            });
            let mut tail = String::new();
            for (index, (id, name, args)) in then_tools.iter().enumerate() {
                tail.push_str(&chunk(json!({"tool_calls": [{"index": index, "id": id,
                    "type": "function", "function": {"name": name, "arguments": args}}]})));
            }
            tail.push_str(&stream_end());
            let body = futures::stream::once(async move { Ok(first) })
                .chain(text)
                .chain(futures::stream::once(async move { Ok(tail) }));
            event_stream(axum::body::Body::from_stream(body))
        }
        Turn::Paced(parts, every) => paced(parts, every, false),
        Turn::Dropped(parts, every) => paced(parts, every, true),
        Turn::Text(parts) => {
            let mut body = chunk(json!({"role": "assistant", "content": ""}));
            for part in parts {
                body.push_str(&chunk(json!({"content": part})));
            }
            body.push_str(&stream_end());
            event_stream(body.into())
        }
        Turn::ToolCalls(calls) => {
            let mut body = chunk(json!({"role": "assistant", "content": ""}));
            for (index, (id, name, args)) in calls.iter().enumerate() {
                body.push_str(&chunk(json!({"tool_calls": [{"index": index, "id": id,
                    "type": "function", "function": {"name": name, "arguments": ""}}]})));
                let (a, b) = args.split_at(args.len() / 2);
                for fragment in [a, b] {
                    body.push_str(&chunk(json!({"tool_calls": [{"index": index,
                        "function": {"arguments": fragment}}]})));
                }
            }
            body.push_str(&stream_end());
            event_stream(body.into())
        }
    }
}
