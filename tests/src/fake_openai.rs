//! A local OpenAI-compatible Chat Completions server. Each request gets the next scripted
//! [`Turn`]; every request body is recorded for assertions.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
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
}

#[derive(Default)]
struct Shared {
    turns: VecDeque<Turn>,
    requests: Vec<Value>,
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
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, shared }
    }

    /// The request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().unwrap().requests.clone()
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
    let (turn, stream) = {
        let mut shared = shared.lock().unwrap();
        shared.requests.push(body.0.clone());
        let turn = shared
            .turns
            .pop_front()
            .unwrap_or_else(|| Turn::Error(500, "no scripted turn left".into()));
        (turn, body.0["stream"].as_bool().unwrap_or(false))
    };
    let usage = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
    match turn {
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
                Turn::Error(..) => unreachable!("handled above"),
            }
            let usage_chunk = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                "created": 1, "model": "fake", "choices": [], "usage": usage});
            body.push_str(&format!("data: {usage_chunk}\n\ndata: [DONE]\n\n"));
            ([("content-type", "text/event-stream")], body).into_response()
        }
    }
}
