//! A local OpenAI-compatible Chat Completions server. Each request gets the next scripted
//! [`Turn`]; every request body is recorded for assertions.

use crate::harness::test_config;
use agentflow_shared::config::{AgentflowConfig, ModelConfig, ProviderKind};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub enum Turn {
    /// Text, streamed chunk by chunk (or whole when the request is not streaming).
    Text(Vec<String>),
    /// Tool calls `(id, name, arguments JSON)`, streamed as argument fragments.
    ToolCalls(Vec<(String, String, String)>),
    /// An HTTP error with an OpenAI-style error body.
    Error(u16, String),
    /// Text streamed forever, a chunk every 20 ms, until the client goes away (which
    /// [`FakeOpenAi::stream_closed`] then reports).
    Endless,
}

struct Shared {
    turns: VecDeque<Turn>,
    requests: Vec<Value>,
    closed: tokio::sync::watch::Sender<bool>,
    answered: tokio::sync::watch::Sender<usize>,
}

/// Counts an answered request when dropped (the handler has built its response).
struct CountOnDrop(tokio::sync::watch::Sender<usize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// Tells the server's state that an endless stream's client went away, when dropped.
struct ClosedOnDrop(tokio::sync::watch::Sender<bool>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// A running fake server.
pub struct FakeOpenAi {
    /// Base URL to put in a model's `base_url`.
    pub base_url: String,
    shared: Arc<Mutex<Shared>>,
}

impl FakeOpenAi {
    /// Starts the server on a free port with these turns.
    pub async fn start(turns: Vec<Turn>) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            turns: turns.into(),
            requests: Vec::new(),
            closed: tokio::sync::watch::Sender::new(false),
            answered: tokio::sync::watch::Sender::new(0),
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, shared }
    }

    /// [`test_config`] with a model `fake` (provider `openai`, model `gpt-fake`) served here.
    pub fn config(&self) -> AgentflowConfig {
        let mut config = test_config();
        config.models.insert(
            "fake".into(),
            ModelConfig {
                provider: ProviderKind::Openai,
                model: Some("gpt-fake".into()),
                base_url: Some(self.base_url.clone()),
                api_key_env: None,
                input_price_per_mtok: 1.0,
                output_price_per_mtok: 2.0,
                token_delay_ms: 0,
                request_timeout_secs: 10,
            },
        );
        config
    }

    /// The request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Resolves once `count` requests have been answered (or started streaming).
    pub async fn answered(&self, count: usize) {
        let mut answered = self.shared.lock().unwrap().answered.subscribe();
        answered
            .wait_for(|n| *n >= count)
            .await
            .expect("the fake server's state");
    }

    /// Resolves once the client of an [`Turn::Endless`] stream has gone away.
    pub async fn stream_closed(&self) {
        let mut closed = self.shared.lock().unwrap().closed.subscribe();
        closed
            .wait_for(|closed| *closed)
            .await
            .expect("the fake server's state");
    }
}

fn chunk(delta: Value) -> String {
    let body = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
        "model": "fake", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
    format!("data: {body}\n\n")
}

async fn completions(
    State(shared): State<Arc<Mutex<Shared>>>,
    body: axum::Json<Value>,
) -> Response {
    let (turn, stream, closed) = {
        let mut shared = shared.lock().unwrap();
        shared.requests.push(body.0.clone());
        let turn = shared
            .turns
            .pop_front()
            .unwrap_or_else(|| Turn::Error(500, "no scripted turn left".into()));
        (
            turn,
            body.0["stream"].as_bool().unwrap_or(false),
            shared.closed.clone(),
        )
    };
    let answered = shared.lock().unwrap().answered.clone();
    let _count = CountOnDrop(answered);
    let usage = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
    match turn {
        Turn::Endless => {
            let first = chunk(json!({"role": "assistant", "content": ""}));
            let ticks = futures::stream::unfold(
                (0u64, ClosedOnDrop(closed)),
                |(index, guard)| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    let text = chunk(json!({"content": format!("tick{index} ")}));
                    Some((
                        Ok::<_, std::convert::Infallible>(text),
                        (index + 1, guard),
                    ))
                },
            );
            let body = futures::stream::once(async move { Ok(first) }).chain(ticks);
            (
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(body),
            )
                .into_response()
        }
        Turn::Error(status, message) => (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(json!({"error": {"message": message, "type": "invalid_request_error"}})),
        )
            .into_response(),
        Turn::Text(parts) if !stream => axum::Json(json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": parts.concat()}, "finish_reason": "stop"}],
            "usage": usage,
        }))
        .into_response(),
        Turn::ToolCalls(calls) if !stream => axum::Json(json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls":
                calls.iter().map(|(id, name, args)| json!({"id": id, "type": "function",
                    "function": {"name": name, "arguments": args}})).collect::<Vec<_>>()},
                "finish_reason": "tool_calls"}],
            "usage": usage,
        }))
        .into_response(),
        turn => {
            let mut body = chunk(json!({"role": "assistant", "content": ""}));
            match turn {
                Turn::Text(parts) => {
                    for part in parts {
                        body.push_str(&chunk(json!({"content": part})));
                    }
                }
                Turn::ToolCalls(calls) => {
                    for (index, (id, name, args)) in calls.iter().enumerate() {
                        body.push_str(&chunk(json!({"tool_calls": [{"index": index, "id": id,
                            "type": "function", "function": {"name": name, "arguments": ""}}]})));
                        let (a, b) = args.split_at(args.len() / 2);
                        for fragment in [a, b] {
                            body.push_str(&chunk(json!({"tool_calls": [{"index": index,
                                "function": {"arguments": fragment}}]})));
                        }
                    }
                }
                Turn::Error(..) | Turn::Endless => unreachable!("handled above"),
            }
            let usage_chunk = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                "created": 1, "model": "fake", "choices": [], "usage": usage});
            body.push_str(&format!("data: {usage_chunk}\n\ndata: [DONE]\n\n"));
            ([("content-type", "text/event-stream")], body).into_response()
        }
    }
}
